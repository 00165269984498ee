/**
 * The scenarios: each decides, from the seed alone, a schedule of faults within the run's
 * duration (so the same seed gives the same schedule), its error budget (I9), and what of the
 * workload it exercises. Faults are descriptions here; `injectors.ts` applies and heals them.
 */
import type { ErrorBudget } from './history.ts';
import type { MqttFaults } from './faults/mqtt-fault-proxy.ts';
import type { Direction, Toxics } from './faults/tcp-fault-proxy.ts';
import type { Rng } from './rng.ts';

/** E4's window: a device refuses commands older than this (10 minutes). */
export const E4_MAX_AGE_MS = 10 * 60 * 1000;

/** One fault, serialisable (it is printed in the summary). */
export type FaultSpec =
  | { readonly kind: 'kill-node'; readonly target: string }
  | { readonly kind: 'pause-node'; readonly target: string }
  | { readonly kind: 'pause-redlock'; readonly target: string }
  | { readonly kind: 'partition-node'; readonly target: string }
  | { readonly kind: 'restart-queue-redis' }
  | { readonly kind: 'restart-postgres' }
  | { readonly kind: 'restart-broker'; readonly persistent: boolean }
  | {
      readonly kind: 'network';
      readonly target: 'postgres' | 'redis' | 'broker';
      readonly direction: Direction;
      readonly toxics: Toxics;
    }
  | { readonly kind: 'reset-connections'; readonly target: 'postgres' | 'redis' | 'broker' }
  | { readonly kind: 'mqtt'; readonly faults: MqttFaults }
  | { readonly kind: 'device-skew'; readonly device: number; readonly offsetMs: number }
  | { readonly kind: 'device-offline'; readonly device: number; readonly simulatedMs: number };

/** A fault at a time, for a time. */
export interface ScheduledFault {
  readonly atMs: number;
  readonly durationMs: number;
  readonly fault: FaultSpec;
}

/** What a schedule may use. */
export interface PlanContext {
  readonly rng: Rng;
  readonly durationMs: number;
  readonly apiNodes: readonly string[];
  readonly workers: readonly string[];
  readonly redlock: readonly string[];
  readonly devices: number;
}

/** One scenario. */
export interface Scenario {
  readonly name: string;
  readonly summary: string;
  readonly budget: ErrorBudget;
  /** Bursts of concurrent rotations of one topic. */
  readonly bursts: boolean;
  /**
   * Client key rotations. Off where commands are lost on purpose: a stock device that misses
   * SetIDKey cannot read anything protected with the new key, and the C2 cannot tell (R9).
   */
  readonly rotateClients: boolean;
  /** After the heal, the operator resyncs devices that refused commands (docs/chaos.md). */
  readonly resyncRefusers: boolean;
  /**
   * An interval automation rule fires every second during the run; its firings are checked
   * for A1 (every slot once, whichever engine leads; automation-check.ts).
   */
  readonly automation?: boolean;
  /** The cluster's crypto mode; public-key scenarios run on a cluster of their own. */
  readonly mode: 'symmetric' | 'pubkey';
  readonly plan: (ctx: PlanContext) => ScheduledFault[];
}

/** `n` faults spread over the middle of the run, each lasting `length()`. */
function spread(
  ctx: PlanContext,
  n: number,
  length: () => number,
  fault: (i: number) => FaultSpec,
): ScheduledFault[] {
  const out: ScheduledFault[] = [];
  const start = ctx.durationMs * 0.1;
  const slot = (ctx.durationMs * 0.75) / n;
  for (let i = 0; i < n; i++) {
    const durationMs = Math.min(length(), Math.max(500, slot * 0.9));
    const atMs = Math.round(start + slot * i + ctx.rng.next() * Math.max(0, slot - durationMs));
    out.push({ atMs, durationMs: Math.round(durationMs), fault: fault(i) });
  }
  return out;
}

