/**
 * The simulated fleet of `bench/fanout.ts`, seen from the benchmark: device shards in child
 * processes (`fanout-device-shard.ts`), armed before each timed step and watched until every
 * device reached the step's goal.
 */
import type { ChildProcess } from 'node:child_process';
import {
  errorMessage,
  forkTs,
  withTimeout,
  type Phase,
  type ShardCommand,
  type ShardEvent,
  type ShardInit,
  type ShardProgress,
} from './fanout-common.ts';

/** Options of {@link DeviceFleet.start}. */
export interface FleetOptions {
  readonly brokerUrl: string;
  readonly runId: string;
  readonly seedHex: string;
  readonly devices: number;
  readonly perConnection: number;
  readonly processes: number;
  readonly topic: string;
  readonly baselineTopicHashHex: string;
  readonly startTimeoutMs: number;
  readonly log: (message: string) => void;
  /** The devices of a process share prepared topic keys (see {@link ShardInit}). */
  readonly sharedTopicKeys: boolean;
  /** Each shard writes a CPU profile of every timed step there (`--cpu-profile`). */
  readonly cpuProfileDir?: string;
}

/** What the fleet saw in one armed step. Times are {@link epochMs}. */
export interface StepOutcome {
  readonly applied: number;
  readonly decrypted: number;
  readonly received: number;
  readonly rejected: number;
  readonly lastAppliedAt: number;
  readonly lastDecryptedAt: number;
  readonly lastReceivedAt: number;
}

/** How the shards started. */
export interface FleetStart {
  readonly connections: number;
  readonly createMs: number;
  readonly connectMs: number;
}

interface ShardHandle {
  readonly child: ChildProcess;
  readonly devices: number;
  progress: ShardProgress | undefined;
}

/** Device shards in child processes. */
export class DeviceFleet {
  readonly #shards: ShardHandle[];
  readonly #log: (message: string) => void;
  readonly #errors: string[] = [];
  #listeners = new Set<(shard: number, event: ShardEvent) => void>();
  #nextArm = 1;
  /** How the shards started (connections, time to create the clients and to connect). */
  started: FleetStart = { connections: 0, createMs: 0, connectMs: 0 };

  private constructor(shards: ShardHandle[], log: (message: string) => void) {
    this.#shards = shards;
    this.#log = log;
    shards.forEach((s, index) => {
      s.child.on('message', (event: ShardEvent) => {
        if (event.type === 'error') {
          this.#errors.push(`shard ${index}: ${event.message}`);
          if (this.#errors.length <= 10) this.#log(`device shard ${index}: ${event.message}`);
        }
        if (event.type === 'progress') s.progress = event;
        for (const listener of this.#listeners) listener(index, event);
      });
      s.child.on('exit', (code, signal) => {
        if (code !== 0 && code !== null) this.#errors.push(`shard ${index} exited with ${code}`);
        if (signal !== null) this.#errors.push(`shard ${index} killed by ${signal}`);
      });
    });
  }

  /** Forks the shards and waits until every device is connected and subscribed. */
  static async start(options: FleetOptions): Promise<DeviceFleet> {
    const per = Math.ceil(options.devices / options.processes);
    const shards: ShardHandle[] = [];
    for (let p = 0; p < options.processes; p++) {
      const from = p * per;
      const to = Math.min(options.devices, from + per);
      if (from >= to) break;
      shards.push({
        child: forkTs('fanout-device-shard.ts', ['--expose-gc']),
        devices: to - from,
        progress: undefined,
      });
    }
    const fleet = new DeviceFleet(shards, options.log);
    try {
      const ready = fleet.#collect(
        (event) => (event.type === 'ready' ? event : undefined),
        options.startTimeoutMs,
        'device shards start',
      );
      let from = 0;
      shards.forEach((s, shard) => {
        const init: ShardInit = {
          type: 'init',
          shard,
          brokerUrl: options.brokerUrl,
          runId: options.runId,
          seedHex: options.seedHex,
          from,
          to: from + s.devices,
          perConnection: options.perConnection,
          topic: options.topic,
          baselineTopicHashHex: options.baselineTopicHashHex,
          sharedTopicKeys: options.sharedTopicKeys,
          ...(options.cpuProfileDir === undefined ? {} : { cpuProfileDir: options.cpuProfileDir }),
        };
        from += s.devices;
        fleet.#send(s, init);
      });
      const events = await ready;
      fleet.started = {
        connections: events.reduce((sum, e) => sum + e.connections, 0),
        createMs: Math.max(...events.map((e) => e.createMs)),
        connectMs: Math.max(...events.map((e) => e.connectMs)),
      };
    } catch (err) {
      fleet.kill();
      throw err;
    }
    return fleet;
  }

  /** Shards (processes). */
  get processes(): number {
    return this.#shards.length;
  }

  /** The shards' process ids. */
  get pids(): number[] {
    return this.#shards.flatMap((s) => (s.child.pid === undefined ? [] : [s.child.pid]));
  }

  /** Errors the shards reported (connection losses, rejected commands...). */
  get errors(): readonly string[] {
    return this.#errors;
  }

  #send(shard: ShardHandle, command: ShardCommand): void {
    if (!shard.child.connected) throw new Error('a device shard is gone');
    shard.child.send(command);
  }

