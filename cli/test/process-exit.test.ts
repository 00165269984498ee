// `e4c2` as a child process ends once it has reported its outcome, even when the connection it
// opened is still stuck: a port that accepts TCP and never answers the TLS handshake (a wrong
// service, a half-dead load balancer) left the process hanging for ever after it printed the
// deadline or the Ctrl-C, since grpc-js cannot cancel that handshake.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ExitCode } from '../errors.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** How long the process may take to end after it should have: startup of tsx included. */
const GRACE_MS = 15_000;

interface Ended {
  readonly code: number | null;
  readonly stderr: string;
  /** True when the test had to kill the process. */
  readonly hung: boolean;
}

/**
 * Runs `node --import tsx cli/main.ts ...args` without any E4C2_ variable. With `interrupt`, it
 * is sent SIGINT (Ctrl-C) once `connected` resolves: its call is then under way.
 */
function e4c2(
  args: readonly string[],
  connected: Promise<void>,
  interrupt: boolean,
): Promise<Ended> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env))
    if (!name.startsWith('E4C2_')) env[name] = value;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/main.ts', ...args], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    let hung = false;
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const killer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, GRACE_MS);
    if (interrupt) void connected.then(() => child.kill('SIGINT'));
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(killer);
      resolve({ code, stderr, hung });
    });
  });
}

void describe('e4c2 ends after reporting, whatever its connection is doing', () => {
  let server: Server;
  let endpoint: string;
  const sockets = new Set<Socket>();
  let onConnection: (() => void) | undefined;

  before(async () => {
    // Accepts and never says a word: the TLS handshake waits for ever.
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      onConnection?.();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    assert.ok(address !== null && typeof address === 'object');
    endpoint = `127.0.0.1:${String(address.port)}`;
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  function nextConnection(): Promise<void> {
    return new Promise((resolve) => (onConnection = resolve));
  }

  void it('--timeout passed on a handshake that never ends: exit 3, and the process ends', async () => {
    const ended = await e4c2(
      ['-e', endpoint, '--timeout', '1', 'client', 'list'],
      nextConnection(),
      false,
    );
    assert.match(ended.stderr, /no answer from the C2 at .* within 1 s \(DEADLINE_EXCEEDED\)/);
    assert.equal(ended.hung, false, 'the process was still running after it reported the error');
    assert.equal(ended.code, ExitCode.Unreachable);
  });

  void it('Ctrl-C during that handshake: exit 130, and the process ends', async () => {
    const ended = await e4c2(
      ['-e', endpoint, 'topic', 'rotate', '--name', 't'],
      nextConnection(),
      true,
    );
    assert.match(ended.stderr, /error: interrupted/);
    assert.equal(ended.hung, false, 'the process was still running after it reported Ctrl-C');
    assert.equal(ended.code, ExitCode.Interrupted);
  });
});
