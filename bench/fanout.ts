/**
 * `npm run bench -- fanout [--devices N]`: rotation fan-out of the C2 against a raw QoS 1
 * publish loop to the same devices through the same broker, in the same run (DESIGN §9).
 *
 * Set-up (not timed): a private PostgreSQL schema; N simulated devices (E4Client, symmetric-key
 * mode) in child processes, many per MQTT connection, each subscribed to its control topic; N
 * clients registered in bulk (`bench/lib/fanout-c2.ts`) and attached to one topic; key
 * version 1 delivered to every device by the delivery engine.
 *
 * Timed, in alternating rounds (baseline first in odd rounds, C2 first in even ones):
 * - C2: `C2Service.rotateTopicKey` (the code behind the API), the node's DeliveryEngine running
 *   with production settings; after the call returns, one data message protected by the C2 under
 *   the new key is published on the topic. The clock stops when every device has applied the new
 *   key AND decrypted that message. Also recorded: the call's own duration, the time until every
 *   device applied the key and until the engine's last PUBACK, and how many row updates of
 *   `clients` and `device_topics` were HOT (PostgreSQL statistics).
 * - Baseline: N pre-protected 73-byte SetTopicKey commands published QoS 1 to the same control
 *   topics from one connection, with as many awaiting their PUBACK as the engine allows itself
 *   (4 batches x 256), until every device applied its command.
 * Rate = N / seconds; ratio = C2 rate / baseline rate (target >= 0.5).
 *
 * Options, read from the command line and from the environment variable FANOUT_ARGS (the same
 * syntax, e.g. FANOUT_ARGS='--devices 100000'; for a dispatcher that rejects options it does not
 * know):
 *   --devices N           simulated devices (default 10,000; at most 100,000)
 *   --per-connection N    devices per MQTT connection (default and maximum 1,000, see below)
 *   --device-procs N      device processes (default 1 up to 50,000 devices, then 2)
 *   --engines LIST        engine configurations to run, e.g. `1` or `1,2` (default `1,2`)
 *   --second-engine WHERE `process` (default) or `in-process`
 *   --setup bulk|api      bulk SQL registration (default) or through the API use-cases
 *   --baseline-window N   baseline publishes awaiting PUBACK (default: the engine's 1,024)
 *   --step-timeout-s N    bound on one timed step (default 60 + N/250)
 *   --profile             time the node's engine calls (SQL statements, vault, publishes)
 *   --cpu-profile DIR     write V8 CPU profiles to DIR: this process for every C2 step, each
 *                         device shard for every timed step
 *   --schema-variant V    what-if experiment on the schema (SCHEMA_VARIANTS): `before-0006`
 *                         undoes migration 0006, `pending-index` keeps device_topics_pending
 *   --warmup N            untimed rounds (baseline and C2) before each engine configuration's
 *                         timed ones (default 1): a second engine starts as a fresh process, and
 *                         without a warm-up its first rounds would measure V8 compiling its code
 *   --no-kick-second      the second engine finds the rotation by polling the outbox (as a
 *                         second node does in production) instead of being kicked at once
 *   --shared-topic-keys   the devices of a process share prepared topic keys, as the identities
 *                         of a gateway do (`SharedTopicCiphers`); by default each device prepares
 *                         its own, as a device alone on its CPU does
 * plus the dispatcher's `--rounds` (default 3; 1 with `--quick`). The engines run with a node's
 * delivery settings, its defaults or `E4C2_DELIVERY_BATCHES`, `E4C2_DELIVERY_BATCH_SIZE` and
 * `E4C2_DELIVERY_PUBLISH_WINDOW` from the environment, as a node reads them; the baseline's
 * window follows them (batches x publish window) unless `--baseline-window` is given.
 *
 * Mosquitto's default `max_queued_messages` is 1,000 per subscriber connection (plus 20 in
 * flight): beyond that a QoS 1 message to a slow subscriber connection is dropped. With at most
 * 1,000 devices per connection and one command per device per step, nothing can be dropped.
 */
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { MqttClient } from 'mqtt';
import mqtt from 'mqtt';
import { median } from './lib/measure.ts';
import {
  connectBaselinePublisher,
  prepareBaseline,
  publishLoop,
  SET_TOPIC_KEY_WIRE_BYTES,
} from './lib/fanout-baseline.ts';
import {
  apiRegister,
  BENCH_MQTT_URL,
  bulkRegister,
  createSchema,
  dropSchema,
  ENGINE_MAX_IN_FLIGHT,
  ENGINE_SETTINGS,
  NODE_DELIVERY,
  POOL_MAX,
  startC2,
  SYNC_SETTINGS,
  topicHashHex,
  SCHEMA_VARIANTS,
  type SchemaVariant,
  waitRecorded,
  type BenchC2,
} from './lib/fanout-c2.ts';
import { epochMs, errorMessage, peakRssMiB, sleep } from './lib/fanout-common.ts';
import { CpuWatch, type CpuSeconds } from './lib/fanout-cpu.ts';
import { DeviceFleet } from './lib/fanout-devices.ts';
import { CallProfile, type CallStats } from './lib/fanout-profile.ts';
import { StepCpuProfile } from './lib/step-cpu-profile.ts';
import {
  startEngineInProcess,
  startEngineProcess,
  type SecondEngine,
} from './lib/fanout-engine.ts';
import type { Benchmark, BenchOptions, BenchOutcome, JsonObject } from './lib/types.ts';

