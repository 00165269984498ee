/**
 * The secrecy scan (I8) reads the whole event log, page after page (every scenario of a run
 * shares it, so keys of a later scenario lie past the first page), and a place it cannot read is
 * reported as unchecked instead of counting as clean.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ChaosDevice } from '../chaos-device.ts';
import type { ChaosEnvironment } from '../environment.ts';
import { scanForSecrets } from '../final-state.ts';
import { RedisService } from '../services/redis-service.ts';

const SECRET = 'deadbeef'.repeat(8);
const device = { secrets: new Set([SECRET]) } as unknown as ChaosDevice;
/** Events 1..2500 as `GET /v1/events` pages them; the key sits in event 2400. */
const EVENTS = 2500;

/** What the fake API answers; switched per test. */
const broken = { metrics: false, eventsAfter: Number.POSITIVE_INFINITY };

function answer(url: URL): { status: number; body: string } {
  if (url.pathname === '/api-1/metrics') return { status: 200, body: 'e4c2_up 1\n' };
  if (url.pathname === '/api-2/metrics')
    return broken.metrics ? { status: 503, body: 'busy' } : { status: 200, body: 'e4c2_up 1\n' };
  if (url.pathname !== '/v1/events') return { status: 404, body: '{}' };
  const after = Number(url.searchParams.get('after') ?? '0');
  if (after >= broken.eventsAfter) return { status: 500, body: '{"code":"C2_INTERNAL"}' };
  const limit = Number(url.searchParams.get('limit') ?? '100');
  const events = [];
  for (let seq = after + 1; seq <= Math.min(EVENTS, after + limit); seq++)
    events.push({ seq: String(seq), type: 'topic.rotated', details: seq === 2400 ? SECRET : '' });
  const nextAfterSeq = events.at(-1)?.seq ?? String(after);
  return { status: 200, body: JSON.stringify({ events, nextAfterSeq }) };
}

void describe('the secrecy scan', () => {
  let server: Server | undefined;
  let redis: RedisService | undefined;
  let env: ChaosEnvironment | undefined;

  before(async () => {
    redis = await RedisService.start();
    server = createServer((req, res) => {
      const { status, body } = answer(new URL(req.url ?? '/', 'http://x'));
      res.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    env = {
      queueRedis: { url: redis.url },
      cluster: {
        redlock: [],
        nodes: ['api-1', 'api-2'].map((name) => ({ name, health: `${base}/${name}` })),
        lb: { http: base },
      },
    } as unknown as ChaosEnvironment;
  });

  after(async () => {
    await new Promise((r) => server?.close(r));
    await redis?.stop();
  });

  void it('finds a key past the first page of the event log', async () => {
    assert.ok(env !== undefined);
    const leaks = await scanForSecrets(env, [device], {
      lines: ['node output without keys'],
      dropped: 0,
    });
    assert.deepEqual(leaks, [{ where: 'event log', what: 'a device key (64-character encoding)' }]);
  });

  void it('reports the places it could not read as unchecked, not clean', async () => {
    assert.ok(env !== undefined);
    broken.metrics = true;
    broken.eventsAfter = 1000; // the second page fails
    try {
      const leaks = await scanForSecrets(env, [device], { lines: [], dropped: 0 });
      assert.deepEqual(
        leaks.map((l) => [l.where, l.unchecked]),
        [
          ['api-2 /metrics', true],
          ['event log', true],
        ],
      );
      assert.match(leaks[0]?.what ?? '', /HTTP 503/);
    } finally {
      broken.metrics = false;
      broken.eventsAfter = Number.POSITIVE_INFINITY;
    }
  });

  void it('reports node output that was not kept (over the cap) as unchecked', async () => {
    assert.ok(env !== undefined);
    const leaks = await scanForSecrets(env, [device], { lines: ['kept'], dropped: 7 });
    assert.deepEqual(leaks[0], {
      where: 'node output',
      what: '7 line(s) past the first 1 were not kept',
      unchecked: true,
    });
  });
});
