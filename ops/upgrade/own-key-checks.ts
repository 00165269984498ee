/**
 * The checks of the devices that draw their own identity keys (own-keys.ts), over the record
 * alone (pure): each rotated its own key during the roll, refused no command as not authentic
 * (each begins its rotation before the C2 learns the key: a refusal is a command lost around a
 * switch, counted delivered by the C2, and never sent again if it carried a C2 key or a
 * neighbour's key), was still reached by the C2 after the roll (a command applied then, which
 * only its own newest key opens), and read a message its neighbour protected on each of its
 * topics (the topic's current key, and the neighbour's newest public key, which the C2 sent it
 * after the neighbour's own rotation).
 */
import type { DeviceApply } from '../../chaos/history.ts';
import type { RollViolation } from './roll-checks.ts';
import type { RollRecord } from './roll-history.ts';

/** The check's name in violations. */
const CHECK = 'own keys';

/** The commands `device` refused as not authentic under any key it held. */
export function lostCommands(applies: readonly DeviceApply[], device: string): DeviceApply[] {
  return applies.filter(
    (a) => a.device === device && a.type === 'rejected' && a.error === 'NotAuthentic',
  );
}

/** Every violation of the own-key devices of `record` (none when it has none). */
export function checkOwnKeys(record: RollRecord): RollViolation[] {
  const own = record.ownKeys;
  if (own === undefined) return [];
  const out: RollViolation[] = [];
  const { operations, applies } = record.run;
  for (const { name } of own.devices) {
    const rotated = operations.some(
      (o) => o.kind === 'rotate-client' && o.client === name && o.outcome === 'ok',
    );
    if (!rotated)
      out.push({
        check: CHECK,
        message: `${name} never rotated its own key during the roll: it practised nothing`,
      });
    const lost = lostCommands(applies, name);
    if (lost.length > 0)
      out.push({
        check: CHECK,
        message: `${name} refused ${lost.length} command(s) as not authentic (first at +${lost[0]?.at ?? 0} ms): lost around a rotation of its own key`,
      });
    const reached = applies.some(
      (a) => a.device === name && a.type !== 'rejected' && a.at >= own.rolledAt,
    );
    if (!reached)
      out.push({
        check: CHECK,
        message: `${name} applied no command after the roll (from +${own.rolledAt} ms): the C2 did not reach it under its own key`,
      });
    const reads = own.reads.filter((r) => r.device === name);
    if (reads.length === 0)
      out.push({ check: CHECK, message: `${name} read no message of its neighbour` });
    for (const r of reads)
      if (r.error !== undefined)
        out.push({
          check: CHECK,
          message: `${name} could not read ${r.peer}'s message on ${r.topic} after the roll: ${r.error}`,
        });
  }
  return out;
}
