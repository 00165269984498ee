/**
 * Every PostgreSQL connection of a node (the pool's and the event LISTEN connection) has TCP
 * keep-alive with a short idle time, so that an idle connection to a server that vanished
 * without a word is found dead in about 20 s, not after the kernel's two hours. Checked on the
 * real sockets through the kernel's own view of them: `ss` shows the keep-alive timer of an idle
 * connection, and its remaining time.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import type { Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import type pg from 'pg';
import { connectListener } from '../../events/event-notifications.ts';
import { createPool } from '../../storage/index.ts';
import { TEST_DATABASE_URL } from '../support/postgres.ts';

/** The kernel's timer on the established TCP connection from local `port`, as `ss` prints it. */
function timerOf(port: number): string {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( sport = :${port} )`], {
    encoding: 'utf8',
  });
  return /timer:\(([^)]*)\)/.exec(out)?.[1] ?? `(no timer in ${JSON.stringify(out)})`;
}

/** Seconds left on a keep-alive timer such as `keepalive,9.8sec,0` or `keepalive,512ms,0`. */
function keepaliveSecondsLeft(timer: string): number {
  const m = /^keepalive,(?:(\d+)min)?(?:([\d.]+)sec)?(?:([\d.]+)ms)?,/.exec(timer);
  assert.ok(m !== null, `a keep-alive timer, got ${timer}`);
  return Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0) + Number(m[3] ?? 0) / 1000;
}

/** The local port of a pg client's socket. */
function localPort(client: pg.ClientBase): number {
  const stream = (client as unknown as { connection: { stream: Socket } }).connection.stream;
  assert.ok(stream.localPort !== undefined, 'the client is connected over TCP');
  return stream.localPort;
}

void describe('PostgreSQL connections: TCP keep-alive', () => {
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closers) await close();
  });

  void it('pooled connections probe after 10 s idle, not the kernel default of 2 hours', async () => {
    const pool = await createPool({ url: TEST_DATABASE_URL, max: 1 });
    closers.push(() => pool.end());
    const client = await pool.connect();
    try {
      const left = keepaliveSecondsLeft(timerOf(localPort(client)));
      assert.ok(left > 0 && left <= 10, `${left} s before the first probe`);
    } finally {
      client.release();
    }
  });

  void it('so does the event LISTEN connection', async () => {
    const listener = await connectListener({ url: TEST_DATABASE_URL });
    closers.push(() => listener.end());
    const left = keepaliveSecondsLeft(timerOf(localPort(listener as pg.Client)));
    assert.ok(left > 0 && left <= 10, `${left} s before the first probe`);
  });
});
