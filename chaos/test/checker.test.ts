/**
 * The checker on hand-written histories: a clean run passes, and each invariant reports the
 * violation it exists for, naming the operations or devices involved.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkRun, type InvariantId } from '../checker.ts';
import type { DeviceApply, FaultRecord, FinalState, Operation, RunRecord } from '../history.ts';

const T = { name: 'fleet/t', hash: 'aa'.repeat(16) };
const fp = (v: number): string => `fp-v${v}`;
const idFp = (v: number): string => `id-v${v}`;

let nextId = 0;
function op(fields: Partial<Operation> & Pick<Operation, 'kind'>): Operation {
  return {
    id: nextId++,
    process: 0,
    invokedAt: 0,
    completedAt: 1,
    outcome: 'ok',
    ...fields,
  };
}

const rotate = (version: number, at: number, extra: Partial<Operation> = {}): Operation =>
  op({
    kind: 'rotate-topic',
    topic: T.name,
    requestId: `r${version}`,
    version,
    fingerprint: fp(version),
    invokedAt: at,
    completedAt: at + 5,
    ...extra,
  });

const apply = (device: string, version: number, at: number): DeviceApply => ({
  device,
  type: 'SetTopicKey',
  topicHash: T.hash,
  fingerprint: fp(version),
  at,
});

/** A clean run: v1..v3, one device that applied them in order and holds v3. */
function cleanRun(overrides: Partial<RunRecord> = {}, final: Partial<FinalState> = {}): RunRecord {
  nextId = 0;
  return {
    scenario: 'unit',
    seed: 1,
    deliveryCap: 3,
    networkCopies: 1,
    budget: { duringFaults: 0.1, settleMs: 1000 },
    healedAt: 500,
    convergenceDeadlineMs: 10_000,
    operations: [
      rotate(2, 10),
      rotate(3, 100),
      op({
        kind: 'read-topic',
        topic: T.name,
        version: 3,
        fingerprint: fp(3),
        invokedAt: 200,
        completedAt: 210,
      }),
      // The set-up join: every device starts a member of nothing (I5 and I8 read it).
      op({ kind: 'join', topic: T.name, client: 'd1', invokedAt: 0, completedAt: 2 }),
    ],
    applies: [apply('d1', 1, 5), apply('d1', 2, 20), apply('d1', 3, 120)],
    faults: [{ id: 0, kind: 'kill-node', target: 'worker-1', startedAt: 50, endedAt: 300 }],
    final: {
      c2Keys: [],
      topics: [
        {
          ...T,
          currentVersion: 3,
          versions: [1, 2, 3].map((v) => ({ version: v, fingerprint: fp(v) })),
        },
      ],
      clients: [
        {
          name: 'd1',
          status: 'active',
          keyVersion: 1,
          deliveredKeyVersion: 1,
          keyVersions: [{ version: 1, fingerprint: idFp(1) }],
          syncState: 'idle',
          c2KeyVersion: null,
          memberships: [{ topicHash: T.hash, desired: 3, delivered: 3 }],
          failureReported: false,
        },
      ],
      devices: [
        { name: 'd1', topicKeys: { [T.hash]: fp(3) }, identityFingerprint: idFp(1), active: true },
      ],
      audit: [
        { requestId: 'r2', operation: 'RotateTopicKey', subject: T.name, version: 2 },
        { requestId: 'r3', operation: 'RotateTopicKey', subject: T.name, version: 3 },
      ],
      outbox: [],
      leaks: [],
      crashes: [],
      convergedAfterMs: 100,
      ...final,
    },
    ...overrides,
  };
}

function only(run: RunRecord, invariant: InvariantId): ReturnType<typeof checkRun> {
  const found = checkRun(run);
  assert.ok(found.length > 0, `expected an ${invariant} violation`);
  for (const v of found) assert.equal(v.invariant, invariant, JSON.stringify(found));
  return found;
}

/**
 * Four calls that end unknown at 310..340 ms: four of the six calls of the clean run's fault
 * window (50..500 ms). After {@link cleanRun}, which numbers operations from 0.
 */
