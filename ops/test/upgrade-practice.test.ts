/**
 * The pure parts of the upgrade practice (ops/upgrade/): its command line, the roll's order, which
 * node lines count, and the checks over hand-written records: a clean roll passes, and each
 * breach (a key rolled back on a device, a command past the cap, a failed call no stopping node
 * explains, a re-flashed device left without a key, key material found, a warning, a crash) is
 * reported.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceApply, Operation, RunRecord } from '../../chaos/history.ts';
import { UsageError } from '../../bin/usage-args.ts';
import { classifyLine, isKnownOldWarning } from '../upgrade/node-lines.ts';
import { parseRollArgs } from '../upgrade/roll-args.ts';
import { checkRoll, refusedByStoppingNode } from '../upgrade/roll-checks.ts';
import type { OwnKeyRecord, RollRecord, RollStep } from '../upgrade/roll-history.ts';
import { reflashEveryMs, rollPlan } from '../upgrade/roll-plan.ts';
import { rollSummary } from '../upgrade/roll-report.ts';
import { servedBy } from '../upgrade/served-by.ts';
import { ringPeer } from '../upgrade/own-keys.ts';

void describe('upgrade practice: the command line', () => {
  void it('takes the defaults and the services of the environment', () => {
    const args = parseRollArgs(['--from', 'ad980f5'], { REDIS_URL: 'redis://10.0.0.1:6379' });
    assert.ok(args !== undefined);
    assert.equal(args.from, 'ad980f5');
    assert.deepEqual(
      [args.apiNodes, args.workers, args.redlock, args.basePort, args.devices, args.topics],
      [2, 2, 3, 0, 200, 4],
    );
    assert.equal(args.redisUrl, 'redis://10.0.0.1:6379');
    assert.equal(args.timeoutMs, 20 * 60_000);
    assert.equal(args.keep, false);
    assert.equal(args.dwellMs, 15_000);
    assert.equal(args.recordFile, undefined);
    assert.equal(args.mode, 'symmetric');
    assert.equal(args.reflashes, 10);
    assert.equal(args.ownKeyDevices, 0, 'symmetric mode: devices draw no key pairs');
  });

  void it('reads every option', () => {
    const args = parseRollArgs(
      [
        ...['--from', '/tmp/old', '--api', '3', '--workers', '1', '--redlock', '1'],
        ...['--base-port', '41000', '--devices', '300', '--new-clients', '0', '--topics', '2'],
        ...['--rotate-every-ms', '500', '--timeout-minutes', '5', '--keep'],
        ...['--release-dir', '/tmp/rel', '--dwell-seconds', '30', '--record', 'roll.json'],
        ...['--mode', 'public-key', '--reflashes', '0'],
      ],
      {},
    );
    assert.deepEqual(args, {
      from: '/tmp/old',
      releaseDir: '/tmp/rel',
      apiNodes: 3,
      workers: 1,
      redlock: 1,
      basePort: 41000,
      devices: 300,
      newClients: 0,
      reflashes: 0,
      mode: 'public-key',
      ownKeyDevices: 10,
      topics: 2,
      rotateEveryMs: 500,
      dwellMs: 30_000,
      recordFile: 'roll.json',
      timeoutMs: 5 * 60_000,
      keep: true,
      knownOldWarnings: [],
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/test',
      redisUrl: 'redis://127.0.0.1:6379',
      mqttUrl: 'mqtt://127.0.0.1:1883',
    });
  });

  void it('refuses a missing --from, counts out of bounds and unknown options', () => {
    const refused = (argv: string[], message: RegExp): void => {
      assert.throws(
        () => parseRollArgs(argv, {}),
        (err: unknown) => {
          assert.ok(err instanceof UsageError);
          assert.match(err.message, message);
          return true;
        },
      );
    };
    refused([], /--from is required/);
    refused(['--from', 'x', '--api', '5'], /--api must be between 1 and 4/);
    refused(['--from', 'x', '--workers', '0'], /--workers must be between 1 and 4/);
    refused(['--from', 'x', '--devices', '-3'], /--devices must be a whole number/);
    refused(['--from', 'x', '--redlock', '2'], /--redlock must be 1 or 3/);
    refused(['--from', 'x', '--base-port', '80'], /--base-port must be 0 or between/);
    refused(['--from', 'x', '--seed', '1'], /Unknown option '--seed'/);
    refused(['--from', 'x', '--mode', 'pubkey'], /--mode must be symmetric or public-key/);
    refused(['--from', 'x', '--reflashes', '101'], /--reflashes must be between 0 and 100/);
    refused(['--from', 'x', '--own-key-devices', '2'], /needs --mode public-key/);
    const pk = ['--from', 'x', '--mode', 'public-key', '--own-key-devices'];
    refused([...pk, '1'], /must be 0 or at least 2/);
    refused([...pk, '101'], /--own-key-devices must be between 0 and 100/);
    assert.equal(parseRollArgs([...pk, '0'], {})?.ownKeyDevices, 0);
    refused(['--from', 'x', '--known-old-warning', '('], /--known-old-warning \(: Invalid/);
    refused(['--from', 'x', '--known-old-warning', ''], /must not be empty/);
    assert.equal(parseRollArgs(['--help'], {}), undefined);
  });
});

void describe('upgrade practice: the roll plan', () => {
  void it('replaces every node, API nodes first, then rolls one of each role back', () => {
    assert.deepEqual(
      rollPlan(['api-1', 'api-2'], ['worker-1', 'worker-2']).map((s) => `${s.node}>${s.to}`),
      ['api-1>new', 'api-2>new', 'worker-1>new', 'worker-2>new', 'api-1>old', 'worker-1>old'],
    );
    assert.throws(() => rollPlan(['api-1'], []), RangeError);
  });

  void it('spreads the re-flashes over the whole roll, the rollback included', () => {
    // 6 steps of 15 s dwell (+2 s each) and 20 s of pauses: 122 s for 10 re-flashes.
    const every = reflashEveryMs(6, 15_000, 20_000, 10);
    assert.equal(every, 12_200);
    assert.ok(10 * every > 20_000 / 2 + 4 * 17_000, 'the last comes after the rollback began');
    assert.equal(reflashEveryMs(6, 1000, 0, 100), 2000, 'never closer than 2 s');
    assert.equal(reflashEveryMs(2, 1000, 0, 0), 6000, 'none asked: no division by zero');
  });
});

void describe('upgrade practice: node lines', () => {
  const line = (level: number, msg: string): string => JSON.stringify({ level, msg });

  void it('reports warnings, errors and stray stderr; counts the set-up warnings apart', () => {
    assert.equal(classifyLine('stdout', line(30, 'listening')), 'quiet');
    assert.equal(classifyLine('stdout', line(40, 'Redlock instance lost')), 'warning');
    assert.equal(classifyLine('stdout', line(50, 'delivery failed')), 'warning');
    assert.equal(
      classifyLine('stdout', line(40, 'API authentication is off (no ...)')),
      'expected',
    );
    assert.equal(classifyLine('stderr', 'TypeError: x is not a function'), 'warning');
    assert.equal(classifyLine('stdout', 'plain text'), 'quiet');
    assert.equal(classifyLine('stderr', ''), 'quiet');
  });

  void it('passes a known warning of the earlier release on its nodes only', () => {
    const args = parseRollArgs(
      ['--from', 'x', '--known-old-warning', '^Redlock instance lost', '--known-old-warning', 'b'],
      {},
    );
    const known = args?.knownOldWarnings ?? [];
    assert.equal(known.length, 2);
    const lost = line(40, 'Redlock instance lost');
    assert.equal(isKnownOldWarning(lost, 'old', known), true);
    assert.equal(isKnownOldWarning(lost, 'new', known), false, 'this release is still judged');
    assert.equal(isKnownOldWarning(line(40, 'delivery failed'), 'old', known), false);
    assert.equal(isKnownOldWarning('Redlock instance lost', 'old', known), false, 'a log line');
    assert.equal(isKnownOldWarning(lost, 'old', []), false);
  });
});

const T = { name: 'upgrade/t', hash: 'ab'.repeat(16) };
const fp = (v: number): string => `fp-v${v}`;
const API_1 = 'http://127.0.0.1:41010';
const API_2 = 'http://127.0.0.1:41020';

const rotate = (version: number, at: number, extra: Partial<Operation> = {}): Operation => ({
  id: version,
  process: 1,
  kind: 'rotate-topic',
  topic: T.name,
  requestId: `r${version}`,
  via: API_1,
  invokedAt: at,
  completedAt: at + 5,
  outcome: 'ok',
  version,
  fingerprint: fp(version),
  ...extra,
});

const apply = (version: number, at: number): DeviceApply => ({
  device: 'd1',
  type: 'SetTopicKey',
  topicHash: T.hash,
  fingerprint: fp(version),
  at,
});

/** The set-up join: every device starts a member of nothing. */
const JOIN: Operation = {
  id: 0,
  process: 0,
  kind: 'join',
  topic: T.name,
  client: 'd1',
  invokedAt: 0,
  completedAt: 2,
  outcome: 'ok',
};

