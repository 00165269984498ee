/**
 * The command line of `npm run cluster` (see docs/cluster.md): its options, their defaults and
 * the usage text.
 */
import { parseArgs } from 'node:util';
import { attachDashValues, intArg, UsageError } from './usage-args.ts';

/** Defaults of the services a local cluster uses. */
export const CLUSTER_DEFAULTS = {
  databaseUrl: 'postgres://postgres@127.0.0.1:5432/test',
  redisUrl: 'redis://127.0.0.1:6379',
  mqttUrl: 'mqtt://127.0.0.1:1883',
  schema: 'e4c2_cluster',
  dataDir: './data/cluster',
  basePort: 7000,
  host: '127.0.0.1',
} as const;

/** Most nodes of each role. */
const MAX_NODES_PER_ROLE = 16;

/**
 * How `--restart` restarts a node that exited on its own: after a delay that doubles with each
 * restart of a streak, and not at all after `maxInStreak` of them (a node that cannot start, e.g.
 * a wrong setting or a port held by another process, is left down and reported instead of
 * looping). A node that ran for `stableMs` before it exited starts a new streak.
 */
export interface RestartPolicy {
  readonly firstDelayMs: number;
  readonly maxDelayMs: number;
  readonly stableMs: number;
  readonly maxInStreak: number;
}

/** The policy of `--restart` (see {@link RestartPolicy}). */
export const RESTART_POLICY: RestartPolicy = {
  firstDelayMs: 1000,
  maxDelayMs: 30_000,
  stableMs: 60_000,
  maxInStreak: 5,
};

/**
 * The next restart of a node that exited after running `ranMs`, `streak` restarts into a streak.
 * The streak is judged by how long each run lasted, not by when the restarts happened: a start
 * that takes seconds to fail spread five restarts over more than a minute, so a window of restart
 * times never filled and the node looped for ever.
 * @returns its delay and the streak it makes, or undefined: leave the node down
 */
export function nextRestart(
  streak: number,
  ranMs: number,
  policy: RestartPolicy = RESTART_POLICY,
): { readonly delayMs: number; readonly streak: number } | undefined {
  const current = ranMs >= policy.stableMs ? 0 : streak;
  if (current >= policy.maxInStreak) return undefined;
  return {
    delayMs: Math.min(policy.maxDelayMs, policy.firstDelayMs * 2 ** current),
    streak: current + 1,
  };
}

/** What the command line and the environment decide. */
export interface ClusterArgs {
  readonly apiNodes: number;
  readonly workers: number;
  /** Redlock instances: 1 uses `REDIS_URL`, 3 starts three private `redis-server` processes. */
  readonly redlock: 1 | 3;
  /** First port of the layout (see docs/cluster.md); 0 picks free ports. */
  readonly basePort: number;
  readonly schema: string;
  /** Holds the KEK passphrase file. */
  readonly dataDir: string;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly mqttUrl: string;
  /**
   * Start a node again when it exits on its own, as a restart policy would (`--restart`); off by
   * default, so that tests see a death as it is. See {@link RESTART_POLICY}.
   */
  readonly restartNodes?: boolean;
}

/** The usage text of `npm run cluster`. */
export const USAGE = `usage: npm run cluster -- [--api N] [--workers M] [--redlock 1|3] [--base-port P]
                           [--schema S] [--data-dir D] [--restart]

  --api N          API nodes (gRPC + HTTP + outbox relay), 1..${MAX_NODES_PER_ROLE}       default 2
  --workers M      delivery workers, 0..${MAX_NODES_PER_ROLE}                          default 2
  --redlock 1|3    Redlock instances: 1 = REDIS_URL, 3 = three redis-server   default 1
  --base-port P    load balancer gRPC on P, HTTP on P+1, nodes from P+10;    default ${CLUSTER_DEFAULTS.basePort}
                   0 picks free ports
  --schema S       PostgreSQL schema of the cluster (created if missing)     default ${CLUSTER_DEFAULTS.schema}
  --data-dir D     holds the shared KEK passphrase file                      default ${CLUSTER_DEFAULTS.dataDir}
  --restart        start a node again when it exits on its own (backoff from
                   1 s; left down after ${RESTART_POLICY.maxInStreak} restarts that each ran < 60 s)  default off

Services come from DATABASE_URL (default ${CLUSTER_DEFAULTS.databaseUrl}),
REDIS_URL (default ${CLUSTER_DEFAULTS.redisUrl}) and MQTT_URL (default ${CLUSTER_DEFAULTS.mqttUrl}).
Other E4C2_* settings (cluster/config/README.md) are passed to every node.`;

