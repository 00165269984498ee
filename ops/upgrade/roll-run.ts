/**
 * One practice roll from start to verdict (practice-roll.ts is its command): the earlier release
 * prepared, its cluster started, the fleet and the automation rule set up, the workload run while
 * the nodes are replaced, the final writes, the wait for convergence, the record checked and the
 * summary printed. What it starts it stops, also when it fails or is aborted.
 */
import { writeFile } from 'node:fs/promises';
import { buildVersion } from '../../bin/build-version.ts';
import { startCluster, type LocalCluster } from '../../bin/cluster.ts';
import { Driver, readC2PublicKey } from '../../chaos/driver.ts';
import { nodeScanPlaces, redisText, type NodeOutput } from '../../chaos/final-state.ts';
import { NODE_SETTINGS } from '../../chaos/environment.ts';
import { Rng } from '../../chaos/rng.ts';
import { classifyLine, isKnownOldWarning } from './node-lines.ts';
import { readPeerMessages, ringPeer } from './own-keys.ts';
import { prepareRelease } from './old-release.ts';
import type { RollArgs } from './roll-args.ts';
import { checkRoll } from './roll-checks.ts';
import { RollFleet } from './roll-fleet.ts';
import type { NodeLine, Release, RollRecord, RollStep } from './roll-history.ts';
import { finishRun } from './roll-final.ts';
import { replaceNode } from './roll-nodes.ts';
import { reflashEveryMs, rollPlan } from './roll-plan.ts';
import { rollSummary } from './roll-report.ts';
import { setUpFleet } from './roll-setup.ts';
import { runRollWorkload } from './roll-workload.ts';
import { runKeyPatterns } from './run-keys.ts';
import { pause, until } from './waits.ts';

/** The C2's public key of the moment, retried for 20 s (a node may be stopping). */
async function currentC2Key(lb: string): Promise<Uint8Array> {
  let key: Uint8Array | undefined;
  await until(async () => {
    key = await readC2PublicKey(lb);
    return true;
  }, 20_000);
  if (key === undefined) throw new Error('the C2 public key could not be read for 20 s');
  return key;
}

/** What {@link practise} needs. */
export interface PractiseOptions {
  readonly args: RollArgs;
  /** This checkout (the new release). */
  readonly root: string;
  /** Names this run's topics and devices. */
  readonly tag: string;
  readonly schema: string;
  /** Holds the cluster's KEK passphrase file. */
  readonly dataDir: string;
  readonly signal: AbortSignal;
  readonly log: (line: string) => void;
}

/** The nodes' settings: the chaos suite's delivery cap and timing, a shorter drain. */
const NODE_ENV = {
  E4C2_LOG_LEVEL: 'info',
  E4C2_DELIVERY_MAX_ATTEMPTS: String(NODE_SETTINGS.deliveryCap),
  E4C2_DELIVERY_BACKOFF_INITIAL_MS: '200',
  E4C2_DELIVERY_BACKOFF_MAX_MS: '4000',
  E4C2_PUBACK_TIMEOUT_MS: String(NODE_SETTINGS.pubackTimeoutMs),
  E4C2_SHUTDOWN_TIMEOUT_MS: '5000',
  E4C2_DB_POOL_MAX: '8',
  // A short leader lease, so a stopped engine's successor takes over within seconds.
  E4C2_AUTOMATION_LEASE_TTL_MS: '2000',
  E4C2_AUTOMATION_TICK_MS: '200',
} as const;

/** What public-key mode adds to the nodes' settings: the C2 draws rotated identity keys. */
const PUBLIC_KEY_ENV = { E4C2_CRYPTO_MODE: 'pubkey', E4C2_PK_SERVER_KEYGEN: 'true' } as const;

/** The nodes' output kept for the secrecy scan (I8), at most: past it the scan says so. */
const MAX_SCANNED_LINES = 200_000;

/** Workload before the first replacement and after the last (between two: `--dwell-seconds`). */
const PAUSE_MS = { before: 10_000, after: 10_000 } as const;

