/**
 * Evaluates the invariants I1-I9 of DESIGN §6 (A1 where recorded, and rule R5 where the run's
 * faults leave it observable: chaos/in-flight.ts) on a recorded run. Pure: the same record
 * always gives the same violations, so a failure can be studied from its JSON alone. Each
 * violation names the invariant, says what went wrong, and lists the operations, devices and
 * faults involved.
 */
import { checkAutomation } from './automation-check.ts';
import type {
  DeviceApply,
  FaultRecord,
  FinalClient,
  FinalTopic,
  Operation,
  RunRecord,
  StoredVersion,
} from './history.ts';
import { overlappingCopies, R5_WINDOW_MS } from './in-flight.ts';
import { expectedMembership, firstJoinInvoked } from './membership.ts';

/** The invariants, by id. */
export type InvariantId =
  | 'I1'
  | 'I2'
  | 'I3'
  | 'I4'
  | 'I5'
  | 'I6'
  | 'I7'
  | 'I8'
  | 'I9'
  /** DESIGN R5: at most one command in flight per device (chaos/in-flight.ts). */
  | 'R5'
  /** Automation (issue 7): every due slot fires once, none is skipped, each firing acts once. */
  | 'A1';

/** One broken invariant. */
export interface Violation {
  readonly invariant: InvariantId;
  readonly message: string;
  /** Ids of the operations involved. */
  readonly operations: readonly number[];
  readonly devices?: readonly string[];
}

/** DESIGN §6 names, for reports. */
export const INVARIANT_NAMES: Readonly<Record<InvariantId, string>> = {
  I1: 'convergence',
  I2: 'no regression',
  I3: 'linear history',
  I4: 'idempotency',
  I5: 'durability',
  I6: 'nothing lost',
  I7: 'bounded retransmission',
  I8: 'secrecy',
  I9: 'availability',
  R5: 'one command in flight',
  A1: 'automation exactly once',
};

/** Most violations reported per invariant: one bug tends to break it on every device. */
const MAX_PER_INVARIANT = 20;

const isRotation = (op: Operation): boolean =>
  op.kind === 'rotate-topic' || op.kind === 'create-topic';

/** Fingerprint to version, per topic hash. */
function versionIndex(topics: readonly FinalTopic[]): Map<string, Map<string, number>> {
  const index = new Map<string, Map<string, number>>();
  for (const t of topics)
    index.set(t.hash, new Map(t.versions.map((v) => [v.fingerprint, v.version])));
  return index;
}

function latest(versions: readonly StoredVersion[], version: number): string | undefined {
  return versions.find((v) => v.version === version)?.fingerprint;
}

/** Whether `versions` are exactly 1..n, in order (no gap, no fork). */
function isOneToN(versions: readonly number[], n: number): boolean {
  return versions.length === n && versions.every((v, i) => v === i + 1);
}

/** I3: per topic, versions 1..N with no gap, no fork, one key per version. */
function linearHistory(run: RunRecord, out: Violation[]): void {
  const c2 = run.final.c2Keys.map((k) => k.version);
  if (c2.join(',') !== Array.from({ length: c2.length }, (_, i) => i + 1).join(',')) {
    out.push({
      invariant: 'I3',
      message: `C2 key versions [${c2.join(',')}] are not 1..${c2.length}`,
      operations: run.operations.filter((o) => o.kind === 'rotate-c2').map((o) => o.id),
    });
  }
  for (const topic of run.final.topics) {
    const versions = topic.versions.map((v) => v.version);
    if (!isOneToN(versions, topic.currentVersion)) {
      out.push({
        invariant: 'I3',
        message: `${topic.name}: stored versions [${versions.join(',')}] are not 1..${topic.currentVersion}`,
        operations: run.operations
          .filter((o) => o.topic === topic.name && isRotation(o))
          .map((o) => o.id),
      });
    }
  }
  for (const client of run.final.clients) {
    const versions = client.keyVersions.map((v) => v.version);
    if (!isOneToN(versions, client.keyVersion)) {
      out.push({
        invariant: 'I3',
        message: `${client.name}: stored identity key versions [${versions.join(',')}] are not 1..${client.keyVersion}`,
        operations: run.operations
          .filter((o) => o.client === client.name && o.kind === 'rotate-client')
          .map((o) => o.id),
        devices: [client.name],
      });
    }
  }
  keyAnswers(run, out);
  const topics = new Map(run.final.topics.map((t) => [t.name, t]));
  const answered = new Map<string, { fingerprint: string; ops: number[] }>();
  for (const op of run.operations) {
    if (op.outcome !== 'ok' || op.topic === undefined || op.version === undefined) continue;
    if (op.fingerprint === undefined || op.kind === 'join' || op.kind === 'leave') continue;
    const key = `${op.topic}\0${op.version}`;
    const seen = answered.get(key);
    if (seen === undefined) answered.set(key, { fingerprint: op.fingerprint, ops: [op.id] });
    else if (seen.fingerprint !== op.fingerprint) {
      out.push({
        invariant: 'I3',
        message: `${op.topic}: v${op.version} was answered with two keys (${seen.fingerprint}, ${op.fingerprint})`,
        operations: [...seen.ops, op.id],
      });
    } else seen.ops.push(op.id);
    const stored = topics.get(op.topic);
    const fp = stored === undefined ? undefined : latest(stored.versions, op.version);
    if (stored !== undefined && fp !== undefined && fp !== op.fingerprint) {
      out.push({
        invariant: 'I3',
        message: `${op.topic}: v${op.version} answered ${op.fingerprint} but ${fp} is stored`,
        operations: [op.id],
      });
    }
  }
}

