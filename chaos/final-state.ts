/**
 * Reads the final state of a run: PostgreSQL directly (topics, key versions, clients,
 * memberships, the audit log, the outbox), the devices' own state, and a scan for key material
 * (I8) in every Redis (queue and Redlock: all keys and values, job data included), in the nodes'
 * output, their `/metrics` and the event log.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import type { ChaosDevice } from './chaos-device.ts';
import type { ChaosEnvironment } from './environment.ts';
import type { AuditedRotation, FinalClient, FinalTopic, SecretLeak } from './history.ts';

const SCHEMA = 'e4c2_chaos';

/** What one scenario owns: its topics and devices (several scenarios share one cluster). */
export interface Scope {
  readonly topics: readonly string[];
  readonly devices: readonly string[];
}

/** Database part of the final state. */
export interface DatabaseState {
  readonly topics: FinalTopic[];
  readonly c2Keys: Array<{ version: number; fingerprint: string }>;
  readonly clients: FinalClient[];
  readonly audit: AuditedRotation[];
  readonly outbox: Array<{ id: string; ageMs: number }>;
}

/**
 * Reads the scope's rows (a fresh connection; throws if PostgreSQL is down) from the nodes'
 * schema (the chaos suite's unless told: the upgrade practice names its own).
 */
export async function readDatabase(
  url: string,
  scope: Scope,
  schema: string = SCHEMA,
): Promise<DatabaseState> {
  const db = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  db.on('error', () => undefined);
  await db.connect();
  try {
    await db.query(`SET search_path TO ${schema}`);
    const topics = (
      await db.query<{ id: string; name: string; hash: string; key_version: number }>(
        `SELECT id, name, encode(topic_hash, 'hex') AS hash, key_version FROM topics WHERE name = ANY($1)`,
        [scope.topics],
      )
    ).rows;
    const topicKeys = (
      await db.query<{ topic_id: string; version: number; fingerprint: string }>(
        'SELECT topic_id, version, fingerprint FROM topic_keys WHERE topic_id = ANY($1) ORDER BY version',
        [topics.map((t) => t.id)],
      )
    ).rows;
    const clients = (
      await db.query<{
        id: string;
        name: string;
        status: string;
        key_version: number;
        delivered_key_version: number;
        sync_state: string;
        failed_at_ms: number | null;
        c2_key_version: number | null;
      }>(
        `SELECT id, name, status, key_version, delivered_key_version, sync_state, c2_key_version,
                (extract(epoch FROM sync_failed_at) * 1000)::float8 AS failed_at_ms
         FROM clients WHERE name = ANY($1)`,
        [scope.devices],
      )
    ).rows;
    const ids = clients.map((c) => c.id);
    const clientKeys = (
      await db.query<{ client_id: string; version: number; fingerprint: string }>(
        'SELECT client_id, version, fingerprint FROM client_keys WHERE client_id = ANY($1) ORDER BY version',
        [ids],
      )
    ).rows;
    const memberships = (
      await db.query<{
        client_id: string;
        hash: string;
        desired_version: number;
        delivered_version: number;
      }>(
        `SELECT client_id, encode(topic_hash, 'hex') AS hash, desired_version, delivered_version
         FROM device_topics WHERE client_id = ANY($1)`,
        [ids],
      )
    ).rows;
    // Every report with its time, so that I6 can tell the current failure's report from an
    // earlier failure's (a name alone would let any old report stand for the last failure).
    const reports = (
      await db.query<{
        name: string;
        at_ms: number;
        command: string | null;
        target: string | null;
      }>(
        `SELECT client_name AS name, (extract(epoch FROM at) * 1000)::float8 AS at_ms,
                details->>'command' AS command, details->>'target' AS target
         FROM events WHERE type = 'delivery.failed' AND client_name = ANY($1) ORDER BY seq`,
        [scope.devices],
      )
    ).rows;
    const audit = (
      await db.query<{
        request_id: string;
        operation: string;
        subject: string;
        key_version: number;
      }>(
        `SELECT request_id, operation, subject, key_version FROM audit_log
         WHERE request_id IS NOT NULL AND key_version IS NOT NULL AND subject = ANY($1)
           AND operation IN ('RotateTopicKey', 'NewTopic', 'RotateClientKey', 'NewClientKey', 'NewC2Key')`,
        [[...scope.topics, ...scope.devices, 'c2']],
      )
    ).rows;
    const outbox = (
      await db.query<{ id: string; age_ms: number }>(
        `SELECT o.id::text, (extract(epoch FROM now() - o.created_at) * 1000)::int AS age_ms
         FROM outbox o
         WHERE o.client_id = ANY($1)
           OR o.topic_id IN (SELECT id FROM topics WHERE name = ANY($2))`,
        [ids, scope.topics],
      )
    ).rows;
    const c2Keys = (
      await db.query<{ version: number; fingerprint: string }>(
        'SELECT version, fingerprint FROM c2_keys ORDER BY version',
      )
    ).rows;
    return {
      c2Keys: c2Keys.map((k) => ({ version: k.version, fingerprint: k.fingerprint })),
      topics: topics.map((t) => ({
        name: t.name,
        hash: t.hash,
        currentVersion: t.key_version,
        versions: topicKeys
          .filter((k) => k.topic_id === t.id)
          .map((k) => ({ version: k.version, fingerprint: k.fingerprint })),
      })),
      clients: clients.map((c) => ({
        name: c.name,
        status: c.status,
        keyVersion: c.key_version,
        deliveredKeyVersion: c.delivered_key_version,
        keyVersions: clientKeys
          .filter((k) => k.client_id === c.id)
          .map((k) => ({ version: k.version, fingerprint: k.fingerprint })),
        syncState: c.sync_state,
        c2KeyVersion: c.c2_key_version,
        memberships: memberships
          .filter((m) => m.client_id === c.id)
          .map((m) => ({
            topicHash: m.hash,
            desired: m.desired_version,
            delivered: m.delivered_version,
          })),
        failureReported: reports.some((r) => r.name === c.name),
        failedAt: c.failed_at_ms,
        failureReports: reports
          .filter((r) => r.name === c.name)
          .map((r) => ({
            at: r.at_ms,
            ...(r.command === null ? {} : { command: r.command }),
            ...(r.target === null ? {} : { target: r.target }),
          })),
      })),
      audit: audit.map((a) => ({
        requestId: a.request_id,
        operation: a.operation,
        subject: a.subject,
        version: a.key_version,
      })),
      outbox: outbox.map((o) => ({ id: o.id, ageMs: o.age_ms })),
    };
  } finally {
    await db.end().catch(() => undefined);
  }
}