const DEFAULT_DEVICES = 10_000;
const MAX_DEVICES = 100_000;
/** Mosquitto's default per-connection queue (see the module comment). */
const MAX_PER_CONNECTION = 1_000;
const TARGET_RATIO = 0.5;
/** Pause between timed steps, so one step's tail (vacuum, GC) does not land in the next. */
const SETTLE_MS = 1_000;

/**
 * This benchmark's command-line options (parseArgs syntax), exported with the benchmark so that
 * a dispatcher can accept them.
 */
export const FANOUT_OPTIONS = {
  devices: { type: 'string' },
  'per-connection': { type: 'string' },
  'device-procs': { type: 'string' },
  engines: { type: 'string' },
  'second-engine': { type: 'string' },
  setup: { type: 'string' },
  'baseline-window': { type: 'string' },
  'step-timeout-s': { type: 'string' },
  profile: { type: 'boolean' },
  'cpu-profile': { type: 'string' },
  'schema-variant': { type: 'string' },
  'no-kick-second': { type: 'boolean' },
  'shared-topic-keys': { type: 'boolean' },
  warmup: { type: 'string' },
} as const;

/** The fan-out options. */
interface FanoutArgs {
  readonly devices: number;
  readonly perConnection: number;
  readonly deviceProcs: number;
  readonly engines: readonly (1 | 2)[];
  readonly secondEngine: 'process' | 'in-process';
  readonly setup: 'bulk' | 'api';
  readonly baselineWindow: number;
  readonly stepTimeoutMs: number;
  /** Time the node's engine calls (statements, vault, publishes) in the C2 steps. */
  readonly profile: boolean;
  /** Where to write a CPU profile of this process per C2 step (none when undefined). */
  readonly cpuProfileDir: string | undefined;
  /** What-if experiment on the schema (`SCHEMA_VARIANTS`), or none (as migrated). */
  readonly schemaVariant: SchemaVariant | undefined;
  /** Kick the second engine right after the rotation call (else it finds the work by polling). */
  readonly kickSecond: boolean;
  /** Untimed rounds before the timed ones of each engine configuration. */
  readonly warmup: number;
  /**
   * The simulated devices of a process share prepared topic keys as a gateway's identities do
   * (`SharedTopicCiphers`), instead of each preparing its own as a device alone on its CPU does.
   */
  readonly sharedTopicKeys: boolean;
  /** The options as given, for the report's command line. */
  readonly given: readonly string[];
}