/**
 * I3 for identity and C2 keys: no version answered with two keys, and every answered (version,
 * fingerprint) of a client or C2 key rotation is the stored one (when that version is stored;
 * a missing one is I5's).
 */
function keyAnswers(run: RunRecord, out: Violation[]): void {
  const clients = new Map(run.final.clients.map((c) => [c.name, c]));
  const answered = new Map<string, Operation>();
  for (const op of run.operations) {
    if (op.outcome !== 'ok' || op.version === undefined || op.fingerprint === undefined) continue;
    let scope: string;
    let stored: readonly StoredVersion[] | undefined;
    if (op.kind === 'rotate-client' && op.client !== undefined) {
      scope = `${op.client} identity key`;
      stored = clients.get(op.client)?.keyVersions;
    } else if (op.kind === 'rotate-c2') {
      scope = 'C2 key';
      stored = run.final.c2Keys;
    } else continue;
    const key = `${scope}\0${op.version}`;
    const first = answered.get(key);
    if (first === undefined) answered.set(key, op);
    else if (first.fingerprint !== op.fingerprint)
      out.push({
        invariant: 'I3',
        message: `${scope}: v${op.version} was answered with two keys (${first.fingerprint ?? '?'}, ${op.fingerprint})`,
        operations: [first.id, op.id],
      });
    const fp = stored === undefined ? undefined : latest(stored, op.version);
    if (fp !== undefined && fp !== op.fingerprint)
      out.push({
        invariant: 'I3',
        message: `${scope}: v${op.version} answered ${op.fingerprint} but ${fp} is stored`,
        operations: [op.id],
        ...(op.client === undefined ? {} : { devices: [op.client] }),
      });
  }
}

/** I4: one request id, at most one rotation, also across unknown outcomes and retries. */
function idempotency(run: RunRecord, out: Violation[]): void {
  const byRequest = new Map<string, number[]>();
  for (const a of run.final.audit) {
    const versions = byRequest.get(a.requestId) ?? [];
    versions.push(a.version);
    byRequest.set(a.requestId, versions);
  }
  const opsOf = (requestId: string): number[] =>
    run.operations.filter((o) => o.requestId === requestId).map((o) => o.id);
  for (const [requestId, versions] of byRequest) {
    if (versions.length > 1) {
      out.push({
        invariant: 'I4',
        message: `request ${requestId} rotated ${versions.length} times (versions ${versions.join(',')})`,
        operations: opsOf(requestId),
      });
    }
  }
  const answers = new Map<string, Operation>();
  for (const op of run.operations) {
    if (op.outcome !== 'ok' || op.requestId === undefined || op.version === undefined) continue;
    const first = answers.get(op.requestId);
    if (first === undefined) answers.set(op.requestId, op);
    else if (first.version !== op.version) {
      out.push({
        invariant: 'I4',
        message: `request ${op.requestId} answered v${first.version} then v${op.version}`,
        operations: [first.id, op.id],
      });
    }
  }
}

