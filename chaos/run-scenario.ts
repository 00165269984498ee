/**
 * Runs one scenario on a running environment: a fresh fleet (devices, topics, memberships), the
 * workload and the seeded fault schedule for the duration, the heal, the final writes (one more
 * rotation per topic; a resync of the fleet where the scenario loses commands on purpose), the
 * wait for convergence, then the final state and the checker.
 */
import { randomBytes } from 'node:crypto';
import { httpJson } from '../bin/test/support/http-json.ts';
import { AutomationProbe } from './automation-probe.ts';
import { ChaosDevice } from './chaos-device.ts';
import { checkRun, type Violation } from './checker.ts';
import { Driver, readC2PublicKey, runWorkload } from './driver.ts';
import { NODE_SETTINGS, type ChaosEnvironment } from './environment.ts';
import { readDatabase, scanForSecrets, type NodeOutput } from './final-state.ts';
import type { DeviceApply, FaultRecord, FinalState, RunRecord } from './history.ts';
import { describeFault, injectorFor, SKIPPED } from './injectors.ts';
import { Rng } from './rng.ts';
import type { Scenario, ScheduledFault } from './scenarios.ts';
import { workloadStop } from './workload-window.ts';

/** Options of one scenario run. */
export interface RunOptions {
  readonly seed: number;
  readonly durationMs: number;
  /** Longest wait for convergence after the heal (I1, I6). */
  readonly convergenceDeadlineMs: number;
  readonly devices: number;
  readonly topics: number;
  readonly processes: number;
  readonly progress: (line: string) => void;
  /** Node output captured so far (for the secrecy scan). */
  /** What the nodes wrote so far, and how many lines were not kept (over the cap). */
  readonly nodeOutput: () => NodeOutput;
}

/** What a scenario run produced. */
export interface ScenarioResult {
  readonly record: RunRecord;
  readonly schedule: readonly ScheduledFault[];
  readonly violations: readonly Violation[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Repeats `task` until it returns true or `timeoutMs` passed. */
async function until(
  task: () => Promise<boolean>,
  timeoutMs: number,
  everyMs = 300,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await task().catch(() => false)) return true;
    if (Date.now() > deadline) return false;
    await sleep(everyMs);
  }
}