/** How many faults fit: one per ~8 s of run, at least one. */
const count = (ctx: PlanContext, per = 8000, max = 6): number =>
  Math.max(1, Math.min(max, Math.floor(ctx.durationMs / per)));

const STRICT: ErrorBudget = { duringFaults: 0.05, settleMs: 2000 };

const kill = (ctx: PlanContext, names: readonly string[]): ScheduledFault[] =>
  spread(
    ctx,
    count(ctx),
    () => ctx.rng.int(500, 3000),
    () => ({ kind: 'kill-node', target: ctx.rng.pick(names) }),
  );

/**
 * Up to three faults of `kind`, one at a time, each on a random API node or worker and longer
 * than the 4 s lock lease and device claims (up to 18 s in runs of 40 s or more).
 */
const pastTheLeases = (ctx: PlanContext, kind: 'pause-node' | 'partition-node'): ScheduledFault[] =>
  spread(
    ctx,
    count(ctx, 10_000, 3),
    () => ctx.rng.int(5000, ctx.durationMs >= 40_000 ? 18_000 : 7000),
    () => ({ kind, target: ctx.rng.pick([...ctx.apiNodes, ...ctx.workers]) }),
  );

/** Every scenario, in the order `--scenario all` runs them. */
export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'concurrent-rotations',
    summary:
      'bursts of rotations of one topic from several clients a few ms apart, over a database link with latency and jitter',
    budget: STRICT,
    bursts: true,
    rotateClients: true,
    resyncRefusers: false,
    mode: 'symmetric',
    plan: (ctx) =>
      spread(
        ctx,
        count(ctx),
        () => ctx.rng.int(1000, 4000),
        () => ({
          kind: 'network',
          target: 'postgres',
          direction: ctx.rng.chance(0.5) ? 'upstream' : 'downstream',
          toxics: { latencyMs: ctx.rng.int(2, 20), jitterMs: ctx.rng.int(0, 20) },
        }),
      ),
  },
  {
    name: 'worker-crash',
    summary: 'delivery workers SIGKILLed at random points (mid-fan-out), restarted after 0.5-3 s',
    budget: STRICT,
    bursts: true,
    rotateClients: true,
    resyncRefusers: false,
    mode: 'symmetric',
    plan: (ctx) => kill(ctx, ctx.workers),
  },
  {
    name: 'api-crash',
    summary: 'API nodes SIGKILLed at random points (mid-transaction), restarted after 0.5-3 s',
    budget: { duringFaults: 0.35, settleMs: 12_000 },
    bursts: true,
    rotateClients: true,
    resyncRefusers: false,
    mode: 'symmetric',
    plan: (ctx) => kill(ctx, ctx.apiNodes),
  },
  {
    name: 'pause-lease-expiry',
    summary:
      'SIGSTOP of an API node or worker past its lock lease (4 s) or claims, then SIGCONT: the expired-lease case',
    budget: { duringFaults: 0.5, settleMs: 12_000 },
    bursts: true,
    rotateClients: true,
    resyncRefusers: false,
    mode: 'symmetric',
    plan: (ctx) => pastTheLeases(ctx, 'pause-node'),
  },
  {
    name: 'node-partition',
    summary:
      'an API node or worker cut off PostgreSQL, Redis and the broker for 5-7 s while it keeps running, past its lock lease and claims',
    budget: { duringFaults: 0.5, settleMs: 12_000 },
    bursts: true,
    rotateClients: true,
    resyncRefusers: false,
    mode: 'symmetric',
    plan: (ctx) => pastTheLeases(ctx, 'partition-node'),
  },
  {
    name: 'redis-failover',
    summary:
      'the queue Redis crashes (every job lost) and restarts empty; one of the three Redlock Redis is paused',
    budget: { duringFaults: 0.3, settleMs: 6000 },
    bursts: true,
    rotateClients: true,
    resyncRefusers: false,
    mode: 'symmetric',
    plan: (ctx) => [
      ...spread(
        ctx,
        count(ctx, 10_000, 3),
        () => ctx.rng.int(1000, 3000),
        () => ({ kind: 'restart-queue-redis' }),
      ),
      ...spread(
        ctx,
        1,
        () => ctx.rng.int(3000, 6000),
        () => ({ kind: 'pause-redlock', target: ctx.rng.pick(ctx.redlock) }),
      ),
    ],
  },
  {
    name: 'postgres-restart',
    summary:
      'PostgreSQL stopped immediately (pg_ctl -m immediate) and restarted; connections reset',
    budget: { duringFaults: 0.6, settleMs: 8000 },
    bursts: false,
    rotateClients: true,
    resyncRefusers: false,
    mode: 'symmetric',
    plan: (ctx) =>
      spread(
        ctx,
        count(ctx, 10_000, 3),
        () => ctx.rng.int(1000, 3000),
        (i) =>
          i % 2 === 0
            ? { kind: 'restart-postgres' }
            : { kind: 'reset-connections', target: 'postgres' },
      ),
  },
  {
    name: 'broker-restart',
    summary: 'the MQTT broker restarted with its persistent sessions, then without them',
    budget: STRICT,
    bursts: false,
    rotateClients: false,
    resyncRefusers: true,
    mode: 'symmetric',
    plan: (ctx) =>
      spread(
        ctx,
        Math.max(2, count(ctx, 10_000, 4)),
        () => ctx.rng.int(1000, 3000),
        (i) => ({ kind: 'restart-broker', persistent: i % 2 === 0 }),
      ),
  },
  {
    name: 'reorder-and-duplicate',
    summary:
      'PUBLISH packets delayed, held until overtaken, duplicated; PUBACKs lost; the broker link sliced and slowed',
    budget: STRICT,
    bursts: true,
    rotateClients: true,
    resyncRefusers: false,
    mode: 'symmetric',
    plan: (ctx) => [
      ...spread(
        ctx,
        1,
        () => ctx.durationMs * 0.7,
        () => ({
          kind: 'mqtt',
          faults: {
            delayMs: ctx.rng.int(200, 1200),
            hold: 0.2 + ctx.rng.next() * 0.3,
            duplicate: 0.2 + ctx.rng.next() * 0.3,
            dropPuback: 0.05 + ctx.rng.next() * 0.1,
          },
        }),
      ),
      ...spread(
        ctx,
        1,
        () => ctx.rng.int(1000, 3000),
        () => ({
          kind: 'network',
          target: 'broker',
          direction: 'upstream',
          toxics: { sliceBytes: ctx.rng.int(1, 16), sliceDelayMs: 1, bytesPerSecond: 50_000 },
        }),
      ),
    ],
  },
  {
    name: 'clock-skew',
    summary:
      'device clocks ahead (accepted), behind (commands "from the future" refused) and more than 10 min ahead (refused as too old), then corrected',
    budget: STRICT,
    bursts: false,
    rotateClients: false,
    resyncRefusers: true,
    mode: 'symmetric',
    plan: (ctx) =>
      spread(
        ctx,
        Math.min(ctx.devices, count(ctx, 4000, 6)),
        () => ctx.rng.int(2000, 5000),
        (i) => ({
          kind: 'device-skew',
          device: i % ctx.devices,
          offsetMs: ctx.rng.pick([
            ctx.rng.int(1000, 5 * 60_000),
            -ctx.rng.int(2000, 30_000),
            E4_MAX_AGE_MS + ctx.rng.int(60_000, 120_000),
          ]),
        }),
      ),
  },
  {
    name: 'offline-device',
    summary: 'devices offline (persistent session) for a simulated 11-15 minutes, then back',
    budget: STRICT,
    bursts: false,
    rotateClients: false,
    resyncRefusers: true,
    mode: 'symmetric',
    plan: (ctx) =>
      spread(
        ctx,
        Math.min(2, ctx.devices),
        () => ctx.rng.int(2000, 5000),
        (i) => ({
          kind: 'device-offline',
          device: i,
          simulatedMs: E4_MAX_AGE_MS + ctx.rng.int(60_000, 5 * 60_000),
        }),
      ),
  },
  {
    name: 'automation-leader-kill',
    summary:
      'an automation rule due every second while the workers running the engine are SIGKILLed or paused past their leader lease, in turn (so the leader is hit)',
    budget: STRICT,
    bursts: false,
    rotateClients: true,
    resyncRefusers: false,
    mode: 'symmetric',
    automation: true,
    plan: (ctx) =>
      spread(
        ctx,
        Math.max(2, count(ctx, 4000)),
        () => ctx.rng.int(2500, 4000),
        (i) => ({
          kind: i % 3 === 2 ? 'pause-node' : 'kill-node',
          target: ctx.workers[i % ctx.workers.length] ?? ctx.rng.pick(ctx.workers),
        }),
      ),
  },
  {
    name: 'c2-key-rotation',
    summary:
      'public-key mode: C2 key rotations (sometimes two a few ms apart) with topic rotations, while workers are killed and PUBLISH packets delayed and duplicated',
    budget: STRICT,
    bursts: true,
    rotateClients: false,
    resyncRefusers: false,
    mode: 'pubkey',
    plan: (ctx) => [
      ...kill(ctx, ctx.workers),
      ...spread(
        ctx,
        1,
        () => ctx.durationMs * 0.6,
        () => ({ kind: 'mqtt', faults: { delayMs: 800, hold: 0.3, duplicate: 0.3 } }),
      ),
    ],
  },
  {
    name: 'mixed',
    summary:
      'a random mix of the faults above, overlapping (no reset-connections; network faults are latency only)',
    budget: { duringFaults: 0.6, settleMs: 12_000 },
    bursts: true,
    rotateClients: false,
    resyncRefusers: true,
    mode: 'symmetric',
    plan: (ctx: PlanContext): ScheduledFault[] => {
      const faults: Array<() => FaultSpec> = [
        () => ({ kind: 'kill-node', target: ctx.rng.pick(ctx.workers) }),
        () => ({ kind: 'kill-node', target: ctx.rng.pick(ctx.apiNodes) }),
        () => ({ kind: 'pause-node', target: ctx.rng.pick([...ctx.apiNodes, ...ctx.workers]) }),
        () => ({
          kind: 'partition-node',
          target: ctx.rng.pick([...ctx.apiNodes, ...ctx.workers]),
        }),
        () => ({ kind: 'restart-queue-redis' }),
        () => ({ kind: 'pause-redlock', target: ctx.rng.pick(ctx.redlock) }),
        () => ({ kind: 'restart-postgres' }),
        () => ({ kind: 'restart-broker', persistent: ctx.rng.chance(0.5) }),
        () => ({
          kind: 'mqtt',
          faults: { delayMs: 800, hold: 0.3, duplicate: 0.3, dropPuback: 0.1 },
        }),
        () => ({
          kind: 'network',
          target: ctx.rng.pick(['postgres', 'redis', 'broker'] as const),
          direction: 'downstream',
          toxics: { latencyMs: ctx.rng.int(5, 50), jitterMs: 20 },
        }),
        () => ({ kind: 'device-skew', device: ctx.rng.int(0, ctx.devices - 1), offsetMs: -5000 }),
        () => ({
          kind: 'device-offline',
          device: ctx.rng.int(0, ctx.devices - 1),
          simulatedMs: E4_MAX_AGE_MS + 60_000,
        }),
      ];
      // Two overlapping streams of faults.
      return [0, 1].flatMap(() =>
        spread(
          ctx,
          count(ctx, 5000, 6),
          () => ctx.rng.int(1000, 4000),
          () => ctx.rng.pick(faults)(),
        ),
      );
    },
  },
];

/** The scenario called `name`. */
export function scenarioNamed(name: string): Scenario | undefined {
  return SCENARIOS.find((s) => s.name === name);
}
