/**
 * Violations an audit of the checker found passing unseen, each on a hand-written history, with
 * the control that a correct run of the same shape still passes: an acknowledged join never
 * stored (I5), two copies of one command in flight at once (R5), a history missing required
 * fields (`--check`), automation that stops for good or fires off its grid (A1), a device
 * holding keys of a topic it never joined (I8), client and C2 key rotations lost or answered
 * with another key (I5, I3), a device whose client row vanished (I1).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkAutomation, type ObservedFiring } from '../automation-check.ts';
import { CheckFileError, readHistory } from '../check-file.ts';
import { checkRun } from '../checker.ts';
import type {
  DeviceApply,
  FaultRecord,
  FinalClient,
  FinalState,
  Operation,
  RunRecord,
} from '../history.ts';

const T = { name: 'fleet/t', hash: 'aa'.repeat(16) };
const U = { name: 'fleet/u', hash: 'bb'.repeat(16) };
const fp = (v: number): string => `fp-v${v}`;
const ufp = (v: number): string => `u-v${v}`;
const idFp = (v: number): string => `id-v${v}`;

let nextId = 0;
function op(fields: Partial<Operation> & Pick<Operation, 'kind'>): Operation {
  return { id: nextId++, process: 0, invokedAt: 0, completedAt: 1, outcome: 'ok', ...fields };
}

const setKey = (device: string, hash: string, fingerprint: string, at: number): DeviceApply => ({
  device,
  type: 'SetTopicKey',
  topicHash: hash,
  fingerprint,
  at,
});

/** The database-latency fault of `concurrent-rotations`: it leaves delivery alone. */
const dbLatency: FaultRecord = {
  id: 0,
  kind: 'network',
  target: 'network postgres upstream {"latencyMs":13,"jitterMs":5}',
  startedAt: 50,
  endedAt: 3000,
};

function client(name: string, fields: Partial<FinalClient> = {}): FinalClient {
  return {
    name,
    status: 'active',
    keyVersion: 1,
    deliveredKeyVersion: 1,
    keyVersions: [{ version: 1, fingerprint: idFp(1) }],
    syncState: 'idle',
    c2KeyVersion: null,
    memberships: [{ topicHash: T.hash, desired: 2, delivered: 2 }],
    failureReported: false,
    ...fields,
  };
}

/**
 * A clean run: topics t (v1, v2 at +3 s) and u (v1); d1 joined t at set-up and got v1 then v2;
 * topic u has no member. Extra operations, applies and final-state fields come from the caller.
 */
function run(
  extra: { operations?: Operation[]; applies?: DeviceApply[]; record?: Partial<RunRecord> } = {},
  final: Partial<FinalState> = {},
): RunRecord {
  nextId = 0;
  const operations = [
    op({ kind: 'join', topic: T.name, client: 'd1', invokedAt: 0, completedAt: 2 }),
    op({
      kind: 'rotate-topic',
      topic: T.name,
      requestId: 'r2',
      version: 2,
      fingerprint: fp(2),
      invokedAt: 3000,
      completedAt: 3005,
    }),
  ];
  return {
    scenario: 'unit',
    seed: 1,
    deliveryCap: 5,
    networkCopies: 1,
    budget: { duringFaults: 0.5, settleMs: 1000 },
    healedAt: 5000,
    convergenceDeadlineMs: 20_000,
    operations: [...operations, ...(extra.operations ?? [])],
    applies: [setKey('d1', T.hash, fp(1), 5), setKey('d1', T.hash, fp(2), 3010)].concat(
      extra.applies ?? [],
    ),
    faults: [dbLatency],
    final: {
      c2Keys: [],
      topics: [
        {
          ...T,
          currentVersion: 2,
          versions: [1, 2].map((v) => ({ version: v, fingerprint: fp(v) })),
        },
        { ...U, currentVersion: 1, versions: [{ version: 1, fingerprint: ufp(1) }] },
      ],
      clients: [client('d1')],
      devices: [
        { name: 'd1', topicKeys: { [T.hash]: fp(2) }, identityFingerprint: idFp(1), active: true },
      ],
      audit: [{ requestId: 'r2', operation: 'RotateTopicKey', subject: T.name, version: 2 }],
      outbox: [],
      leaks: [],
      crashes: [],
      convergedAfterMs: 100,
      ...final,
    },
    ...extra.record,
  };
}

