/**
 * A second delivery node for the two-engine runs of `bench/fanout.ts`: in a child process
 * (`fanout-engine-child.ts`, the realistic case: its own event loop, pool and broker
 * connection), or as a second {@link DeliveryEngine} with another claim owner in this process.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { DeliveryEngine } from '../../cluster/delivery/index.ts';
import { createPool, PgC2Store } from '../../cluster/storage/index.ts';
import {
  BENCH_DATABASE_URL,
  BENCH_MQTT_URL,
  connectPublisher,
  engineOptions,
  POOL_MAX,
  syncDeps,
  type BenchC2,
} from './fanout-c2.ts';
import {
  AckCounter,
  forkTs,
  withTimeout,
  type AckStats,
  type EngineCommand,
  type EngineEvent,
} from './fanout-common.ts';

/** A second delivery engine, wherever it runs. */
export interface SecondEngine {
  readonly where: 'process' | 'in-process';
  /** Its process id when it runs in a child process. */
  readonly pid: number | undefined;
  /** Tells it the outbox has rows (as the node that took the API call does for itself). */
  kick(): void;
  /** Resets its PUBACK counters. */
  reset(): Promise<void>;
  stats(): Promise<AckStats>;
  /** Stops it. @returns its process's peak RSS in MiB (null when it shares ours) */
  stop(): Promise<{ peakRssMiB: number | null; errors: number }>;
}

/** Starts a second engine in a child process on the node's schema. */
export async function startEngineProcess(c2: BenchC2): Promise<SecondEngine> {
  const child = forkTs('fanout-engine-child.ts');
  const next = <T extends EngineEvent['type']>(
    type: T,
    ms: number,
  ): Promise<Extract<EngineEvent, { type: T }>> =>
    withTimeout(
      new Promise<Extract<EngineEvent, { type: T }>>((resolve, reject) => {
        const onMessage = (event: EngineEvent): void => {
          if (event.type === 'error') {
            cleanup();
            reject(new Error(`engine process: ${event.message}`));
          } else if (event.type === type) {
            cleanup();
            resolve(event as Extract<EngineEvent, { type: T }>);
          }
        };
        const onExit = (): void => {
          cleanup();
          reject(new Error('engine process exited'));
        };
        const cleanup = (): void => {
          child.off('message', onMessage);
          child.off('exit', onExit);
        };
        child.on('message', onMessage);
        child.once('exit', onExit);
      }),
      ms,
      `engine process (${type})`,
    );
  const send = (command: EngineCommand): void => {
    if (child.connected) child.send(command);
  };
  try {
    const ready = next('ready', 30_000);
    send({
      type: 'init',
      databaseUrl: BENCH_DATABASE_URL,
      schema: c2.schema,
      kekHex: Buffer.from(c2.kek).toString('hex'),
      brokerUrl: BENCH_MQTT_URL,
      owner: 'bench-b',
    });
    await ready;
  } catch (err) {
    killChild(child);
    throw err;
  }
  return {
    where: 'process',
    pid: child.pid,
    kick: () => {
      send({ type: 'kick' });
    },
    async reset() {
      const answer = next('stats', 10_000);
      send({ type: 'reset' });
      await answer;
    },
    async stats() {
      const answer = next('stats', 10_000);
      send({ type: 'stats' });
      const s = await answer;
      return { acked: s.acked, failed: s.failed, lastAckAt: s.lastAckAt };
    },
    async stop() {
      try {
        const answer = next('stopped', 30_000);
        send({ type: 'stop' });
        const s = await answer;
        return { peakRssMiB: s.peakRssMiB, errors: s.errors };
      } finally {
        setTimeout(() => {
          killChild(child);
        }, 2000).unref();
      }
    },
  };
}

function killChild(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
}

/**
 * Starts a second engine in this process: another claim owner, publisher and pool (as a second
 * node would have), sharing the node's key vault and event loop.
 * @param kicked - whether the node's service kicks it after each commit too (else it polls)
 */
export async function startEngineInProcess(c2: BenchC2, kicked = true): Promise<SecondEngine> {
  const acks = new AckCounter();
  const errors: string[] = [];
  const pool = await createPool({
    url: BENCH_DATABASE_URL,
    schema: c2.schema,
    max: POOL_MAX,
    applicationName: 'bench-fanout-engine-b',
  });
  const store = new PgC2Store(pool);
  const publisher = await connectPublisher(BENCH_MQTT_URL, 'bench-fanout-b');
  const engine = new DeliveryEngine(
    store,
    syncDeps(store, c2.vault, pool, publisher, `bench-b-${randomBytes(3).toString('hex')}`, acks),
    engineOptions(errors),
  );
  engine.start();
  if (kicked) c2.alsoKick.add(engine);
  return {
    where: 'in-process',
    pid: undefined,
    kick: () => {
      engine.kick();
    },
    reset: () => {
      acks.reset();
      return Promise.resolve();
    },
    stats: () => Promise.resolve(acks.stats()),
    async stop() {
      c2.alsoKick.delete(engine);
      await engine.close();
      await publisher.close();
      await pool.end();
      return { peakRssMiB: null, errors: errors.length };
    },
  };
}