/** Runs the practice; resolves true when no check was violated. */
export async function practise(o: PractiseOptions): Promise<boolean> {
  const { args, log, signal } = o;
  const go = (): void => {
    if (signal.aborted) throw signal.reason as Error;
  };
  const old = await prepareRelease(args.from, o.root, args.releaseDir, log);
  go();
  const started = Date.now();
  const elapsed = (): number => Date.now() - started;
  const releases = new Map<string, Release>();
  const nodeLines: NodeLine[] = [];
  const crashes: string[] = [];
  /** Lines of {@link EXPECTED_WARNINGS} (node-lines.ts), counted for the summary. */
  const expected = { count: 0 };
  /** Lines of nodes of the earlier release that `--known-old-warning` names. */
  const knownOld = { count: 0 };
  /** Every line the nodes wrote, for the secrecy scan (I8). */
  const output = { lines: [] as string[], dropped: 0 };
  const env: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('E4C2_')) env[k] = v;
  log(
    `upgrade: starting ${args.apiNodes} API node(s) and ${args.workers} worker(s) of ${old.commit?.slice(0, 12) ?? old.dir} on schema ${o.schema}`,
  );
  const cluster: LocalCluster = await startCluster({
    apiNodes: args.apiNodes,
    workers: args.workers,
    redlock: args.redlock,
    basePort: args.basePort,
    schema: o.schema,
    dataDir: o.dataDir,
    databaseUrl: args.databaseUrl,
    redisUrl: args.redisUrl,
    mqttUrl: args.mqttUrl,
    host: '127.0.0.1',
    env: { ...env, ...NODE_ENV, ...(args.mode === 'public-key' ? PUBLIC_KEY_ENV : {}) },
    releaseDir: old.dir,
    signal,
    startTimeoutMs: 90_000,
    log: (line) => {
      if (/exited unexpectedly/.test(line)) crashes.push(`+${elapsed()} ms: ${line}`);
      log(line);
    },
    childOutput: (node, stream, line) => {
      if (output.lines.length < MAX_SCANNED_LINES) output.lines.push(`${node} | ${line}`);
      else output.dropped += 1;
      const kind = classifyLine(stream, line);
      if (kind === 'expected') expected.count += 1;
      if (kind !== 'warning') return;
      const release = releases.get(node) ?? 'old';
      if (isKnownOldWarning(line, release, args.knownOldWarnings)) {
        knownOld.count += 1;
        log(`${node} (old, known) | ${line.slice(0, 500)}`);
        return;
      }
      nodeLines.push({ node, release, at: elapsed(), line: line.slice(0, 2000) });
      log(`${node} (${release}) | ${line.slice(0, 500)}`);
    },
  });
  const lb = cluster.lb.http;
  const fleet = new RollFleet({
    brokerUrl: args.mqttUrl,
    lb,
    elapsed,
    ...(args.mode === 'public-key' ? { c2PublicKey: () => currentC2Key(lb) } : {}),
  });
  try {
    return await practiseOn(o, cluster, fleet, {
      old,
      releases,
      nodeLines,
      expected,
      knownOld,
      output,
      crashes,
      elapsed,
    });
  } finally {
    await fleet.close();
    await cluster.stop();
  }
}

/** What the cluster's start gave {@link practiseOn}. */
interface Running {
  readonly old: { readonly dir: string; readonly commit: string | undefined };
  readonly releases: Map<string, Release>;
  readonly nodeLines: NodeLine[];
  readonly expected: { readonly count: number };
  readonly knownOld: { readonly count: number };
  /** The nodes' output, for the secrecy scan. */
  readonly output: NodeOutput;
  readonly crashes: string[];
  readonly elapsed: () => number;
}