/** api-1 replaced from 1000 ms (stopped at 1100, ready at 4000). */
const STEP: RollStep = {
  node: 'api-1',
  role: 'api',
  to: 'new',
  http: API_1,
  stoppingAt: 1000,
  stoppedAt: 1100,
  readyAt: 4000,
};

/** A clean roll: v1..v3 rotated through api-1, applied in order by d1, which holds v3. */
function cleanRoll(
  run: Partial<RunRecord> = {},
  extra: Partial<Omit<RollRecord, 'run'>> = {},
): RollRecord {
  return {
    from: 'ad980f5',
    to: 'this checkout',
    steps: [STEP],
    extraCalls: [{ kind: 'new-client', client: 'd1', invokedAt: 0, completedAt: 1, outcome: 'ok' }],
    nodeLines: [],
    expectedLines: 2,
    crashes: [],
    ...extra,
    run: {
      scenario: 'upgrade-practice',
      seed: 0,
      deliveryCap: 3,
      networkCopies: 1,
      budget: { duringFaults: 0, settleMs: 0 },
      healedAt: 6000,
      convergenceDeadlineMs: 10_000,
      operations: [JOIN, rotate(2, 500), rotate(3, 5000)],
      applies: [apply(1, 5), apply(2, 520), apply(3, 5020)],
      faults: [],
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
            keyVersions: [{ version: 1, fingerprint: 'id-v1' }],
            syncState: 'idle',
            c2KeyVersion: null,
            memberships: [{ topicHash: T.hash, desired: 3, delivered: 3 }],
            failureReported: false,
          },
        ],
        devices: [
          {
            name: 'd1',
            topicKeys: { [T.hash]: fp(3) },
            identityFingerprint: 'id-v1',
            active: true,
          },
        ],
        audit: [
          { requestId: 'r2', operation: 'RotateTopicKey', subject: T.name, version: 2 },
          { requestId: 'r3', operation: 'RotateTopicKey', subject: T.name, version: 3 },
        ],
        outbox: [],
        leaks: [],
        crashes: [],
        convergedAfterMs: 100,
      },
      ...run,
    },
  };
}

