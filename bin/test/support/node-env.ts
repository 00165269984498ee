/**
 * The environment of a `bin/start.ts` child in tests: the caller's environment without any
 * `E4C2_*` setting, the machine's PostgreSQL (a test schema) and broker, and the given ports.
 */
import { randomBytes } from 'node:crypto';
import { TEST_MQTT_URL } from '../../../cluster/test/support/c2-harness.ts';
import { TEST_DATABASE_URL } from '../../../cluster/test/support/postgres.ts';

/** Settings of one test node. */
export interface TestNodeSettings {
  readonly schema: string;
  readonly passphrase: string;
  readonly ports: { readonly grpc: number; readonly http: number; readonly metrics: number };
  /** Prefix of the node id (a random suffix is added). */
  readonly name: string;
  /** More `E4C2_*` settings. */
  readonly extra?: Readonly<Record<string, string>>;
}

/** The child's environment for `settings`. */
export function testNodeEnv(settings: TestNodeSettings): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('E4C2_')) env[k] = v;
  const { grpc, http, metrics } = settings.ports;
  return {
    ...env,
    DATABASE_URL: TEST_DATABASE_URL,
    MQTT_URL: TEST_MQTT_URL,
    E4C2_DB_SCHEMA: settings.schema,
    E4C2_KEK_PASSPHRASE: settings.passphrase,
    E4C2_GRPC_ADDR: `127.0.0.1:${grpc}`,
    E4C2_HTTP_ADDR: `127.0.0.1:${http}`,
    E4C2_METRICS_ADDR: `127.0.0.1:${metrics}`,
    E4C2_NODE_ID: `${settings.name}-${randomBytes(2).toString('hex')}`,
    ...settings.extra,
  };
}
