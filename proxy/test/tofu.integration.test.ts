/**
 * Trust on first use with a stand-in for the C2 (real Mosquitto): an identity is registered and
 * rotated once; a later start while the C2 is down uses the stored identity (with a warning),
 * while an identity without any stored state still cannot start without the C2.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ProxyError } from '../errors.ts';
import {
  BROKER_URL,
  recordingLogger,
  startFakeC2,
  startProxy,
  tempDir,
  unique,
  writeConfig,
} from './support.ts';

void describe('trust on first use (real Mosquitto)', () => {
  const known = unique('tofu-known');
  const upstream = { url: BROKER_URL, controlClientId: unique('e4proxy-tofu') };
  let dir: Awaited<ReturnType<typeof tempDir>>;

  before(async () => {
    dir = await tempDir();
  });
  after(() => dir.cleanup());

  /** A gateway configuration of `names` with trust on first use against `c2Url`. */
  function config(names: readonly string[], c2Url: string): ReturnType<typeof writeConfig> {
    return writeConfig(dir.path, {
      mode: 'gateway',
      upstream,
      identities: names.map((name) => ({ name })),
      gatewayIdentity: known,
      c2: { url: c2Url, tofu: true },
    });
  }

  void it('registers once; later starts while the C2 is down use the stored identity', async () => {
    const path = `/v1/clients/${encodeURIComponent(known)}`;
    const c2 = await startFakeC2((method) => (method === 'GET' ? undefined : { status: 200 }));
    const first = await startProxy(await config([known], c2.url));
    await first.close();
    await c2.close();
    assert.deepEqual(c2.requests, [
      `GET ${path}`,
      `POST /e4/client/${encodeURIComponent(known)}`,
      `POST ${path}/rotate`,
    ]);

    // The C2 is down now: its port is closed.
    const logger = recordingLogger();
    const again = await startProxy(await config([known], c2.url), { logger });
    try {
      assert.equal(again.ring.get(known)?.created, false);
      const warning = logger.lines.find(
        (l) => l.level === 'warn' && (l.obj as { identity?: string }).identity === known,
      );
      assert.ok(warning, JSON.stringify(logger.lines));
      assert.match(warning.msg, /the C2 cannot be reached to check the registration/);
      assert.match((warning.obj as { err: string }).err, /cannot reach the C2 .*ECONNREFUSED/);
    } finally {
      await again.close();
    }

    // An identity with no stored state needs the C2: the start still fails, clearly.
    await assert.rejects(
      startProxy(await config([known, unique('tofu-new')], c2.url)),
      (err: unknown) => {
        assert.ok(ProxyError.is(err, 'PROXY_REGISTRATION'), String(err));
        assert.match(
          err.message,
          /^cannot reach the C2 at http:\/\/127\.0\.0\.1:\d+: connect ECONNREFUSED/,
        );
        return true;
      },
    );
  });

  // Uses the store the test above made.
  void it('treats a C2 answering 503 as unreachable, and any other refusal as an error', async () => {
    for (const [status, outcome] of [
      [503, 'starts'],
      [401, 'fails'],
    ] as const) {
      const c2 = await startFakeC2(() => ({
        status,
        body: { error: { code: 'C2_X', message: `answered ${status}` } },
      }));
      try {
        const starting = startProxy(await config([known], c2.url), { logger: recordingLogger() });
        if (outcome === 'starts') {
          await (await starting).close();
        } else {
          await assert.rejects(starting, (err: unknown) => {
            assert.ok(ProxyError.is(err, 'PROXY_REGISTRATION'), String(err));
            assert.match(err.message, /HTTP 401 C2_X: answered 401/);
            return true;
          });
        }
      } finally {
        await c2.close();
      }
    }
  });
});
