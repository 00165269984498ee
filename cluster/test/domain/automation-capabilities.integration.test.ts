// A rule whose action could never succeed in the deployment is refused when written enabled:
// rotate-client-key in public-key mode without E4C2_PK_SERVER_KEYGEN (every RotateClientKey
// without a public key is C2_FAILED_PRECONDITION there), rotate-c2-key in symmetric-key mode.
// It was accepted, and then failed at every firing.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AutomationCapabilities, AutomationService } from '../../domain/index.ts';
import { C2Error } from '../../errors.ts';
import { PgAutomationStore } from '../../storage/index.ts';
import { createTestSchema, type TestSchema } from '../support/postgres.ts';

const ctx = { actor: 'test' };
const EVERY_HOUR = { kind: 'interval', everySeconds: 3600 };
const clientRule = (enabled = true): object => ({
  action: 'rotate-client-key',
  triggers: [EVERY_HOUR],
  targets: [{ kind: 'client', match: 'prefix', expr: 'sensor-' }],
  enabled,
});
const c2Rule = { action: 'rotate-c2-key', triggers: [EVERY_HOUR] };

/** A call's result as a promise, whether it throws at once (validation) or rejects. */
function attempt<T>(call: () => Promise<T>): Promise<T> {
  return Promise.resolve().then(call);
}

function refusedWith(code: string): (err: unknown) => boolean {
  return (err: unknown) => {
    assert.ok(C2Error.is(err), String(err));
    assert.equal(err.code, code, err.message);
    assert.deepEqual(err.details?.['field'], 'rule.action');
    return true;
  };
}

void describe('automation rules that could never run here', () => {
  let schema: TestSchema;
  const service = (capabilities: AutomationCapabilities): AutomationService =>
    new AutomationService(new PgAutomationStore(schema.pool), capabilities);

  before(async () => {
    schema = await createTestSchema();
  });
  after(async () => {
    await schema.drop();
  });

  void it('public-key mode without server key generation refuses an enabled rotate-client-key', async () => {
    const pubkey = service({ mode: 'pubkey', pkServerKeygen: false });
    await assert.rejects(
      attempt(() => pubkey.createRule(ctx, clientRule())),
      (err: unknown) => {
        refusedWith('C2_FAILED_PRECONDITION')(err);
        assert.match((err as Error).message, /E4C2_PK_SERVER_KEYGEN/);
        return true;
      },
    );
    assert.deepEqual(await pubkey.listRules(), []);
    // The other actions are fine there.
    await pubkey.createRule(ctx, c2Rule);
    await pubkey.createRule(ctx, { ...clientRule(), action: 'resync-lagging' });
  });

  void it('a disabled one is kept (prepared before the setting), and refused when enabled', async () => {
    const pubkey = service({ mode: 'pubkey', pkServerKeygen: false });
    const rule = await pubkey.createRule(ctx, clientRule(false));
    await assert.rejects(
      pubkey.updateRule(ctx, rule.id, clientRule(true), rule.version),
      refusedWith('C2_FAILED_PRECONDITION'),
    );
    assert.equal((await pubkey.getRule(rule.id)).enabled, false);
    // Edits that leave it disabled, and its deletion, still work.
    await pubkey.addTrigger(ctx, rule.id, { kind: 'max-key-age', maxAgeSeconds: 86_400 });
    await pubkey.deleteRule(ctx, rule.id);
  });

  void it('an enabled rule written under another setting cannot be edited into staying enabled, but can be disabled', async () => {
    const keygen = service({ mode: 'pubkey', pkServerKeygen: true });
    const rule = await keygen.createRule(ctx, clientRule());
    // The node restarted without E4C2_PK_SERVER_KEYGEN.
    const pubkey = service({ mode: 'pubkey', pkServerKeygen: false });
    await assert.rejects(
      pubkey.addTarget(ctx, rule.id, { kind: 'client', expr: 'gateway-1' }),
      refusedWith('C2_FAILED_PRECONDITION'),
    );
    const disabled = await pubkey.updateRule(ctx, rule.id, clientRule(false));
    assert.equal(disabled.enabled, false);
  });

  void it('symmetric-key mode refuses an enabled rotate-c2-key and takes rotate-client-key', async () => {
    const symkey = service({ mode: 'symkey', pkServerKeygen: false });
    await assert.rejects(
      attempt(() => symkey.createRule(ctx, c2Rule)),
      refusedWith('C2_CRYPTO_MODE'),
    );
    await symkey.createRule(ctx, clientRule());
  });
});
