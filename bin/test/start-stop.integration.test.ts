/**
 * `npm start` around its start-up: a SIGTERM that arrives while the node is still starting stops
 * it cleanly once it is up (the default action killed the process half-way, leaving an embedded
 * PostgreSQL running), and readiness is not reported before the API listens. And a SIGTERM sent
 * to `npm start` itself stops the node (npm signals its child, which was a shell that did not
 * pass the signal on, so the node ran on without npm).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createTestSchema, type TestSchema } from '../../cluster/test/support/postgres.ts';
import { freePorts } from '../free-ports.ts';
import { testNodeEnv } from './support/node-env.ts';
import { descendants, killIfAlive } from './support/process-tree.ts';

/** One KEK for the file's nodes: they share a schema, and its data keys are wrapped by it. */
const PASSPHRASE = randomBytes(12).toString('hex');

interface Started {
  readonly child: ChildProcess;
  readonly http: number;
  readonly metrics: number;
  /** Everything the node printed on stdout so far. */
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Preloaded into a node: it sends itself SIGTERM right after writing the line that holds `text`,
 * before running another line of its own: what a supervisor that signals the node on seeing that
 * line can do on a loaded machine. (pino writes through `fs.writeSync` or `fs.write`.)
 */
function signalSelfAfter(text: string): string {
  const code = `import fs from 'node:fs';
for (const name of ['writeSync', 'write']) {
  const original = fs[name];
  let sent = false;
  fs[name] = function (fd, data, ...rest) {
    const result = original.call(this, fd, data, ...rest);
    if (!sent && fd === 1 && String(data).includes(${JSON.stringify(text)})) {
      sent = true;
      process.kill(process.pid, 'SIGTERM');
    }
    return result;
  };
}`;
  return `data:text/javascript,${encodeURIComponent(code)}`;
}

/** The node as `node bin/start.ts`, or through `npm start` (`viaNpm`), with `preload`. */
async function spawnNode(schema: string, viaNpm = false, preload?: string): Promise<Started> {
  const [grpc, http, metrics] = (await freePorts('127.0.0.1', 3)) as [number, number, number];
  const preloads = preload === undefined ? [] : ['--import', preload];
  const [command, args] = viaNpm
    ? ['npm', ['start']]
    : [process.execPath, [...preloads, '--import', 'tsx', 'bin/start.ts']];
  const child = spawn(command, args, {
    env: testNodeEnv({
      schema,
      passphrase: PASSPHRASE,
      ports: { grpc, http, metrics },
      name: 'start-stop',
      extra: { E4C2_LOG_LEVEL: 'info' },
    }),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let text = '';
  child.stdout.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });
  return { child, http, metrics, output: () => text, exited };
}

/** Resolves when `check` is true, polling every `everyMs`; rejects after `withinMs`. */
async function until(check: () => boolean | Promise<boolean>, withinMs: number, everyMs = 5) {
  const deadline = Date.now() + withinMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      resolve(false);
    });
  });
}

async function ready(port: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    return res.status === 200 && ((await res.json()) as { ready?: boolean }).ready === true;
  } catch {
    return false;
  }
}

void describe('npm start around start-up', () => {
  let db: TestSchema;
  const children: ChildProcess[] = [];
  before(async () => {
    db = await createTestSchema(false);
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await db.drop();
  });

  void it('a SIGTERM during start-up stops the node cleanly once it is up', async () => {
    const node = await spawnNode(db.schema);
    children.push(node.child);
    await until(() => node.output().includes('"msg":"starting"'), 30_000);
    node.child.kill('SIGTERM');
    const { code, signal } = await node.exited;
    assert.equal(signal, null, 'killed by the signal instead of stopping');
    assert.equal(code, 0);
    assert.match(node.output(), /stop requested during start-up/);
    assert.match(node.output(), /"clean":true,"msg":"stopped"/);
  });

  void it('a SIGTERM sent the moment "starting" is printed is held too (it found no handler)', async () => {
    const node = await spawnNode(db.schema, false, signalSelfAfter('"msg":"starting"'));
    children.push(node.child);
    const { code, signal } = await node.exited;
    assert.equal(signal, null, 'killed by the signal: the handler came after the line');
    assert.equal(code, 0);
    assert.match(node.output(), /stop requested during start-up/);
    assert.match(node.output(), /"clean":true,"msg":"stopped"/);
  });

  void it('one Ctrl-C delivered twice (the terminal and npm) stops in order, during and after start-up', async () => {
    // The copy counted as a second Ctrl-C: exit 130 at once, nothing drained.
    for (const when of ['starting', 'running'] as const) {
      const node = await spawnNode(db.schema);
      children.push(node.child);
      if (when === 'starting')
        await until(() => node.output().includes('"msg":"starting"'), 30_000);
      else await until(() => ready(node.metrics), 30_000, 20);
      node.child.kill('SIGINT');
      await new Promise((r) => setTimeout(r, 50));
      node.child.kill('SIGINT');
      const { code, signal } = await node.exited;
      assert.equal(signal, null, `${when}: killed by the signal`);
      assert.equal(code, 0, `${when}: an orderly stop`);
      assert.match(node.output(), /"clean":true,"msg":"stopped"/, when);
    }
  });

  void it('reports ready only once the API listens', async () => {
    const node = await spawnNode(db.schema);
    children.push(node.child);
    await until(() => ready(node.metrics), 30_000, 2);
    assert.ok(await accepts(node.http), 'ready, but the HTTP API does not accept connections');
    node.child.kill('SIGTERM');
    assert.equal((await node.exited).code, 0);
  });

  void it('a SIGTERM to `npm start` stops the node, not only npm', async () => {
    const node = await spawnNode(db.schema, true);
    children.push(node.child);
    await until(() => ready(node.metrics), 30_000, 20);
    const processes = descendants(node.child.pid ?? 0);
    try {
      node.child.kill('SIGTERM');
      await node.exited;
      // The node's own listener is the witness: it closes when the node has stopped.
      await until(async () => !(await accepts(node.metrics)), 15_000, 100);
      assert.match(node.output(), /"clean":true,"msg":"stopped"/);
    } finally {
      for (const pid of processes) killIfAlive(pid);
    }
  });
});
