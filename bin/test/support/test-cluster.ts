/**
 * Options of a small {@link startCluster} in tests: 1 API node, 1 worker and 1 Redlock Redis of
 * its own, on the machine's PostgreSQL (a test schema), Redis and broker, ports drawn free, the
 * nodes' output dropped and the launcher's lines kept in `lines`.
 */
import { TEST_MQTT_URL } from '../../../cluster/test/support/c2-harness.ts';
import { TEST_DATABASE_URL } from '../../../cluster/test/support/postgres.ts';
import type { ClusterOptions } from '../../cluster.ts';

/** What differs between the tests that use {@link smallClusterOptions}. */
export interface SmallClusterSettings {
  readonly schema: string;
  readonly dataDir: string;
  /** Receives the launcher's lines. */
  readonly lines: string[];
  /** More `E4C2_*` settings of every node (log level warn and a 3 s shutdown by default). */
  readonly nodeEnv?: Readonly<Record<string, string>>;
}

/** The options; spread them and override what a test needs. */
export function smallClusterOptions(settings: SmallClusterSettings): ClusterOptions {
  const env: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('E4C2_')) env[k] = v;
  return {
    apiNodes: 1,
    workers: 1,
    redlock: 1,
    basePort: 0,
    schema: settings.schema,
    dataDir: settings.dataDir,
    databaseUrl: TEST_DATABASE_URL,
    redisUrl: 'redis://127.0.0.1:6379',
    mqttUrl: TEST_MQTT_URL,
    host: '127.0.0.1',
    env: { ...env, E4C2_LOG_LEVEL: 'warn', E4C2_SHUTDOWN_TIMEOUT_MS: '3000', ...settings.nodeEnv },
    log: (line) => {
      settings.lines.push(line);
    },
    childOutput: () => undefined,
    startTimeoutMs: 60_000,
  };
}