const found = (record: RunRecord): string[] =>
  checkRun(record).map((v) => `${v.invariant}: ${v.message}`);

void describe('gaps the audit found', () => {
  void it('the clean base history passes', () => {
    assert.deepEqual(found(run()), []);
  });

  void it('I5: a join acknowledged but never stored, and a leave acknowledged but undone', () => {
    const joinU = op({
      kind: 'join',
      topic: U.name,
      client: 'd1',
      invokedAt: 100,
      completedAt: 120,
    });
    const lost = found(run({ operations: [joinU] }));
    assert.ok(
      lost.some((m) =>
        /^I5: d1: joining fleet\/u was acknowledged .* not a member at the end/.test(m),
      ),
      lost.join('\n'),
    );
    // Control: stored (and delivered), it passes.
    const stored = run(
      { operations: [joinU], applies: [setKey('d1', U.hash, ufp(1), 130)] },
      {
        clients: [
          client('d1', {
            memberships: [
              { topicHash: T.hash, desired: 2, delivered: 2 },
              { topicHash: U.hash, desired: 1, delivered: 1 },
            ],
          }),
        ],
        devices: [
          {
            name: 'd1',
            topicKeys: { [T.hash]: fp(2), [U.hash]: ufp(1) },
            identityFingerprint: idFp(1),
            active: true,
          },
        ],
      },
    );
    assert.deepEqual(found(stored), []);
    // A leave acknowledged, then the membership still there.
    const leaveT = op({
      kind: 'leave',
      topic: T.name,
      client: 'd1',
      invokedAt: 200,
      completedAt: 220,
    });
    const undone = found(run({ operations: [leaveT] }));
    assert.ok(
      undone.some((m) => /^I5: d1: leaving fleet\/t was acknowledged .* still a member/.test(m)),
      undone.join('\n'),
    );
  });

  void it('I5: joins and leaves the history does not order are not judged', () => {
    // A leave overlapping the join: either may have committed last.
    const overlapping = run({
      operations: [
        op({ kind: 'join', topic: U.name, client: 'd1', invokedAt: 100, completedAt: 150 }),
        op({ kind: 'leave', topic: U.name, client: 'd1', invokedAt: 120, completedAt: 140 }),
      ],
    });
    assert.deepEqual(found(overlapping), []);
    // A leave whose outcome is unknown may commit long after the join it preceded.
    const unknownLeave = run({
      operations: [
        op({
          kind: 'leave',
          topic: U.name,
          client: 'd1',
          invokedAt: 50,
          completedAt: 90,
          outcome: 'unknown',
        }),
        op({ kind: 'join', topic: U.name, client: 'd1', invokedAt: 100, completedAt: 150 }),
      ],
    });
    assert.deepEqual(found(unknownLeave), []);
  });

  void it('R5: two copies of one command a few ms apart where nothing may repeat a PUBLISH', () => {
    const twice = run({ applies: [setKey('d1', T.hash, fp(2), 3025)] });
    const r5 = found(twice);
    assert.ok(
      r5.some((m) => /^R5: d1 received SetTopicKey a+ fp-v2 twice 15 ms apart/.test(m)),
      r5.join('\n'),
    );
    // Controls: a duplicating network, a worker partitioned (its held PUBLISH may flow late), a
    // re-join around the copies, or copies a retransmission apart are all legitimate.
    assert.deepEqual(
      found({ ...twice, networkCopies: 2 }).filter((m) => m.startsWith('R5')),
      [],
    );
    const partition: FaultRecord = {
      id: 1,
      kind: 'partition-node',
      target: 'partition-node worker-1',
      startedAt: 100,
      endedAt: 6000,
    };
    assert.deepEqual(found({ ...twice, faults: [dbLatency, partition] }), []);
    const apiPartition = { ...partition, target: 'partition-node api-2' };
    assert.ok(
      found({ ...twice, faults: [dbLatency, apiPartition] }).some((m) => m.startsWith('R5')),
    );
    const rejoin = run({
      operations: [
        op({ kind: 'leave', topic: T.name, client: 'd1', invokedAt: 3012, completedAt: 3015 }),
        op({ kind: 'join', topic: T.name, client: 'd1', invokedAt: 3016, completedAt: 3020 }),
      ],
      applies: [setKey('d1', T.hash, fp(2), 3025)],
    });
    assert.deepEqual(found(rejoin), []);
    assert.deepEqual(found(run({ applies: [setKey('d1', T.hash, fp(2), 6100)] })), []);
  });

  void it('I8: a key of a topic the device never joined, whatever its version', () => {
    const T2versions = [1, 2].map((v) => ({ version: v, fingerprint: ufp(v) }));
    const old = found(
      run(
        { applies: [setKey('d1', U.hash, ufp(1), 150)] },
        {
          topics: [
            {
              ...T,
              currentVersion: 2,
              versions: [1, 2].map((v) => ({ version: v, fingerprint: fp(v) })),
            },
            { ...U, currentVersion: 2, versions: T2versions },
          ],
          devices: [
            {
              name: 'd1',
              topicKeys: { [T.hash]: fp(2), [U.hash]: ufp(1) },
              identityFingerprint: idFp(1),
              active: true,
            },
          ],
        },
      ),
    );
    assert.ok(
      old.some((m) => /^I8: d1 received fleet\/u v1 at \+150 ms without ever joining it/.test(m)),
      old.join('\n'),
    );
    // A key received before the first join was even asked for.
    const early = found(
      run({
        operations: [
          op({ kind: 'join', topic: U.name, client: 'd1', invokedAt: 400, completedAt: 410 }),
        ],
        applies: [setKey('d1', U.hash, ufp(1), 150)],
      }),
    );
    assert.ok(
      early.some((m) => /^I8: d1 received fleet\/u v1 at \+150 ms before it first asked/.test(m)),
      early.join('\n'),
    );
  });

  void it('I5 and I3: client and C2 key rotations acknowledged but lost, or answered with another key', () => {
    const rotateClient = op({
      kind: 'rotate-client',
      client: 'd1',
      requestId: 'cli-1',
      version: 2,
      fingerprint: idFp(2),
      invokedAt: 150,
      completedAt: 160,
    });
    const lost = found(run({ operations: [rotateClient] }));
    assert.ok(
      lost.some((m) =>
        /^I5: d1: identity key v2 was acknowledged but the client is now at v1/.test(m),
      ),
      lost.join('\n'),
    );
    const forged = found(
      run({ operations: [{ ...rotateClient, version: 1, fingerprint: 'forged' }] }),
    );
    assert.ok(
      forged.some((m) => /^I3: d1 identity key: v1 answered forged but id-v1 is stored/.test(m)),
      forged.join('\n'),
    );
    const gap = found(
      run(
        {},
        {
          clients: [
            client('d1', {
              keyVersion: 3,
              deliveredKeyVersion: 3,
              keyVersions: [1, 3].map((v) => ({ version: v, fingerprint: idFp(v) })),
            }),
          ],
          devices: [
            {
              name: 'd1',
              topicKeys: { [T.hash]: fp(2) },
              identityFingerprint: idFp(3),
              active: true,
            },
          ],
        },
      ),
    );
    assert.ok(
      gap.some((m) => /^I3: d1: stored identity key versions \[1,3\] are not 1\.\.3/.test(m)),
      gap.join('\n'),
    );
    const c2 = found(
      run(
        {
          operations: [
            op({
              kind: 'rotate-c2',
              requestId: 'c2-1',
              version: 2,
              fingerprint: 'c2-v2',
              invokedAt: 150,
              completedAt: 160,
            }),
          ],
        },
        {
          c2Keys: [{ version: 1, fingerprint: 'c2-v1' }],
          clients: [client('d1', { c2KeyVersion: 1 })],
          devices: [
            {
              name: 'd1',
              topicKeys: { [T.hash]: fp(2) },
              identityFingerprint: idFp(1),
              c2Fingerprint: 'c2-v1',
              active: true,
            },
          ],
        },
      ),
    );
    assert.ok(
      c2.some((m) => /^I5: C2 key v2 was acknowledged but c2_keys ends at v1/.test(m)),
      c2.join('\n'),
    );
    // NewC2Key answers nothing over HTTP: its version comes from the audit log (R1 writes the
    // row, with the request id, in the rotation's transaction).
    const c2op = op({
      kind: 'rotate-c2',
      requestId: 'c2-2',
      invokedAt: 150,
      completedAt: 160,
    });
    const c2final = (c2Keys: number[], audited: boolean): Partial<FinalState> => ({
      c2Keys: c2Keys.map((v) => ({ version: v, fingerprint: `c2-v${v}` })),
      clients: [client('d1', { c2KeyVersion: c2Keys.at(-1) ?? null })],
      devices: [
        {
          name: 'd1',
          topicKeys: { [T.hash]: fp(2) },
          identityFingerprint: idFp(1),
          c2Fingerprint: `c2-v${c2Keys.at(-1) ?? 0}`,
          active: true,
        },
      ],
      audit: [
        { requestId: 'r2', operation: 'RotateTopicKey', subject: T.name, version: 2 },
        ...(audited
          ? [{ requestId: 'c2-2', operation: 'NewC2Key', subject: 'c2', version: 2 }]
          : []),
      ],
    });
    const unaudited = found(run({ operations: [c2op] }, c2final([1], false)));
    assert.ok(
      unaudited.some((m) =>
        /^I5: NewC2Key request c2-2 was acknowledged but the audit log has no/.test(m),
      ),
      unaudited.join('\n'),
    );
    const c2lost = found(run({ operations: [c2op] }, c2final([1], true)));
    assert.ok(
      c2lost.some((m) =>
        /^I5: acknowledged C2 key v2 \(request c2-2, per the audit log\) is missing/.test(m),
      ),
      c2lost.join('\n'),
    );
    assert.deepEqual(found(run({ operations: [c2op] }, c2final([1, 2], true))), []);
    // Control: stored, delivered and held, the rotation passes.
    const kept = run(
      {
        operations: [rotateClient],
        applies: [{ device: 'd1', type: 'SetIDKey', fingerprint: idFp(2), at: 170 }],
      },
      {
        clients: [
          client('d1', {
            keyVersion: 2,
            deliveredKeyVersion: 2,
            keyVersions: [1, 2].map((v) => ({ version: v, fingerprint: idFp(v) })),
          }),
        ],
        devices: [
          {
            name: 'd1',
            topicKeys: { [T.hash]: fp(2) },
            identityFingerprint: idFp(2),
            active: true,
          },
        ],
      },
    );
    assert.deepEqual(found(kept), []);
  });

  void it('I1: an active device whose client row is gone is reported, not skipped', () => {
    const gone = found(run({}, { clients: [] }));
    assert.ok(
      gone.some((m) => /^I1: d1 has no client row at the end/.test(m)),
      gone.join('\n'),
    );
  });
});