/** d1 re-flashed at `at`: the NewClient of its new key, as the fleet records it. */
const reflashOf = (at: number, extra: Partial<Operation> = {}): Operation => ({
  id: 9,
  process: 7,
  kind: 'reflash-client',
  client: 'd1',
  invokedAt: at,
  completedAt: at + 10,
  outcome: 'ok',
  ...extra,
});

const checks = (record: RollRecord): string[] => checkRoll(record).map((v) => v.check);

void describe('upgrade practice: the checks', () => {
  void it('passes a clean roll, and says so', () => {
    const record = cleanRoll();
    assert.deepEqual(checkRoll(record), []);
    assert.ok(rollSummary(record, []).includes('upgrade practice: PASSED (no violation)'));
  });

  void it('flags a device that applied an older key after a newer one (a rollback)', () => {
    const record = cleanRoll({ applies: [apply(1, 5), apply(3, 520), apply(2, 5020)] });
    const found = checkRoll(record);
    assert.ok(
      found.some(
        (v) => v.check === 'I2 (no regression)' && /d1 applied .* v2 after v3/.test(v.message),
      ),
      JSON.stringify(found),
    );
    assert.ok(rollSummary(record, found).some((l) => l.startsWith('upgrade practice: FAILED')));
  });

  void it('flags a command received more often than the retransmission cap', () => {
    const applies = [apply(1, 5), apply(2, 520), ...[0, 1, 2, 3].map((i) => apply(3, 5020 + i))];
    assert.ok(checks(cleanRoll({ applies })).includes('I7 (bounded retransmission)'));
  });

  void it('flags a device left on an older key', () => {
    const { final: clean } = cleanRoll().run;
    const final = {
      ...clean,
      devices: clean.devices.map((d) => ({ ...d, topicKeys: { [T.hash]: fp(2) } })),
    };
    assert.ok(checks(cleanRoll({ final })).includes('I1 (convergence)'));
  });

  void it('accepts a rotation the stopping node refused when its retry succeeded', () => {
    const { version: _, fingerprint: __, ...unanswered } = rotate(3, 1500);
    const refused: Operation = {
      ...unanswered,
      outcome: 'unknown',
      error: 'connect ECONNREFUSED 127.0.0.1:41011',
    };
    const retried = rotate(3, 1700, { id: 4, via: API_2 });
    const record = cleanRoll({ operations: [JOIN, rotate(2, 500), refused, retried] });
    assert.deepEqual(checkRoll(record), []);
  });

  void it('flags failed calls that no stopping node explains, or that were never retried', () => {
    const base = [JOIN, rotate(2, 500), rotate(3, 5000)];
    const calls = (extra: Operation): string[] =>
      checkRoll(cleanRoll({ operations: [...base, extra] }))
        .filter((v) => v.check === 'calls')
        .map((v) => v.message);
    const refused = { outcome: 'unknown' as const, error: 'connect ECONNREFUSED', requestId: 'r3' };
    // Refused, but long after the step ended.
    assert.equal(calls(rotate(3, 9000, { ...refused, id: 9 })).length, 1);
    // Refused by the other node, which was not stopping.
    assert.equal(calls(rotate(3, 1500, { ...refused, id: 9, via: API_2 })).length, 1);
    // A 4xx is the release's answer, never the roll's.
    assert.equal(
      calls(rotate(3, 1500, { id: 9, outcome: 'fail', error: 'HTTP 409 C2_CONFLICT' })).length,
      1,
    );
    // Refused in the step's window, but its request was never done on retry.
    const lost = calls(rotate(4, 1500, { ...refused, id: 9, requestId: 'r-lost' }));
    assert.equal(lost.length, 1);
    assert.match(lost[0] ?? '', /never done on retry/);
  });

  void it('judges a call through the balancer against any API node being replaced', () => {
    const viaLb = { invokedAt: 2000, error: 'socket hang up' };
    assert.equal(refusedByStoppingNode(viaLb, [STEP]), true);
    assert.equal(refusedByStoppingNode({ ...viaLb, invokedAt: 8000 }, [STEP]), false);
    assert.equal(refusedByStoppingNode(viaLb, [{ ...STEP, role: 'worker' }]), false);
  });

  void it('flags warnings and errors of the nodes, and unasked exits', () => {
    const record = cleanRoll(
      {},
      {
        nodeLines: [{ node: 'api-1', release: 'new', at: 1000, line: '{"level":40,"msg":"x"}' }],
        crashes: ['+3000 ms: cluster: worker-1 (pid 9) exited unexpectedly'],
      },
    );
    assert.deepEqual(checks(record), ['node logs', 'crashes']);
    assert.ok(
      rollSummary(record, checkRoll(record)).some((l) => l.includes('api-1 (new release)')),
    );
  });

  void it('flags a re-flash that failed outside a stopping node, naming it', () => {
    const reflash = reflashOf(8000, { outcome: 'fail', error: 'HTTP 400 C2_VALIDATION' });
    const record = cleanRoll({ operations: [...cleanRoll().run.operations, reflash] });
    const found = checkRoll(record).filter((v) => v.check === 'calls');
    assert.equal(found.length, 1);
    assert.match(
      found[0]?.message ?? '',
      /^failed outside a stopping node: reflash-client d1 via the balancer/,
    );
    assert.ok(rollSummary(record, found).some((l) => l.includes('re-flashes 0/1')));
  });

  void it('names the node and the release that served a re-flash sent to one API node', () => {
    const rollback: RollStep = { ...STEP, to: 'old', stoppingAt: 8000, stoppedAt: 8100 };
    const steps = [STEP, rollback];
    assert.deepEqual(servedBy({ via: API_1, invokedAt: 900 }, steps), {
      node: 'api-1',
      release: 'old',
    });
    assert.equal(servedBy({ via: API_1, invokedAt: 1100 }, steps)?.release, 'new');
    assert.equal(servedBy({ via: API_1, invokedAt: 9000 }, steps)?.release, 'old', 'rolled back');
    assert.equal(servedBy({ invokedAt: 900 }, steps), undefined, 'the balancer names no node');
    assert.equal(servedBy({ via: API_2, invokedAt: 900 }, steps), undefined, 'no step names it');

    // A failed re-flash is attributed to the release of the node it reached.
    const failed = reflashOf(6000, { outcome: 'fail', error: 'HTTP 500 C2_INTERNAL', via: API_1 });
    const ok = reflashOf(500, { id: 10, via: API_1 });
    const okLater = reflashOf(7000, { id: 11, via: API_1 });
    const record = cleanRoll({ operations: [...cleanRoll().run.operations, ok, failed, okLater] });
    const found = checkRoll(record).filter((v) => v.check === 'calls');
    assert.equal(found.length, 1);
    assert.match(
      found[0]?.message ?? '',
      /^failed outside a stopping node: reflash-client d1 via http:\/\/127\.0\.0\.1:41010 \(api-1, new release\) at \+6000 ms/,
    );
    const summary = rollSummary(record, found).join('\n');
    assert.match(summary, /re-flashes 2\/3 \(served by the old release 1, the new 1\)/);
  });

  void it('reads the keys a re-flash sends again as sent again, not as copies in flight (R5)', () => {
    // d1 holds v3; re-flashed at 5100, its new self gets v3 again 400 ms after the old one did.
    const applies = [apply(1, 5), apply(2, 520), apply(3, 5020), apply(3, 5420)];
    const twice = checks(cleanRoll({ applies }));
    assert.deepEqual(twice, ['R5 (one command in flight)'], 'without the re-flash: two in flight');
    const reflash = reflashOf(5100);
    const operations = [...cleanRoll().run.operations, reflash];
    assert.deepEqual(checkRoll(cleanRoll({ applies, operations })), []);
  });

  void it('gives a re-flashed device a new allowance of copies (I7), as a resync does', () => {
    // The cap is 3: a fourth copy of v3, 1.5 s apart each, is one too many without the re-flash.
    const applies = [
      apply(1, 5),
      apply(2, 520),
      ...[0, 1, 2, 3].map((i) => apply(3, 5020 + 1500 * i)),
    ];
    assert.deepEqual(checks(cleanRoll({ applies })), ['I7 (bounded retransmission)']);
    const reflash = reflashOf(8000);
    const operations = [...cleanRoll().run.operations, reflash];
    assert.deepEqual(checkRoll(cleanRoll({ applies, operations })), []);
  });

  void it('flags a re-flashed device that holds no key of a topic never rotated since', () => {
    // The steady topic of roll-workload.ts: only NewClient's resend can give the new device v1.
    const S = { name: 'upgrade/steady', hash: 'cd'.repeat(16) };
    const { final: clean } = cleanRoll().run;
    const final = {
      ...clean,
      topics: [
        ...clean.topics,
        { ...S, currentVersion: 1, versions: [{ version: 1, fingerprint: 's1' }] },
      ],
      clients: clean.clients.map((c) => ({
        ...c,
        memberships: [...c.memberships, { topicHash: S.hash, desired: 1, delivered: 1 }],
      })),
    };
    const operations = [...cleanRoll().run.operations, { ...JOIN, id: 8, topic: S.name }];
    const found = checkRoll(cleanRoll({ final, operations }));
    assert.ok(
      found.some(
        (v) => v.check === 'I1 (convergence)' && /upgrade\/steady: holds no key/.test(v.message),
      ),
      JSON.stringify(found),
    );
    const held = {
      ...final,
      devices: final.devices.map((d) => ({ ...d, topicKeys: { ...d.topicKeys, [S.hash]: 's1' } })),
    };
    assert.deepEqual(checkRoll(cleanRoll({ final: held, operations })), []);
  });

  void it('flags key material the secrecy scan found, and a place it could not read', () => {
    const { final: clean } = cleanRoll().run;
    const leaks = [
      { where: 'api-1 /metrics', what: 'a device key (64-character encoding)' },
      { where: 'redlock-1', what: 'read failed: ECONNREFUSED', unchecked: true },
    ];
    const record = cleanRoll({ final: { ...clean, leaks } });
    const found = checkRoll(record);
    assert.deepEqual(
      found.map((v) => v.check),
      ['I8 (secrecy)', 'I8 (secrecy)'],
    );
    assert.ok(
      rollSummary(record, found).includes(
        '  secrecy scan (I8): 1 finding(s), 1 place(s) not scanned',
      ),
    );
    assert.ok(rollSummary(cleanRoll(), []).includes('  secrecy scan (I8): no key material found'));
  });

  void it('names the mode, and counts C2 key rotations in public-key mode', () => {
    const c2: Operation = {
      id: 7,
      process: 6,
      kind: 'rotate-c2',
      requestId: 'c2-1',
      invokedAt: 600,
      completedAt: 620,
      outcome: 'ok',
    };
    const { run } = cleanRoll();
    const pk = cleanRoll({ operations: [...run.operations, c2] }, { mode: 'public-key' });
    const summary = rollSummary(pk, []);
    assert.ok(
      summary.some((l) => l.endsWith('(public-key mode)')),
      summary.join('\n'),
    );
    assert.ok(summary.some((l) => l.includes('C2 key rotations 1/1')));
    assert.ok(!rollSummary(cleanRoll(), []).some((l) => l.includes('C2 key rotations')));
  });
});

