/**
 * A rule accepted by one node and fired by another whose settings cannot run it: an API node with
 * E4C2_PK_SERVER_KEYGEN on stores an enabled rotate-client-key rule (public-key mode), and the
 * automation leader has it off. The leader's firing ends `failed` with `C2_FAILED_PRECONDITION`
 * and a reason that names the leader and the setting, without trying any client. It used to try
 * every client, each refused with the same bare code, so the operator saw only codes (one per
 * client) and nothing saying which node or which setting was at fault.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AutomationService } from '../../../cluster/domain/index.ts';
import { PgAutomationStore } from '../../../cluster/storage/index.ts';
import { eventually } from '../../../cluster/test/support/eventually.ts';
import { ed25519KeyFromSeed } from '../../../e4/index.ts';
import { startAutomationNode, type AutomationNode } from './support/automation-node.ts';
import { createAutomationSchema, type AutomationSchema } from './support/automation-schema.ts';

const ctx = { actor: 'test' };

void describe('automation: a rule the firing node cannot run', () => {
  let world: AutomationSchema;
  let leader: AutomationNode;
  /** The API node's rules service: public-key mode, server key generation on. */
  let apiNode: AutomationService;

  before(async () => {
    world = await createAutomationSchema();
    apiNode = new AutomationService(new PgAutomationStore(world.schema.pool), {
      mode: 'pubkey',
      pkServerKeygen: true,
    });
    leader = await startAutomationNode({
      ...world.nodeOptions,
      nodeId: 'worker-without-keygen',
      capabilities: { mode: 'pubkey', pkServerKeygen: false },
    });
  });

  after(async () => {
    await leader.close();
    await world.schema.drop();
  });

  void it('ends the firing failed with a reason naming the node and the setting, rotating nothing', async () => {
    const names = ['sensor-a', 'sensor-b', 'sensor-c'];
    for (const name of names) {
      const device = ed25519KeyFromSeed(new Uint8Array(randomBytes(32)));
      await leader.service.newClient(ctx, name, device.slice(32));
    }
    const rule = await apiNode.createRule(ctx, {
      description: 'client keys every second',
      action: 'rotate-client-key',
      triggers: [{ kind: 'interval', everySeconds: 1 }],
      targets: [{ kind: 'client', match: 'prefix', expr: 'sensor-' }],
    });
    const firing = await eventually(async () => {
      const [first] = (await apiNode.listFirings(rule.id, 1000)).slice(-1);
      assert.equal(first?.status, 'failed', JSON.stringify(first));
      return first;
    }, 20_000);
    assert.deepEqual(firing.result['errors'], { C2_FAILED_PRECONDITION: 1 }, 'one refusal');
    assert.equal(firing.result['targets'], 0, 'no client was tried');
    const reason = String(firing.result['reason']);
    assert.match(reason, /rotate-client-key cannot run on node worker-without-keygen/);
    assert.match(reason, /E4C2_PK_SERVER_KEYGEN/);
    await apiNode.deleteRule(ctx, rule.id);
    for (const name of names)
      assert.equal((await leader.service.getClient(name)).keyVersion, 1, `${name} not rotated`);
  });
});