/** Runs `scenario` once. */
export async function runScenario(
  env: ChaosEnvironment,
  scenario: Scenario,
  options: RunOptions,
): Promise<ScenarioResult> {
  const started = Date.now();
  const elapsed = (): number => Date.now() - started;
  const rng = new Rng(options.seed);
  const lb = env.cluster.lb.http;
  const tag = `${scenario.name}-${options.seed}-${randomBytes(3).toString('hex')}`;
  const applies: DeviceApply[] = [];
  const driver = new Driver({ base: lb, elapsed, timeoutMs: 8000 });

  // The fleet: devices with persistent sessions, registered through the balancer; topics; members.
  const devices: ChaosDevice[] = [];
  const scope = {
    topics: Array.from({ length: options.topics }, (_, i) => `chaos/${tag}/t${i}`),
    devices: Array.from({ length: options.devices }, (_, i) => `chaos-${tag}-d${i}`),
  };
  try {
    const c2PublicKey = scenario.mode === 'pubkey' ? await readC2PublicKey(lb) : undefined;
    for (const name of scope.devices) {
      const { device, key } = await ChaosDevice.create({
        name,
        brokerUrl: env.broker.url,
        elapsed,
        record: (a) => applies.push(a),
        ...(c2PublicKey === undefined ? {} : { c2PublicKey }),
      });
      devices.push(device);
      const ok = await until(async () => {
        const res = await httpJson(lb, 'POST', `/e4/client/${encodeURIComponent(name)}`, {
          body: { key: Buffer.from(key).toString('base64') },
        });
        return res.status === 200 || res.status === 409;
      }, 20_000);
      key.fill(0);
      if (!ok) throw new Error(`cannot register ${name}`);
    }
    const setup = async (call: Parameters<Driver['call']>[1]): Promise<void> => {
      if (!(await until(async () => (await driver.call(0, call)).outcome === 'ok', 20_000)))
        throw new Error(`set-up call ${call.kind} ${call.topic ?? ''} failed`);
    };
    for (const topic of scope.topics) await setup({ kind: 'create-topic', topic });
    const probe =
      scenario.automation === true
        ? await AutomationProbe.start(lb, `chaos/${tag}/automation`)
        : undefined;
    for (const topic of scope.topics)
      for (const client of scope.devices) await setup({ kind: 'join', topic, client });

    // The schedule, from the seed alone.
    const schedule = scenario
      .plan({
        rng: rng.fork('faults'),
        durationMs: options.durationMs,
        apiNodes: env.names('api'),
        workers: env.names('worker'),
        redlock: env.cluster.redlock.map((r) => r.name),
        devices: options.devices,
      })
      .sort((a, b) => a.atMs - b.atMs);
    options.progress(
      `${scenario.name}: seed ${options.seed}, ${schedule.length} fault(s): ${schedule.map((s) => `+${(s.atMs / 1000).toFixed(1)}s ${describeFault(s.fault)}`).join('; ')}`,
    );

    // Workload and faults for the duration.
    const faultStart = elapsed();
    const stopAt = faultStart + options.durationMs;
    let faultsHealed = false;
    const quiet = new Set<string>();
    const inject = injectorFor(env, devices);
    const faults: FaultRecord[] = [];
    const running: Array<Promise<void>> = [];
    for (const [id, step] of schedule.entries()) {
      running.push(
        (async () => {
          await sleep(Math.max(0, faultStart + step.atMs - elapsed()));
          const at = elapsed();
          if (step.fault.kind === 'device-offline')
            quiet.add(devices[step.fault.device % devices.length]?.name ?? '');
          let heal: () => Promise<void>;
          try {
            heal = await inject(step.fault);
          } catch (err) {
            options.progress(
              `${scenario.name}: fault ${describeFault(step.fault)} failed: ${(err as Error).message}`,
            );
            return;
          }
          if (heal === SKIPPED) {
            options.progress(
              `${scenario.name}: fault ${describeFault(step.fault)} skipped: an earlier fault still holds its target`,
            );
            faults.push({
              id,
              kind: step.fault.kind,
              target: describeFault(step.fault),
              startedAt: at,
              endedAt: at,
              skipped: true,
            });
            return;
          }
          await sleep(Math.max(0, step.durationMs - (elapsed() - at)));
          await heal().catch((err: unknown) => {
            options.progress(
              `${scenario.name}: healing ${describeFault(step.fault)} failed: ${(err as Error).message}`,
            );
          });
          faults.push({
            id,
            kind: step.fault.kind,
            target: describeFault(step.fault),
            startedAt: at,
            endedAt: elapsed(),
          });
        })(),
      );
    }
    // The workload goes on until the faults healed, so that I9's window has calls to its end.
    const healing = Promise.all(running).then(() => {
      faultsHealed = true;
    });
    const stop = workloadStop({ elapsed, stopAt, faultsHealed: () => faultsHealed });
    const ticker = setInterval(() => {
      const ops = driver.operations;
      const ok = ops.filter((o) => o.outcome === 'ok').length;
      options.progress(
        `${scenario.name}: +${Math.round((elapsed() - faultStart) / 1000)}s ${ops.length} ops (${ok} ok), ${applies.length} device applies, ${faults.length}/${schedule.length} faults done`,
      );
    }, 5000);
    try {
      await runWorkload(
        driver,
        {
          topics: scope.topics,
          devices: scope.devices,
          quiet,
          rotateClients: scenario.rotateClients,
          bursts: scenario.bursts,
          rotateC2: scenario.mode === 'pubkey',
        },
        rng.fork('workload'),
        options.processes,
        stop,
        20_000,
      );
      await healing;
    } finally {
      clearInterval(ticker);
    }
    await env.healAll();
    for (const d of devices) if (d.offline) await d.online();
    for (const d of devices) d.clockOffsetMs = 0;
    const healedAt = elapsed();
    options.progress(
      `${scenario.name}: healed at +${Math.round((healedAt - faultStart) / 1000)}s; final writes`,
    );

    // Final writes: new work for every topic, and the operator's resync where commands were lost.
    for (const topic of scope.topics) {
      const requestId = Driver.requestId('final');
      await until(
        async () =>
          (await driver.call(99, { kind: 'rotate-topic', topic, requestId })).outcome === 'ok',
        30_000,
        500,
      );
    }
    if (scenario.mode === 'pubkey') {
      const requestId = Driver.requestId('final-c2');
      await until(
        async () => (await driver.call(99, { kind: 'rotate-c2', requestId })).outcome === 'ok',
        30_000,
        500,
      );
    }
    if (scenario.resyncRefusers) {
      for (const client of scope.devices) {
        await until(
          async () => (await driver.call(99, { kind: 'resync-client', client })).outcome === 'ok',
          20_000,
          500,
        );
      }
    }

    // Convergence: the devices' state against the database, until it matches or the deadline.
    const healStart = Date.now();
    let convergedAfterMs: number | undefined;
    let db = await readDatabase(env.databaseUrl, scope);
    const snapshot = (): FinalState['devices'] => devices.map((d) => d.snapshot(!d.offline));
    const provisional = (): RunRecord => ({
      scenario: scenario.name,
      seed: options.seed,
      deliveryCap: NODE_SETTINGS.deliveryCap,
      // Duplicating proxies, broker redelivery after a restart or a reconnect: one extra copy.
      networkCopies: schedule.some((s) =>
        ['mqtt', 'restart-broker', 'device-offline'].includes(s.fault.kind),
      )
        ? 2
        : 1,
      budget: scenario.budget,
      apiNodes: env.names('api'),
      healedAt,
      convergenceDeadlineMs: options.convergenceDeadlineMs,
      operations: [],
      applies: [],
      faults: [],
      final: { ...db, devices: snapshot(), leaks: [], crashes: [], convergedAfterMs: undefined },
    });
    const settled = await until(
      async () => {
        await Promise.all(devices.map((d) => d.settle()));
        db = await readDatabase(env.databaseUrl, scope);
        const left = checkRun(provisional()).filter(
          (v) => v.invariant === 'I1' || v.invariant === 'I6',
        );
        return left.length === 0;
      },
      options.convergenceDeadlineMs,
      500,
    );
    if (settled) convergedAfterMs = Date.now() - healStart;
    options.progress(
      `${scenario.name}: ${settled ? `converged ${convergedAfterMs ?? 0} ms after the final writes` : `not converged within ${options.convergenceDeadlineMs} ms`}`,
    );
    await Promise.all(devices.map((d) => d.settle()));
    const leaks = await scanForSecrets(env, devices, options.nodeOutput());
    const automation =
      probe === undefined
        ? undefined
        : await probe.finish(options.convergenceDeadlineMs, started + healedAt);
    if (automation !== undefined)
      options.progress(
        `${scenario.name}: automation: ${automation.firings.length} firing(s), topic at v${automation.finalKeyVersion}`,
      );
    // The observation goes into the history, so that `--check` judges A1 as this run did.
    const record: RunRecord = {
      ...provisional(),
      operations: driver.operations,
      applies,
      faults: faults.sort((a, b) => a.startedAt - b.startedAt),
      final: {
        ...db,
        devices: snapshot(),
        leaks,
        crashes: env.crashes
          .filter((c) => c.at >= started)
          .map((c) => `+${c.at - started - faultStart} ms: ${c.line}`),
        convergedAfterMs,
      },
      ...(automation === undefined ? {} : { automation }),
    };
    return { record, schedule, violations: checkRun(record) };
  } finally {
    await Promise.all(devices.map((d) => d.close().catch(() => undefined)));
  }
}