  /**
   * Waits for one event per shard picked by `pick`; fails when a shard dies or after `ms`.
   * @returns the picked events, in shard order
   */
  #collect<T>(
    pick: (event: ShardEvent) => T | undefined,
    ms: number,
    what: string,
    already?: (shard: ShardHandle) => T | undefined,
  ): Promise<T[]> {
    const found = new Map<number, T>();
    // Shards that answered before we started listening (progress is kept per shard).
    this.#shards.forEach((s, i) => {
      const value = already?.(s);
      if (value !== undefined) found.set(i, value);
    });
    if (found.size === this.#shards.length)
      return Promise.resolve(this.#shards.map((_, i) => found.get(i) as T));
    let cleanup = (): void => undefined;
    const waiting = new Promise<T[]>((resolve, reject) => {
      const listener = (shard: number, event: ShardEvent): void => {
        if (event.type === 'error' && event.message.startsWith('fatal')) {
          reject(new Error(`${what}: shard ${shard}: ${event.message}`));
          return;
        }
        const value = pick(event);
        if (value === undefined) return;
        found.set(shard, value);
        if (found.size === this.#shards.length)
          resolve(this.#shards.map((_, i) => found.get(i) as T));
      };
      const onExit = (): void => {
        reject(new Error(`${what}: a device shard exited`));
      };
      this.#listeners.add(listener);
      for (const s of this.#shards) s.child.once('exit', onExit);
      cleanup = () => {
        this.#listeners.delete(listener);
        for (const s of this.#shards) s.child.off('exit', onExit);
      };
    });
    return withTimeout(waiting, ms, what).finally(() => {
      cleanup();
    });
  }

  /** Arms every shard for `phase`; resolves with the arming's id once all are armed. */
  async arm(phase: Phase): Promise<number> {
    const armId = this.#nextArm++;
    const armed = this.#collect(
      (event) => (event.type === 'armed' && event.armId === armId ? true : undefined),
      30_000,
      `arming ${phase}`,
    );
    for (const s of this.#shards) {
      s.progress = undefined;
      this.#send(s, { type: 'arm', phase, armId });
    }
    await armed;
    return armId;
  }

  /**
   * Waits until every device of every shard reached the goal of arming `armId`.
   * @param onProgress - called about every `everyMs` with the devices that reached it
   * @throws when `timeoutMs` passes first (the message gives the counts reached)
   */
  async waitDone(
    armId: number,
    timeoutMs: number,
    onProgress?: (done: number, total: number) => void,
    everyMs = 2000,
  ): Promise<StepOutcome> {
    const total = this.#shards.reduce((sum, s) => sum + s.devices, 0);
    const goal = (p: ShardProgress | undefined): number => {
      if (p === undefined || p.armId !== armId) return 0;
      if (p.phase === 'baseline') return p.received;
      if (p.phase === 'setup') return p.applied;
      return Math.min(p.applied, p.decrypted);
    };
    const ticker = setInterval(() => {
      onProgress?.(
        this.#shards.reduce((sum, s) => sum + goal(s.progress), 0),
        total,
      );
    }, everyMs);
    try {
      const isDone = (p: ShardEvent | undefined): ShardProgress | undefined =>
        p?.type === 'progress' && p.armId === armId && p.done ? p : undefined;
      const finals = await this.#collect(isDone, timeoutMs, `waiting for ${total} devices`, (s) =>
        isDone(s.progress),
      ).catch((err: unknown) => {
        const reached = this.#shards.reduce((sum, s) => sum + goal(s.progress), 0);
        throw new Error(`${errorMessage(err)} (${reached} of ${total} reached the goal)`);
      });
      const sum = (key: 'applied' | 'decrypted' | 'received' | 'rejected'): number =>
        finals.reduce((acc, p) => acc + p[key], 0);
      const last = (key: 'lastAppliedAt' | 'lastDecryptedAt' | 'lastReceivedAt'): number =>
        Math.max(...finals.map((p) => p[key]));
      return {
        applied: sum('applied'),
        decrypted: sum('decrypted'),
        received: sum('received'),
        rejected: sum('rejected'),
        lastAppliedAt: last('lastAppliedAt'),
        lastDecryptedAt: last('lastDecryptedAt'),
        lastReceivedAt: last('lastReceivedAt'),
      };
    } finally {
      clearInterval(ticker);
    }
  }

  /**
   * Disconnects every device and ends the shards.
   * @returns each shard's peak RSS in MiB (-1 for a shard that did not answer)
   */
  async stop(): Promise<number[]> {
    const rss = new Map<number, number>();
    const listener = (shard: number, event: ShardEvent): void => {
      if (event.type === 'stopped') rss.set(shard, event.peakRssMiB);
    };
    this.#listeners.add(listener);
    const exited = this.#shards.map(
      (s) =>
        new Promise<void>((resolve) => {
          if (s.child.exitCode !== null || s.child.signalCode !== null) resolve();
          else
            s.child.once('exit', () => {
              resolve();
            });
        }),
    );
    for (const s of this.#shards) {
      if (s.child.connected) s.child.send({ type: 'stop' } satisfies ShardCommand);
    }
    await withTimeout(Promise.all(exited), 20_000, 'stopping device shards').catch(() => undefined);
    this.#listeners.delete(listener);
    this.kill();
    return this.#shards.map((_, i) => rss.get(i) ?? -1);
  }

  /** Kills every shard still running (cleanup after a failure). */
  kill(): void {
    for (const s of this.#shards) {
      if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGTERM');
    }
  }
}