/** `parse()`, with its usage error replaced by `rule` when `raw` is a number out of range. */
function oneOf(raw: string | undefined, rule: string, parse: () => number): number {
  try {
    return parse();
  } catch (err) {
    if (err instanceof UsageError && raw !== undefined && /^-?\d+$/.test(raw))
      throw new UsageError(rule);
    throw err;
  }
}

/** Highest usable base port: the layout spans 10 ports per node after the first ten. */
const MAX_BASE_PORT = 65535 - 10 * (2 * MAX_NODES_PER_ROLE + 1);

/** The options that take a number: a value with one dash is theirs (see {@link attachDashValues}). */
const NUMBER_FLAGS: ReadonlySet<string> = new Set([
  '--api',
  '--workers',
  '--redlock',
  '--base-port',
]);

/**
 * Parses the command line (`--help` gives `undefined`).
 * @throws UsageError naming the bad argument
 */
export function parseClusterArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ClusterArgs | undefined {
  let values;
  try {
    ({ values } = parseArgs({
      // `--api -1` reaches the option's own check ("between 1 and 16"), not parseArgs' ambiguity.
      args: attachDashValues(argv, NUMBER_FLAGS),
      strict: true,
      allowPositionals: false,
      options: {
        api: { type: 'string' },
        workers: { type: 'string' },
        redlock: { type: 'string' },
        'base-port': { type: 'string' },
        schema: { type: 'string' },
        'data-dir': { type: 'string' },
        restart: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help === true) return undefined;
  // One message per option whatever the bad value (a range check first said "between 1 and 3"
  // for --redlock 5 and "1 or 3" for 2).
  const redlock = oneOf(values.redlock, '--redlock must be 1 or 3', () =>
    intArg(values.redlock, '--redlock', 1, 3, 1),
  );
  if (redlock !== 1 && redlock !== 3) throw new UsageError('--redlock must be 1 or 3');
  const portRule = `--base-port must be 0 or between 1024 and ${MAX_BASE_PORT}`;
  const basePort = oneOf(values['base-port'], portRule, () =>
    intArg(values['base-port'], '--base-port', 0, MAX_BASE_PORT, 7000),
  );
  if (basePort !== 0 && basePort < 1024) throw new UsageError(portRule);
  const schema = values.schema ?? CLUSTER_DEFAULTS.schema;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema))
    throw new UsageError('--schema must be a plain identifier: a-z, 0-9 and _, at most 63');
  const nonEmpty = (v: string | undefined): string | undefined =>
    v === undefined || v === '' ? undefined : v;
  return {
    apiNodes: intArg(values.api, '--api', 1, MAX_NODES_PER_ROLE, 2),
    workers: intArg(values.workers, '--workers', 0, MAX_NODES_PER_ROLE, 2),
    redlock,
    basePort,
    schema,
    dataDir: values['data-dir'] ?? CLUSTER_DEFAULTS.dataDir,
    databaseUrl: nonEmpty(env['DATABASE_URL']) ?? CLUSTER_DEFAULTS.databaseUrl,
    redisUrl: nonEmpty(env['REDIS_URL']) ?? CLUSTER_DEFAULTS.redisUrl,
    mqttUrl: nonEmpty(env['MQTT_URL']) ?? CLUSTER_DEFAULTS.mqttUrl,
    restartNodes: values.restart === true,
  };
}
