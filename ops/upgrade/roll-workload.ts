/**
 * The workload an upgrade practice runs while nodes are replaced, gentle enough for a small
 * machine that also runs the cluster and the devices: a rotation every `rotateEveryMs`, each
 * through the next API node in turn (a rotation a stopping node refuses is sent again, with its
 * idempotency key, to the next node, as a balancer redispatches it), and through the load
 * balancer a membership change every 3 s, a resync every 5 s, a NewClient every 4 s until
 * `newClients` were added (each new device then joins every topic), an identity key rotation
 * every 4 s, `reflashes` re-flashes (a known device's new key, by NewClient, straight to the next
 * API node in turn, so that the record names the node that served each) spread over the roll
 * (one every `reflashEveryMs`) and, in public-key mode, a C2 key rotation every 10 s and every
 * 3 s a rotation of its own key by the next device that draws its own (own-keys.ts), straight to
 * the next API node in turn. A re-flash and a C2 key rotation never overlap: a device made with
 * the C2 key of the moment would otherwise be told the new one under a key it does not hold,
 * which no release can repair (the factory's race, not the roll's). Own key rotations overlap
 * with anything: a device holds its new key before the C2 learns it, so it misses nothing the C2
 * sends around the switch, a new C2 key or a neighbour's key included (own-keys.ts).
 */
import { Driver } from '../../chaos/driver.ts';
import type { Rng } from '../../chaos/rng.ts';
import { rotateOwnKey } from './own-keys.ts';
import type { RollFleet } from './roll-fleet.ts';