/** I5: an ok rotation survives every failover; later reads see a version at least as new. */
function durability(run: RunRecord, out: Violation[]): void {
  const topics = new Map(run.final.topics.map((t) => [t.name, t]));
  const rotations = run.operations.filter(
    (o) => isRotation(o) && o.outcome === 'ok' && o.version !== undefined && o.topic !== undefined,
  );
  for (const op of rotations) {
    const topic = topics.get(op.topic ?? '');
    const version = op.version ?? 0;
    if (topic === undefined || topic.currentVersion < version) {
      out.push({
        invariant: 'I5',
        message: `${op.topic ?? '?'}: v${version} was acknowledged but the topic is now at v${topic?.currentVersion ?? 'none'}`,
        operations: [op.id],
      });
    } else if (latest(topic.versions, version) === undefined) {
      out.push({
        invariant: 'I5',
        message: `${op.topic ?? '?'}: acknowledged v${version} is missing from topic_keys`,
        operations: [op.id],
      });
    }
  }
  keyDurability(run, out);
  membershipDurability(run, out);
  const reads = run.operations.filter(
    (o) => o.kind === 'read-topic' && o.outcome === 'ok' && o.version !== undefined,
  );
  for (const read of reads) {
    const newest = rotations
      .filter((r) => r.topic === read.topic && r.completedAt < read.invokedAt)
      .reduce<Operation | undefined>(
        (best, r) => (best === undefined || (r.version ?? 0) > (best.version ?? 0) ? r : best),
        undefined,
      );
    if (newest !== undefined && (read.version ?? 0) < (newest.version ?? 0)) {
      out.push({
        invariant: 'I5',
        message: `${read.topic ?? '?'}: read v${read.version ?? 0} after v${newest.version ?? 0} was acknowledged`,
        operations: [newest.id, read.id],
      });
    }
  }
}

/**
 * I5 for identity and C2 keys: an acknowledged client key rotation's version is stored and the
 * client's key version is at least as new; the same for an acknowledged C2 key rotation in
 * `c2_keys`. (That the device ends up holding the newest one is I1's.)
 */
function keyDurability(run: RunRecord, out: Violation[]): void {
  const clients = new Map(run.final.clients.map((c) => [c.name, c]));
  const newestC2 = run.final.c2Keys.reduce((n, k) => Math.max(n, k.version), 0);
  for (const op of run.operations) {
    if (op.outcome !== 'ok' || op.version === undefined) continue;
    if (op.kind === 'rotate-client' && op.client !== undefined) {
      const client = clients.get(op.client);
      const current = client?.keyVersion;
      if (client === undefined || (current ?? 0) < op.version)
        out.push({
          invariant: 'I5',
          message: `${op.client}: identity key v${op.version} was acknowledged but the client is now at ${current === undefined ? 'no row' : `v${current}`}`,
          operations: [op.id],
          devices: [op.client],
        });
      else if (latest(client.keyVersions, op.version) === undefined)
        out.push({
          invariant: 'I5',
          message: `${op.client}: acknowledged identity key v${op.version} is missing from client_keys`,
          operations: [op.id],
          devices: [op.client],
        });
    } else if (op.kind === 'rotate-c2') {
      if (newestC2 < op.version)
        out.push({
          invariant: 'I5',
          message: `C2 key v${op.version} was acknowledged but c2_keys ends at v${newestC2}`,
          operations: [op.id],
        });
      else if (latest(run.final.c2Keys, op.version) === undefined)
        out.push({
          invariant: 'I5',
          message: `acknowledged C2 key v${op.version} is missing from c2_keys`,
          operations: [op.id],
        });
    }
  }
  // The reference route of NewC2Key answers nothing, so the version an acknowledged C2 key
  // rotation made is read from the audit log, which R1 writes in the rotation's transaction
  // with its request id: no row means the acknowledged rotation was lost.
  const audited = new Map<string, number>();
  for (const a of run.final.audit)
    if (a.operation === 'NewC2Key') audited.set(a.requestId, a.version);
  for (const op of run.operations) {
    if (op.kind !== 'rotate-c2' || op.outcome !== 'ok' || op.version !== undefined) continue;
    if (op.requestId === undefined) continue;
    const version = audited.get(op.requestId);
    if (version === undefined)
      out.push({
        invariant: 'I5',
        message: `NewC2Key request ${op.requestId} was acknowledged but the audit log has no rotation for it: the rotation was lost`,
        operations: [op.id],
      });
    else if (latest(run.final.c2Keys, version) === undefined)
      out.push({
        invariant: 'I5',
        message: `acknowledged C2 key v${version} (request ${op.requestId}, per the audit log) is missing from c2_keys`,
        operations: [op.id],
      });
  }
}