const fourFailures = (error: string): Operation[] =>
  [1, 2, 3, 4].map((i) =>
    op({
      kind: 'rotate-topic',
      topic: T.name,
      outcome: 'unknown',
      error,
      invokedAt: 300 + i * 10,
      completedAt: 450,
    }),
  );

/** The I9 messages of a run. */
const i9 = (r: RunRecord): string[] =>
  checkRun(r)
    .filter((v) => v.invariant === 'I9')
    .map((v) => v.message);

void describe('the chaos checker', () => {
  void it('passes a clean history', () => {
    assert.deepEqual(checkRun(cleanRun()), []);
  });

  void it('I1: a device left on an older key after the heal', () => {
    const run = cleanRun(
      {},
      {
        devices: [
          {
            name: 'd1',
            topicKeys: { [T.hash]: fp(2) },
            identityFingerprint: idFp(1),
            active: true,
          },
        ],
      },
    );
    const [v] = only(run, 'I1');
    assert.match(v?.message ?? '', /holds v2, latest v3/);
    assert.deepEqual(v?.devices, ['d1']);
  });

  void it('I1: an inactive (offline by design) device is not expected to converge', () => {
    const run = cleanRun(
      {},
      {
        devices: [{ name: 'd1', topicKeys: {}, identityFingerprint: idFp(1), active: false }],
      },
    );
    assert.deepEqual(checkRun(run), []);
  });

  void it('I2: a device applying v2 after v3', () => {
    const base = cleanRun();
    const run = { ...base, applies: [...base.applies, apply('d1', 2, 130), apply('d1', 3, 140)] };
    const [v] = only(run, 'I2');
    assert.match(v?.message ?? '', /v2 after v3/);
  });

  void it('cuts the list at 20 violations per invariant, and says how many more there were', () => {
    const base = cleanRun();
    // 25 devices' worth of "v2 after v3": one bug breaks the invariant on every device.
    const applies = [...base.applies];
    for (let i = 0; i < 25; i++)
      applies.push(apply('d1', 2, 200 + 2 * i), apply('d1', 3, 201 + 2 * i));
    // (That many commands also break the cap, I7: only I2's list is looked at.)
    const found = checkRun({ ...base, applies }).filter((v) => v.invariant === 'I2');
    assert.equal(found.length, 21);
    assert.match(
      found.at(-1)?.message ?? '',
      /^\d+ more violation\(s\) of I2 not listed \(\d+ in all; the first 20 are above\)$/,
    );
  });

  void it('I2: identity and C2 keys applied out of order, each in its own scope', () => {
    const base = cleanRun();
    const c2Fp = (v: number): string => `c2-v${v}`;
    const client = base.final.clients[0] as FinalState['clients'][number];
    const device = base.final.devices[0] as FinalState['devices'][number];
    const key = (type: 'SetIDKey' | 'SetC2Key', fingerprint: string, at: number): DeviceApply => ({
      device: 'd1',
      type,
      fingerprint,
      at,
    });
    // v1 and v2 of the identity key and of the C2 key; the device ends on both v2.
    const run = (applies: DeviceApply[]): RunRecord => ({
      ...base,
      applies: [...base.applies, ...applies],
      final: {
        ...base.final,
        c2Keys: [1, 2].map((v) => ({ version: v, fingerprint: c2Fp(v) })),
        clients: [
          {
            ...client,
            keyVersion: 2,
            deliveredKeyVersion: 2,
            keyVersions: [1, 2].map((v) => ({ version: v, fingerprint: idFp(v) })),
            c2KeyVersion: 2,
          },
        ],
        devices: [{ ...device, identityFingerprint: idFp(2), c2Fingerprint: c2Fp(2) }],
      },
    });
    // Control: in order, and interleaved with the topic's v3 (another scope), it holds.
    assert.deepEqual(
      checkRun(
        run([
          key('SetIDKey', idFp(1), 130),
          key('SetC2Key', c2Fp(1), 131),
          key('SetIDKey', idFp(2), 140),
          key('SetC2Key', c2Fp(2), 150),
        ]),
      ),
      [],
    );
    const found = only(
      run([
        key('SetIDKey', idFp(2), 130),
        key('SetC2Key', c2Fp(2), 131),
        key('SetIDKey', idFp(1), 140),
        key('SetC2Key', c2Fp(1), 150),
        key('SetIDKey', idFp(2), 160),
        key('SetC2Key', c2Fp(2), 170),
      ]),
      'I2',
    ).map((v) => v.message);
    assert.deepEqual(found, [
      'd1 applied identity key v1 after v2 (at +140 ms)',
      'd1 applied C2 key v1 after v2 (at +150 ms)',
    ]);
  });

  void it('I2: a key no committed version has', () => {
    const base = cleanRun();
    const run = {
      ...base,
      applies: [...base.applies, { ...apply('d1', 3, 150), fingerprint: 'forged' }],
    };
    assert.match(only(run, 'I2')[0]?.message ?? '', /no committed version/);
  });

  void it('I3: a gap in the stored versions, and one version answered with two keys', () => {
    const gap = cleanRun(
      {},
      {
        topics: [
          {
            ...T,
            currentVersion: 3,
            versions: [1, 3].map((v) => ({ version: v, fingerprint: fp(v) })),
          },
        ],
      },
    );
    const found = checkRun(gap).filter((v) => v.invariant === 'I3');
    assert.equal(found.length, 1);
    assert.match(found[0]?.message ?? '', /not 1\.\.3/);
    const base = cleanRun();
    const fork = {
      ...base,
      operations: [
        ...base.operations,
        rotate(3, 300, { requestId: 'other', fingerprint: 'fp-fork' }),
      ],
    };
    const forks = checkRun(fork).filter((v) => v.invariant === 'I3');
    assert.ok(forks.some((v) => /answered with two keys/.test(v.message)));
  });

  void it('I4: one request id rotating twice, and answering two versions', () => {
    const base = cleanRun();
    const twice = {
      ...base,
      final: {
        ...base.final,
        audit: [
          ...base.final.audit,
          { requestId: 'r3', operation: 'RotateTopicKey', subject: T.name, version: 4 },
        ],
      },
    };
    const [v] = only(
      {
        ...twice,
        final: {
          ...twice.final,
          topics: [
            {
              ...T,
              currentVersion: 4,
              versions: [1, 2, 3, 4].map((x) => ({ version: x, fingerprint: fp(x) })),
            },
          ],
          devices: [
            {
              name: 'd1',
              topicKeys: { [T.hash]: fp(4) },
              identityFingerprint: idFp(1),
              active: true,
            },
          ],
          clients: [
            {
              ...(base.final.clients[0] as FinalState['clients'][number]),
              memberships: [{ topicHash: T.hash, desired: 4, delivered: 4 }],
            },
          ],
        },
      },
      'I4',
    );
    assert.match(v?.message ?? '', /request r3 rotated 2 times/);
    assert.deepEqual(v?.operations, [1]);
    const replay = {
      ...base,
      operations: [...base.operations, rotate(2, 400, { requestId: 'r3' })],
    };
    const found = checkRun(replay).filter((x) => x.invariant === 'I4');
    assert.ok(found.some((x) => /answered v3 then v2/.test(x.message)));
  });

  void it('I5: an acknowledged version lost, and a stale read after an acknowledged rotation', () => {
    const lost = cleanRun(
      {},
      {
        topics: [
          {
            ...T,
            currentVersion: 2,
            versions: [1, 2].map((v) => ({ version: v, fingerprint: fp(v) })),
          },
        ],
        devices: [
          {
            name: 'd1',
            topicKeys: { [T.hash]: fp(2) },
            identityFingerprint: idFp(1),
            active: true,
          },
        ],
        clients: [
          {
            ...(cleanRun().final.clients[0] as FinalState['clients'][number]),
            memberships: [{ topicHash: T.hash, desired: 2, delivered: 2 }],
          },
        ],
      },
    );
    const i5 = checkRun(lost).filter((v) => v.invariant === 'I5');
    assert.ok(i5.some((v) => /v3 was acknowledged but the topic is now at v2/.test(v.message)));
    const base = cleanRun();
    const stale = {
      ...base,
      operations: [
        ...base.operations,
        op({
          kind: 'read-topic',
          topic: T.name,
          version: 2,
          fingerprint: fp(2),
          invokedAt: 300,
          completedAt: 310,
        }),
      ],
    };
    const [v] = only(stale, 'I5');
    assert.match(v?.message ?? '', /read v2 after v3/);
    assert.deepEqual(v?.operations, [1, 4]);
  });

  void it('I6: an outbox row past the deadline, a membership neither delivered nor reported failed', () => {
    const run = cleanRun(
      {},
      {
        outbox: [{ id: '7', ageMs: 60_000 }],
        clients: [
          {
            ...(cleanRun().final.clients[0] as FinalState['clients'][number]),
            memberships: [{ topicHash: T.hash, desired: 3, delivered: 2 }],
          },
        ],
      },
    );
    const found = only(run, 'I6');
    assert.equal(found.length, 2);
    const reported = cleanRun(
      {},
      {
        clients: [
          {
            ...(cleanRun().final.clients[0] as FinalState['clients'][number]),
            syncState: 'failed',
            failureReported: true,
            memberships: [{ topicHash: T.hash, desired: 3, delivered: 2 }],
          },
        ],
      },
    );
    assert.deepEqual(
      checkRun(reported).filter((v) => v.invariant === 'I6'),
      [],
    );
  });

  void it('I6: a failed device whose only delivery.failed report is of an earlier failure', () => {
    // Failed at 5000 (database clock) after a first failure reported at 1000 and retried: the
    // report of 1000 is not this failure's. The report written with the failure (the same
    // transaction, the same now()) is.
    const failed = (reports: number[]): RunRecord =>
      cleanRun(
        {},
        {
          clients: [
            {
              ...(cleanRun().final.clients[0] as FinalState['clients'][number]),
              syncState: 'failed',
              failureReported: reports.length > 0,
              failedAt: 5000,
              failureReports: reports.map((at) => ({
                at,
                command: 'SetTopicKey',
                target: `topic ${T.hash} v${at === 5000 ? 3 : 2}`,
              })),
              memberships: [{ topicHash: T.hash, desired: 3, delivered: 2 }],
            },
          ],
        },
      );
    const found = only(failed([1000]), 'I6');
    assert.equal(found.length, 1);
    assert.match(found[0]?.message ?? '', /predate its current failure/);
    assert.deepEqual(found[0]?.devices, ['d1']);
    only(failed([]), 'I6');
    // Controls: the current failure's own report, alone or after the earlier one.
    for (const reports of [[5000], [1000, 5000]])
      assert.deepEqual(
        checkRun(failed(reports)).filter((v) => v.invariant === 'I6'),
        [],
      );
  });

  void it('I7: a command received more often than the cap', () => {
    const base = cleanRun();
    const run = {
      ...base,
      applies: [...base.applies, ...[1, 2, 3].map((i) => apply('d1', 3, 120 + i))],
    };
    const [v] = only(run, 'I7');
    assert.match(v?.message ?? '', /4 times \(allowed 3\)/);
    assert.equal(checkRun({ ...run, networkCopies: 2 }).length, 0, 'duplicating network: allowed');
  });

  void it('I7: a re-join or resync opens one more allowance, a refused one none', () => {
    const base = cleanRun();
    // v3 six times in all: twice the cap of 3.
    const applies = [...base.applies, ...[1, 2, 3, 4, 5].map((i) => apply('d1', 3, 120 + i))];
    const again = (kind: 'join' | 'resync-client', outcome: 'ok' | 'fail'): Operation =>
      op({
        kind,
        client: 'd1',
        ...(kind === 'join' ? { topic: T.name } : {}),
        outcome,
        ...(outcome === 'fail' ? { error: 'HTTP 404 C2_NOT_FOUND' } : {}),
        invokedAt: 110,
        completedAt: 115,
      });
    const run = (extra: Operation): RunRecord => ({
      ...base,
      operations: [...base.operations, extra],
      applies,
    });
    assert.deepEqual(checkRun(run(again('join', 'ok'))), [], 'a re-join: the cap twice');
    assert.deepEqual(checkRun(run(again('resync-client', 'ok'))), [], 'a resync: the cap twice');
    for (const kind of ['join', 'resync-client'] as const)
      assert.equal(
        only(run(again(kind, 'fail')), 'I7')[0]?.message,
        'd1 received SetTopicKey aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa fp-v3 6 times (allowed 3)',
        `a refused ${kind} changed nothing`,
      );
    assert.equal(
      only({ ...run(again('join', 'ok')), applies: [...applies, apply('d1', 3, 130)] }, 'I7')[0]
        ?.message,
      'd1 received SetTopicKey aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa fp-v3 7 times (allowed 6)',
      "one past the re-join's allowance",
    );
  });

  void it('I7: the cap bounds SetC2Key too (public-key mode)', () => {
    const base = cleanRun();
    const c2 = (n: number): DeviceApply[] =>
      Array.from({ length: n }, (_, i) => ({
        device: 'd1',
        type: 'SetC2Key' as const,
        fingerprint: 'c2-v2',
        at: 130 + i,
      }));
    const c2Keys = [1, 2].map((v) => ({ version: v, fingerprint: `c2-v${v}` }));
    const run = (n: number): RunRecord => ({
      ...base,
      applies: [...base.applies, ...c2(n)],
      final: {
        ...base.final,
        c2Keys,
        clients: [{ ...(base.final.clients[0] as FinalState['clients'][number]), c2KeyVersion: 2 }],
        devices: [
          { ...(base.final.devices[0] as FinalState['devices'][number]), c2Fingerprint: 'c2-v2' },
        ],
      },
    });
    assert.deepEqual(checkRun(run(3)), [], 'the cap itself is allowed');
    const [v] = only(run(4), 'I7');
    assert.equal(v?.message, 'd1 received SetC2Key c2-v2 4 times (allowed 3)');
  });

  void it('I8: a place that could not be read fails, it does not pass unseen', () => {
    const run = cleanRun(
      {},
      { leaks: [{ where: 'event log', what: 'read failed: HTTP 503', unchecked: true }] },
    );
    const [v] = only(run, 'I8');
    assert.equal(
      v?.message,
      'event log could not be scanned for key material (read failed: HTTP 503)',
    );
  });

  void it('I8: a leak, and a key committed after a device left reaching it', () => {
    assert.match(
      only(cleanRun({}, { leaks: [{ where: 'queue Redis', what: 'a device key' }] }), 'I8')[0]
        ?.message ?? '',
      /queue Redis/,
    );
    const base = cleanRun();
    const leave = op({
      kind: 'leave',
      topic: T.name,
      client: 'd1',
      invokedAt: 105,
      completedAt: 110,
    });
    const after = rotate(4, 250);
    const run: RunRecord = {
      ...base,
      operations: [...base.operations, leave, after],
      applies: [...base.applies, apply('d1', 4, 260)],
      final: {
        ...base.final,
        topics: [
          {
            ...T,
            currentVersion: 4,
            versions: [1, 2, 3, 4].map((v) => ({ version: v, fingerprint: fp(v) })),
          },
        ],
        audit: [
          ...base.final.audit,
          { requestId: 'r4', operation: 'RotateTopicKey', subject: T.name, version: 4 },
        ],
        clients: [{ ...(base.final.clients[0] as FinalState['clients'][number]), memberships: [] }],
        devices: [{ name: 'd1', topicKeys: {}, identityFingerprint: idFp(1), active: true }],
      },
    };
    const [v] = only(run, 'I8');
    assert.match(v?.message ?? '', /left fleet\/t but received v4/);
    assert.deepEqual(v?.operations, [leave.id, after.id]);
    // v3 committed before the leave; a replay of its request id after the leave answers v3 again,
    // and its late delivery to the leaving device is no leak.
    const replay = rotate(3, 300);
    const late: RunRecord = {
      ...run,
      operations: [...base.operations, leave, replay],
      applies: [...base.applies, apply('d1', 3, 310)],
      final: { ...run.final, topics: base.final.topics, audit: base.final.audit },
    };
    assert.deepEqual(
      checkRun(late).filter((x) => x.invariant === 'I8'),
      [],
    );
    // A join invoked in the millisecond the leave returned (seed 14 of offline-device), or one
    // running alongside the leave (either may commit first), makes the device a member again:
    // what it gets afterwards is no leak. A join that was over before the leave began does not.
    const leaksWith = (
      invokedAt: number,
      completedAt: number,
      outcome: Operation['outcome'] = 'ok',
    ): number => {
      const join = op({
        kind: 'join',
        topic: T.name,
        client: 'd1',
        invokedAt,
        completedAt,
        outcome,
      });
      const operations = [...base.operations, join, leave, after];
      return checkRun({ ...run, operations }).filter((x) => x.invariant === 'I8').length;
    };
    assert.equal(leaksWith(110, 118), 0, 'joined in the millisecond the leave returned');
    assert.equal(leaksWith(104, 112), 0, 'joined alongside the leave');
    assert.equal(leaksWith(90, 100), 1, 'joined before the leave');
    assert.equal(leaksWith(90, 100, 'fail'), 1, 'a join refused before the leave');
    // A join that timed out before the leave may still be applied after it: its request can reach
    // a node late (held by a partition), so the device may be a member again.
    assert.equal(leaksWith(90, 100, 'unknown'), 0, 'a join whose outcome is unknown');
  });

  void it('I9: too many failures during the faults, and any failure after they settled', () => {
    const base = cleanRun();
    const failing = [1, 2].map((i) =>
      op({
        kind: 'rotate-topic',
        topic: T.name,
        outcome: 'unknown',
        error: 'socket hang up',
        invokedAt: 100 + i,
        completedAt: 200,
      }),
    );
    const during = checkRun({ ...base, operations: [...base.operations, ...failing] }).filter(
      (v) => v.invariant === 'I9',
    );
    assert.ok(during.some((v) => /failed during the faults/.test(v.message)));
    const late = op({
      kind: 'read-topic',
      topic: T.name,
      outcome: 'fail',
      error: 'HTTP 503',
      invokedAt: 5000,
      completedAt: 5001,
    });
    const settled = checkRun({ ...base, operations: [...base.operations, late] }).filter(
      (v) => v.invariant === 'I9',
    );
    assert.ok(settled.some((v) => /after the faults healed/.test(v.message)));
    const refused = op({
      kind: 'leave',
      topic: T.name,
      client: 'd1',
      outcome: 'fail',
      error: 'HTTP 404 C2_NOT_FOUND',
      invokedAt: 5000,
      completedAt: 5001,
    });
    assert.deepEqual(
      checkRun({ ...base, operations: [...base.operations, refused] }),
      [],
      'a 404 is not unavailability',
    );
  });

  void it('I9: a node that died of a fault', () => {
    const crash = '+120 ms: worker-2 exited with code 1 (not killed by the suite)';
    const [v] = only(cleanRun({}, { crashes: [crash] }), 'I9');
    assert.equal(v?.message, `a node died of a fault: ${crash}`);
  });

  void it('I9: the budget counts every call from the first fault to the heal, gaps included', () => {
    // Faults 50..100 and 400..450, healed at 500: a fault's effects outlast it (a restarted node
    // not yet ready, lapsed claims), so calls between faults count too, not only those inside.
    const base = cleanRun();
    const gap = [1, 2].map((i) =>
      op({
        kind: 'rotate-topic',
        topic: T.name,
        outcome: 'unknown',
        error: 'timeout',
        invokedAt: 200 + i,
        completedAt: 300,
      }),
    );
    const run: RunRecord = {
      ...base,
      operations: [...base.operations, ...gap],
      faults: [
        { id: 0, kind: 'kill-node', target: 'worker-1', startedAt: 50, endedAt: 100 },
        { id: 1, kind: 'kill-node', target: 'worker-2', startedAt: 400, endedAt: 450 },
      ],
    };
    const [v] = only(run, 'I9');
    assert.match(v?.message ?? '', /2 of 4 calls failed during the faults/);
  });

  void it('I9: calls invoked while PostgreSQL was down for a fault are outside the budget', () => {
    const base = cleanRun();
    const failing = fourFailures('timeout');
    const run = (kind: string): RunRecord => ({
      ...base,
      budget: { duringFaults: 0.5, settleMs: 1000 },
      operations: [...base.operations, ...failing],
      faults: [...base.faults, { id: 1, kind, target: kind, startedAt: 290, endedAt: 400 }],
    });
    assert.deepEqual(i9(run('restart-postgres')), [], 'a database outage is outside I9');
    const other = i9(run('restart-broker'));
    assert.equal(other.length, 1, 'the same failures during another fault count');
    assert.match(other[0] ?? '', /4 of 6 calls failed during the faults \(budget 50%\)/);
    // Outside the outage window the budget still holds: the outage ends before the failures.
    const early = run('restart-postgres');
    const missed = i9({
      ...early,
      faults: early.faults.map((f) => (f.id === 1 ? { ...f, startedAt: 100, endedAt: 200 } : f)),
    });
    assert.equal(missed.length, 1);
  });

  void it('I9: calls invoked while faults held every API node at once are outside the budget', () => {
    const base = cleanRun();
    const failing = fourFailures('socket hang up');
    const node = (id: number, kind: string, name: string, from: number, to: number) => ({
      id,
      kind,
      target: `${kind} ${name}`,
      startedAt: from,
      endedAt: to,
    });
    const run = (faults: FaultRecord[], apiNodes?: string[]): RunRecord => ({
      ...base,
      budget: { duringFaults: 0.5, settleMs: 1000 },
      operations: [...base.operations, ...failing],
      faults: [...base.faults, ...faults],
      ...(apiNodes === undefined ? {} : { apiNodes }),
    });
    const api = ['api-1', 'api-2'];
    // api-1 killed (until its restart is ready) while api-2 is cut off: no API node left.
    const both = [
      node(1, 'kill-node', 'api-1', 290, 380),
      node(2, 'partition-node', 'api-2', 305, 400),
    ];
    assert.deepEqual(i9(run(both, api)), [], 'every API node down: outside I9');
    const counted = /4 of 6 calls failed during the faults \(budget 50%\)/;
    // One API node down is I9's promise: the same failures count.
    assert.match(i9(run([both[0] as FaultRecord], api))[0] ?? '', counted);
    // A third API node still up: they count too.
    assert.match(i9(run(both, [...api, 'api-3']))[0] ?? '', counted);
    // A fault that was skipped (its target held) took nothing down.
    const skipped = [
      both[0] as FaultRecord,
      { ...(both[1] as FaultRecord), skipped: true as const },
    ];
    assert.match(i9(run(skipped, api))[0] ?? '', counted);
    // An older history without its API nodes exempts nothing.
    assert.match(i9(run(both))[0] ?? '', counted);
  });

  void it('A1: the automation observation recorded in the history is checked', () => {
    const due = (sec: number): string => new Date(Date.UTC(2026, 10, 26, 5, 0, sec)).toISOString();
    const firing = (
      sec: number,
    ): { id: string; dueAt: string; status: string; coalesced: number } => ({
      id: `f${sec}`,
      dueAt: due(sec),
      status: 'succeeded',
      coalesced: 0,
    });
    const held = cleanRun({
      automation: { intervalMs: 1000, firings: [firing(1), firing(2)], finalKeyVersion: 3 },
    });
    assert.deepEqual(checkRun(held), []);
    const skipped = cleanRun({
      automation: { intervalMs: 1000, firings: [firing(1), firing(3)], finalKeyVersion: 3 },
    });
    const [v] = only(skipped, 'A1');
    assert.match(v?.message ?? '', /1 slot\(s\) between .* never fired/);
  });
});
