/**
 * Every PostgreSQL connection of a node names itself `e4c2-<node id>`: `ops/backup/restore.sh`
 * lists the C2 nodes still connected by that name, and the event listener used to call itself
 * `e4c2-events`, a node that does not exist, with no word of which node held it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../../cluster/config/index.ts';
import { Lifecycle } from '../../cluster/lifecycle.ts';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../cluster/test/support/postgres.ts';
import { openDatabase } from '../node-parts.ts';

void describe("a node's PostgreSQL connections", () => {
  let schema: TestSchema;
  before(async () => {
    schema = await createTestSchema(false);
  });
  after(async () => {
    await schema.drop();
  });

  void it('the pool and the event listener both name the node', async () => {
    const config = loadConfig({
      DATABASE_URL: TEST_DATABASE_URL,
      E4C2_DB_SCHEMA: schema.schema,
      E4C2_NODE_ID: 'names-probe',
      E4C2_KEK_PASSPHRASE: 'a passphrase for this test only',
      MQTT_URL: 'mqtt://127.0.0.1:1883',
    });
    const lifecycle = new Lifecycle(pino({ level: 'silent' }));
    const db = await openDatabase(config, pino({ level: 'silent' }), lifecycle, []);
    const listener = await db.listenConnection();
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      const nameOf = async (conn: Pick<pg.Client, 'query'>): Promise<string | undefined> => {
        const { rows } = await conn.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        const seen = await admin.query<{ application_name: string }>(
          'SELECT application_name FROM pg_stat_activity WHERE pid = $1',
          [rows[0]?.pid],
        );
        return seen.rows[0]?.application_name;
      };
      assert.equal(await nameOf(db.pool), 'e4c2-names-probe', 'the pool');
      assert.equal(await nameOf(listener), 'e4c2-names-probe', 'the event listener');
    } finally {
      await admin.end();
      await listener.end();
      await lifecycle.shutdown(10_000);
    }
  });
});