/**
 * I5 for memberships: the final `device_topics` agrees with the acknowledged joins and leaves of
 * the history, wherever the history orders them (chaos/membership.ts). I1 derives what a device
 * must hold from `device_topics` itself, so without this a join acknowledged but never stored
 * (or a leave acknowledged but undone) passed every check.
 */
function membershipDurability(run: RunRecord, out: Violation[]): void {
  const clients = new Map(run.final.clients.map((c) => [c.name, c]));
  const pairs = new Set<string>();
  for (const o of run.operations)
    if (
      (o.kind === 'join' || o.kind === 'leave') &&
      o.client !== undefined &&
      o.topic !== undefined
    )
      pairs.add(`${o.client}\0${o.topic}`);
  for (const topic of run.final.topics) {
    for (const pair of pairs) {
      const [name = '', topicName] = pair.split('\0');
      if (topicName !== topic.name) continue;
      const expected = expectedMembership(run.operations, name, topic.name);
      if (expected === undefined) continue;
      const client = clients.get(name);
      const member =
        client?.memberships.some((m) => m.topicHash === topic.hash && m.desired > 0) ?? false;
      if (client === undefined || member !== expected.member)
        out.push({
          invariant: 'I5',
          message:
            client === undefined
              ? `${name}: ${expected.op.kind} of ${topic.name} was acknowledged but the client has no row at the end`
              : expected.member
                ? `${name}: joining ${topic.name} was acknowledged (the last membership change) but it is not a member at the end (device_topics)`
                : `${name}: leaving ${topic.name} was acknowledged (the last membership change) but it is still a member at the end (device_topics)`,
          operations: [expected.op.id],
          devices: [name],
        });
    }
  }
}

function appliesByDevice(applies: readonly DeviceApply[]): Map<string, DeviceApply[]> {
  const map = new Map<string, DeviceApply[]>();
  for (const a of applies) {
    const list = map.get(a.device) ?? [];
    list.push(a);
    map.set(a.device, list);
  }
  return map;
}

/** I2: no device applies an older version after a newer one (topic and identity keys). */
function noRegression(run: RunRecord, out: Violation[]): void {
  const index = versionIndex(run.final.topics);
  const identity = new Map(
    run.final.clients.map((c) => [
      c.name,
      new Map(c.keyVersions.map((k) => [k.fingerprint, k.version])),
    ]),
  );
  const c2 = new Map(run.final.c2Keys.map((k) => [k.fingerprint, k.version]));
  for (const [device, applies] of appliesByDevice(run.applies)) {
    const highest = new Map<string, number>();
    for (const a of applies) {
      let scope: string;
      let version: number | undefined;
      if (a.type === 'SetTopicKey' && a.topicHash !== undefined) {
        const versions = index.get(a.topicHash);
        if (versions === undefined) continue; // a topic of another scenario
        scope = `topic ${a.topicHash.slice(0, 8)}`;
        version = versions.get(a.fingerprint ?? '');
      } else if (a.type === 'SetIDKey') {
        scope = 'identity key';
        version = identity.get(device)?.get(a.fingerprint ?? '');
      } else if (a.type === 'SetC2Key') {
        scope = 'C2 key';
        version = c2.get(a.fingerprint ?? '');
      } else continue;
      if (version === undefined) {
        out.push({
          invariant: 'I2',
          message: `${device} applied a ${scope} key ${a.fingerprint ?? '?'} that no committed version has`,
          operations: [],
          devices: [device],
        });
        continue;
      }
      const before = highest.get(scope) ?? 0;
      if (version < before) {
        out.push({
          invariant: 'I2',
          message: `${device} applied ${scope} v${version} after v${before} (at +${a.at} ms)`,
          operations: [],
          devices: [device],
        });
      }
      highest.set(scope, Math.max(before, version));
    }
  }
}

/**
 * Commands that carry a key, counted by I7. The cap bounds every command alike: one device sync
 * sends one command at a time and counts each failed attempt against the cap whatever the command
 * (`cluster/delivery/device-sync.ts`), the C2 key of public-key mode included.
 */