function intOption(value: unknown, name: string, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'string' ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name} needs an integer from ${min} to ${max}`);
  return n;
}

/**
 * Reads this benchmark's options from the command line (the dispatcher parses its own; unknown
 * ones are left to each benchmark).
 */
function fanoutArgs(argv: readonly string[]): FanoutArgs {
  const { values } = parseArgs({
    args: [...argv],
    strict: false,
    allowPositionals: true,
    options: FANOUT_OPTIONS,
  });
  const given: string[] = [];
  for (const name of Object.keys(FANOUT_OPTIONS)) {
    const v = values[name];
    if (typeof v === 'string') given.push(`--${name} ${v}`);
    else if (v === true) given.push(`--${name}`);
  }
  const devices = intOption(values['devices'], 'devices', 1, MAX_DEVICES) ?? DEFAULT_DEVICES;
  const perConnection =
    intOption(values['per-connection'], 'per-connection', 1, MAX_PER_CONNECTION) ??
    MAX_PER_CONNECTION;
  const deviceProcs =
    intOption(values['device-procs'], 'device-procs', 1, 8) ?? (devices > 50_000 ? 2 : 1);
  const enginesText = typeof values['engines'] === 'string' ? values['engines'] : '1,2';
  const engines = enginesText.split(',').map((e) => {
    if (e !== '1' && e !== '2') throw new Error('--engines takes 1, 2 or 1,2');
    return e === '1' ? 1 : 2;
  });
  const where = values['second-engine'] ?? 'process';
  if (where !== 'process' && where !== 'in-process')
    throw new Error('--second-engine takes process or in-process');
  const setup = values['setup'] ?? 'bulk';
  if (setup !== 'bulk' && setup !== 'api') throw new Error('--setup takes bulk or api');
  const baselineWindow =
    intOption(values['baseline-window'], 'baseline-window', 1, 65_000) ?? ENGINE_MAX_IN_FLIGHT;
  const variant = values['schema-variant'];
  if (variant !== undefined && (typeof variant !== 'string' || !(variant in SCHEMA_VARIANTS)))
    throw new Error(`--schema-variant takes ${Object.keys(SCHEMA_VARIANTS).join(' or ')}`);
  const schemaVariant = variant as SchemaVariant | undefined;
  const stepTimeoutS =
    intOption(values['step-timeout-s'], 'step-timeout-s', 5, 3600) ??
    Math.round(60 + devices / 250);
  return {
    devices,
    perConnection,
    deviceProcs,
    engines,
    secondEngine: where,
    setup,
    baselineWindow,
    stepTimeoutMs: stepTimeoutS * 1000,
    profile: values['profile'] === true,
    cpuProfileDir: typeof values['cpu-profile'] === 'string' ? values['cpu-profile'] : undefined,
    schemaVariant,
    kickSecond: values['no-kick-second'] !== true,
    warmup: intOption(values['warmup'], 'warmup', 0, 10) ?? 1,
    sharedTopicKeys: values['shared-topic-keys'] === true,
    given,
  };
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
const seconds = (fromMs: number, toMs: number): number => round3((toMs - fromMs) / 1000);

/** One timed baseline step. */
type BaselineStep = {
  readonly seconds: number;
  readonly rate: number;
  readonly lastPubackSeconds: number;
  readonly cpuSeconds: CpuSeconds;
};

/** One timed C2 step. */
type C2Step = {
  readonly keyVersion: number;
  /** Duration of the `rotateTopicKey` call (transaction, commit, answer). */
  readonly rotateCallSeconds: number;
  /** When the data message under the new key was published (after the call returned). */
  readonly dataPublishedSeconds: number;
  readonly allAppliedSeconds: number;
  /** Every device applied the key and decrypted the data message: the figure of the rate. */
  readonly allDecryptedSeconds: number;
  readonly lastPubackSeconds: number;
  readonly rate: number;
  /** PUBACKs per engine (the node's own first). */
  readonly ackedByEngine: readonly number[];
  readonly deliveredRecorded: number;
  readonly cpuSeconds: CpuSeconds;
  /** With `--profile`: the node's engine calls during the step. */
  readonly calls: Readonly<Record<string, CallStats>> | null;
  /** Row updates during the step, and how many were HOT (no index entry written), by table. */
  readonly updates: Readonly<Record<string, { updated: number; hot: number }>>;
};

/** Cumulative row updates of the delivery tables in the benchmark's schema. */
async function updateCounts(ctx: Context): Promise<Map<string, { updated: number; hot: number }>> {
  // Statistics reach the shared counters when sessions report them (at most once a second).
  await sleep(1100);
  const found = await ctx.c2.pool.query<{ relname: string; upd: string; hot: string }>(
    `SELECT relname, n_tup_upd AS upd, n_tup_hot_upd AS hot FROM pg_stat_user_tables
     WHERE schemaname = current_schema() AND relname IN ('clients', 'device_topics')`,
  );
  return new Map(
    found.rows.map((r) => [r.relname, { updated: Number(r.upd), hot: Number(r.hot) }]),
  );
}

type RoundResult = {
  readonly round: number;
  readonly order: string;
  readonly baseline: BaselineStep;
  readonly c2: C2Step;
  /** C2 rate / baseline rate, on the wall clock (the target's figure). */
  readonly ratio: number;
  /**
   * Baseline CPU per device / C2 CPU per device, each summed over the processes doing the work
   * (see {@link cpuPerDevice}): what the ratio would be on a box that is saturated anyway, and
   * insensitive to neighbours' load.
   */
  readonly cpuRatio: number;
};

/** Processes whose CPU time is the cost of a step (PostgreSQL: our sessions only). */
const COST_GROUPS = ['benchmark', 'engineProcess', 'postgresSessions', 'broker', 'devices'];

/** CPU microseconds per device spent by the {@link COST_GROUPS} in a step. */
function cpuPerDevice(cpu: CpuSeconds, devices: number): number {
  const total = COST_GROUPS.reduce((sum, group) => sum + (cpu[group] ?? 0), 0);
  return Math.round((total / devices) * 1e6);
}

/** Everything the steps need. */
interface Context {
  readonly args: FanoutArgs;
  readonly runId: string;
  readonly seed: Uint8Array;
  readonly topic: string;
  readonly topicId: string;
  readonly baselineHashHex: string;
  readonly c2: BenchC2;
  readonly fleet: DeviceFleet;
  readonly baselineClient: MqttClient;
  readonly dataClient: MqttClient;
  readonly cpu: CpuWatch;
  readonly profile: CallProfile | undefined;
  /** Child processes besides the devices whose CPU time is watched (the second engine). */
  readonly extraPids: Map<string, number[]>;
  readonly log: (message: string) => void;
}

/**
 * Puts the server processes of our own PostgreSQL sessions (every benchmark pool sets an
 * application name starting with `bench-fanout`) into the CPU watch as `postgresSessions`: the
 * `postgres` group counts every server process, other users' included. Called before and after
 * each step; a session that opened and closed within a step is missed.
 */
async function watchOurSessions(ctx: Context): Promise<void> {
  const found = await ctx.c2.pool.query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'bench-fanout%'`,
  );
  ctx.extraPids.set(
    'postgresSessions',
    found.rows.map((r) => r.pid),
  );
}

