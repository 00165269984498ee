/**
 * The C2 side of `bench/fanout.ts`: a private PostgreSQL schema, the key vault, the
 * {@link C2Service} the API calls and the in-process {@link DeliveryEngine} with the settings of
 * a production node (`bin/c2-node.ts` role `all`, `bin/node-parts.ts` `deliveryDeps`, the
 * configuration defaults), plus the bulk setup of the fleet.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { clientIdFromName, topicHash, toHex } from '../../e4/index.ts';
import { loadConfig } from '../../cluster/config/index.ts';
import { InProcessLockService } from '../../cluster/coordination/index.ts';
import {
  DeliveryEngine,
  MqttCommandPublisher,
  type BatchSyncDeps,
  type DeliveryEngineOptions,
} from '../../cluster/delivery/index.ts';
import { bindings, C2Service } from '../../cluster/domain/index.ts';
import { KeyVault, keyFingerprint, LocalKekProvider } from '../../cluster/keyvault/index.ts';
import {
  createPool,
  migrate,
  PgC2Store,
  PgDataKeyStore,
  PgDelivery,
  withTransaction,
} from '../../cluster/storage/index.ts';
import { AckCounter, deviceKey, deviceName } from './fanout-common.ts';
import { timed, type CallProfile } from './fanout-profile.ts';

/** The database the benchmark uses (a private schema in it, dropped at the end). */
export const BENCH_DATABASE_URL =
  process.env['BENCH_DATABASE_URL'] ??
  process.env['TEST_DATABASE_URL'] ??
  'postgres://postgres@127.0.0.1:5432/test';

/** The broker. */
export const BENCH_MQTT_URL =
  process.env['BENCH_MQTT_URL'] ?? process.env['MQTT_TEST_URL'] ?? 'mqtt://127.0.0.1:1883';

/** Pool size of a node (`E4C2_DATABASE_POOL_MAX` default). */
export const POOL_MAX = 10;

/** The variables of a node's delivery throughput settings, which the benchmark honours too. */
const THROUGHPUT_VARIABLES = [
  'E4C2_DELIVERY_BATCHES',
  'E4C2_DELIVERY_BATCH_SIZE',
  'E4C2_DELIVERY_PUBLISH_WINDOW',
] as const;

/**
 * The delivery settings of the benchmark's engines, read as a node reads them: the defaults, or
 * `E4C2_DELIVERY_BATCHES`, `_BATCH_SIZE` and `_PUBLISH_WINDOW` from the environment (the second
 * engine's process inherits it); retries and PUBACK timeout at their defaults. Invalid values
 * fail the run with the node's own message.
 */
export const NODE_DELIVERY = loadConfig(
  Object.fromEntries(THROUGHPUT_VARIABLES.map((name) => [name, process.env[name]])),
).delivery;

/** Engine settings of a production node of role `all` (`bin/c2-node.ts`). */
export const ENGINE_SETTINGS = {
  concurrency: NODE_DELIVERY.batches,
  batchSize: NODE_DELIVERY.batchSize,
  claimBatch: NODE_DELIVERY.batchSize,
  pollIntervalMs: 1000,
  sweepIntervalMs: 30_000,
} as const;

/** Batch settings of a production node (`bin/node-parts.ts` `deliveryDeps`). */
export const SYNC_SETTINGS = {
  claimTtlMs: 15_000,
  publishConcurrency: NODE_DELIVERY.publishWindow,
} as const;

/** Most publishes awaiting their PUBACK at once in one engine (batches x per batch). */
export const ENGINE_MAX_IN_FLIGHT = ENGINE_SETTINGS.concurrency * SYNC_SETTINGS.publishConcurrency;

/**
 * What-if schema variants for `--schema-variant` (experiments, NOT the product's schema), applied
 * after migrating:
 * - `before-0006` undoes migration 0006 (delivery bookkeeping performance): the two partial
 *   indexes whose columns or predicates the delivery path updates come back, and pages are packed
 *   again, so that the migration's effect can be measured in the same conditions;
 * - `pending-index` brings back only `device_topics_pending` (which the pipeline metrics'
 *   convergence-lag query can use), to measure what keeping it would cost.
 */
