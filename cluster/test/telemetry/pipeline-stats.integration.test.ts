// The cluster-wide gauges read from PostgreSQL at scrape time: outbox depth and age, convergence
// lag (oldest pending change of an active device, converged, failed and removing devices
// ignored) and devices by delivery state. Rows are written directly, with backdated timestamps.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { readPipelineStats } from '../../telemetry/index.ts';
import { createTestSchema, type TestSchema } from '../support/postgres.ts';

void describe('readPipelineStats', () => {
  let schema: TestSchema | undefined;
  const db = () => {
    assert.ok(schema !== undefined);
    return schema.pool;
  };

  /** Inserts a client; returns its id. */
  const client = async (state: string, status = 'active'): Promise<string> => {
    const res = await db().query<{ id: string }>(
      `INSERT INTO clients (name, e4_id, key_version, delivered_key_version, sync_state, status,
         sync_failed_at)
       VALUES ($1, $2, 1, 1, $3, $4, CASE WHEN $3 IN ('failed', 'unreachable') THEN now() END)
       RETURNING id`,
      [`dev-${randomBytes(4).toString('hex')}`, randomBytes(16), state, status],
    );
    return res.rows[0]?.id ?? '';
  };
  const deviceTopic = async (
    clientId: string,
    desired: number,
    delivered: number,
    ageSeconds: number,
  ): Promise<void> => {
    await db().query(
      `INSERT INTO device_topics (client_id, topic_hash, desired_version, delivered_version, updated_at)
       VALUES ($1, $2, $3, $4, now() - make_interval(secs => $5))`,
      [clientId, randomBytes(16), desired, delivered, ageSeconds],
    );
  };

  before(async () => {
    schema = await createTestSchema();
  });
  after(async () => {
    await schema?.drop();
  });

  void it('is all zeros on an empty database', async () => {
    const stats = await readPipelineStats(db());
    assert.deepEqual(stats, {
      outboxDepth: 0,
      outboxOldestAgeSeconds: 0,
      convergenceLagSeconds: 0,
      devicesByState: { idle: 0, pending: 0, failed: 0, unreachable: 0 },
    });
  });

  void it('measures the outbox, the oldest pending change and devices by state', async () => {
    const idle = await client('idle');
    const pending = await client('pending');
    const failed = await client('failed');
    const unreachable = await client('unreachable');
    const removing = await client('pending', 'removing');
    await deviceTopic(idle, 1, 1, 5000); // converged long ago: not lagging
    await deviceTopic(pending, 2, 1, 90); // a rotation committed 90 s ago, not delivered
    await deviceTopic(pending, 3, 3, 10);
    await deviceTopic(removing, 2, 1, 4000); // a device being removed does not count
    // Retries exhausted (offline): counted as failed, not as the pipeline lagging, or the lag
    // alerts would fire for as long as one device of the fleet stays offline.
    await deviceTopic(failed, 2, 1, 3000);
    // A key the C2 does not have (after a restore): nothing is sent to it, so it does not lag.
    await deviceTopic(unreachable, 2, 1, 3000);
    await db().query(
      `INSERT INTO outbox (client_id, reason, created_at)
       VALUES ($1, 'rotation', now() - interval '42 seconds'), ($1, 'rotation', now())`,
      [pending],
    );

    const stats = await readPipelineStats(db());
    assert.equal(stats.outboxDepth, 2);
    assert.ok(
      stats.outboxOldestAgeSeconds >= 42 && stats.outboxOldestAgeSeconds < 3600,
      `outbox age ${stats.outboxOldestAgeSeconds}`,
    );
    assert.ok(
      stats.convergenceLagSeconds >= 90 && stats.convergenceLagSeconds < 2000,
      `lag ${stats.convergenceLagSeconds}`,
    );
    assert.deepEqual(stats.devicesByState, { idle: 1, pending: 1, failed: 1, unreachable: 1 });

    // Delivered and relayed: the lag and the outbox drop to zero.
    await db().query('UPDATE device_topics SET delivered_version = desired_version');
    await db().query('DELETE FROM outbox');
    const settled = await readPipelineStats(db());
    assert.equal(settled.convergenceLagSeconds, 0);
    assert.equal(settled.outboxDepth, 0);
    assert.equal(settled.outboxOldestAgeSeconds, 0);
  });

  void it('counts the work a failed device got after its failure (the sweep sends it)', async () => {
    const failed = await client('failed');
    await db().query(
      `UPDATE clients SET sync_failed_at = now() - interval '600 seconds' WHERE id = $1`,
      [failed],
    );
    await deviceTopic(failed, 3, 1, 120); // a rotation 2 minutes ago, after the failure
    const stats = await readPipelineStats(db());
    assert.ok(
      stats.convergenceLagSeconds >= 120 && stats.convergenceLagSeconds < 600,
      `lag ${stats.convergenceLagSeconds}`,
    );
    await db().query('DELETE FROM device_topics WHERE client_id = $1', [failed]);
  });

  void it('leaves out a failed identity key delivery too', async () => {
    const id = await client('failed');
    await db().query(
      `UPDATE clients SET key_version = 2, updated_at = now() - interval '3000 seconds' WHERE id = $1`,
      [id],
    );
    const stats = await readPipelineStats(db());
    assert.ok(stats.convergenceLagSeconds < 3000, `lag ${stats.convergenceLagSeconds}`);
  });

  void it('counts identity keys not yet delivered', async () => {
    const id = await client('pending');
    await db().query(
      `UPDATE clients SET key_version = 2, updated_at = now() - interval '30 seconds' WHERE id = $1`,
      [id],
    );
    const stats = await readPipelineStats(db());
    assert.ok(stats.convergenceLagSeconds >= 30, `lag ${stats.convergenceLagSeconds}`);
  });
});