/**
 * Every string stored in one Redis (each key's name and value), for the secrecy scan: the whole
 * database, or with `match` only the keys of those `SCAN MATCH` patterns (a Redis shared with
 * others, of which only the run's keys are to be read: ops/upgrade/run-keys.ts).
 */
export async function redisText(url: string, match?: readonly string[]): Promise<string> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
  });
  redis.on('error', () => undefined);
  const parts: string[] = [];
  try {
    await redis.connect();
    for (const pattern of match ?? [undefined]) {
      let cursor = '0';
      let rounds = 0;
      do {
        const [next, keys] =
          pattern === undefined
            ? await redis.scan(cursor, 'COUNT', '500')
            : await redis.scan(cursor, 'MATCH', pattern, 'COUNT', '500');
        cursor = next;
        for (const key of keys) parts.push(key, await valueText(redis, key));
        rounds += 1;
      } while (cursor !== '0' && rounds < 10_000);
    }
  } finally {
    redis.disconnect();
  }
  return parts.join('\n');
}

/** A key's value as text, whatever its type (empty for a type without values to scan). */
async function valueText(redis: Redis, key: string): Promise<string> {
  const type = await redis.type(key);
  if (type === 'string') return (await redis.get(key)) ?? '';
  if (type === 'hash') return JSON.stringify(await redis.hgetall(key));
  if (type === 'list') return JSON.stringify(await redis.lrange(key, 0, -1));
  if (type === 'set') return JSON.stringify(await redis.smembers(key));
  if (type === 'zset') return JSON.stringify(await redis.zrange(key, '0', '-1'));
  if (type === 'stream') return JSON.stringify(await redis.xrange(key, '-', '+'));
  return '';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The body of a 2xx answer, after up to three tries (a node may be busy after the heal). */
async function fetchText(url: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(3000) });
      const text = await res.text();
      if (res.ok) return text;
      throw new Error(`HTTP ${res.status}`);
    } catch (err) {
      if (attempt >= 3) throw err;
      await sleep(300);
    }
  }
}

