/**
 * `e4c2`, the command line of the E4 C2 (`npm run cli -- <command>`, or
 * `node --import tsx cli/main.ts <command>`). The composition root of the CLI: the only place
 * that reads argv, the environment and the process streams. See docs/cli.md.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { GrpcC2Api } from './grpc-client.ts';
import { runCli } from './run.ts';

function packageVersion(): string {
  try {
    const text = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}

// `npm run cli` runs us in the repository's root, wherever it was typed; the user's relative
// paths (`--key dev-1.key`, E4C2_CERT=data/tls/cert.pem) mean the directory npm was run from,
// which npm passes as INIT_CWD. Only for our own script: an outer npm's INIT_CWD is not ours.
const npmCwd = process.env['npm_lifecycle_event'] === 'cli' ? process.env['INIT_CWD'] : undefined;
if (npmCwd !== undefined && npmCwd !== '') process.chdir(npmCwd);

// grpc-js passes an IP endpoint (127.0.0.1:5555) to TLS as the server name, which Node answers
// with a DEP0123 warning on every run; the host-name check itself is right. Not for operators' eyes.
process.noDeprecation = true;

// `e4c2 client list | head` closes stdout early: that is a normal end, not a crash.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const interrupt = new AbortController();
// The first Ctrl-C ends a stream cleanly (or cancels a call); a second one kills at once.
process.once('SIGINT', () => {
  interrupt.abort();
});

const exitCode = await runCli({
  argv: process.argv.slice(2),
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  version: packageVersion(),
  connect: (options) => GrpcC2Api.connect(options),
  readFile: async (path) => new Uint8Array(await readFile(path)),
  fileMode: async (path) => (await stat(path)).mode,
  newRequestId: () => randomUUID(),
  signal: interrupt.signal,
});

/** Resolves once everything written to `stream` so far has been handed to the system. */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    stream.write('', () => {
      resolve();
    });
  });
}

// End now rather than when the event loop drains: grpc-js cannot cancel a TLS handshake that the
// server never answers (a port that accepts and stays silent), and its socket would keep the
// process alive for ever after the deadline or a Ctrl-C was reported.
process.exitCode = exitCode;
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(exitCode);
