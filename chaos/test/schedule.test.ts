/**
 * Replay: the same seed gives the same fault schedule for every scenario, another seed another
 * one; every fault stays within the run; the command line is checked.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseChaosArgs, UsageError } from '../main.ts';
import { Rng } from '../rng.ts';
import { SCENARIOS, scenarioNamed, type PlanContext } from '../scenarios.ts';

const context = (seed: number, durationMs = 30_000): PlanContext => ({
  rng: new Rng(seed).fork('faults'),
  durationMs,
  apiNodes: ['api-1', 'api-2'],
  workers: ['worker-1', 'worker-2'],
  redlock: ['redlock-1', 'redlock-2', 'redlock-3'],
  devices: 6,
});

void describe('fault schedules', () => {
  void it('are the same for the same seed, and differ between seeds', () => {
    for (const s of SCENARIOS) {
      assert.deepEqual(s.plan(context(42)), s.plan(context(42)), s.name);
    }
    const differ = SCENARIOS.filter(
      (s) => JSON.stringify(s.plan(context(1))) !== JSON.stringify(s.plan(context(2))),
    );
    assert.ok(differ.length >= SCENARIOS.length - 1, 'seeds change the schedules');
  });

  void it('keep every fault inside the run, each healed before it ends', () => {
    for (const durationMs of [8000, 30_000, 120_000]) {
      for (const s of SCENARIOS) {
        const plan = s.plan(context(3, durationMs));
        assert.ok(plan.length > 0, `${s.name} injects something`);
        for (const f of plan) {
          assert.ok(f.atMs >= 0 && f.durationMs > 0, s.name);
          assert.ok(f.atMs + f.durationMs <= durationMs, `${s.name}: ${JSON.stringify(f)}`);
        }
      }
    }
  });

  void it('cut one node off the network in node-partition, one partition at a time, past the leases', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const plan = scenarioNamed('node-partition')?.plan(context(seed, 30_000)) ?? [];
      assert.ok(plan.length >= 2, 'several partitions in 30 s');
      for (const f of plan) {
        assert.equal(f.fault.kind, 'partition-node');
        assert.ok(f.durationMs >= 5000, 'longer than the 4 s lock lease and device claims');
      }
      const sorted = [...plan].sort((a, b) => a.atMs - b.atMs);
      sorted.slice(1).forEach((f, i) => {
        const prev = sorted[i];
        assert.ok(prev !== undefined && prev.atMs + prev.durationMs <= f.atMs, 'one at a time');
      });
    }
  });

  void it('cover the scenarios the issue asks for', () => {
    assert.deepEqual(
      SCENARIOS.map((s) => s.name),
      [
        'concurrent-rotations',
        'worker-crash',
        'api-crash',
        'pause-lease-expiry',
        'node-partition',
        'redis-failover',
        'postgres-restart',
        'broker-restart',
        'reorder-and-duplicate',
        'clock-skew',
        'offline-device',
        'automation-leader-kill',
        'c2-key-rotation',
        'mixed',
      ],
    );
  });
});

void describe('npm run chaos arguments', () => {
  void it('parses a scenario, a seed and a duration; all runs every scenario', () => {
    const args = parseChaosArgs(['--scenario', 'api-crash', '--seed', '9', '--duration', '12']);
    assert.ok(args !== undefined);
    assert.equal(args.scenarios[0]?.name, 'api-crash');
    assert.equal(args.seed, 9);
    assert.equal(args.durationS, 12);
    assert.equal(parseChaosArgs(['--scenario', 'all'])?.scenarios.length, SCENARIOS.length);
    assert.equal(parseChaosArgs(['--help']), undefined);
  });

  void it('refuses unknown scenarios, bad numbers and unknown test faults', () => {
    for (const argv of [
      [],
      ['--scenario', 'nope'],
      ['--scenario', 'all', '--seed', '-1'],
      ['--scenario', 'all', '--duration', '1'],
      ['--scenario', 'all', '--test-faults', 'break-everything'],
      ['--scenario', 'all', '--bogus'],
    ])
      assert.throws(() => parseChaosArgs(argv), UsageError, argv.join(' '));
  });
});