async function practiseOn(
  o: PractiseOptions,
  cluster: LocalCluster,
  fleet: RollFleet,
  r: Running,
): Promise<boolean> {
  const { args, log, signal, tag } = o;
  const { elapsed } = r;
  const go = (): void => {
    if (signal.aborted) throw signal.reason as Error;
  };
  const lb = cluster.lb.http;
  const driver = new Driver({ base: lb, elapsed, timeoutMs: 8000 });
  const topics = Array.from({ length: args.topics }, (_, i) => `upgrade/${tag}/t${i}`);
  const steadyTopic = `upgrade/${tag}/steady`;
  const probe = await setUpFleet({
    driver,
    fleet,
    lb,
    tag,
    devices: args.devices,
    ownKeyDevices: args.ownKeyDevices,
    topics: [...topics, steadyTopic],
    signal,
    log,
  });

  let workloadDone = false;
  const apiNodes = cluster.nodes.filter((n) => n.role === 'api');
  const plan = rollPlan(
    apiNodes.map((n) => n.name),
    cluster.nodes.filter((n) => n.role === 'worker').map((n) => n.name),
  );
  const workload = runRollWorkload({
    driver,
    fleet,
    topics,
    steadyTopic,
    apiNodes: apiNodes.map((n) => n.http ?? ''),
    describeNode: (http) => {
      const node = apiNodes.find((n) => n.http === http)?.name ?? '?';
      return `${node}, ${r.releases.get(node) ?? 'old'} release`;
    },
    rotateEveryMs: args.rotateEveryMs,
    newClients: args.newClients,
    newClientName: (i) => `upgrade-${tag}-new${i}`,
    reflashes: args.reflashes,
    reflashEveryMs: reflashEveryMs(
      plan.length,
      args.dwellMs,
      PAUSE_MS.before + PAUSE_MS.after,
      args.reflashes,
    ),
    rotateC2: args.mode === 'public-key',
    rng: new Rng(Number.parseInt(tag, 16)),
    elapsed,
    stop: () => workloadDone || signal.aborted,
    log,
  });
  const steps: RollStep[] = [];
  try {
    log(`upgrade: workload running; first replacement in ${PAUSE_MS.before / 1000} s`);
    await pause(PAUSE_MS.before, signal);
    for (const [i, step] of plan.entries()) {
      go();
      log(`upgrade: [${i + 1}/${plan.length}] ${step.node} to the ${step.to} release`);
      steps.push(
        await replaceNode(step, {
          cluster,
          dirs: { old: r.old.dir, new: o.root },
          graceMs: 15_000,
          readyWithinMs: 90_000,
          elapsed,
          started: (node, to) => r.releases.set(node, to),
        }),
      );
      await pause(args.dwellMs, signal);
    }
    await pause(PAUSE_MS.after, signal);
  } finally {
    workloadDone = true;
    await workload;
  }
  go();
  const rolledAt = Date.now();
  const ownKeysFrom = elapsed();

  const run = await finishRun({
    driver,
    fleet,
    probe,
    topics,
    steadyTopic,
    rotateC2: args.mode === 'public-key',
    scanPlaces: [
      {
        where: "Redis (REDIS_URL, the run's keys)",
        read: () => redisText(args.redisUrl, runKeyPatterns({ ...args, schema: o.schema, tag })),
      },
      ...cluster.redlock.map((r) => ({ where: r.name, read: () => redisText(r.url) })),
      ...nodeScanPlaces(cluster.nodes, lb),
    ],
    output: r.output,
    apiNodes: apiNodes.map((n) => n.name),
    databaseUrl: args.databaseUrl,
    schema: o.schema,
    rolledAt,
    elapsed,
    signal,
    log,
  });
  const rollRecord: RollRecord = {
    from: r.old.commit?.slice(0, 12) ?? r.old.dir,
    to: buildVersion(o.root),
    mode: args.mode,
    run,
    steps,
    extraCalls: fleet.calls,
    nodeLines: r.nodeLines,
    expectedLines: r.expected.count,
    knownOldLines: r.knownOld.count,
    crashes: r.crashes,
    ...(fleet.ownKeyNames.length === 0
      ? {}
      : {
          ownKeys: {
            devices: fleet.ownKeyNames.map((name) => ({
              name,
              peer: ringPeer(fleet.ownKeyNames, name),
            })),
            rolledAt: ownKeysFrom,
            reads: readPeerMessages(fleet, [...topics, steadyTopic]),
          },
        }),
  };
  if (args.recordFile !== undefined) {
    await writeFile(args.recordFile, `${JSON.stringify(rollRecord, null, 1)}\n`);
    log(`upgrade: the record is in ${args.recordFile}`);
  }
  const violations = checkRoll(rollRecord);
  for (const line of rollSummary(rollRecord, violations)) log(line);
  return violations.length === 0;
}
