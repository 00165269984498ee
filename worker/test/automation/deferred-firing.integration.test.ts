/**
 * A firing whose rotation keeps failing for a passing reason (the topic's lock held past its wait,
 * the database away) is deferred, not failed: it stays pending and rotates once the cause passes.
 * The case that mattered: a key past its maximum age, whose firing is planned once per key
 * version, was left past its age for good when that one firing ended `failed`.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AutomationService, type C2Service } from '../../../cluster/domain/index.ts';
import { C2Error } from '../../../cluster/errors.ts';
import { KeyVault, LocalKekProvider } from '../../../cluster/keyvault/index.ts';
import { PgAutomationStore, PgDataKeyStore } from '../../../cluster/storage/index.ts';
import { eventually } from '../../../cluster/test/support/eventually.ts';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../../cluster/test/support/postgres.ts';
import { FiringDeferred, PASSING_FAILURE_TRIES } from '../../automation/firing-runner.ts';
import { TEST_AUTOMATION_CAPABILITIES } from '../../../cluster/test/support/test-service.ts';
import { startAutomationNode, type AutomationNode } from './support/automation-node.ts';

const REDIS_URL = process.env['REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379';
const ctx = { actor: 'test' };

void describe('automation: a rotation that fails for a passing reason', () => {
  let schema: TestSchema;
  let node: AutomationNode;
  let admin: AutomationService;
  /** Rotations of `aged/x` still to refuse as a stuck lock holder would. */
  let refusals = 0;
  const kekHex = randomBytes(32).toString('hex');

  before(async () => {
    schema = await createTestSchema();
    await KeyVault.create({
      provider: LocalKekProvider.fromKey(new Uint8Array(Buffer.from(kekHex, 'hex'))),
      store: new PgDataKeyStore(schema.pool),
    });
    admin = new AutomationService(new PgAutomationStore(schema.pool), TEST_AUTOMATION_CAPABILITIES);
    node = await startAutomationNode({
      databaseUrl: TEST_DATABASE_URL,
      schema: schema.schema,
      redisUrl: REDIS_URL,
      leaseKey: `e4c2-test:${randomBytes(6).toString('hex')}:automation:leader`,
      kekHex,
      nodeId: 'deferring-node',
      ttlMs: 3000,
      tickMs: 100,
      keyAgeScanMs: 200,
      wrapC2: (service) =>
        Object.assign(Object.create(service) as C2Service, {
          rotateTopicKey: (...args: Parameters<C2Service['rotateTopicKey']>) => {
            if (args[1] === 'aged/x' && refusals > 0) {
              refusals -= 1;
              return Promise.reject(
                new C2Error('C2_UNAVAILABLE', 'lock topic:aged/x not acquired within 5000 ms'),
              );
            }
            return service.rotateTopicKey(...args);
          },
        }),
    });
  });

  after(async () => {
    await node.close();
    await schema.drop();
  });

  void it('a key past its maximum age is rotated once the lock is free again', async () => {
    await node.service.newTopic(ctx, 'aged/x');
    // More refusals than one run of the firing tries: it is deferred at least once.
    refusals = PASSING_FAILURE_TRIES + 1;
    const rule = await admin.createRule(ctx, {
      description: 'crypto-period of aged/x',
      action: 'rotate-topic-key',
      triggers: [{ kind: 'max-key-age', maxAgeSeconds: 1 }],
      targets: [{ kind: 'topic', match: 'exact', expr: 'aged/x' }],
    });
    await eventually(async () => {
      const firings = await admin.listFirings(rule.id, 10);
      assert.equal(firings.at(-1)?.status, 'succeeded', JSON.stringify(firings.at(-1)));
      assert.ok((await node.service.getTopic('aged/x')).keyVersion >= 2, 'aged/x rotated');
    }, 30_000);
    assert.equal(refusals, 0);
    const firstFiring = (await admin.listFirings(rule.id, 10)).at(-1);
    assert.deepEqual(firstFiring?.result.errors, {}, 'the passing failures are no failure');
    assert.ok(
      node.errors.some((e) => e instanceof FiringDeferred),
      'the deferral was reported',
    );
    await admin.deleteRule(ctx, rule.id);
  });
});