export const SCHEMA_VARIANTS = {
  'before-0006': [
    'CREATE INDEX clients_inflight ON clients (inflight_until) WHERE inflight_until IS NOT NULL',
    'ALTER TABLE clients RESET (fillfactor)',
    `CREATE INDEX device_topics_pending ON device_topics (client_id)
       WHERE desired_version <> delivered_version OR desired_version = 0`,
    'ALTER TABLE device_topics RESET (fillfactor)',
  ],
  'pending-index': [
    `CREATE INDEX device_topics_pending ON device_topics (client_id)
       WHERE desired_version <> delivered_version OR desired_version = 0`,
  ],
} as const;

/** A key of {@link SCHEMA_VARIANTS}. */
export type SchemaVariant = keyof typeof SCHEMA_VARIANTS;

/** Creates a fresh schema and migrates it (then applies a what-if variant, if any). */
export async function createSchema(
  variant?: SchemaVariant,
): Promise<{ schema: string; pool: pg.Pool }> {
  const schema = `bench_fanout_${randomBytes(5).toString('hex')}`;
  const admin = await createPool({ url: BENCH_DATABASE_URL, max: 1 });
  try {
    await admin.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await admin.end();
  }
  const pool = await createPool({
    url: BENCH_DATABASE_URL,
    schema,
    max: POOL_MAX,
    applicationName: 'bench-fanout',
  });
  await migrate(pool);
  if (variant !== undefined)
    for (const statement of SCHEMA_VARIANTS[variant]) await pool.query(statement);
  return { schema, pool };
}

/** Drops a schema made by {@link createSchema} (best effort: cleanup after failures too). */
export async function dropSchema(schema: string): Promise<void> {
  const admin = await createPool({ url: BENCH_DATABASE_URL, max: 1 });
  try {
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await admin.end();
  }
}

/** The delivery dependencies of a node (as `bin/node-parts.ts` builds them). */
export function syncDeps(
  store: PgC2Store,
  vault: KeyVault,
  pool: pg.Pool,
  publisher: MqttCommandPublisher,
  owner: string,
  acks: AckCounter,
  profile?: CallProfile,
): BatchSyncDeps {
  const delivery = new PgDelivery(pool);
  return {
    store,
    sealer: profile === undefined ? vault : timed(vault, 'vault', profile),
    mode: 'symkey',
    publisher: profile === undefined ? publisher : timed(publisher, 'mqtt', profile),
    clock: Date.now,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    policy: {
      maxAttempts: NODE_DELIVERY.maxAttempts,
      initialBackoffMs: NODE_DELIVERY.backoffInitialMs,
      maxBackoffMs: NODE_DELIVERY.backoffMaxMs,
      deadlineMs: NODE_DELIVERY.deadlineMs,
    },
    onAttempt: (a) => {
      acks.record(a.outcome);
    },
    delivery: profile === undefined ? delivery : timed(delivery, 'sql', profile),
    owner,
    claimTtlMs: SYNC_SETTINGS.claimTtlMs,
    publishConcurrency: SYNC_SETTINGS.publishConcurrency,
  };
}

/** Engine options of a node, reporting errors to `errors`. */
export function engineOptions(errors: string[]): DeliveryEngineOptions {
  return {
    ...ENGINE_SETTINGS,
    onError: (err, context) => {
      errors.push(`${context}: ${err instanceof Error ? err.message : String(err)}`);
    },
  };
}

/** Connects a command publisher as a node does. */
export function connectPublisher(url: string, name: string): Promise<MqttCommandPublisher> {
  return MqttCommandPublisher.connect({
    url,
    clientId: `${name}-${randomBytes(3).toString('hex')}`,
    pubackTimeoutMs: NODE_DELIVERY.pubackTimeoutMs,
  });
}