function progress(
  log: (message: string) => void,
  what: string,
): (done: number, total: number) => void {
  return (done, total) => {
    log(`  ${what}: ${done.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} devices`);
  };
}

async function baselineStep(ctx: Context, label: string): Promise<BaselineStep> {
  const n = ctx.args.devices;
  const armId = await ctx.fleet.arm('baseline');
  const messages = prepareBaseline(
    { runId: ctx.runId, seed: ctx.seed, count: n },
    ctx.baselineHashHex,
  );
  await watchOurSessions(ctx);
  const cpuBefore = ctx.cpu.snapshot();
  const loop = await publishLoop(
    ctx.baselineClient,
    messages,
    ctx.args.baselineWindow,
    ctx.args.stepTimeoutMs,
  );
  if (loop.failed > 0) throw new Error(`baseline: ${loop.failed} publishes failed`);
  const step = await ctx.fleet.waitDone(
    armId,
    ctx.args.stepTimeoutMs,
    progress(ctx.log, `${label} baseline`),
  );
  // Sessions opened during the step (the pool closes idle ones) count from zero.
  await watchOurSessions(ctx);
  const cpuSeconds = ctx.cpu.since(cpuBefore);
  if (step.rejected > 0) throw new Error(`baseline: devices rejected ${step.rejected} messages`);
  const s = seconds(loop.startedAt, step.lastReceivedAt);
  return {
    seconds: s,
    rate: Math.round(n / s),
    lastPubackSeconds: seconds(loop.startedAt, loop.lastPubackAt),
    cpuSeconds,
  };
}

