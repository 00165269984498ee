/**
 * A real C2 node for the browser test: `bin/start.ts` as a process on its embedded defaults (its
 * own PostgreSQL and MQTT broker, a self-signed certificate for HTTPS) in a temporary data
 * directory, on free loopback ports, with API authentication on and one token per role.
 *
 * A process rather than `startC2Node` in this one: web/ may import no other part of the project
 * (lint layering), and a process is what an operator's browser talks to anyway.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from '../../../../bin/free-ports.ts';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
/** Embedded PostgreSQL's first start (initdb) is the slow part; a loaded CI machine is slower. */
const START_TIMEOUT_MS = 45_000;
const STOP_TIMEOUT_MS = 20_000;

/** The roles of the node's credentials file. */
export type Role = 'read-only' | 'operator' | 'admin';

/** A running node. */
export interface ConsoleNode {
  /** `https://127.0.0.1:<port>`: the HTTP API and the console's origin. */
  readonly origin: string;
  /** A bearer token per role. */
  readonly tokens: Readonly<Record<Role, string>>;
  /** Stops the node (SIGTERM, then SIGKILL) and removes its data. */
  stop(): Promise<void>;
}

/** The environment without the caller's C2 settings: the node must run on its embedded defaults. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env))
    if (!name.startsWith('E4C2_') && !['DATABASE_URL', 'MQTT_URL', 'REDIS_URL'].includes(name))
      env[name] = value;
  return env;
}

async function ready(metricsPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
    return res.ok && ((await res.json()) as { ready?: boolean }).ready === true;
  } catch {
    return false;
  }
}

/**
 * Starts a node and resolves once it reports ready; `settings` are more `E4C2_*` settings.
 * @throws Error with the node's output when it exits or is not ready in time
 */
export async function startConsoleNode(
  settings: Readonly<Record<string, string>> = {},
): Promise<ConsoleNode> {
  const dir = await mkdtemp(join(tmpdir(), 'e4c2-browser-'));
  // The embedded PostgreSQL runs as OS user postgres when we are root: it must traverse this.
  await chmod(dir, 0o711);
  const tokens = {
    'read-only': randomBytes(32).toString('base64url'),
    operator: randomBytes(32).toString('base64url'),
    admin: randomBytes(32).toString('base64url'),
  };
  const credentials = join(dir, 'credentials.json');
  await writeFile(
    credentials,
    JSON.stringify({
      tokens: Object.entries(tokens).map(([role, token]) => ({
        name: `browser-${role}`,
        role,
        sha256: createHash('sha256').update(token).digest('hex'),
      })),
    }),
  );
  const dataDir = join(dir, 'data');
  const [http, grpc, metrics, postgres, mqtt] = (await freePorts('127.0.0.1', 5)) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/start.ts'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...cleanEnv(),
      E4C2_DATA_DIR: dataDir,
      E4C2_HTTP_ADDR: `127.0.0.1:${http}`,
      E4C2_GRPC_ADDR: `127.0.0.1:${grpc}`,
      E4C2_METRICS_ADDR: `127.0.0.1:${metrics}`,
      E4C2_EMBEDDED_PG_PORT: String(postgres),
      E4C2_MQTT_LISTEN_ADDR: `127.0.0.1:${mqtt}`,
      E4C2_API_CREDENTIALS_FILE: credentials,
      E4C2_NODE_ID: 'browser-test',
      E4C2_LOG_LEVEL: 'warn',
      ...settings,
    },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
  });

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const stopped = await Promise.race([
        exited.then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => {
            resolve(false);
          }, STOP_TIMEOUT_MS);
        }),
      ]);
      clearTimeout(timer);
      if (!stopped) {
        child.kill('SIGKILL');
        await exited;
        // A node killed outright leaves its PostgreSQL behind: stop it by its own pid file.
        killPostmaster(join(dataDir, 'postgres'));
      }
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!(await ready(metrics))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const why = child.exitCode !== null ? `exited with ${child.exitCode}` : 'is not ready';
      await stop();
      throw new Error(`the C2 node ${why} within ${START_TIMEOUT_MS / 1000} s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { origin: `https://127.0.0.1:${http}`, tokens, stop };
}

/** Sends SIGTERM to the PostgreSQL whose data directory is `pgDir`, if its pid file is there. */
function killPostmaster(pgDir: string): void {
  try {
    const pid = Number(readFileSync(join(pgDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (Number.isSafeInteger(pid) && pid > 1) process.kill(pid, 'SIGTERM');
  } catch {
    // no pid file, or the process is gone: nothing to stop
  }
}