/** One C2 node of the benchmark: service, vault and engine in this process. */
export interface BenchC2 {
  readonly schema: string;
  readonly pool: pg.Pool;
  readonly store: PgC2Store;
  readonly vault: KeyVault;
  readonly service: C2Service;
  readonly engine: DeliveryEngine;
  readonly acks: AckCounter;
  readonly errors: string[];
  /** The run's key-encryption key (throw-away), for engines in other processes. */
  readonly kek: Uint8Array;
  /** Extra engines in this process to kick along with the node's own (two-engine runs). */
  readonly alsoKick: Set<DeliveryEngine>;
  /** Closes the engine, the publisher and the pool (not the schema). */
  close(): Promise<void>;
}

/**
 * Assembles the node on a migrated schema; the engine is not started.
 * @param profile - when given, the engine's statements, vault calls and publishes are timed
 */
export async function startC2(
  schema: string,
  pool: pg.Pool,
  profile?: CallProfile,
): Promise<BenchC2> {
  const store = new PgC2Store(pool);
  const kek = new Uint8Array(randomBytes(32));
  const vault = await KeyVault.create({
    provider: LocalKekProvider.fromKey(kek),
    store: new PgDataKeyStore(pool),
  });
  const publisher = await connectPublisher(BENCH_MQTT_URL, 'bench-fanout-c2');
  const acks = new AckCounter();
  const errors: string[] = [];
  const alsoKick = new Set<DeliveryEngine>();
  const target: { engine?: DeliveryEngine } = {};
  const service = new C2Service({
    store,
    sealer: vault,
    mode: 'symkey',
    kick: {
      kick: () => {
        target.engine?.kick();
        for (const e of alsoKick) e.kick();
      },
    },
    pkServerKeygen: false,
    maxPageSize: 1000,
    maxMessageBytes: 1 << 20,
    now: Date.now,
    locks: new InProcessLockService(),
  });
  await service.init();
  const engine = new DeliveryEngine(
    store,
    syncDeps(
      store,
      vault,
      pool,
      publisher,
      `bench-a-${randomBytes(3).toString('hex')}`,
      acks,
      profile,
    ),
    engineOptions(errors),
  );
  target.engine = engine;
  return {
    schema,
    pool,
    store,
    vault,
    service,
    engine,
    acks,
    errors,
    kek,
    alsoKick,
    async close() {
      await engine.close();
      await publisher.close();
      await pool.end();
    },
  };
}

/** Devices registered per transaction by the bulk setup. */
const BULK_CHUNK = 5_000;

/**
 * Registers `count` devices and makes each a member of topic `topicId` wanting key version 1,
 * writing in bulk exactly the rows the API writes for NewClient (clients, client_keys with the
 * identity key sealed by the vault under the same binding) and NewTopicClient (device_topics,
 * outbox), a chunk per transaction. Audit rows and events are not written: nothing on the
 * delivery path reads them. The devices receive key version 1 through the delivery engine.
 */
