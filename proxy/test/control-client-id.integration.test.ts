/**
 * The control session's client id stays the same when the identities change (real Mosquitto):
 * the default derived from the first identity gives way to the id of earlier starts, kept in the
 * state directory; an id set in the configuration is used, with a warning when it changes.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import mqtt from 'mqtt';
import {
  BROKER_URL,
  recordingLogger,
  startProxy,
  tempDir,
  unique,
  writeConfig,
} from './support.ts';

void describe('control client id (real Mosquitto)', () => {
  const used = new Set<string>();
  const dirs: Array<Awaited<ReturnType<typeof tempDir>>> = [];
  after(async () => {
    // The persistent sessions the test left at the broker.
    for (const clientId of used) {
      const cleaner = await mqtt.connectAsync(BROKER_URL, { clientId, clean: true });
      await cleaner.endAsync();
    }
    for (const dir of dirs) await dir.cleanup();
  });

  void it('keeps the id of earlier starts when the first identity changes', async () => {
    const dir = await tempDir();
    dirs.push(dir);
    const [a, b] = [unique('ccid-a'), unique('ccid-b')];
    /** Starts and stops a proxy of `names`; @returns its control client id and the warnings. */
    async function run(names: string[], controlClientId?: string) {
      const config = await writeConfig(dir.path, {
        mode: 'gateway',
        upstream: {
          url: BROKER_URL,
          ...(controlClientId === undefined ? {} : { controlClientId }),
        },
        identities: names.map((name) => ({ name })),
        gatewayIdentity: names[0],
      });
      const logger = recordingLogger();
      const proxy = await startProxy(config, { logger });
      const id = proxy.config.upstream.controlClientId;
      used.add(id);
      await proxy.close();
      return {
        id,
        warnings: logger.lines
          .filter((l) => l.level === 'warn' && l.msg.includes('controlClientId'))
          .map((l) => l.msg),
      };
    }

    const first = await run([a, b]);
    assert.equal(first.id, `e4proxy-gateway-${a}`);
    assert.deepEqual(first.warnings, []);

    // Reordered, then the first identity removed: the derived default changes, the id does not.
    for (const names of [[b, a], [b]]) {
      const again = await run(names);
      assert.equal(again.id, first.id);
      assert.equal(again.warnings.length, 1, JSON.stringify(again.warnings));
      assert.match(
        again.warnings[0] ?? '',
        new RegExp(
          `its default .* is now 'e4proxy-gateway-${b}'; the control session keeps the id of earlier starts, '${first.id}'`,
        ),
      );
    }

    // Set in the configuration: used, with a warning the first time it differs.
    const chosen = unique('e4proxy-ccid');
    const explicit = await run([b], chosen);
    assert.equal(explicit.id, chosen);
    assert.match(
      explicit.warnings[0] ?? '',
      new RegExp(`changed from '${first.id}' to '${chosen}'`),
    );
    const steady = await run([b], chosen);
    assert.equal(steady.id, chosen);
    assert.deepEqual(steady.warnings, []);
  });
});