const KEYED_COMMANDS: ReadonlySet<DeviceApply['type']> = new Set([
  'SetTopicKey',
  'SetIDKey',
  'SetC2Key',
]);

/** I7: no command reaches a device more often than the cap (times the network's copies). */
function boundedRetransmission(run: RunRecord, out: Violation[]): void {
  const topicOf = new Map(run.final.topics.map((t) => [t.hash, t.name]));
  for (const [device, applies] of appliesByDevice(run.applies)) {
    // Resyncs, re-flashes and (re)joins legitimately send a key again: each opens a new allowance.
    const resyncs = run.operations.filter(
      (o) =>
        o.client === device &&
        (o.kind === 'resync-client' || o.kind === 'reflash-client') &&
        o.outcome !== 'fail',
    ).length;
    const copies = new Map<string, { label: string; hash: string | undefined; n: number }>();
    for (const a of applies) {
      if (!KEYED_COMMANDS.has(a.type)) continue;
      const key = `${a.type}${a.topicHash === undefined ? '' : ` ${a.topicHash}`} ${a.fingerprint ?? '?'}`;
      const seen = copies.get(key) ?? { label: key, hash: a.topicHash, n: 0 };
      seen.n += 1;
      copies.set(key, seen);
    }
    for (const { label, hash, n } of copies.values()) {
      const topic = hash === undefined ? undefined : topicOf.get(hash);
      const joins = run.operations.filter(
        (o) =>
          o.client === device &&
          o.kind === 'join' &&
          o.outcome !== 'fail' &&
          topic !== undefined &&
          o.topic === topic,
      ).length;
      const allowed = run.deliveryCap * run.networkCopies * (1 + resyncs + Math.max(0, joins - 1));
      if (n > allowed) {
        out.push({
          invariant: 'I7',
          message: `${device} received ${label} ${n} times (allowed ${allowed})`,
          operations: [],
          devices: [device],
        });
      }
    }
  }
}

/** I1: after the heal and the quiet period, every active device holds exactly its keys. */
function convergence(run: RunRecord, out: Violation[]): void {
  const topics = new Map(run.final.topics.map((t) => [t.hash, t]));
  const clients = new Map(run.final.clients.map((c) => [c.name, c]));
  for (const device of run.final.devices) {
    if (!device.active) continue;
    const client = clients.get(device.name);
    if (client === undefined) {
      // Every device of a run is registered before the workload and nothing removes one: a
      // missing row is a lost client, not a device to skip.
      out.push({
        invariant: 'I1',
        message: `${device.name} has no client row at the end: its keys cannot be judged, and the C2 no longer knows it`,
        operations: run.operations.filter((o) => o.client === device.name).map((o) => o.id),
        devices: [device.name],
      });
      continue;
    }
    const problems: string[] = [];
    const members = new Set<string>();
    for (const m of client.memberships) {
      const topic = topics.get(m.topicHash);
      if (topic === undefined || m.desired === 0) continue;
      members.add(m.topicHash);
      const want = latest(topic.versions, topic.currentVersion);
      const held = device.topicKeys[m.topicHash];
      if (held !== want) {
        const heldVersion = topic.versions.find((v) => v.fingerprint === held)?.version;
        problems.push(
          `${topic.name}: holds ${held === undefined ? 'no key' : `v${heldVersion ?? '?'}`}, latest v${topic.currentVersion}`,
        );
      }
    }
    for (const [hash, topic] of topics) {
      // A stock device that missed its RemoveTopic keeps the old key, which cannot be helped
      // (R9); it must never hold the *current* key of a topic it left.
      const current = latest(topic.versions, topic.currentVersion);
      if (!members.has(hash) && current !== undefined && device.topicKeys[hash] === current)
        problems.push(`${topic.name}: holds the current key without being a member`);
    }
    const newestC2 = run.final.c2Keys.at(-1);
    if (newestC2 !== undefined && device.c2Fingerprint !== newestC2.fingerprint) {
      const held = run.final.c2Keys.find((k) => k.fingerprint === device.c2Fingerprint);
      problems.push(`C2 key: holds v${held?.version ?? '?'}, latest v${newestC2.version}`);
    }
    const wantId = latest(client.keyVersions, client.keyVersion);
    if (wantId !== undefined && device.identityFingerprint !== wantId) {
      const held = client.keyVersions.find((k) => k.fingerprint === device.identityFingerprint);
      problems.push(`identity key: holds v${held?.version ?? '?'}, latest v${client.keyVersion}`);
    }
    if (problems.length > 0) {
      out.push({
        invariant: 'I1',
        message: `${device.name} did not converge within ${run.convergenceDeadlineMs} ms of the heal: ${problems.join('; ')}`,
        operations: run.operations
          .filter((o) => o.client === device.name && o.outcome !== 'ok')
          .map((o) => o.id),
        devices: [device.name],
      });
    }
  }
}

