/**
 * Identity keys are delivered one version at a time, each protected with the previous one, so a
 * device converges whichever way a lost PUBACK left it. Regression test for the chaos suite's
 * finding: jumping to the newest version (protected with the last recorded one) cut off for good
 * a device that had applied a command whose PUBACK was lost.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { E4Client, E4Error, protectCommand } from '../../../e4/index.ts';
import { planNextCommand } from '../../delivery/next-command.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';

const ctx = { actor: 'test' };

void describe('stepped identity-key delivery', () => {
  let h: C2Harness;
  before(async () => {
    h = await startHarness({ start: false });
  });
  after(async () => {
    await h.close();
  });

  /** A device on key v1 whose identity key the C2 has rotated to v3. */
  async function lagging(): Promise<{ device: E4Client; clientId: string; name: string }> {
    const name = `stepped-${randomBytes(4).toString('hex')}`;
    const key = randomBytes(32);
    await h.service.newClient(ctx, name, key);
    await h.service.rotateClientKey(ctx, name);
    await h.service.rotateClientKey(ctx, name);
    const row = await h.store.read.clients.byName(name);
    assert.ok(row !== undefined);
    return { device: await E4Client.createSymmetric({ name }, { key }), clientId: row.id, name };
  }

  /** Plans the next command; the device may receive it; the broker's PUBACK may be recorded. */
  async function send(
    device: E4Client,
    clientId: string,
    reaches: boolean,
    acknowledged: boolean,
  ): Promise<{ describe: string; outcome: string }> {
    const plan = await planNextCommand(
      { sealer: h.service.deps.sealer, mode: 'symkey' },
      h.store.read,
      clientId,
    );
    assert.equal(plan.kind, 'command');
    const { command } = plan;
    const message = protectCommand(command.clear, command.commandKey);
    let outcome = 'not received';
    if (reaches) {
      try {
        await device.unprotect(message, device.receivingTopic);
        outcome = 'applied';
      } catch (err) {
        outcome = E4Error.is(err) ? err.code : String(err);
      }
    }
    if (acknowledged) await h.store.transaction((tx) => command.record(tx, randomBytes(16)));
    return { describe: command.describe, outcome };
  }

  void it('converges when the device applied a command whose PUBACK was lost', async () => {
    const { device, clientId } = await lagging();
    assert.deepEqual(await send(device, clientId, true, false), {
      describe: 'identity v2',
      outcome: 'applied',
    });
    // The retry is the same step; the device, already past it, refuses it; the broker accepts it.
    assert.deepEqual(await send(device, clientId, true, true), {
      describe: 'identity v2',
      outcome: 'NotAuthentic',
    });
    assert.deepEqual(await send(device, clientId, true, true), {
      describe: 'identity v3',
      outcome: 'applied',
    });
    const done = await planNextCommand(
      { sealer: h.service.deps.sealer, mode: 'symkey' },
      h.store.read,
      clientId,
    );
    assert.equal(done.kind, 'idle');
  });

  void it('converges when the command never reached the device', async () => {
    const { device, clientId } = await lagging();
    assert.equal((await send(device, clientId, false, false)).describe, 'identity v2');
    assert.deepEqual(await send(device, clientId, true, true), {
      describe: 'identity v2',
      outcome: 'applied',
    });
    assert.deepEqual(await send(device, clientId, true, true), {
      describe: 'identity v3',
      outcome: 'applied',
    });
  });

  void it("a resync's re-send repairs a device that missed v2 while v3 is still being delivered", async () => {
    const { device, clientId, name } = await lagging();
    // v2 was accepted by the broker but never reached the device (offline, clean session) ...
    assert.equal((await send(device, clientId, false, true)).describe, 'identity v2');
    // ... and v3 is not delivered yet when an operator resyncs.
    await h.service.resyncClient(ctx, name);
    assert.deepEqual(await send(device, clientId, true, true), {
      describe: 'identity v2 again',
      outcome: 'applied',
    });
    assert.deepEqual(await send(device, clientId, true, true), {
      describe: 'identity v3',
      outcome: 'applied',
    });
  });

  void it("the automation's resync re-sends no key (only an operator's may)", async () => {
    const { device, clientId, name } = await lagging();
    assert.equal((await send(device, clientId, false, true)).describe, 'identity v2');
    await h.service.resyncClient(ctx, name, { resendKeys: false });
    assert.equal((await send(device, clientId, true, true)).describe, 'identity v3');
  });
});
