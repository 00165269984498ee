/**
 * The command line of `npm run upgrade-practice` (docs/deployment.md, "Rolling upgrades"): which
 * release to roll from, the cluster's shape, the fleet's size and the bounds of the run.
 */
import { CLUSTER_DEFAULTS } from '../../bin/cluster-args.ts';
import { intArg, parseOptions, UsageError } from '../../bin/usage-args.ts';

/** What the command line and the environment decide. */
export interface RollArgs {
  /** A commit (anything `git rev-parse` takes) or a directory holding the earlier release. */
  readonly from: string;
  /** Where the earlier release's worktree is prepared; default: a directory per commit in /tmp. */
  readonly releaseDir: string | undefined;
  readonly apiNodes: number;
  readonly workers: number;
  /** Redlock instances: 1 uses `REDIS_URL`, 3 starts three private `redis-server`. */
  readonly redlock: 1 | 3;
  /** First port of the cluster's layout (`npm run cluster`'s); 0 picks free ports. */
  readonly basePort: number;
  /** Simulated devices registered before the roll. */
  readonly devices: number;
  /** Devices registered (NewClient) during the roll, on top of {@link devices}. */
  readonly newClients: number;
  /** Known devices re-flashed during the roll: a new identity key, registered by NewClient. */
  readonly reflashes: number;
  /**
   * The cluster's crypto mode. `public-key`: devices have Ed25519 identities, the C2 draws their
   * rotated keys (`E4C2_PK_SERVER_KEYGEN`) and its own key is rotated during the roll too.
   */
  readonly mode: 'symmetric' | 'public-key';
  /**
   * Public-key mode: devices that draw their own identity keys (the C2 learns only the public
   * half), rotate them during the roll (RotateClientKey with `publicKey`) and each read a
   * neighbour's messages after it. 0 in symmetric mode, 0 or at least 2 otherwise.
   */
  readonly ownKeyDevices: number;
  readonly topics: number;
  /** Milliseconds between two rotations, each through the next API node in turn. */
  readonly rotateEveryMs: number;
  /** How long the workload runs on each mixed cluster before the next replacement. */
  readonly dwellMs: number;
  /** Where to write the run's record (JSON, fingerprints only), if anywhere. */
  readonly recordFile: string | undefined;
  /** The whole run's bound: past it everything is stopped and the run fails. */
  readonly timeoutMs: number;
  /** Keep the schema after the run (to study it); its Redis keys are always removed. */
  readonly keep: boolean;
  /**
   * Warnings that nodes of the earlier release are known to log (`--known-old-warning`, a
   * regular expression on the log line's message): counted and listed, not judged. A node of
   * this release logging the same is still a violation.
   */
  readonly knownOldWarnings: readonly RegExp[];
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly mqttUrl: string;
}

/** Bounds of the counts: a practice, not a benchmark (the machine also runs the devices). */
export const ROLL_LIMITS = {
  nodesPerRole: 4,
  devices: 1000,
  topics: 20,
  timeoutMinutes: 60,
} as const;

/** The usage text. */
export const ROLL_USAGE = `usage: npm run upgrade-practice -- --from COMMIT|DIR [--release-dir D] [--api N] [--workers M]
         [--redlock 1|3] [--base-port P] [--devices D] [--new-clients C] [--reflashes R]
         [--topics T] [--mode symmetric|public-key] [--own-key-devices K] [--rotate-every-ms MS]
         [--dwell-seconds S] [--timeout-minutes MIN] [--record FILE] [--keep]
         [--known-old-warning REGEX]...

Starts a cluster of the earlier release (--from), replaces its nodes one at a time by this
checkout's release while a workload runs, rolls one API node and one worker back, checks what
the devices applied and what the nodes logged, and looks for key material in Redis, the nodes'
output, metrics and events. Exits 1 on a violation.

  --from COMMIT|DIR     the earlier release: a commit (a git worktree is prepared, with its own
                        npm ci) or a directory that holds it (npm ci if it has no node_modules)
  --release-dir D       where the worktree of COMMIT goes      default /tmp/e4c2-release-<commit>
  --api N               API nodes, 1..${ROLL_LIMITS.nodesPerRole}                           default 2
  --workers M           delivery workers, 1..${ROLL_LIMITS.nodesPerRole}                    default 2
  --redlock 1|3         Redlock instances (3: private redis-server)    default 3
  --base-port P         the cluster's ports from P (npm run cluster's layout); 0 = free ports
                                                                       default 0
  --devices D           simulated devices, 1..${ROLL_LIMITS.devices}                    default 200
  --new-clients C       devices registered during the roll, 0..100     default 10
  --reflashes R         known devices re-flashed (a new key by NewClient) during the roll,
                        0..100                                         default 10
  --mode M              symmetric, or public-key (Ed25519 device identities, the C2 draws
                        rotated identity keys, and C2 key rotations run too)  default symmetric
  --own-key-devices K   public-key mode: devices that draw their own identity keys, rotate them
                        during the roll and read a neighbour's messages after it, 0 or 2..100
                                                                       default 10
  --topics T            topics every device joins (and one never rotated), 1..${ROLL_LIMITS.topics}
                                                                       default 4
  --rotate-every-ms MS  one rotation per MS, through each API node in turn  default 2000
  --dwell-seconds S     the workload's time on each mixed cluster, 1..300   default 15
  --record FILE         write the run's record there (JSON: calls, what devices applied,
                        the final state, the steps; fingerprints only, never keys)
  --timeout-minutes MIN the whole run's bound, 1..${ROLL_LIMITS.timeoutMinutes}                default 20
  --keep                keep the run's PostgreSQL schema afterwards
  --known-old-warning R a warning the earlier release is known to log (a regular expression on
                        the message; repeatable): counted, not judged, on its nodes only

Services come from DATABASE_URL (default ${CLUSTER_DEFAULTS.databaseUrl}; a fresh schema is
created there and dropped afterwards), REDIS_URL (default ${CLUSTER_DEFAULTS.redisUrl}) and
MQTT_URL (default ${CLUSTER_DEFAULTS.mqttUrl}).`;