/**
 * Whether the client's current failure was reported: a `delivery.failed` event at or after the
 * moment it was marked failed (both written by one transaction, so with one `now()`). A report of
 * an earlier failure, since retried, says nothing of this one. An older history without the times
 * has only "some report names it".
 */
function failureReported(client: FinalClient): boolean {
  const since = client.failedAt;
  if (since === undefined || client.failureReports === undefined) return client.failureReported;
  return since !== null && client.failureReports.some((r) => r.at >= since);
}

/** I6: every outbox entry reaches a terminal state (delivered, or failed and reported). */
function nothingLost(run: RunRecord, out: Violation[]): void {
  for (const row of run.final.outbox) {
    if (row.ageMs > run.convergenceDeadlineMs) {
      out.push({
        invariant: 'I6',
        message: `outbox row ${row.id} still pending after ${row.ageMs} ms`,
        operations: [],
      });
    }
  }
  for (const client of run.final.clients) {
    if (client.status !== 'active') continue;
    const behind = client.memberships.filter((m) => m.desired !== m.delivered);
    const newestC2 = run.final.c2Keys.at(-1)?.version;
    const idBehind =
      client.deliveredKeyVersion < client.keyVersion ||
      (newestC2 !== undefined && (client.c2KeyVersion ?? 0) < newestC2);
    if (behind.length === 0 && !idBehind) continue;
    const reported = client.syncState === 'failed' && failureReported(client);
    if (reported) continue;
    const stale =
      client.syncState === 'failed' && client.failureReported
        ? '; the only delivery.failed report(s) predate its current failure'
        : '';
    out.push({
      invariant: 'I6',
      message: `${client.name}: ${behind.length} membership(s)${idBehind ? ' and its identity or C2 key' : ''} neither delivered nor failed-and-reported (sync state ${client.syncState}${stale})`,
      operations: [],
      devices: [client.name],
    });
  }
}

/** I8: no plaintext key anywhere; a device that left never receives a later key. */
function secrecy(run: RunRecord, out: Violation[]): void {
  for (const leak of run.final.leaks)
    out.push({
      invariant: 'I8',
      message:
        leak.unchecked === true
          ? `${leak.where} could not be scanned for key material (${leak.what})`
          : `key material in ${leak.where}: ${leak.what}`,
      operations: [],
    });
  neverMember(run, out);
  const byName = new Map(run.final.topics.map((t) => [t.name, t]));
  const index = versionIndex(run.final.topics);
  const leaves = run.operations.filter((o) => o.kind === 'leave' && o.outcome === 'ok');
  for (const leave of leaves) {
    const topic = byName.get(leave.topic ?? '');
    if (topic === undefined || leave.client === undefined) continue;
    // The device may be a member again from the first join that was not over before the leave
    // began: one invoked in the very millisecond the leave returned (times are whole ms), or one
    // running alongside it, may commit after it. A join whose outcome is unknown is never over:
    // its request may still reach a node long after its caller gave up (a partition between the
    // balancer and the node holds it, and delivers it when the partition ends).
    let until = Number.POSITIVE_INFINITY;
    for (const o of run.operations)
      if (
        o.kind === 'join' &&
        o.client === leave.client &&
        o.topic === leave.topic &&
        (o.completedAt >= leave.invokedAt || o.outcome === 'unknown')
      )
        until = Math.min(until, o.invokedAt);
    // Versions surely committed after the leave: every call that answered them (a replay of an
    // older request id answers an older version) was invoked after the leave completed.
    const firstAsked = new Map<number, Operation>();
    for (const r of run.operations) {
      if (r.kind !== 'rotate-topic' || r.topic !== leave.topic || r.outcome !== 'ok') continue;
      if (r.version === undefined) continue;
      const seen = firstAsked.get(r.version);
      if (seen === undefined || r.invokedAt < seen.invokedAt) firstAsked.set(r.version, r);
    }
    const later = new Map<number, number>();
    for (const [version, r] of firstAsked)
      if (r.invokedAt > leave.completedAt) later.set(version, r.id);
    for (const a of run.applies) {
      if (a.device !== leave.client || a.type !== 'SetTopicKey' || a.topicHash !== topic.hash)
        continue;
      if (a.at <= leave.completedAt || a.at >= until) continue;
      const v = index.get(topic.hash)?.get(a.fingerprint ?? '');
      const rotation = v === undefined ? undefined : later.get(v);
      if (rotation !== undefined) {
        out.push({
          invariant: 'I8',
          message: `${leave.client} left ${topic.name} but received v${v ?? 0}, committed after it left`,
          operations: [leave.id, rotation],
          devices: [leave.client],
        });
      }
    }
  }
}