async function c2Step(
  ctx: Context,
  second: SecondEngine | undefined,
  label: string,
): Promise<C2Step> {
  const n = ctx.args.devices;
  ctx.c2.acks.reset();
  ctx.profile?.reset();
  await second?.reset();
  const armId = await ctx.fleet.arm('c2');
  const updatesBefore = await updateCounts(ctx);
  await watchOurSessions(ctx);
  const cpuProfile =
    ctx.args.cpuProfileDir === undefined ? undefined : await StepCpuProfile.start();
  const cpuBefore = ctx.cpu.snapshot();
  const start = epochMs();
  const rotated = await ctx.c2.service.rotateTopicKey({ actor: 'bench-fanout' }, ctx.topic);
  const returned = epochMs();
  // The node that took the call kicks its own engine (inside the service); another node would
  // only find the outbox rows at its next poll. By default the benchmark kicks it at once, the
  // best case for sharing the work; `--no-kick-second` leaves it to its poll, as in production.
  if (second?.where === 'process' && ctx.args.kickSecond) second.kick();
  const data = await ctx.c2.service.protectMessage(
    ctx.topic,
    Buffer.from(`fanout ${ctx.runId} ${armId}`),
  );
  await ctx.dataClient.publishAsync(ctx.topic, Buffer.from(data), { qos: 1 });
  const published = epochMs();
  const step = await ctx.fleet.waitDone(
    armId,
    ctx.args.stepTimeoutMs,
    progress(ctx.log, `${label} c2`),
  );
  if (cpuProfile !== undefined && ctx.args.cpuProfileDir !== undefined)
    ctx.log(`cpu profile: ${await cpuProfile.stop(ctx.args.cpuProfileDir, `c2-${label}`)}`);
  // Sessions opened during the step (the pool closes idle ones) count from zero.
  await watchOurSessions(ctx);
  const cpuSeconds = ctx.cpu.since(cpuBefore);
  if (step.rejected > 0) throw new Error(`c2: devices rejected ${step.rejected} messages`);
  const recorded = await waitRecorded(ctx.c2, ctx.topicId, rotated.keyVersion, n, 30_000);
  if (recorded !== n)
    throw new Error(`c2: ${recorded} of ${n} deliveries of v${rotated.keyVersion} recorded`);
  const updates: Record<string, { updated: number; hot: number }> = {};
  for (const [table, after] of await updateCounts(ctx)) {
    const before = updatesBefore.get(table) ?? { updated: 0, hot: 0 };
    updates[table] = { updated: after.updated - before.updated, hot: after.hot - before.hot };
  }
  const secondStats = await second?.stats();
  const lastAck = Math.max(ctx.c2.acks.lastAckAt, secondStats?.lastAckAt ?? 0);
  const ackedByEngine = [
    ctx.c2.acks.acked,
    ...(secondStats === undefined ? [] : [secondStats.acked]),
  ];
  const s = seconds(start, step.lastDecryptedAt);
  return {
    keyVersion: rotated.keyVersion,
    rotateCallSeconds: seconds(start, returned),
    dataPublishedSeconds: seconds(start, published),
    allAppliedSeconds: seconds(start, step.lastAppliedAt),
    allDecryptedSeconds: s,
    lastPubackSeconds: seconds(start, lastAck),
    rate: Math.round(n / s),
    ackedByEngine,
    deliveredRecorded: recorded,
    cpuSeconds,
    calls: ctx.profile?.snapshot() ?? null,
    updates,
  };
}