export async function bulkRegister(
  c2: BenchC2,
  fleet: { runId: string; seed: Uint8Array; count: number },
  topicId: string,
  topic: string,
  log: (message: string) => void,
): Promise<void> {
  const hash = Buffer.from(topicHash(topic));
  for (let from = 0; from < fleet.count; from += BULK_CHUNK) {
    const to = Math.min(fleet.count, from + BULK_CHUNK);
    const names: string[] = [];
    const ids: Buffer[] = [];
    const keys = new Map<string, Uint8Array>();
    for (let i = from; i < to; i++) {
      const name = deviceName(fleet.runId, i);
      names.push(name);
      ids.push(Buffer.from(clientIdFromName(name)));
      keys.set(name, deviceKey(fleet.seed, i));
    }
    await withTransaction(c2.pool, async (tx) => {
      const inserted = await tx.query<{ id: string; name: string }>(
        `INSERT INTO clients (name, e4_id, key_version, delivered_key_version, c2_key_version)
         SELECT n, e, 1, 1, NULL FROM unnest($1::text[], $2::bytea[]) AS u(n, e)
         RETURNING id::text AS id, name`,
        [names, ids],
      );
      const clientIds: string[] = [];
      const sealed: Buffer[] = [];
      const fingerprints: string[] = [];
      for (const row of inserted.rows) {
        const key = keys.get(row.name);
        if (key === undefined) throw new Error(`bulk setup: unexpected client ${row.name}`);
        clientIds.push(row.id);
        sealed.push(Buffer.from(await c2.vault.seal(key, bindings.clientKey(row.id, 1))));
        fingerprints.push(keyFingerprint(key));
        key.fill(0);
      }
      await tx.query(
        `INSERT INTO client_keys (client_id, version, sealed, public_key, fingerprint)
         SELECT c, 1, s, NULL, f FROM unnest($1::bigint[], $2::bytea[], $3::text[]) AS u(c, s, f)`,
        [clientIds, sealed, fingerprints],
      );
      await tx.query(
        `INSERT INTO device_topics (client_id, topic_hash, topic_id, desired_version)
         SELECT c, $2, $3, 1 FROM unnest($1::bigint[]) AS u(c)`,
        [clientIds, hash, topicId],
      );
      await tx.query(
        `INSERT INTO outbox (client_id, reason)
         SELECT c, 'member-added' FROM unnest($1::bigint[]) AS u(c)`,
        [clientIds],
      );
    });
    if (to % 20_000 === 0 || to === fleet.count) log(`  registered ${to} of ${fleet.count}`);
  }
  await c2.pool.query('ANALYZE');
}

/**
 * Registers the devices through the API use-cases instead (NewClient, then NewTopicClient), with
 * `parallel` calls at once: slower, but every row is the product's own.
 */
export async function apiRegister(
  c2: BenchC2,
  fleet: { runId: string; seed: Uint8Array; count: number },
  topic: string,
  parallel: number,
  log: (message: string) => void,
): Promise<void> {
  const ctx = { actor: 'bench-fanout' };
  let next = 0;
  let done = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < fleet.count) {
        const i = next++;
        const name = deviceName(fleet.runId, i);
        await c2.service.newClient(ctx, name, deviceKey(fleet.seed, i));
        await c2.service.newTopicClient(ctx, name, topic);
        done++;
        if (done % 5_000 === 0) log(`  registered ${done} of ${fleet.count}`);
      }
    }),
  );
  await c2.pool.query('ANALYZE');
}

/** Memberships of the topic whose delivered version is `version` (checks after each step). */
export async function deliveredCount(
  c2: BenchC2,
  topicId: string,
  version: number,
): Promise<number> {
  const r = await c2.pool.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM device_topics
     WHERE topic_id = $1 AND desired_version = $2 AND delivered_version = $2`,
    [topicId, version],
  );
  return Number(r.rows[0]?.n ?? 0);
}

/**
 * Waits until every member's delivery of `version` is recorded and no device is claimed any
 * more: the engines have finished the step. (Polls the database; `DeliveryEngine.idle()` is not
 * used: while a batch runs and no outbox claim is in progress it races an `undefined` and spins
 * on resolved promises, starving the event loop.)
 * @returns the recorded deliveries (fewer than `expected` after `timeoutMs`)
 */
export async function waitRecorded(
  c2: BenchC2,
  topicId: string,
  version: number,
  expected: number,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const recorded = await deliveredCount(c2, topicId, version);
    const claimed = await c2.pool.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM clients
       WHERE inflight_owner IS NOT NULL AND inflight_until > now()`,
    );
    if ((recorded === expected && claimed.rows[0]?.n === '0') || Date.now() > deadline)
      return recorded;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Hex of a topic hash (what SetTopicKey carries). */
export function topicHashHex(topic: string): string {
  return toHex(topicHash(topic));
}