void describe('upgrade practice: devices that draw their own identity keys', () => {
  void it('links them in a ring: each reads the next one', () => {
    const ring = ['o0', 'o1', 'o2'];
    assert.deepEqual(
      ring.map((n) => ringPeer(ring, n)),
      ['o1', 'o2', 'o0'],
    );
    assert.throws(() => ringPeer(['o0'], 'o0'), RangeError);
    assert.throws(() => ringPeer(ring, 'd9'), RangeError);
  });

  /** d1 draws its own keys: it rotated to v2 through api-1 at 3000, and the roll ended at 5000. */
  function ownKeyRoll(ownKeys?: OwnKeyRecord): RollRecord {
    const base = cleanRoll();
    const own: Operation = {
      id: 20,
      process: 8,
      kind: 'rotate-client',
      client: 'd1',
      requestId: 'roll-own-1',
      via: API_1,
      invokedAt: 3000,
      completedAt: 3010,
      outcome: 'ok',
      version: 2,
      fingerprint: 'id-v2',
    };
    const { final } = base.run;
    return cleanRoll(
      {
        operations: [...base.run.operations, own],
        final: {
          ...final,
          clients: final.clients.map((c) => ({
            ...c,
            keyVersion: 2,
            deliveredKeyVersion: 2,
            keyVersions: [...c.keyVersions, { version: 2, fingerprint: 'id-v2' }],
          })),
          devices: final.devices.map((d) => ({ ...d, identityFingerprint: 'id-v2' })),
          audit: [
            ...final.audit,
            { requestId: 'roll-own-1', operation: 'RotateClientKey', subject: 'd1', version: 2 },
          ],
        },
      },
      {
        ownKeys: ownKeys ?? {
          devices: [{ name: 'd1', peer: 'd2' }],
          rolledAt: 5000,
          reads: [{ device: 'd1', peer: 'd2', topic: T.name }],
        },
      },
    );
  }

  void it('passes a device that rotated its own key, was reached after the roll and read', () => {
    const record = ownKeyRoll();
    assert.deepEqual(checkRoll(record), []);
    const summary = rollSummary(record, []);
    assert.ok(
      summary.includes(
        "  own-key devices: 1, own key rotations 1/1 (served by the old release 0, the new 1), commands refused as not authentic 0, reached after the roll 1/1, neighbours' messages read 1/1",
      ),
      summary.join('\n'),
    );
    assert.ok(
      summary.some((l) => l.includes('identity key rotations 0/0')),
      'its own rotations are not counted as the C2 drawing keys',
    );
  });

  void it('flags one that refused a command as not authentic: lost around its switch', () => {
    const base = ownKeyRoll();
    const lost: RollRecord = {
      ...base,
      run: {
        ...base.run,
        applies: [
          ...base.run.applies,
          { device: 'd1', type: 'rejected', error: 'NotAuthentic', at: 3020 },
          // Another refusal is no lost command of the switch (a stale retained message, say).
          { device: 'd1', type: 'rejected', error: 'TimestampTooOld', at: 3030 },
          { device: 'd1', type: 'rejected', error: 'NotAuthentic', at: 3040 },
        ],
      },
    };
    assert.deepEqual(
      checkRoll(lost).map((v) => `[${v.check}] ${v.message}`),
      [
        '[own keys] d1 refused 2 command(s) as not authentic (first at +3020 ms): lost around a rotation of its own key',
      ],
    );
    assert.ok(
      rollSummary(lost, []).some((l) => l.includes('commands refused as not authentic 2,')),
      'the summary counts them',
    );
  });

  void it('flags one that never rotated, was not reached after the roll, or could not read', () => {
    const own = (found: RollRecord): string[] =>
      checkRoll(found)
        .filter((v) => v.check === 'own keys')
        .map((v) => v.message);
    const base = ownKeyRoll();
    const ownKeys = base.ownKeys;
    assert.ok(ownKeys !== undefined);
    // Its rotation removed: nothing practised (and I1 says it holds a key the C2 lacks).
    const unrotated = {
      ...base,
      run: {
        ...base.run,
        operations: base.run.operations.filter((o) => o.kind !== 'rotate-client'),
      },
    };
    assert.match(own(unrotated).join('\n'), /d1 never rotated its own key/);
    // The roll ended after its last apply: the C2 never reached it under its own key.
    const unreached = ownKeyRoll({ ...ownKeys, rolledAt: 6000 });
    assert.deepEqual(own(unreached), [
      'd1 applied no command after the roll (from +6000 ms): the C2 did not reach it under its own key',
    ]);
    // Its neighbour's message did not verify (the neighbour's new public key never reached it).
    const unread = ownKeyRoll({
      ...ownKeys,
      reads: [{ device: 'd1', peer: 'd2', topic: T.name, error: 'InvalidSignature' }],
    });
    assert.deepEqual(own(unread), [
      "d1 could not read d2's message on upgrade/t after the roll: InvalidSignature",
    ]);
    assert.deepEqual(own(ownKeyRoll({ ...ownKeys, reads: [] })), [
      'd1 read no message of its neighbour',
    ]);
  });
});
