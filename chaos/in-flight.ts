/**
 * DESIGN R5, at most one command in flight per device cluster-wide, as far as the devices'
 * receptions can show it. The suite sees what a device received and when, not what the workers
 * published, so R5 is judged where a correct cluster gives it a sharp, observable consequence:
 *
 * - A device sync publishes a command, waits for its PUBACK (or gives up on it after the PUBACK
 *   timeout, 3 s here), records it, and only then plans the next one, from the current desired
 *   state, in which the command just acknowledged is now delivered (R4, R7). So the same worker
 *   sends one (command, key) to a device a second time only as a retransmission, which leaves at
 *   least the PUBACK timeout after the first copy did.
 * - Another worker may send it only once it holds the device's claim, which the first holds
 *   (renewing it) until it has recorded the delivery. That exclusivity is what R5 asks for.
 *
 * Hence two receptions of one (command, key) by one device less than {@link R5_WINDOW_MS} apart
 * are two copies in flight at once, unless something legitimately sent it again or delayed a
 * copy. What may, and is therefore excluded:
 *
 * - a network that duplicates PUBLISH packets or a broker that redelivers on a reconnect
 *   (`networkCopies` > 1: the `mqtt`, `restart-broker` and `device-offline` faults), and any
 *   fault that can hold a worker's PUBLISH in a buffer and release it late (`network` faults on
 *   the broker link, `partition-node` of a worker, `reset-connections`);
 * - any fault under which a claim can lapse while its holder still runs (a worker paused or cut
 *   off past the 4 s claim, a worker killed between its publish and its claim's end, a database
 *   or Redis that stops answering): the next claimer then legitimately sends again, possibly
 *   within milliseconds of the stale copy. A run with any fault other than the ones listed in
 *   {@link harmless} is not judged at all (the per-run rule keeps the reasoning simple; the time
 *   a fault's effects last is not observable);
 * - a join, leave, resync, re-flash or key rotation of the device around the two copies (from 2 s
 *   before the first to the second; an `unknown` one at any time after its invocation): each may
 *   make the C2 send a key the device already has (a re-join sends the current key again, a
 *   resync or a re-flash's NewClient the whole state).
 *
 * What remains is only what a correct product never does; the scenarios it judges are those
 * whose faults stay away from delivery (`concurrent-rotations`, `api-crash`, `clock-skew`, and
 * `pause-lease-expiry` / `node-partition` runs whose faults hit only API nodes). It cannot see
 * overlapping commands that carry different keys (a device given v5 and v6 at once applies both
 * in some order, which I2 judges), nor a duplicate in the scenarios excluded above.
 */
import type { DeviceApply, FaultRecord, Operation, RunRecord } from './history.ts';

/**
 * Two copies of one command closer than this were in flight together. The PUBACK timeout is 3 s
 * (`NODE_SETTINGS.pubackTimeoutMs`); a 2 s margin covers a slow broker or a busy suite process
 * delaying one reception.
 */
export const R5_WINDOW_MS = 1000;

/** How long before the first copy a call on the device still explains a second one. */
const EXPLAINS_MS = 2000;

/** Largest latency plus jitter of a database-link `network` fault that leaves claims alone. */
const HARMLESS_DB_LATENCY_MS = 100;

/**
 * Whether `fault` can neither delay a PUBLISH, nor make a broker redeliver, nor let a device
 * claim lapse under a running holder. API nodes publish nothing and hold no device claim (the
 * workers deliver; docs/cluster.md), so killing, pausing or cutting one off is harmless here; a
 * skewed device clock only makes the device refuse commands; a database link slowed by a few
 * milliseconds (no stall, no bandwidth cap) cannot outlast a 4 s claim.
 */
export function harmless(fault: FaultRecord): boolean {
  switch (fault.kind) {
    case 'device-skew':
      return true;
    case 'kill-node':
    case 'pause-node':
    case 'partition-node':
      return /^\S+ api-\d+$/.test(fault.target);
    case 'network': {
      const m = /^network postgres (?:upstream|downstream) (\{.*\})$/.exec(fault.target);
      if (m === null) return false;
      let toxics: unknown;
      try {
        toxics = JSON.parse(m[1] ?? '');
      } catch {
        return false;
      }
      if (typeof toxics !== 'object' || toxics === null) return false;
      const entries = Object.entries(toxics);
      return (
        entries.every(
          ([k, v]) => (k === 'latencyMs' || k === 'jitterMs') && typeof v === 'number',
        ) && entries.reduce((sum, [, v]) => sum + (v as number), 0) <= HARMLESS_DB_LATENCY_MS
      );
    }
    default:
      return false;
  }
}

/** Whether the run's faults leave R5 observable (see the module comment). */
export function inFlightObservable(run: RunRecord): boolean {
  return run.networkCopies === 1 && run.faults.every(harmless);
}

/** Keyed commands: a second copy of one is recognisable by its key's fingerprint. */
const KEYED: ReadonlySet<DeviceApply['type']> = new Set(['SetTopicKey', 'SetIDKey', 'SetC2Key']);

/** One pair of copies that R5 rules out. */
export interface OverlappingCopies {
  readonly device: string;
  readonly command: string;
  readonly first: DeviceApply;
  readonly second: DeviceApply;
}

/** Whether a call on the device may have made the C2 send it the same command again. */
function explained(
  operations: readonly Operation[],
  device: string,
  first: DeviceApply,
  second: DeviceApply,
): boolean {
  return operations.some(
    (o) =>
      (o.client === device || (o.kind === 'rotate-c2' && first.type === 'SetC2Key')) &&
      o.outcome !== 'fail' &&
      o.invokedAt <= second.at &&
      (o.outcome === 'unknown' || o.completedAt >= first.at - EXPLAINS_MS),
  );
}

/** Pairs of copies of one command that a device received too close together (R5). */
export function overlappingCopies(run: RunRecord): OverlappingCopies[] {
  if (!inFlightObservable(run)) return [];
  const copies = new Map<string, DeviceApply[]>();
  for (const a of run.applies) {
    if (!KEYED.has(a.type) || a.fingerprint === undefined) continue;
    const key = `${a.device}\0${a.type}${a.topicHash === undefined ? '' : ` ${a.topicHash}`} ${a.fingerprint}`;
    const list = copies.get(key) ?? [];
    list.push(a);
    copies.set(key, list);
  }
  const found: OverlappingCopies[] = [];
  for (const [key, list] of copies) {
    const sorted = [...list].sort((a, b) => a.at - b.at);
    for (let i = 1; i < sorted.length; i++) {
      const first = sorted[i - 1];
      const second = sorted[i];
      if (first === undefined || second === undefined) continue;
      if (second.at - first.at >= R5_WINDOW_MS) continue;
      if (explained(run.operations, first.device, first, second)) continue;
      found.push({ device: first.device, command: key.split('\0')[1] ?? key, first, second });
    }
  }
  return found;
}