/**
 * I8 for devices that were not (yet) members: no key of a topic reaches a device before its first
 * join of that topic was invoked (every device starts a member of nothing, and the C2 sends a
 * member's keys only after the join committed), and a device that never asked to join holds no
 * key of the topic at the end, whatever its version (I1 only looks for the current one).
 */
function neverMember(run: RunRecord, out: Violation[]): void {
  const byHash = new Map(run.final.topics.map((t) => [t.hash, t]));
  const index = versionIndex(run.final.topics);
  const reported = new Set<string>();
  for (const a of run.applies) {
    if (a.type !== 'SetTopicKey' || a.topicHash === undefined) continue;
    const topic = byHash.get(a.topicHash);
    if (topic === undefined) continue; // a topic of another scenario
    const first = firstJoinInvoked(run.operations, a.device, topic.name);
    if (first !== undefined && a.at >= first) continue;
    const key = `${a.device}\0${topic.name}`;
    if (reported.has(key)) continue;
    reported.add(key);
    const version = index.get(topic.hash)?.get(a.fingerprint ?? '');
    out.push({
      invariant: 'I8',
      message: `${a.device} received ${topic.name} v${version ?? '?'} at +${a.at} ms ${first === undefined ? 'without ever joining it' : `before it first asked to join (+${first} ms)`}`,
      operations: [],
      devices: [a.device],
    });
  }
  for (const device of run.final.devices) {
    for (const [hash, held] of Object.entries(device.topicKeys)) {
      const topic = byHash.get(hash);
      if (topic === undefined) continue;
      if (firstJoinInvoked(run.operations, device.name, topic.name) !== undefined) continue;
      if (reported.has(`${device.name}\0${topic.name}`)) continue;
      out.push({
        invariant: 'I8',
        message: `${device.name} holds ${topic.name} v${index.get(hash)?.get(held) ?? '?'} at the end without ever joining it`,
        operations: [],
        devices: [device.name],
      });
    }
  }
}

/** R5: no two copies of one command in flight to a device at once (chaos/in-flight.ts). */
function oneInFlight(run: RunRecord, out: Violation[]): void {
  for (const { device, command, first, second } of overlappingCopies(run))
    out.push({
      invariant: 'R5',
      message: `${device} received ${command} twice ${second.at - first.at} ms apart (+${first.at} and +${second.at} ms), less than ${R5_WINDOW_MS} ms, with no join, leave, resync, re-flash or key rotation of it around them and no fault that could delay or repeat a PUBLISH: two copies were in flight at once (DESIGN R5: at most one command in flight per device; a retransmission leaves only after the PUBACK timeout)`,
      operations: [],
      devices: [device],
    });
}

/** Failures that count against availability: not a definite refusal of a bad request. */
function unavailable(op: Operation): boolean {
  if (op.outcome === 'unknown') return true;
  return op.outcome === 'fail' && !/^HTTP 4\d\d/.test(op.error ?? '');
}

/**
 * Faults that take down the one shared database: I9 promises availability with any one API node
 * or worker down, not without PostgreSQL (DESIGN §5: every call reads or commits there), so calls
 * invoked while one of these is active are outside the error budget. Without this, a schedule
 * whose database restart filled most of the fault window (`mixed`, seed 8) failed I9 by the
 * length of the restart alone.
 */
const DATABASE_OUTAGES: ReadonlySet<string> = new Set(['restart-postgres']);

/** Faults that take one node out of service (a kill lasts until its restart is ready). */
const NODE_OUTAGES: ReadonlySet<string> = new Set(['kill-node', 'pause-node', 'partition-node']);

