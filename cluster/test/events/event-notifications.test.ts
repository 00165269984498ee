/**
 * The LISTEN connection of event wake-ups, over fake connections of our own: a connection whose
 * statements go unanswered (black-holed by a failover or a partition) is given up within the
 * answer bound and replaced, whether it falls silent while connecting or later (the ping finds
 * it); one that answers is kept; closing never waits on a silent connection.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { afterEach, describe, it } from 'node:test';
import type pg from 'pg';
import { PgEventNotifications, type ListenConnection } from '../../events/index.ts';
import { eventually } from '../support/eventually.ts';

/** A connection that answers every statement, until it is made silent. */
class FakeConnection extends EventEmitter {
  silent = false;
  readonly statements: string[] = [];
  ended = false;

  query(sql: string): Promise<pg.QueryResult> {
    this.statements.push(sql);
    if (this.silent) return new Promise(() => undefined);
    return Promise.resolve({ rows: [{ schema: 'public' }] } as unknown as pg.QueryResult);
  }

  end(): Promise<void> {
    this.ended = true;
    return this.silent ? new Promise(() => undefined) : Promise.resolve();
  }
}

void describe('event wake-ups: the LISTEN connection', () => {
  const hubs: PgEventNotifications[] = [];
  afterEach(async () => {
    for (const hub of hubs.splice(0)) await hub.close();
  });

  /** A hub over fake connections made by `make` (each call: the next connection). */
  async function start(make: () => FakeConnection): Promise<{
    hub: PgEventNotifications;
    made: FakeConnection[];
    errors: string[];
  }> {
    const made: FakeConnection[] = [];
    const errors: string[] = [];
    const hub = await PgEventNotifications.start({
      connect: () => {
        const c = make();
        made.push(c);
        return Promise.resolve(c as unknown as ListenConnection);
      },
      sequence: () => Promise.resolve(),
      sequenceIntervalMs: 1000,
      pingIntervalMs: 40,
      answerTimeoutMs: 60,
      onError: (err, context) => {
        errors.push(`${context}: ${err instanceof Error ? err.message : String(err)}`);
      },
    });
    hubs.push(hub);
    return { hub, made, errors };
  }

  void it('gives up a connection whose LISTEN is not answered, and connects again', async () => {
    let n = 0;
    const { hub, made, errors } = await start(() => {
      const c = new FakeConnection();
      c.silent = n++ === 0;
      return c;
    });
    assert.equal(hub.listening, false, 'not listening on the silent connection');
    await eventually(() => {
      assert.equal(hub.listening, true, 'listening on the next connection');
    }, 5000);
    assert.equal(made.length, 2);
    assert.ok(made[0]?.ended, 'the silent connection was ended');
    assert.match(errors[0] ?? '', /event listener connect: .*did not answer within 60 ms/);
  });

  void it('drops a listening connection that stops answering its ping', async () => {
    const { hub, made, errors } = await start(() => new FakeConnection());
    assert.equal(hub.listening, true);
    const first = made[0];
    assert.ok(first !== undefined);
    first.silent = true;
    await eventually(() => {
      assert.equal(made.length >= 2, true, 'a new connection');
      assert.equal(hub.listening, true, 'listening again');
    }, 5000);
    assert.ok(first.ended, 'the silent connection was ended');
    assert.ok(
      errors.some((e) => /event listener connection: .*did not answer/.test(e)),
      errors.join('; '),
    );
  });

  void it('keeps a connection that answers its pings', async () => {
    const { hub, made } = await start(() => new FakeConnection());
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(made.length, 1, 'no reconnect');
    assert.equal(hub.listening, true);
    assert.ok(
      (made[0]?.statements.filter((s) => s === 'SELECT 1').length ?? 0) >= 2,
      'it was pinged',
    );
  });

  void it('closes without waiting for a silent connection to end', async () => {
    const { hub, made } = await start(() => new FakeConnection());
    const c = made[0];
    assert.ok(c !== undefined);
    c.silent = true;
    await hub.close();
    assert.ok(c.ended, 'asked to end');
  });
});
