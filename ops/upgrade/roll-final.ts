/**
 * The end of a practice roll, once every node was replaced: one more rotation per topic but the
 * steady one (a last key for every device to reach) and, in public-key mode, of the C2 key, the
 * wait for the devices to converge (the chaos checker's I1 and I6 over the database and the
 * devices, again until they hold or the deadline), the automation rule's firings read back, and
 * the secrecy scan (I8: no key any device ever held in Redis, the nodes' output, their metrics or
 * the event log); the run's record, as the chaos checker reads it.
 */
import type { AutomationProbe } from '../../chaos/automation-probe.ts';
import { checkRun } from '../../chaos/checker.ts';
import { Driver } from '../../chaos/driver.ts';
import { NODE_SETTINGS } from '../../chaos/environment.ts';
import {
  readDatabase,
  scanPlaces,
  type NodeOutput,
  type ScanPlace,
} from '../../chaos/final-state.ts';
import type { RunRecord } from '../../chaos/history.ts';
import type { RollFleet } from './roll-fleet.ts';
import { until } from './waits.ts';

/** Longest wait for the devices to converge after the final writes. */
const CONVERGENCE_MS = 90_000;

/** What {@link finishRun} needs. */
export interface FinishOptions {
  readonly driver: Driver;
  readonly fleet: RollFleet;
  readonly probe: AutomationProbe;
  /** The topics rotated during the roll: each is rotated once more. */
  readonly topics: readonly string[];
  /** The topic never rotated (roll-workload.ts): its first key is what every device must hold. */
  readonly steadyTopic: string;
  /** Public-key mode: the C2 key is rotated once more too. */
  readonly rotateC2: boolean;
  /** Where the secrecy scan looks, besides the nodes' output. */
  readonly scanPlaces: readonly ScanPlace[];
  /** The nodes' output so far. */
  readonly output: NodeOutput;
  /** The API nodes' names. */
  readonly apiNodes: readonly string[];
  readonly databaseUrl: string;
  readonly schema: string;
  /** When the roll ended (wall clock ms): the automation check judges the slots from there. */
  readonly rolledAt: number;
  readonly elapsed: () => number;
  /** The run's abort (Ctrl-C, its time bound). */
  readonly signal: AbortSignal;
  readonly log: (line: string) => void;
}

/** The final writes, the wait for convergence and the run's record. */
export async function finishRun(o: FinishOptions): Promise<RunRecord> {
  const { driver, fleet, topics, probe, elapsed, signal, log } = o;
  const go = (): void => {
    if (signal.aborted) throw signal.reason as Error;
  };
  // Final writes: one more rotation per topic, so that every device has a last key to reach.
  log('upgrade: roll done; final rotations and the wait for convergence');
  for (const topic of topics) {
    go();
    const requestId = Driver.requestId('final');
    const done = await until(
      async () =>
        (await driver.call(9, { kind: 'rotate-topic', topic, requestId })).outcome === 'ok',
      30_000,
    );
    if (!done) log(`upgrade: the final rotation of ${topic} failed for 30 s (see the calls)`);
  }
  if (o.rotateC2) {
    const requestId = Driver.requestId('final-c2');
    const done = await until(
      async () => (await driver.call(9, { kind: 'rotate-c2', requestId })).outcome === 'ok',
      30_000,
    );
    if (!done) log('upgrade: the final C2 key rotation failed for 30 s (see the calls)');
  }
  const scope = { topics: [...topics, o.steadyTopic], devices: fleet.allNames };
  const url = o.databaseUrl;
  let db = await readDatabase(url, scope, o.schema);
  const healedAt = elapsed();
  const record = (convergedAfterMs: number | undefined): RunRecord => ({
    scenario: 'upgrade-practice',
    seed: 0,
    deliveryCap: NODE_SETTINGS.deliveryCap,
    networkCopies: 1,
    budget: { duringFaults: 0, settleMs: 0 },
    apiNodes: o.apiNodes,
    healedAt,
    convergenceDeadlineMs: CONVERGENCE_MS,
    operations: driver.operations,
    applies: fleet.applies,
    faults: [],
    final: {
      ...db,
      devices: fleet.devices.map((d) => d.snapshot(true)),
      leaks: [],
      crashes: [],
      convergedAfterMs,
    },
  });
  const convergeStart = Date.now();
  /** When what keeps the devices from converging was last shown. */
  let shown = convergeStart;
  const converged = await until(async () => {
    if (signal.aborted) return true;
    await fleet.settle();
    db = await readDatabase(url, scope, o.schema);
    const left = checkRun(record(undefined)).filter(
      (v) => v.invariant === 'I1' || v.invariant === 'I6',
    );
    if (left.length > 0 && Date.now() - shown > 5000) {
      shown = Date.now();
      log(`upgrade: not converged yet (${left.length}): ${left[0]?.message ?? ''}`);
    }
    return left.length === 0;
  }, CONVERGENCE_MS);
  const convergedAfterMs = converged ? Date.now() - convergeStart : undefined;
  go();
  await fleet.settle();
  const automation = await probe.finish(CONVERGENCE_MS, o.rolledAt);
  log('upgrade: scanning for key material (I8)');
  const leaks = await scanPlaces([...fleet.devices, ...fleet.retired], o.output, o.scanPlaces);
  const done = record(convergedAfterMs);
  return { ...done, final: { ...done.final, leaks }, automation };
}