const NUMBER_FLAGS: ReadonlySet<string> = new Set([
  '--api',
  '--workers',
  '--redlock',
  '--base-port',
  '--devices',
  '--new-clients',
  '--reflashes',
  '--own-key-devices',
  '--topics',
  '--rotate-every-ms',
  '--dwell-seconds',
  '--timeout-minutes',
]);

/**
 * Parses the command line (`--help` gives `undefined`).
 * @throws UsageError naming the bad argument
 */
export function parseRollArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): RollArgs | undefined {
  const values = parseOptions(argv, NUMBER_FLAGS, {
    from: { type: 'string' },
    'release-dir': { type: 'string' },
    api: { type: 'string' },
    workers: { type: 'string' },
    redlock: { type: 'string' },
    'base-port': { type: 'string' },
    devices: { type: 'string' },
    'new-clients': { type: 'string' },
    reflashes: { type: 'string' },
    mode: { type: 'string' },
    'own-key-devices': { type: 'string' },
    topics: { type: 'string' },
    'rotate-every-ms': { type: 'string' },
    'dwell-seconds': { type: 'string' },
    record: { type: 'string' },
    'timeout-minutes': { type: 'string' },
    keep: { type: 'boolean' },
    'known-old-warning': { type: 'string', multiple: true },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) return undefined;
  const from = values.from ?? '';
  if (from === '') throw new UsageError('--from is required: the commit or directory to roll from');
  const redlock = intArg(values.redlock, '--redlock', 1, 3, 3);
  if (redlock !== 1 && redlock !== 3) throw new UsageError('--redlock must be 1 or 3');
  const basePort = intArg(values['base-port'], '--base-port', 0, 65000, 0);
  if (basePort !== 0 && basePort < 1024)
    throw new UsageError('--base-port must be 0 or between 1024 and 65000');
  const mode = values.mode ?? 'symmetric';
  if (mode !== 'symmetric' && mode !== 'public-key')
    throw new UsageError(`--mode must be symmetric or public-key (got "${mode}")`);
  const ownKeyDevices = intArg(
    values['own-key-devices'],
    '--own-key-devices',
    0,
    100,
    mode === 'public-key' ? 10 : 0,
  );
  if (ownKeyDevices > 0 && mode !== 'public-key')
    throw new UsageError('--own-key-devices needs --mode public-key (devices draw key pairs)');
  if (ownKeyDevices === 1)
    throw new UsageError(
      "--own-key-devices must be 0 or at least 2 (each reads a neighbour's messages)",
    );
  const nonEmpty = (v: string | undefined): string | undefined =>
    v === undefined || v === '' ? undefined : v;
  const n = ROLL_LIMITS.nodesPerRole;
  return {
    from,
    releaseDir: nonEmpty(values['release-dir']),
    apiNodes: intArg(values.api, '--api', 1, n, 2),
    workers: intArg(values.workers, '--workers', 1, n, 2),
    redlock,
    basePort,
    devices: intArg(values.devices, '--devices', 1, ROLL_LIMITS.devices, 200),
    newClients: intArg(values['new-clients'], '--new-clients', 0, 100, 10),
    reflashes: intArg(values.reflashes, '--reflashes', 0, 100, 10),
    mode,
    ownKeyDevices,
    topics: intArg(values.topics, '--topics', 1, ROLL_LIMITS.topics, 4),
    rotateEveryMs: intArg(values['rotate-every-ms'], '--rotate-every-ms', 200, 60_000, 2000),
    dwellMs: 1000 * intArg(values['dwell-seconds'], '--dwell-seconds', 1, 300, 15),
    recordFile: nonEmpty(values.record),
    timeoutMs:
      60_000 *
      intArg(values['timeout-minutes'], '--timeout-minutes', 1, ROLL_LIMITS.timeoutMinutes, 20),
    keep: values.keep === true,
    knownOldWarnings: (values['known-old-warning'] ?? []).map(warningPattern),
    databaseUrl: nonEmpty(env['DATABASE_URL']) ?? CLUSTER_DEFAULTS.databaseUrl,
    redisUrl: nonEmpty(env['REDIS_URL']) ?? CLUSTER_DEFAULTS.redisUrl,
    mqttUrl: nonEmpty(env['MQTT_URL']) ?? CLUSTER_DEFAULTS.mqttUrl,
  };
}

/** A `--known-old-warning` value as a regular expression. @throws UsageError when invalid */
function warningPattern(source: string): RegExp {
  if (source === '') throw new UsageError('--known-old-warning must not be empty');
  try {
    return new RegExp(source);
  } catch (err) {
    throw new UsageError(`--known-old-warning ${source}: ${(err as Error).message}`);
  }
}
