/**
 * What the processes of the fan-out benchmark (`bench/fanout.ts`) share: the derivation of the
 * simulated fleet (names and keys from a per-run seed, so no key list crosses a process
 * boundary), the IPC messages between the benchmark and its child processes, and small helpers
 * (clock, forking a TypeScript child, waiting with a bound).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';

/** What a device shard is waiting for after being armed. */
export type Phase = 'setup' | 'c2' | 'baseline';

/** Name of simulated device `index` of run `runId` (its E4 id is the hash of the name). */
export function deviceName(runId: string, index: number): string {
  return `fanout-${runId}-${index}`;
}

/**
 * The 32-byte symmetric identity key of device `index`: HMAC-SHA256 of the index under the
 * run's random seed. The benchmark and the device shards derive the same keys independently.
 */
export function deviceKey(seed: Uint8Array, index: number): Uint8Array {
  return new Uint8Array(createHmac('sha256', seed).update(`device:${index}`).digest());
}

/**
 * Milliseconds since the epoch with sub-millisecond resolution. Every process of the benchmark
 * runs on the same machine, so times taken in different processes are comparable (the
 * processes' time origins come from the same wall clock; the error is far below a millisecond
 * on an undisturbed clock and small beside runs of hundreds of milliseconds or more).
 */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** The current process's peak resident set size, in MiB. */
export function peakRssMiB(): number {
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Forks `bench/lib/<file>` (a TypeScript entry point) with tsx and an IPC channel. The child's
 * stdout goes to our stderr, keeping the benchmark's stdout pure JSON.
 */
export function forkTs(file: string, nodeOptions: readonly string[] = []): ChildProcess {
  const path = fileURLToPath(new URL(`./${file}`, import.meta.url));
  return fork(path, [], {
    execArgv: ['--import', 'tsx', ...nodeOptions],
    stdio: ['ignore', 2, 'inherit', 'ipc'],
    serialization: 'json',
  });
}

/** Rejects with `what` after `ms` unless `promise` settles first. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`${what}: no answer within ${Math.round(ms / 1000)} s`));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Initialisation of a device shard: devices [from, to) of the run. */
export interface ShardInit {
  readonly type: 'init';
  readonly shard: number;
  readonly brokerUrl: string;
  readonly runId: string;
  readonly seedHex: string;
  readonly from: number;
  readonly to: number;
  readonly perConnection: number;
  /** The E4 topic being rotated; data messages are published on it. */
  readonly topic: string;
  /** Topic hash (hex) the baseline's SetTopicKey commands carry. */
  readonly baselineTopicHashHex: string;
  /** The shard's devices share prepared topic keys (`SharedTopicCiphers`), as a gateway's do. */
  readonly sharedTopicKeys: boolean;
  /** Where to write a CPU profile of this shard per timed step (none when absent). */
  readonly cpuProfileDir?: string;
}

/** Messages from the benchmark to a device shard. */
export type ShardCommand =
  | ShardInit
  | { readonly type: 'arm'; readonly phase: Phase; readonly armId: number }
  | { readonly type: 'stop' };

/** Progress of a shard in the phase it is armed for. Times are {@link epochMs} (0: none yet). */
export interface ShardProgress {
  readonly type: 'progress';
  readonly shard: number;
  readonly armId: number;
  readonly phase: Phase;
  readonly devices: number;
  /** Devices that applied a SetTopicKey for the rotated topic since the arming. */
  readonly applied: number;
  /** Devices that decrypted this arming's data message (phase `c2`). */
  readonly decrypted: number;
  /** Devices that applied the baseline's SetTopicKey (phase `baseline`). */
  readonly received: number;
  /** Commands or data messages the devices rejected (should stay 0). */
  readonly rejected: number;
  readonly lastAppliedAt: number;
  readonly lastDecryptedAt: number;
  readonly lastReceivedAt: number;
  /** Every device of the shard reached the phase's goal. */
  readonly done: boolean;
}

/** Messages from a device shard to the benchmark. */
export type ShardEvent =
  | {
      readonly type: 'ready';
      readonly shard: number;
      readonly devices: number;
      readonly connections: number;
      readonly createMs: number;
      readonly connectMs: number;
    }
  | { readonly type: 'armed'; readonly shard: number; readonly armId: number }
  | ShardProgress
  | { readonly type: 'stopped'; readonly shard: number; readonly peakRssMiB: number }
  | { readonly type: 'error'; readonly shard: number; readonly message: string };

/** Initialisation of a delivery-engine child process. */
export interface EngineInit {
  readonly type: 'init';
  readonly databaseUrl: string;
  readonly schema: string;
  /**
   * The run's throw-away key-encryption key (hex), so the child opens the same data keys. It
   * crosses the IPC pipe only (never argv or the environment), between two processes of one
   * benchmark on one machine.
   */
  readonly kekHex: string;
  readonly brokerUrl: string;
  readonly owner: string;
}

/** Messages from the benchmark to a delivery-engine child. */
export type EngineCommand =
  | EngineInit
  | { readonly type: 'kick' }
  | { readonly type: 'reset' }
  | { readonly type: 'stats' }
  | { readonly type: 'stop' };

/** PUBACK bookkeeping of one engine since its last reset. */
export interface AckStats {
  readonly acked: number;
  readonly failed: number;
  /** {@link epochMs} of the last PUBACK (0: none). */
  readonly lastAckAt: number;
}

/** Messages from a delivery-engine child to the benchmark. */
export type EngineEvent =
  | { readonly type: 'ready' }
  | ({ readonly type: 'stats' } & AckStats)
  | { readonly type: 'stopped'; readonly peakRssMiB: number; readonly errors: number }
  | { readonly type: 'error'; readonly message: string };

/** Counts PUBACKs reported by a delivery engine's `onAttempt` hook. */
export class AckCounter {
  acked = 0;
  failed = 0;
  lastAckAt = 0;

  /** Records one attempt. */
  record(outcome: 'acked' | 'failed'): void {
    if (outcome === 'acked') {
      this.acked++;
      this.lastAckAt = epochMs();
    } else {
      this.failed++;
    }
  }

  reset(): void {
    this.acked = 0;
    this.failed = 0;
    this.lastAckAt = 0;
  }

  stats(): AckStats {
    return { acked: this.acked, failed: this.failed, lastAckAt: this.lastAckAt };
  }
}

/** An error's message (for IPC and reports). */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
