/**
 * The set-up of a practice roll, on the cluster of the earlier release: the devices registered
 * (NewClient through the load balancer), the topics created, every device joined to every topic,
 * the ring of devices that draw their own identity keys linked (own-keys.ts), and the automation
 * rule that rotates a topic of its own every second.
 */
import { AutomationProbe } from '../../chaos/automation-probe.ts';
import type { Driver } from '../../chaos/driver.ts';
import { linkRing } from './own-keys.ts';
import type { RollFleet } from './roll-fleet.ts';
import { until } from './waits.ts';

/** What {@link setUpFleet} needs. */
export interface SetUpOptions {
  readonly driver: Driver;
  readonly fleet: RollFleet;
  /** The load balancer's `http://host:port`. */
  readonly lb: string;
  /** Names this run's devices and automation topic. */
  readonly tag: string;
  readonly devices: number;
  /** Public-key mode: devices that draw their own identity keys, on top of {@link devices}. */
  readonly ownKeyDevices: number;
  readonly topics: readonly string[];
  readonly signal: AbortSignal;
  readonly log: (line: string) => void;
}

/** Runs `n` tasks, at most `width` at once. */
async function pool(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, width) }, async () => {
      while (next < n) await task(next++);
    }),
  );
}

/**
 * Registers the fleet, creates the topics, starts the rule and joins every device to every topic.
 * @returns the rule under observation
 * @throws Error when a set-up call keeps failing for 20 s, or the run is aborted
 */
export async function setUpFleet(o: SetUpOptions): Promise<AutomationProbe> {
  const { driver, fleet, lb, log, tag, topics } = o;
  const go = (): void => {
    if (o.signal.aborted) throw o.signal.reason as Error;
  };
  log(`upgrade: registering ${o.devices} devices and ${topics.length} topics`);
  await pool(o.devices, 8, async (i) => {
    go();
    await fleet.add(`upgrade-${tag}-d${i}`, 20);
  });
  if (o.ownKeyDevices > 0)
    log(`upgrade: registering ${o.ownKeyDevices} devices that draw their own identity keys`);
  // One at a time: a ring is linked in their order.
  for (let i = 0; i < o.ownKeyDevices; i++) {
    go();
    await fleet.add(`upgrade-${tag}-own${i}`, 20, true);
  }
  const setup = async (call: Parameters<Driver['call']>[1]): Promise<void> => {
    go();
    if (!(await until(async () => (await driver.call(0, call)).outcome === 'ok', 20_000)))
      throw new Error(`set-up call ${call.kind} ${call.topic ?? ''} failed`);
  };
  for (const topic of topics) await setup({ kind: 'create-topic', topic });
  const probe = await AutomationProbe.start(lb, `upgrade/${tag}/automation`);
  const members = fleet.allNames;
  await pool(members.length * topics.length, 8, async (i) => {
    const topic = topics[i % topics.length] ?? '';
    await setup({ kind: 'join', topic, client: members[Math.floor(i / topics.length)] ?? '' });
  });
  if (fleet.ownKeyNames.length > 0) await linkRing(lb, fleet.ownKeyNames);

  return probe;
}
