/**
 * Automation nodes as separate processes, and the reusable fault the chaos suite calls: kill the
 * leader (SIGKILL) while a rule is due or its firing is in progress, then check it fired exactly
 * once. Bounded in time everywhere.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { PgAutomationStore } from '../../../../cluster/storage/index.ts';

const CHILD = fileURLToPath(new URL('./engine-child.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));

/** Settings shared by the nodes of one test. */
export interface EngineClusterSettings {
  readonly databaseUrl: string;
  readonly schema: string;
  readonly redisUrl: string;
  readonly leaseKey: string;
  readonly kekHex: string;
  readonly ttlMs: number;
  readonly tickMs: number;
  readonly actionDelayMs?: number;
}

/** One automation node process. */
export interface EngineProcess {
  readonly nodeId: string;
  readonly child: ChildProcess;
  /** Whether it said it leads (its last leadership line). */
  readonly isLeader: () => boolean;
  /** SIGKILL; resolves once it exited. */
  kill(): Promise<void>;
  /** SIGTERM (graceful: releases the lease), SIGKILL after 5 s. */
  stop(): Promise<void>;
}

/** Starts a node process and waits (≤ 30 s) until it is ready. */
export async function startEngineProcess(
  settings: EngineClusterSettings,
  nodeId = `ae-${randomBytes(3).toString('hex')}`,
): Promise<EngineProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD], {
    cwd: ROOT,
    env: {
      ...process.env,
      AE_TEST_DATABASE_URL: settings.databaseUrl,
      AE_TEST_SCHEMA: settings.schema,
      AE_TEST_REDIS_URL: settings.redisUrl,
      AE_TEST_LEASE_KEY: settings.leaseKey,
      AE_TEST_KEK: settings.kekHex,
      AE_TEST_NODE_ID: nodeId,
      AE_TEST_TTL_MS: String(settings.ttlMs),
      AE_TEST_TICK_MS: String(settings.tickMs),
      AE_TEST_ACTION_DELAY_MS: String(settings.actionDelayMs ?? 0),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const state = { leader: false, exited: false };
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      state.exited = true;
      resolve();
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`automation node ${nodeId} did not start within 30 s`));
    }, 30_000);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`automation node ${nodeId} exited during start-up`));
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      const msg = JSON.parse(line) as { ready?: boolean; leader?: boolean };
      if (msg.ready === true) {
        clearTimeout(timer);
        resolve();
      }
      if (msg.leader !== undefined) state.leader = msg.leader;
    });
  });
  const kill = async (signal: NodeJS.Signals): Promise<void> => {
    if (!state.exited) child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await ready;
  } catch (err) {
    await kill('SIGKILL');
    throw err;
  }
  return {
    nodeId,
    child,
    isLeader: () => state.leader && !state.exited,
    kill: () => kill('SIGKILL'),
    stop: () => kill('SIGTERM'),
  };
}

async function waitFor<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** What {@link killLeaderDuringFiring} observed. */
export interface LeaderKillReport {
  readonly killedNode: string;
  readonly firingId: string;
  readonly epochAtKill: string;
  readonly finalStatus: string;
  readonly finishedEpoch: string | null;
  /** Milliseconds from the kill to the firing's completion by the successor. */
  readonly recoveryMs: number;
}

/**
 * The chaos fault: waits (≤ `timeoutMs`) until a firing of `ruleId` is in progress (started, not
 * finished), SIGKILLs whichever node leads, and waits until another node finishes that firing.
 * The caller checks the effects (e.g. each target rotated exactly once).
 * @throws Error when no firing starts, no node leads, or no successor finishes it in time
 */
export async function killLeaderDuringFiring(
  nodes: readonly EngineProcess[],
  store: PgAutomationStore,
  ruleId: string,
  timeoutMs = 60_000,
): Promise<LeaderKillReport> {
  const firing = await waitFor(`a firing of rule ${ruleId} in progress`, timeoutMs, async () =>
    (await store.read.listFirings(ruleId, 10)).find(
      (f) => f.status === 'pending' && f.attempts > 0,
    ),
  );
  const leader = await waitFor('a leader', timeoutMs, () => nodes.find((n) => n.isLeader()));
  const epochAtKill = (await store.read.leader()).epoch;
  const killedAt = Date.now();
  await leader.kill();
  const done = await waitFor(`firing ${firing.id} to finish`, timeoutMs, async () =>
    (await store.read.listFirings(ruleId, 50)).find(
      (f) => f.id === firing.id && f.status !== 'pending',
    ),
  );
  return {
    killedNode: leader.nodeId,
    firingId: firing.id,
    epochAtKill,
    finalStatus: done.status,
    finishedEpoch: done.finishedEpoch,
    recoveryMs: Date.now() - killedAt,
  };
}
