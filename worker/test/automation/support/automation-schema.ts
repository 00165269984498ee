/**
 * A test schema for automation nodes: created, with the shared data key every node's key vault
 * opens, and the settings a test node on it needs (real Postgres and Redis, a lease key of its
 * own).
 */
import { randomBytes } from 'node:crypto';
import { KeyVault, LocalKekProvider } from '../../../../cluster/keyvault/index.ts';
import { PgDataKeyStore } from '../../../../cluster/storage/index.ts';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../../../cluster/test/support/postgres.ts';
import type { AutomationNodeOptions } from './automation-node.ts';

const REDIS_URL = process.env['REDIS_TEST_URL'] ?? 'redis://127.0.0.1:6379';

/** A schema and what its nodes share. */
export interface AutomationSchema {
  readonly schema: TestSchema;
  /** The options every node of the schema starts with (a fast tick, a 3 s lease). */
  readonly nodeOptions: Pick<
    AutomationNodeOptions,
    'databaseUrl' | 'schema' | 'redisUrl' | 'leaseKey' | 'kekHex' | 'ttlMs' | 'tickMs'
  >;
}

/** Creates the schema and its data key (before any node loads its key vault). */
export async function createAutomationSchema(): Promise<AutomationSchema> {
  const schema = await createTestSchema();
  const kekHex = randomBytes(32).toString('hex');
  await KeyVault.create({
    provider: LocalKekProvider.fromKey(new Uint8Array(Buffer.from(kekHex, 'hex'))),
    store: new PgDataKeyStore(schema.pool),
  });
  return {
    schema,
    nodeOptions: {
      databaseUrl: TEST_DATABASE_URL,
      schema: schema.schema,
      redisUrl: REDIS_URL,
      leaseKey: `e4c2-test:${randomBytes(6).toString('hex')}:automation:leader`,
      kekHex,
      ttlMs: 3000,
      tickMs: 100,
    },
  };
}
