/**
 * Two API nodes on one PostgreSQL schema (one KEK), each with its own pool, C2 service and
 * LISTEN/NOTIFY wake-ups, as two processes of a cluster would be: for the event stream tests.
 * No delivery engine: these tests look at the journal, not at devices.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { C2Service } from '../../../cluster/domain/index.ts';
import { connectListener, PgEventNotifications } from '../../../cluster/events/index.ts';
import type { KeyVault } from '../../../cluster/keyvault/index.ts';
import { createPool, migrate } from '../../../cluster/storage/index.ts';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../../cluster/test/support/postgres.ts';
import { ApiServer } from '../../index.ts';
import { testService } from '../../../cluster/test/support/test-service.ts';
import { MemoryLogger } from './api-harness.ts';

/** One node. */
export interface TestNode {
  readonly pool: pg.Pool;
  readonly service: C2Service;
  readonly vault: KeyVault;
  readonly api: ApiServer;
  readonly wakeups: PgEventNotifications;
  readonly log: MemoryLogger;
  readonly errors: unknown[];
  readonly grpcTarget: string;
  readonly httpPort: number;
}

/** Two nodes on one schema. */
export interface TwoNodes {
  readonly schema: TestSchema;
  readonly nodes: readonly [TestNode, TestNode];
  close(): Promise<void>;
}

/**
 * Starts one node on `schema` of the database at `url` (migrated when needed), with the KEK
 * `kek`; close it with {@link closeNode}.
 */
export async function startNode(url: string, schema: string, kek: Uint8Array): Promise<TestNode> {
  const pool = await createPool({ url, schema, max: 5 });
  await migrate(pool);
  const { vault, service } = await testService(pool, kek);
  await service.init();
  const errors: unknown[] = [];
  const wakeups = await PgEventNotifications.start({
    connect: () => connectListener({ url, schema }),
    sequence: () => service.sequenceEvents(),
    onError: (err) => errors.push(err),
  });
  const log = new MemoryLogger();
  const api = await ApiServer.start({
    service,
    grpc: { host: '127.0.0.1', port: 0 },
    http: { host: '127.0.0.1', port: 0 },
    readiness: () => Promise.resolve({ ready: true, checks: {} }),
    logger: log,
    eventPollIntervalMs: 100,
    eventWakeups: wakeups,
    eventStream: { heartbeatMs: 200 },
  });
  return {
    pool,
    service,
    vault,
    api,
    wakeups,
    log,
    errors,
    grpcTarget: `127.0.0.1:${api.grpcAddress.port}`,
    httpPort: api.httpAddress.port,
  };
}

/** Stops a node started by {@link startNode}. */
export async function closeNode(node: TestNode): Promise<void> {
  await node.api.close(1000);
  await node.wakeups.close();
  await node.pool.end();
}

/** Starts two nodes on a fresh schema; call `close()` in `after`. */
export async function startTwoNodes(kek = new Uint8Array(randomBytes(32))): Promise<TwoNodes> {
  const schema = await createTestSchema();
  const first = await startNode(TEST_DATABASE_URL, schema.schema, kek);
  const second = await startNode(TEST_DATABASE_URL, schema.schema, kek);
  return {
    schema,
    nodes: [first, second],
    async close() {
      await closeNode(first);
      await closeNode(second);
      await schema.drop();
    },
  };
}
