/**
 * Applies and heals the faults of a schedule on a running environment. Every fault is bounded:
 * it is healed at the end of its duration, and `healAll` at the end of a run undoes whatever is
 * left (a paused process is continued, a stopped service restarted, a proxy cleared).
 */
import type { ChaosDevice } from './chaos-device.ts';
import type { ChaosEnvironment } from './environment.ts';
import type { TcpFaultProxy } from './faults/tcp-fault-proxy.ts';
import type { FaultSpec } from './scenarios.ts';

/** Applies one fault; returns its heal, or {@link SKIPPED} when it was not applied. */
export type Injector = (fault: FaultSpec) => Promise<() => Promise<void>>;

/**
 * The "heal" of a fault that was not applied: its target was still held by an earlier fault (a
 * node killed again while its restart runs). The run records it as skipped.
 */
export const SKIPPED = (): Promise<void> => Promise.resolve();

/** Builds the injector of a run. */
export function injectorFor(env: ChaosEnvironment, devices: readonly ChaosDevice[]): Injector {
  const proxyOf = (target: 'postgres' | 'redis' | 'broker'): TcpFaultProxy =>
    target === 'postgres' ? env.pgProxy : target === 'redis' ? env.redisProxy : env.brokerProxy;
  /** Which fault holds a target now: only that one heals it (overlapping faults in `mixed`). */
  const holders = new Map<string, symbol>();
  const hold = (target: string): symbol | undefined => {
    if (holders.has(target)) return undefined;
    const token = Symbol(target);
    holders.set(target, token);
    return token;
  };
  const release = (target: string, token: symbol): boolean => {
    if (holders.get(target) !== token) return false;
    holders.delete(target);
    return true;
  };
  const noop = (): Promise<void> => Promise.resolve();
  const guarded = async (
    target: string,
    apply: () => Promise<void> | void,
    heal: () => Promise<void> | void,
  ): Promise<() => Promise<void>> => {
    const token = hold(target);
    if (token === undefined) return SKIPPED;
    await apply();
    // The target stays held until its heal is over: a node killed again while its restart runs
    // broke that restart ("still running"), and the fault's heal took a minute of retries.
    return async () => {
      if (holders.get(target) !== token) return;
      try {
        await heal();
      } finally {
        release(target, token);
      }
    };
  };
  const device = (i: number): ChaosDevice => {
    const d = devices[i % devices.length];
    if (d === undefined) throw new RangeError('no device');
    return d;
  };

  return async (fault) => {
    const c = env.cluster;
    switch (fault.kind) {
      case 'kill-node':
        return guarded(
          fault.target,
          () => env.killNode(fault.target),
          async () => {
            for (let i = 0; i < 100 && c.node(fault.target).running; i++)
              await new Promise((r) => setTimeout(r, 50));
            await env.restartNode(fault.target);
          },
        );
      case 'pause-node':
      case 'pause-redlock':
        return guarded(
          fault.target,
          () => {
            env.paused.add(fault.target);
            c.kill(fault.target, 'SIGSTOP');
          },
          () => {
            env.paused.delete(fault.target);
            c.kill(fault.target, 'SIGCONT');
          },
        );
      case 'partition-node':
        return guarded(
          fault.target,
          () => {
            env.partitionNode(fault.target, true);
          },
          () => {
            env.partitionNode(fault.target, false);
          },
        );
      case 'restart-queue-redis':
        return guarded(
          'queue-redis',
          () => env.queueRedis.crash(),
          () => env.queueRedis.startAgain(),
        );
      case 'restart-postgres':
        return guarded(
          'postgres',
          () => env.postgres.stopImmediate(),
          () => env.postgres.startAgain(),
        );
      case 'restart-broker':
        return guarded(
          'broker',
          () => env.broker.stop(),
          () => env.broker.startAgain(fault.persistent),
        );
      case 'network': {
        const proxy = proxyOf(fault.target);
        return guarded(
          `net-${fault.target}-${fault.direction}`,
          () => {
            proxy.set(fault.direction, fault.toxics);
          },
          () => {
            proxy.set(fault.direction, {});
          },
        );
      }
      case 'reset-connections':
        proxyOf(fault.target).resetAll();
        return noop;
      case 'mqtt':
        return guarded(
          'mqtt',
          () => {
            env.mqttProxy.set(fault.faults);
          },
          () => {
            env.mqttProxy.heal();
          },
        );
      case 'device-skew': {
        const d = device(fault.device);
        return guarded(
          `device-${d.name}`,
          () => {
            d.clockOffsetMs = fault.offsetMs;
          },
          () => {
            d.clockOffsetMs = 0;
          },
        );
      }
      case 'device-offline': {
        const d = device(fault.device);
        return guarded(
          `device-${d.name}`,
          () => d.goOffline(fault.simulatedMs),
          () => d.online(),
        );
      }
    }
  };
}

/** A short description of a fault for the progress line and the summary. */
export function describeFault(fault: FaultSpec): string {
  switch (fault.kind) {
    case 'kill-node':
    case 'pause-node':
    case 'pause-redlock':
    case 'partition-node':
      return `${fault.kind} ${fault.target}`;
    case 'restart-broker':
      return `restart-broker (${fault.persistent ? 'persistent' : 'sessions lost'})`;
    case 'network':
      return `network ${fault.target} ${fault.direction} ${JSON.stringify(fault.toxics)}`;
    case 'reset-connections':
      return `reset-connections ${fault.target}`;
    case 'mqtt':
      return `mqtt ${JSON.stringify(fault.faults)}`;
    case 'device-skew':
      return `device-skew #${fault.device} ${fault.offsetMs} ms`;
    case 'device-offline':
      return `device-offline #${fault.device} (simulated ${Math.round(fault.simulatedMs / 60_000)} min)`;
    default:
      return fault.kind;
  }
}
