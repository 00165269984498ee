/** The summary an upgrade practice prints at its end, from its record and its checks (pure). */
import { EXPECTED_WARNINGS } from './node-lines.ts';
import { lostCommands } from './own-key-checks.ts';
import { refusedByStoppingNode, type RollViolation } from './roll-checks.ts';
import type { OwnKeyRecord, RollRecord } from './roll-history.ts';
import { servedByReleases } from './served-by.ts';

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

/** The summary's lines: what ran, what it did, and every violation (or that there was none). */
export function rollSummary(record: RollRecord, violations: readonly RollViolation[]): string[] {
  const { run } = record;
  const ops = run.operations;
  const ownKey = new Set(record.ownKeys?.devices.map((d) => d.name));
  /** Calls of that kind, ok/all; own-key devices' rotations are counted on their own line. */
  const count = (kind: string): string => {
    const of = ops.filter((o) => o.kind === kind && !ownKey.has(o.client ?? ''));
    return `${of.filter((o) => o.outcome === 'ok').length}/${of.length}`;
  };
  const newClients = record.extraCalls.filter((c) => c.outcome === 'ok').length;
  const c2 = record.mode === 'public-key' ? `, C2 key rotations ${count('rotate-c2')}` : '';
  const leaks = run.final.leaks;
  const unscanned = leaks.filter((l) => l.unchecked === true).length;
  const failed = [...ops, ...record.extraCalls].filter((o) => o.outcome !== 'ok');
  const refused = failed.filter((c) => refusedByStoppingNode(c, record.steps)).length;
  const keyed = run.applies.filter((a) => a.type === 'SetTopicKey' || a.type === 'SetIDKey');
  const refusedByDevices = run.applies.filter((a) => a.type === 'rejected').length;
  const firings = run.automation?.firings.length;
  const reflashServers = servedByReleases(
    ops.filter((o) => o.kind === 'reflash-client'),
    record.steps,
  );
  const lines = [
    '',
    `upgrade practice: ${record.from} -> ${record.to} (${record.mode ?? 'symmetric'} mode)`,
    ...record.steps.map(
      (s) =>
        `  ${s.node.padEnd(9)} to ${s.to} release: stopped in ${seconds(s.stoppedAt - s.stoppingAt)}, ready ${seconds(s.readyAt - s.stoppedAt)} later (at +${seconds(s.stoppingAt)})`,
    ),
    `  calls (ok/all): rotations ${count('rotate-topic')}, joins ${count('join')}, leaves ${count('leave')}, resyncs ${count('resync-client')}, identity key rotations ${count('rotate-client')}${c2}, NewClient ${newClients}/${record.extraCalls.length}, re-flashes ${count('reflash-client')}${reflashServers === '' ? '' : ` (${reflashServers})`}; ${failed.length} failed or unknown, ${refused} of them refused by a stopping node`,
    `  devices: ${run.final.devices.length}, key commands applied ${keyed.length}, commands refused by devices ${refusedByDevices}`,
    `  convergence: ${run.final.convergedAfterMs === undefined ? `not within ${seconds(run.convergenceDeadlineMs)}` : `${seconds(run.final.convergedAfterMs)} after the final writes`}`,
    `  secrecy scan (I8): ${leaks.length === 0 ? 'no key material found' : `${leaks.length - unscanned} finding(s), ${unscanned} place(s) not scanned`}`,
    `  automation: ${firings === undefined ? 'not observed' : `${firings} firing(s), topic at v${run.automation?.finalKeyVersion ?? '?'}`}`,
    `  node lines at warn or above: ${record.nodeLines.length} (and ${record.expectedLines} expected: ${EXPECTED_WARNINGS.map((e) => e.why).join('; ')}${record.knownOldLines === undefined || record.knownOldLines === 0 ? '' : `; ${record.knownOldLines} known of the earlier release`}); unasked exits: ${record.crashes.length}`,
  ];
  const own = record.ownKeys;
  if (own !== undefined) lines.push(ownKeyLine(record, own));
  if (violations.length === 0) return [...lines, 'upgrade practice: PASSED (no violation)', ''];
  return [
    ...lines,
    `upgrade practice: FAILED, ${violations.length} violation(s):`,
    ...violations.map((v) => `  [${v.check}] ${v.message}`),
    '',
  ];
}

/** The summary's line on the devices that draw their own identity keys (own-keys.ts). */
function ownKeyLine(record: RollRecord, own: OwnKeyRecord): string {
  const names = new Set(own.devices.map((d) => d.name));
  const rotations = record.run.operations.filter(
    (o) => o.kind === 'rotate-client' && o.client !== undefined && names.has(o.client),
  );
  const ok = rotations.filter((o) => o.outcome === 'ok').length;
  const served = servedByReleases(rotations, record.steps);
  const reached = [...names].filter((name) =>
    record.run.applies.some(
      (a) => a.device === name && a.type !== 'rejected' && a.at >= own.rolledAt,
    ),
  ).length;
  const read = own.reads.filter((r) => r.error === undefined).length;
  const lost = [...names].reduce((n, name) => n + lostCommands(record.run.applies, name).length, 0);
  return `  own-key devices: ${names.size}, own key rotations ${ok}/${rotations.length}${served === '' ? '' : ` (${served})`}, commands refused as not authentic ${lost}, reached after the roll ${reached}/${names.size}, neighbours' messages read ${read}/${own.reads.length}`;
}