const due = (s: number): string =>
  new Date(Date.UTC(2026, 10, 26, 5, 0, 0) + s * 1000).toISOString();
const firing = (s: number, extra: Partial<ObservedFiring> = {}): ObservedFiring => ({
  id: `f${s}`,
  dueAt: due(s),
  status: 'succeeded',
  coalesced: 1,
  done: 1,
  ...extra,
});

void describe('A1 gaps the audit found', () => {
  // The heal at +5 s, the rule disabled at +30 s: every slot due until +25 s must have fired.
  const ends = { healedAt: due(5), disabledAt: due(30) };
  const slots = (from: number, to: number, extra: Partial<ObservedFiring> = {}): ObservedFiring[] =>
    Array.from({ length: to - from + 1 }, (_, i) => firing(from + i, extra));

  void it('holds when every slot until shortly before the disabling fired', () => {
    const firings = [...slots(1, 27), firing(28, { status: 'aborted', done: 0 })];
    assert.deepEqual(
      checkAutomation({ intervalMs: 1000, firings, finalKeyVersion: 28, ...ends }),
      [],
    );
  });

  void it('reports an engine that stopped firing for good', () => {
    const found = checkAutomation({
      intervalMs: 1000,
      firings: slots(1, 4),
      finalKeyVersion: 5,
      ...ends,
    }).map((v) => v.message);
    assert.ok(
      found.some((m) => /^21 slot\(s\) due after the last firing .* never fired/.test(m)),
      found.join('\n'),
    );
  });

  void it('reports trailing firings aborted long before the disabling', () => {
    const firings = [...slots(1, 2), ...slots(3, 26, { status: 'aborted', done: 0 })];
    const found = checkAutomation({ intervalMs: 1000, firings, finalKeyVersion: 3, ...ends }).map(
      (v) => v.message,
    );
    assert.ok(
      found.some((m) => /firing f3 .* ended aborted, not succeeded/.test(m)),
      found.join('\n'),
    );
  });

  void it('reports a slot fired again at a due time off the grid, and one skipped slot', () => {
    const offGrid = checkAutomation({
      intervalMs: 1000,
      firings: [firing(1), { ...firing(1.4), id: 'dup' }, firing(2)],
      finalKeyVersion: 4,
    }).map((v) => v.message);
    assert.ok(
      offGrid.some((m) => /firing dup is due at .*, off the rule's grid/.test(m)),
      offGrid.join('\n'),
    );
    // Firings as the engine reports them (coalesced 1): a single missing slot is still a gap.
    const skipped = checkAutomation({
      intervalMs: 1000,
      firings: [firing(1), firing(3)],
      finalKeyVersion: 3,
    }).map((v) => v.message);
    assert.deepEqual(skipped, [`1 slot(s) between ${due(1)} and ${due(3)} never fired`]);
  });
});

void describe('--check: a history missing a field the checker reads', () => {
  const dir = mkdtempSync(join(tmpdir(), 'e4c2-chaos-check-'));
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const write = (name: string, value: unknown): string => {
    const file = join(dir, name);
    writeFileSync(file, JSON.stringify(value));
    return file;
  };
  const rejects = async (file: string, pattern: RegExp): Promise<void> => {
    await assert.rejects(readHistory(file), (err: unknown) => {
      assert.ok(err instanceof CheckFileError, String(err));
      assert.equal(err.code, 2);
      assert.match(err.message, pattern);
      return true;
    });
  };

  void it('fails clearly instead of passing the checks that need it', async () => {
    const { convergenceDeadlineMs: _deadline, ...noDeadline } = run();
    await rejects(write('no-deadline.json', noDeadline), /no number "convergenceDeadlineMs"/);
    const base = run();
    await rejects(
      write('no-budget-rate.json', { ...base, budget: { settleMs: 1000 } }),
      /budget has no number "duringFaults"/,
    );
    await rejects(
      write('bad-op.json', { ...base, operations: [{ id: 0, kind: 'join' }] }),
      /"operations"\[0\] has no string "outcome"/,
    );
    await rejects(
      write('no-crashes.json', { ...base, final: { ...base.final, crashes: undefined } }),
      /final state has no "crashes" list/,
    );
    // The API nodes are optional (older histories), but a wrong type is no list of names.
    await rejects(
      write('bad-api-nodes.json', { ...base, apiNodes: 'api-1' }),
      /"apiNodes" is not a list of node names/,
    );
    // The failure times of I6 are optional too, but must be times.
    const client = (base.final.clients[0] ?? {}) as Record<string, unknown>;
    const withClient = (fields: Record<string, unknown>): unknown => ({
      ...base,
      final: { ...base.final, clients: [{ ...client, ...fields }] },
    });
    await rejects(
      write('bad-failed-at.json', withClient({ failedAt: '5000' })),
      /"clients"\[0\] has a "failedAt" that is no number/,
    );
    await rejects(
      write('bad-reports.json', withClient({ failedAt: 5000, failureReports: [{ at: 'x' }] })),
      /"clients"\[0\] has "failureReports" that are not a list/,
    );
    const timed = withClient({ failedAt: null, failureReports: [{ at: 1, command: 'SetIDKey' }] });
    assert.equal((await readHistory(write('timed.json', timed))).scenario, 'unit');
    // Control: the complete history reads back, with or without its API nodes.
    assert.equal((await readHistory(write('complete.json', base))).scenario, 'unit');
    const named = await readHistory(write('named.json', { ...base, apiNodes: ['api-1'] }));
    assert.deepEqual(named.apiNodes, ['api-1']);
  });
});