/** Runs the rounds of one engine configuration. */
async function runConfig(
  ctx: Context,
  engines: 1 | 2,
  rounds: number,
): Promise<{ result: JsonObject; summary: string[]; enginePeakRssMiB: number | null }> {
  let second: SecondEngine | undefined;
  let enginePeakRssMiB: number | null = null;
  const results: RoundResult[] = [];
  const engineLabel = engines === 2 ? '2 engines' : '1 engine';
  try {
    if (engines === 2) {
      second =
        ctx.args.secondEngine === 'process'
          ? await startEngineProcess(ctx.c2)
          : await startEngineInProcess(ctx.c2, ctx.args.kickSecond);
      if (second.pid !== undefined) ctx.extraPids.set('engineProcess', [second.pid]);
    }
    for (let w = 1; w <= ctx.args.warmup; w++) {
      const label = `[${engineLabel}, warm-up ${w}/${ctx.args.warmup}]`;
      await sleep(SETTLE_MS);
      await baselineStep(ctx, label);
      await sleep(SETTLE_MS);
      const c2 = await c2Step(ctx, second, label);
      ctx.log(`${label} done (not timed; c2 ${c2.allDecryptedSeconds} s)`);
    }
    for (let r = 1; r <= rounds; r++) {
      const label = `[${engineLabel}, round ${r}/${rounds}]`;
      const baselineFirst = r % 2 === 1;
      let baseline: BaselineStep | undefined;
      let c2: C2Step | undefined;
      for (const which of baselineFirst ? ['baseline', 'c2'] : ['c2', 'baseline']) {
        await sleep(SETTLE_MS);
        if (which === 'baseline') {
          baseline = await baselineStep(ctx, label);
          ctx.log(
            `${label} baseline: ${baseline.seconds} s, ${baseline.rate.toLocaleString('en-US')} devices/s`,
          );
        } else {
          c2 = await c2Step(ctx, second, label);
          ctx.log(
            `${label} c2: ${c2.allDecryptedSeconds} s, ${c2.rate.toLocaleString('en-US')} devices/s ` +
              `(call ${c2.rotateCallSeconds} s, last PUBACK ${c2.lastPubackSeconds} s, ` +
              `PUBACKs per engine ${c2.ackedByEngine.join('+')})`,
          );
        }
      }
      if (baseline === undefined || c2 === undefined) throw new Error('round incomplete');
      results.push({
        round: r,
        order: baselineFirst ? 'baseline, c2' : 'c2, baseline',
        baseline,
        c2,
        ratio: round3(c2.rate / baseline.rate),
        cpuRatio: round3(
          cpuPerDevice(baseline.cpuSeconds, ctx.args.devices) /
            cpuPerDevice(c2.cpuSeconds, ctx.args.devices),
        ),
      });
    }
  } finally {
    ctx.extraPids.delete('engineProcess');
    if (second !== undefined) {
      const stopped = await second.stop().catch(() => undefined);
      enginePeakRssMiB = stopped?.peakRssMiB ?? null;
    }
  }
  const baselineRate = Math.round(median(results.map((r) => r.baseline.rate)));
  const c2Rate = Math.round(median(results.map((r) => r.c2.rate)));
  const ratio = round3(c2Rate / baselineRate);
  const lastPuback = round3(median(results.map((r) => r.c2.lastPubackSeconds)));
  const result: JsonObject = {
    engines,
    secondEngine: engines === 2 ? ctx.args.secondEngine : null,
    rounds: results,
    baselineRateMedian: baselineRate,
    c2RateMedian: c2Rate,
    ratio,
    ratioOfRoundsMedian: round3(median(results.map((r) => r.ratio))),
    cpuRatioMedian: round3(median(results.map((r) => r.cpuRatio))),
    cpuMicrosPerDeviceMedian: {
      baseline: Math.round(
        median(results.map((r) => cpuPerDevice(r.baseline.cpuSeconds, ctx.args.devices))),
      ),
      c2: Math.round(median(results.map((r) => cpuPerDevice(r.c2.cpuSeconds, ctx.args.devices)))),
    },
    c2SecondsMedian: round3(median(results.map((r) => r.c2.allDecryptedSeconds))),
    baselineSecondsMedian: round3(median(results.map((r) => r.baseline.seconds))),
    lastPubackSecondsMedian: lastPuback,
    rotateCallSecondsMedian: round3(median(results.map((r) => r.c2.rotateCallSeconds))),
    target: TARGET_RATIO,
    met: ratio >= TARGET_RATIO,
  };
  const summary = [
    `| ${engines} engine${engines === 2 ? 's' : ''} | ${ctx.args.devices.toLocaleString('en-US')} | ` +
      `${c2Rate.toLocaleString('en-US')} | ${baselineRate.toLocaleString('en-US')} | ${ratio} | ` +
      `${round3(median(results.map((r) => r.cpuRatio)))} | ${lastPuback} | ` +
      `${ratio >= TARGET_RATIO ? 'met' : 'missed'} |`,
  ];
  return { result, summary, enginePeakRssMiB };
}

async function closeClient(client: MqttClient | undefined): Promise<void> {
  if (client === undefined) return;
  await client.endAsync().catch(() => {
    client.end(true);
  });
}