/** What the workload works on. */
export interface WorkloadOptions {
  readonly driver: Driver;
  readonly fleet: RollFleet;
  /** The topics rotated (and their memberships changed) during the roll. */
  readonly topics: readonly string[];
  /**
   * A topic every device joins that is never rotated: a re-flashed device can hold its key only
   * because the C2 sent it everything again, not because a rotation came after the re-flash.
   */
  readonly steadyTopic: string;
  /** Each API node's own `http://host:port`, rotated through in turn. */
  readonly apiNodes: readonly string[];
  /** An API node's name and the release it runs now (`api-2, new release`), for the log. */
  readonly describeNode: (http: string) => string;
  readonly rotateEveryMs: number;
  readonly newClients: number;
  /** Names a device added during the roll. */
  readonly newClientName: (i: number) => string;
  /** Known devices to re-flash, one at a time. */
  readonly reflashes: number;
  /** Milliseconds between two re-flashes (roll-plan.ts spreads them over the roll). */
  readonly reflashEveryMs: number;
  /** C2 key rotations (NewC2Key) run too: public-key mode. */
  readonly rotateC2: boolean;
  readonly rng: Rng;
  readonly elapsed: () => number;
  readonly stop: () => boolean;
  readonly log: (line: string) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs `step` every `everyMs` until `stop()`; a step that throws is logged, not fatal. */
async function every(
  everyMs: number,
  stop: () => boolean,
  log: (line: string) => void,
  step: () => Promise<boolean | undefined>,
): Promise<void> {
  while (!stop()) {
    const next = Date.now() + everyMs;
    try {
      if ((await step()) === false) return; // nothing left to do
    } catch (err) {
      log(`upgrade: workload: ${(err as Error).message}`);
    }
    await sleep(Math.max(0, next - Date.now()));
  }
}

/** Runs the workload until `stop()`; resolves once every loop ended. */
export async function runRollWorkload(o: WorkloadOptions): Promise<void> {
  const { driver, fleet, rng, stop } = o;
  /** Memberships toggled so far (every device starts a member of every topic). */
  const left = new Set<string>();
  let rotations = 0;
  const rotate = async (): Promise<undefined> => {
    const topic = o.topics[rotations % o.topics.length] ?? '';
    const requestId = Driver.requestId('roll');
    const first = rotations++;
    // The next node in turn, then the others: a refusal is redispatched with the same key.
    for (let i = 0; i < 2 * o.apiNodes.length; i++) {
      const via = o.apiNodes[(first + i) % o.apiNodes.length] ?? '';
      const op = await driver.call(1, { kind: 'rotate-topic', topic, requestId, via });
      if (op.outcome === 'ok') return;
      await sleep(200);
    }
    throw new Error(`rotation ${requestId} of ${topic} failed through every API node`);
  };
  const member = async (): Promise<undefined> => {
    const client = rng.pick(fleet.names);
    const topic = rng.pick(o.topics);
    const key = `${client}\0${topic}`;
    const leaving = !left.has(key);
    const op = await driver.call(2, { kind: leaving ? 'leave' : 'join', topic, client });
    if (op.outcome === 'ok') {
      if (leaving) left.add(key);
      else left.delete(key);
    }
    return undefined;
  };
  const resync = async (): Promise<undefined> => {
    await driver.call(3, { kind: 'resync-client', client: rng.pick(fleet.names) });
    return undefined;
  };
  let added = 0;
  const newClient = async (): Promise<boolean> => {
    if (added >= o.newClients) return false;
    const name = o.newClientName(added++);
    await fleet.add(name, 5);
    for (const topic of [...o.topics, o.steadyTopic])
      await driver.callRetrying(4, { kind: 'join', topic, client: name }, 5, stop);
    return true;
  };
  const rotateClient = async (): Promise<undefined> => {
    const client = rng.pick(fleet.names);
    const requestId = Driver.requestId('roll-client');
    await driver.callRetrying(5, { kind: 'rotate-client', client, requestId }, 5, stop);
    return undefined;
  };
  /** Runs re-flashes and C2 key rotations one at a time (see the file's comment). */
  let serial: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(task: () => Promise<T>): Promise<T> => {
    const result = serial.then(task);
    serial = result.catch(() => undefined);
    return result;
  };
  let reflashed = 0;
  const reflash = async (): Promise<boolean> => {
    if (reflashed >= o.reflashes) return false;
    const first = reflashed++;
    // Straight to an API node, the next in turn (and the next one for each retry), so that the
    // record says which node, of which release, served it.
    const through = (attempt: number): string =>
      o.apiNodes[(first + attempt) % o.apiNodes.length] ?? '';
    const name = rng.pick(fleet.names);
    const served = await oneAtATime(() =>
      fleet.reflash(name, 5, through, (call) => driver.record(call)),
    );
    const by = served === undefined ? '?' : `${o.describeNode(served)}, ${served}`;
    o.log(`upgrade: re-flashed ${name}; its NewClient was served by ${by}`);
    return true;
  };
  let ownRotations = 0;
  const rotateOwn = async (): Promise<boolean> => {
    const names = fleet.ownKeyNames;
    if (names.length === 0) return false;
    const k = ownRotations++;
    const name = names[k % names.length] ?? '';
    const served = await rotateOwnKey({
      fleet,
      name,
      attempts: 2 * o.apiNodes.length,
      through: (attempt) => o.apiNodes[(k + attempt) % o.apiNodes.length] ?? '',
      record: (call) => driver.record(call),
      elapsed: o.elapsed,
    });
    if (served === undefined)
      o.log(`upgrade: ${name} did not rotate its own key (refused or unknown: see the calls)`);
    return true;
  };
  const rotateC2 = async (): Promise<boolean> => {
    if (!o.rotateC2) return false;
    const requestId = Driver.requestId('roll-c2');
    await oneAtATime(() => driver.callRetrying(6, { kind: 'rotate-c2', requestId }, 5, stop));
    return true;
  };
  await Promise.all([
    every(4000, stop, o.log, rotateClient),
    every(o.reflashEveryMs, stop, o.log, reflash),
    every(10_000, stop, o.log, rotateC2),
    every(3000, stop, o.log, rotateOwn),
    every(o.rotateEveryMs, stop, o.log, rotate),
    every(3000, stop, o.log, member),
    every(5000, stop, o.log, resync),
    every(4000, stop, o.log, newClient),
  ]);
}