const active = (f: FaultRecord, op: Operation): boolean =>
  f.skipped !== true && op.invokedAt >= f.startedAt && op.invokedAt <= f.endedAt;

/**
 * Whether `op` was invoked while a fault held the database, or every API node at once: I9's
 * promise is any one API node down, and `mixed`, whose two streams of faults are independent, can
 * kill or stop both API nodes of a default cluster together (`mixed`, seed 3 at 30 s: 255 of its
 * 268 failed calls came while both were restarting, and restarts take 15 s on a loaded machine).
 * A history that does not list its API nodes exempts nothing for them.
 */
function duringOutage(run: RunRecord, op: Operation): boolean {
  if (run.faults.some((f) => DATABASE_OUTAGES.has(f.kind) && active(f, op))) return true;
  const api = run.apiNodes ?? [];
  return (
    api.length > 0 &&
    api.every((node) =>
      run.faults.some(
        (f) => NODE_OUTAGES.has(f.kind) && f.target === `${f.kind} ${node}` && active(f, op),
      ),
    )
  );
}

/** I9: through the balancer, calls keep succeeding within the scenario's error budget. */
function availability(run: RunRecord, out: Violation[]): void {
  for (const crash of run.final.crashes)
    out.push({ invariant: 'I9', message: `a node died of a fault: ${crash}`, operations: [] });
  const start = Math.min(...run.faults.map((f) => f.startedAt), run.healedAt);
  const window = run.operations.filter((o) => o.invokedAt >= start && o.invokedAt <= run.healedAt);
  const during = window.filter((o) => !duringOutage(run, o));
  const exempt = window.length - during.length;
  const failed = during.filter(unavailable);
  if (during.length > 0 && failed.length / during.length > run.budget.duringFaults) {
    const outage =
      exempt > 0
        ? `; ${exempt} more invoked while PostgreSQL or every API node was down not counted`
        : '';
    out.push({
      invariant: 'I9',
      message: `${failed.length} of ${during.length} calls failed during the faults (budget ${Math.round(run.budget.duringFaults * 100)}%${outage})`,
      operations: failed.map((o) => o.id),
    });
  }
  const settled = run.operations.filter(
    (o) => o.invokedAt > run.healedAt + run.budget.settleMs && unavailable(o),
  );
  if (settled.length > 0) {
    out.push({
      invariant: 'I9',
      message: `${settled.length} call(s) failed more than ${run.budget.settleMs} ms after the faults healed`,
      operations: settled.map((o) => o.id),
    });
  }
  for (const op of run.operations) {
    if (
      op.outcome === 'fail' &&
      /^HTTP 4\d\d/.test(op.error ?? '') &&
      !/HTTP 40[49]/.test(op.error ?? '')
    ) {
      out.push({
        invariant: 'I9',
        message: `a well-formed ${op.kind} was refused: ${op.error ?? ''}`,
        operations: [op.id],
      });
    }
  }
}

/**
 * Runs every check (R5 where the run's faults leave it observable; A1 too when the run recorded an automation rule, so that `--check` on a
 * history judges it as the run did); violations in invariant order, at most 20 per invariant.
 */
export function checkRun(run: RunRecord): Violation[] {
  const all: Violation[] = [];
  convergence(run, all);
  noRegression(run, all);
  linearHistory(run, all);
  idempotency(run, all);
  durability(run, all);
  nothingLost(run, all);
  boundedRetransmission(run, all);
  oneInFlight(run, all);
  secrecy(run, all);
  availability(run, all);
  if (run.automation !== undefined) all.push(...checkAutomation(run.automation));
  const kept: Violation[] = [];
  const counts = new Map<InvariantId, number>();
  for (const v of all) {
    const n = (counts.get(v.invariant) ?? 0) + 1;
    counts.set(v.invariant, n);
    if (n <= MAX_PER_INVARIANT) kept.push(v);
  }
  // The list is cut, and says so: "20 violations" must not read as all there were.
  for (const [invariant, n] of counts)
    if (n > MAX_PER_INVARIANT)
      kept.push({
        invariant,
        message: `${n - MAX_PER_INVARIANT} more violation(s) of ${invariant} not listed (${n} in all; the first ${MAX_PER_INVARIANT} are above)`,
        operations: [],
      });
  return kept;
}