/** Events read per page (the API's default most, `E4C2_MAX_PAGE_SIZE`), and pages at most. */
const EVENT_PAGE = 1000;
const MAX_EVENT_PAGES = 1000;

/**
 * The whole event log, page after page: every scenario of a run shares the cluster (and its log),
 * so the first page alone would hold only the first scenario's events.
 * @throws Error when a page cannot be read or the log is longer than the bound
 */
export async function readEventLog(base: string): Promise<string> {
  const pages: string[] = [];
  let after = '0'; // 0: from the first event (docs/api.md)
  for (let n = 0; n < MAX_EVENT_PAGES; n++) {
    const text = await fetchText(`${base}/v1/events?after=${after}&limit=${EVENT_PAGE}`);
    pages.push(text);
    const page = JSON.parse(text) as { events?: unknown; nextAfterSeq?: unknown };
    if (!Array.isArray(page.events) || typeof page.nextAfterSeq !== 'string')
      throw new Error('the answer is not a page of events');
    // A short page is the end; so is a position that did not move (nothing after it).
    if (page.events.length < EVENT_PAGE || page.nextAfterSeq === after) return pages.join('\n');
    after = page.nextAfterSeq;
  }
  throw new Error(`more than ${MAX_EVENT_PAGES * EVENT_PAGE} events`);
}

/** The nodes' output lines kept for the scan, and how many more were not kept. */
export interface NodeOutput {
  readonly lines: readonly string[];
  readonly dropped: number;
}

/** A place the secrecy scan reads: its name in a finding, and how to read its whole text. */
export interface ScanPlace {
  readonly where: string;
  readonly read: () => Promise<string>;
}

/**
 * Looks for every key the devices ever held (hex and base64) in Redis, the nodes' output, their
 * metrics and the event log. A place that cannot be read is reported as `unchecked` (an I8
 * violation): not having looked is no proof that no key is there.
 */
export async function scanForSecrets(
  env: ChaosEnvironment,
  devices: readonly ChaosDevice[],
  nodeOutput: NodeOutput,
): Promise<SecretLeak[]> {
  return scanPlaces(devices, nodeOutput, [
    { where: 'queue Redis', read: () => redisText(env.queueRedis.url) },
    ...env.cluster.redlock.map((r) => ({ where: r.name, read: () => redisText(r.url) })),
    ...nodeScanPlaces(env.cluster.nodes, env.cluster.lb.http),
  ]);
}

/**
 * The places every cluster has: each node's `/metrics` and the event log (read through `base`).
 * @param nodes - each node's name and `http://host:port` of its health listener
 */
export function nodeScanPlaces(
  nodes: ReadonlyArray<{ readonly name: string; readonly health: string }>,
  base: string,
): ScanPlace[] {
  return [
    ...nodes.map((n) => ({
      where: `${n.name} /metrics`,
      read: () => fetchText(`${n.health}/metrics`),
    })),
    { where: 'event log', read: () => readEventLog(base) },
  ];
}

/**
 * The secrecy scan over given places (the nodes' output is one more): every key the devices
 * ever held, hex and base64, looked for in each; a place that cannot be read is `unchecked`.
 */
export async function scanPlaces(
  devices: ReadonlyArray<Pick<ChaosDevice, 'secrets'>>,
  nodeOutput: NodeOutput,
  others: readonly ScanPlace[],
): Promise<SecretLeak[]> {
  const secrets = new Set<string>();
  for (const d of devices) for (const s of d.secrets) secrets.add(s);
  const places: ScanPlace[] = [
    { where: 'node output', read: () => Promise.resolve(nodeOutput.lines.join('\n')) },
    ...others,
  ];
  const leaks: SecretLeak[] = [];
  if (nodeOutput.dropped > 0)
    leaks.push({
      where: 'node output',
      what: `${nodeOutput.dropped} line(s) past the first ${nodeOutput.lines.length} were not kept`,
      unchecked: true,
    });
  for (const { where, read } of places) {
    let text: string;
    try {
      text = await read();
    } catch (err) {
      leaks.push({ where, what: `read failed: ${(err as Error).message}`, unchecked: true });
      continue;
    }
    for (const secret of secrets) {
      if (text.includes(secret)) {
        leaks.push({ where, what: `a device key (${secret.length}-character encoding)` });
        break;
      }
    }
  }
  return leaks;
}
