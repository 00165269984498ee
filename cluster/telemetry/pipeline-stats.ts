/**
 * Cluster-wide figures of the delivery pipeline, read from PostgreSQL (the truth, DESIGN R1) when
 * Prometheus scrapes: outbox depth and age, convergence lag, devices by delivery state. Every
 * process with a database can export them; they agree, so rules aggregate them with `max()`.
 */
import type { Queryable } from '../storage/index.ts';
import { DEVICE_STATES, type PipelineStats } from './metrics.ts';

function num(value: unknown): number {
  const n = typeof value === 'number' ? value : Number(value ?? 0);
  return Number.isFinite(n) ? n : 0;
}

/**
 * Reads the figures in one round trip of three statements.
 *
 * The convergence lag is the age of the oldest pending (active device, key): a device topic whose
 * delivered version differs from its desired version (or a revocation not yet sent), or an
 * identity key not yet delivered, measured from the commit that changed it (`updated_at`). While a
 * rotation fans out it is the time since that rotation's commit; it drops when its last device is
 * delivered. Devices whose delivery failed (retries exhausted: offline, most often) are left out
 * for the work they failed on: the pipeline is done with it until they are seen again, they have
 * their own gauge (`c2_devices{state="failed"}`) and alert, and counting them kept the lag alerts
 * firing for as long as any device of the fleet stayed offline. Work newer than the failure is
 * the pipeline's again (the sweep sends it), and counts. Unreachable devices (a key the C2 does
 * not have, after a restore) are left out: nothing is sent to them.
 */
export async function readPipelineStats(db: Queryable): Promise<PipelineStats> {
  const result = await db.query(
    `SELECT
       (SELECT count(*) FROM outbox) AS outbox_depth,
       (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0) FROM outbox) AS outbox_age,
       (SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(since)), 0) FROM (
          SELECT min(dt.updated_at) AS since
            FROM device_topics dt JOIN clients c ON c.id = dt.client_id
           WHERE c.status = 'active' AND c.sync_state <> 'unreachable'
             AND NOT (c.sync_state = 'failed' AND c.sync_failed_at >= dt.updated_at)
             AND (dt.desired_version <> dt.delivered_version OR dt.desired_version = 0)
          UNION ALL
          SELECT min(updated_at) FROM clients
           WHERE status = 'active' AND sync_state <> 'unreachable'
             AND NOT (sync_state = 'failed' AND sync_failed_at >= updated_at)
             AND key_version <> delivered_key_version
        ) pending) AS convergence_lag,
       (SELECT COALESCE(json_object_agg(sync_state, n), '{}'::json) FROM (
          SELECT sync_state, count(*) AS n FROM clients WHERE status = 'active' GROUP BY sync_state
        ) s) AS devices`,
  );
  const row = (result.rows[0] ?? {}) as Record<string, unknown>;
  const devices = (row['devices'] ?? {}) as Record<string, unknown>;
  const byState = Object.fromEntries(DEVICE_STATES.map((s) => [s, num(devices[s])])) as Record<
    (typeof DEVICE_STATES)[number],
    number
  >;
  return {
    outboxDepth: num(row['outbox_depth']),
    outboxOldestAgeSeconds: Math.max(0, num(row['outbox_age'])),
    convergenceLagSeconds: Math.max(0, num(row['convergence_lag'])),
    devicesByState: byState,
  };
}