async function run(options: BenchOptions): Promise<BenchOutcome> {
  const fromEnv = (process.env['FANOUT_ARGS'] ?? '').split(/\s+/).filter((a) => a !== '');
  const args = fanoutArgs([...fromEnv, ...process.argv.slice(2)]);
  const log = options.log;
  const rounds = options.rounds ?? (options.quick ? 1 : 3);
  const n = args.devices;
  const runId = randomBytes(4).toString('hex');
  const seed = new Uint8Array(randomBytes(32));
  const topic = `bench/fanout/${runId}`;
  const baselineHashHex = topicHashHex(`${topic}/baseline`);
  const fleetInfo = { runId, seed, count: n };
  log(
    `fanout: ${n.toLocaleString('en-US')} devices, ${args.perConnection} per connection, ` +
      `${args.deviceProcs} device process(es), engines ${args.engines.join(' and ')}, ${rounds} round(s)`,
  );

  let schema: string | undefined;
  let c2: BenchC2 | undefined;
  let fleet: DeviceFleet | undefined;
  let baselineClient: MqttClient | undefined;
  let dataClient: MqttClient | undefined;
  const fleetStarting = DeviceFleet.start({
    brokerUrl: BENCH_MQTT_URL,
    runId,
    seedHex: Buffer.from(seed).toString('hex'),
    devices: n,
    perConnection: args.perConnection,
    processes: args.deviceProcs,
    topic,
    baselineTopicHashHex: baselineHashHex,
    startTimeoutMs: 120_000 + n * 2,
    log,
    sharedTopicKeys: args.sharedTopicKeys,
    ...(args.cpuProfileDir === undefined ? {} : { cpuProfileDir: args.cpuProfileDir }),
  });
  fleetStarting.catch(() => undefined);
  const configs: JsonObject[] = [];
  const summary: string[] = [
    `fanout: ${n.toLocaleString('en-US')} devices (rates in devices/s, medians of ${rounds} round(s))`,
    '',
    '| config | devices | C2 rate | baseline rate | ratio | CPU ratio | last PUBACK (s) | target ≥ 0.5 |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  // Interrupted (Ctrl-C, a timeout's SIGTERM): drop the schema before leaving; the child
  // processes leave by themselves when their IPC channel closes.
  const onSignal = (signal: NodeJS.Signals): void => {
    log(`${signal}: dropping the schema and leaving`);
    fleet?.kill();
    const dropping = schema === undefined ? Promise.resolve() : dropSchema(schema);
    void dropping
      .catch(() => undefined)
      .finally(() => {
        process.exit(130);
      });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let setup: JsonObject = {};
  let deviceRss: number[] = [];
  let engineRss: number | null = null;
  try {
    // --- Set-up (not timed) -------------------------------------------------------------------
    const db = await createSchema(args.schemaVariant);
    schema = db.schema;
    const profile = args.profile ? new CallProfile() : undefined;
    c2 = await startC2(db.schema, db.pool, profile);
    await c2.service.newTopic({ actor: 'bench-fanout' }, topic);
    const topicRow = await c2.store.read.topics.byName(topic);
    if (topicRow === undefined) throw new Error('topic not created');
    const registerStart = epochMs();
    log(`registering ${n.toLocaleString('en-US')} clients (${args.setup})`);
    if (args.setup === 'bulk') await bulkRegister(c2, fleetInfo, topicRow.id, topic, log);
    else await apiRegister(c2, fleetInfo, topic, 16, log);
    const registerSeconds = seconds(registerStart, epochMs());
    log('waiting for the devices to connect and subscribe');
    fleet = await fleetStarting;
    log(
      `devices ready: ${fleet.started.connections} connections in ${fleet.processes} process(es)`,
    );
    const setupArm = await fleet.arm('setup');
    const initialStart = epochMs();
    c2.engine.start();
    const initial = await fleet.waitDone(
      setupArm,
      args.stepTimeoutMs,
      progress(log, 'key version 1'),
    );
    const initialSeconds = seconds(initialStart, initial.lastAppliedAt);
    const recorded = await waitRecorded(c2, topicRow.id, 1, n, 30_000);
    if (recorded !== n) throw new Error(`set-up: ${recorded} of ${n} deliveries of v1 recorded`);
    log(`every device holds key version 1 (${initialSeconds} s through the engine)`);
    setup = {
      registerSeconds,
      deviceCreateSeconds: round3(fleet.started.createMs / 1000),
      deviceConnectSeconds: round3(fleet.started.connectMs / 1000),
      initialDeliverySeconds: initialSeconds,
      initialDeliveryRate: Math.round(n / initialSeconds),
    };
    baselineClient = await connectBaselinePublisher(BENCH_MQTT_URL, runId);
    dataClient = await mqtt.connectAsync(BENCH_MQTT_URL, {
      clientId: `fanout-${runId}-data`,
      clean: true,
      reconnectPeriod: 0,
    });
    const running = fleet;
    const extraPids = new Map<string, number[]>();
    const cpu = new CpuWatch(() => ({ devices: running.pids, ...Object.fromEntries(extraPids) }));
    const ctx: Context = {
      args,
      runId,
      seed,
      topic,
      topicId: topicRow.id,
      baselineHashHex,
      c2,
      fleet,
      baselineClient,
      dataClient,
      cpu,
      profile,
      extraPids,
      log,
    };

    // --- Timed rounds ---------------------------------------------------------------------------
    for (const engines of args.engines) {
      const config = await runConfig(ctx, engines, rounds);
      configs.push(config.result);
      summary.push(...config.summary);
      if (config.enginePeakRssMiB !== null) engineRss = config.enginePeakRssMiB;
    }
    if (fleet.errors.length > 0) throw new Error(`devices reported: ${fleet.errors[0] ?? ''}`);
    if (c2.errors.length > 0) throw new Error(`engine reported: ${c2.errors[0] ?? ''}`);
  } finally {
    // --- Clean-up, also after a failure ---------------------------------------------------------
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    fleet ??= await fleetStarting.catch(() => undefined);
    deviceRss = (await fleet?.stop().catch(() => undefined)) ?? [];
    await closeClient(baselineClient);
    await closeClient(dataClient);
    await c2?.close().catch((err: unknown) => {
      log(`closing the C2: ${errorMessage(err)}`);
    });
    if (schema !== undefined) {
      await dropSchema(schema).catch((err: unknown) => {
        log(`dropping schema ${schema ?? ''}: ${errorMessage(err)}`);
      });
    }
  }
  const rss: JsonObject = {
    benchmark: peakRssMiB(),
    deviceProcesses: deviceRss,
    engineProcess: engineRss,
  };
  summary.push(
    '',
    `peak RSS (MiB): benchmark ${peakRssMiB()}, device processes ${deviceRss.join(', ')}` +
      (engineRss === null ? '' : `, second engine process ${engineRss}`),
  );
  return {
    settings: {
      command: ['npm run bench -- fanout', ...args.given, ...(options.quick ? ['--quick'] : [])]
        .concat(options.rounds === undefined ? [] : [`--rounds ${options.rounds}`])
        .join(' '),
      fanoutArgsEnvironment: process.env['FANOUT_ARGS'] ?? null,
      devices: n,
      devicesPerConnection: args.perConnection,
      connections: Math.ceil(n / args.perConnection),
      deviceProcesses: args.deviceProcs,
      devicesShareTopicKeys: args.sharedTopicKeys,
      rounds,
      warmupRounds: args.warmup,
      engineConfigurations: [...args.engines],
      secondEngine: args.secondEngine,
      secondEngineKicked: args.kickSecond,
      setup: args.setup,
      schema:
        args.schemaVariant === undefined
          ? 'as migrated'
          : { variant: args.schemaVariant, statements: [...SCHEMA_VARIANTS[args.schemaVariant]] },
      engine: {
        ...ENGINE_SETTINGS,
        ...SYNC_SETTINGS,
        poolMax: POOL_MAX,
        pubackTimeoutMs: NODE_DELIVERY.pubackTimeoutMs,
        maxInFlight: ENGINE_MAX_IN_FLIGHT,
      },
      baselineWindow: args.baselineWindow,
      baselinePayloadBytes: SET_TOPIC_KEY_WIRE_BYTES,
      stepTimeoutSeconds: args.stepTimeoutMs / 1000,
      broker: new URL(BENCH_MQTT_URL).host,
    },
    results: {
      devices: n,
      connections: Math.ceil(n / args.perConnection),
      setup,
      configurations: configs,
      peakRssMiB: rss,
    },
    summary,
  };
}

/** The fan-out benchmark (see the module comment). */
export const benchmark: Benchmark & { readonly options: typeof FANOUT_OPTIONS } = {
  name: 'fanout',
  description:
    'rotation fan-out (rotateTopicKey until every device decrypted under the new key) vs a raw QoS 1 publish loop',
  run,
  options: FANOUT_OPTIONS,
};
