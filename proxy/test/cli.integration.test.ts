/**
 * `npm run proxy` as an operator runs it (a process, the real Mosquitto): start prints where it
 * listens, `status` reads /healthz, `hash-password` prints a usable hash, a bad configuration is
 * a clear error with exit code 2, and SIGTERM stops the proxy.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../bin/free-ports.ts';
import { verifyPassword } from '../password.ts';
import { REPEATED_SIGNAL_MS } from '../../runtime/stop-signals.ts';
import { runProxy, spawnProxy, startupLine } from './proxy-process.ts';
import { startStickyBroker } from './sticky-broker.ts';
import { BROKER_URL, startFakeC2, tempDir, unique, until } from './support.ts';

/** Runs `--mode local --config FILE` and expects it to fail. */
function failedStart(config: string): {
  status: number | null;
  stdout: string;
  stderr: string;
} {
  const r = runProxy(['--mode', 'local', '--config', config]);
  assert.notEqual(r.status, 0, `${r.stdout}\n${r.stderr}`);
  return r;
}

void describe('npm run proxy', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let configPath: string;
  let settings: Record<string, string>;

  /** Writes the configuration with some settings replaced (YAML flow values), as `file`. */
  async function variant(file: string, replaced: Record<string, string>): Promise<string> {
    const path = join(dir.path, file);
    const all = { ...settings, ...replaced };
    await writeFile(
      path,
      Object.entries(all)
        .map(([key, value]) => `${key}: ${value}`)
        .join('\n'),
    );
    return path;
  }

  before(async () => {
    dir = await tempDir();
    settings = {
      mode: 'gateway # overridden by --mode',
      listen: '{ host: 127.0.0.1, port: 0 }',
      health: `{ host: 127.0.0.1, port: ${await freePort()} }`,
      upstream: `{ url: "${BROKER_URL}", controlClientId: ${unique('e4proxy-cli')} }`,
      stateDir: 'state',
      policy: '{ protect: ["plant/#"] }',
      identities: `[{ name: ${unique('cli-app')} }]`,
    };
    configPath = await variant('proxy.yaml', {});
  });
  after(() => dir.cleanup());

  void it('starts, reports its status, and stops on SIGTERM', async () => {
    const child = spawnProxy(configPath);
    try {
      const banner = await startupLine(child);
      assert.match(
        banner,
        /^e4 protection proxy \(local\) listening on 127\.0\.0\.1:\d+, upstream mqtt/,
      );
      const status = runProxy(['status', '--config', configPath]);
      assert.equal(status.status, 0, status.stderr);
      assert.equal((JSON.parse(status.stdout) as { status: string }).status, 'ok');
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      const down = runProxy(['status', '--config', configPath]);
      assert.equal(down.status, 1);
      assert.match(
        down.stderr,
        /^e4proxy: no proxy answers at http:\/\/127\.0\.0\.1:\d+\/healthz: fetch failed \(ECONNREFUSED\) .*\[PROXY_NOT_RUNNING\]/,
      );
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  void it('forces a stop that hangs on a second signal, not on a copy of the first (exit 130)', async () => {
    // Its stop waits for the broker to close the control connection, which it never does.
    const broker = await startStickyBroker();
    const child = spawnProxy(
      await variant('sticky-upstream.yaml', {
        upstream: `{ url: "${broker.url}", controlClientId: ${unique('e4proxy-cli')} }`,
      }),
    );
    try {
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
        (resolve) =>
          child.once('exit', (code, signal) => {
            resolve({ code, signal });
          }),
      );
      await startupLine(child);
      // One Ctrl-C under npm: the terminal's signal and npm's copy of it, just after (two sent at
      // once would reach the process as one).
      child.kill('SIGINT');
      await new Promise((resolve) => setTimeout(resolve, 50));
      child.kill('SIGINT');
      // The stop has reached the control connection: it said DISCONNECT, and waits.
      await until(() => broker.disconnects > 0, 'the DISCONNECT', 30_000);
      await new Promise((resolve) => setTimeout(resolve, REPEATED_SIGNAL_MS + 200));
      // The copy forced nothing: the stop still waits for the broker.
      assert.equal(child.exitCode, null, 'still stopping after the copy');
      child.kill('SIGTERM');
      // Bounded: without the forced exit, it would wait for the broker for ever.
      await until(() => child.exitCode !== null, 'the forced exit', 30_000);
      assert.deepEqual(await exited, { code: 130, signal: null });
      assert.match(stdout, /stop signal again: exiting at once/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await broker.close();
    }
  });

  void it('abandons the start on SIGTERM and exits 0: nothing is left running', async () => {
    // A broker that accepts and never answers: the start waits for its CONNACK.
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const child = spawnProxy(
      await variant('silent-upstream.yaml', {
        upstream: `{ url: "mqtt://127.0.0.1:${port}", controlClientId: ${unique('e4proxy-cli')} }`,
      }),
    );
    try {
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
        (resolve) =>
          child.once('exit', (code, signal) => {
            resolve({ code, signal });
          }),
      );
      // Its control connection reached the broker: the proxy is starting.
      await until(() => held.length > 0, 'the control connection', 30_000);
      const sent = Date.now();
      child.kill('SIGTERM');
      assert.deepEqual(await exited, { code: 0, signal: null }, stderr);
      // Abandoned, not given up after the broker's 10 s connect timeout.
      assert.ok(Date.now() - sent < 5000, `stopped after ${Date.now() - sent} ms`);
      assert.equal(stderr, '');
      assert.match(stdout, /stop requested during start-up: start abandoned/);
      assert.doesNotMatch(stdout, /e4 protection proxy/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      for (const socket of held) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  for (const [what, c2Settings] of [
    ['trust on first use', 'tofu: true'],
    ["the fetch of the C2's public key (public-key mode)", 'mode: public-key'],
  ] as const) {
    void it(`abandons ${what} on SIGTERM, without waiting for the C2 (exit 0)`, async () => {
      // A C2 that accepts and never answers: each call would wait for its 10 s timeout.
      const c2 = await startFakeC2(() => ({ status: 200, stall: 'before-headers' }));
      const child = spawnProxy(
        await variant('silent-c2.yaml', {
          c2: `{ url: "${c2.url}", ${c2Settings} }`,
          identities: `[{ name: ${unique('cli-silent-c2')} }]`,
        }),
      );
      try {
        let stderr = '';
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
          (resolve) =>
            child.once('exit', (code, signal) => {
              resolve({ code, signal });
            }),
        );
        await until(() => c2.requests.length > 0, 'the call to the C2', 30_000);
        const sent = Date.now();
        child.kill('SIGTERM');
        assert.deepEqual(await exited, { code: 0, signal: null }, stderr);
        assert.ok(Date.now() - sent < 3000, `stopped after ${Date.now() - sent} ms`);
        assert.equal(stderr, '');
      } finally {
        if (child.exitCode === null) child.kill('SIGKILL');
        await c2.close();
      }
    });
  }

  void it('hashes a password, and rejects a bad configuration with exit code 2', async () => {
    const hashed = runProxy(['hash-password'], 'door-3 secret\n');
    assert.equal(hashed.status, 0, hashed.stderr);
    assert.ok(await verifyPassword('door-3 secret', hashed.stdout.trim()));
    const bad = join(dir.path, 'bad.yaml');
    await writeFile(bad, 'identities: []\nlisten: { port: 99999 }\n');
    const r = runProxy(['--config', bad]);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /listen\.port: must be a whole number from 0 to 65535/);
    assert.match(r.stderr, /identities: at least one identity is required/);
  });

  void it('names a port in use by another process, with exit code 1 and PROXY_LISTEN', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      for (const setting of ['listen', 'health']) {
        const r = failedStart(
          await variant(`${setting}-taken.yaml`, {
            [setting]: `{ host: 127.0.0.1, port: ${port} }`,
          }),
        );
        assert.equal(r.status, 1, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(
            `^e4proxy: ${setting}\\.port: 127\\.0\\.0\\.1:${port} is already in use by another process.*\\[PROXY_LISTEN\\]$`,
            'm',
          ),
        );
        // Said once, on stderr: no log line repeats it.
        assert.doesNotMatch(r.stdout, /listener error|"level":50/);
      }
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  void it('refuses one port for listen and health, and a TLS file that is not one (exit 2)', async () => {
    const port = await freePort();
    const clash = failedStart(
      await variant('clash.yaml', {
        listen: `{ host: 127.0.0.1, port: ${port} }`,
        health: `{ host: 0.0.0.0, port: ${port} }`,
      }),
    );
    assert.equal(clash.status, 2, clash.stderr);
    assert.match(clash.stderr, new RegExp(`health\\.port: ${port} is listen\\.port too`));
    assert.match(clash.stderr, /\[PROXY_CONFIG\]/);

    const junk = join(dir.path, 'junk.pem');
    await writeFile(junk, 'not a certificate\n');
    const badCert = failedStart(
      await variant('bad-cert.yaml', {
        listen: `{ host: 127.0.0.1, port: 0, tls: { certFile: ${junk}, keyFile: ${junk} } }`,
      }),
    );
    assert.equal(badCert.status, 2, badCert.stderr);
    assert.match(
      badCert.stderr,
      /^e4proxy: listen\.tls\.certFile: \S+\/junk\.pem is not a PEM certificate \(.*\) \[PROXY_CONFIG\]$/m,
    );
  });

  void it('names a c2.caFile or upstream.caFile that is a directory or no certificate (exit 2, PROXY_CONFIG)', async () => {
    const junk = join(dir.path, 'junk-c2-ca.pem');
    await writeFile(junk, 'not a certificate\n');
    const c2Port = await freePort();
    const c2 = (caFile: string): string =>
      `{ url: "https://127.0.0.1:${c2Port}", tofu: true, caFile: "${caFile}" }`;
    for (const [file, caFile, expected] of [
      [
        'c2-ca-dir.yaml',
        dir.path,
        /^ {2}c2\.caFile: cannot read \S+ \(EISDIR: a directory, not a file\) \[PROXY_CONFIG\]$/m,
      ],
      [
        'c2-ca-junk.yaml',
        junk,
        /^e4proxy: c2\.caFile: \S+\/junk-c2-ca\.pem is not a PEM certificate \(.*\) \[PROXY_CONFIG\]$/m,
      ],
    ] as const) {
      const r = failedStart(await variant(file, { c2: c2(caFile) }));
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, expected);
    }
    // The broker's CA too, before anything starts (plain mqtt:// would ignore it silently).
    const r = failedStart(
      await variant('upstream-ca-junk.yaml', {
        upstream: `{ url: "${BROKER_URL}", caFile: "${junk}", controlClientId: ${unique('e4proxy-cli')} }`,
      }),
    );
    assert.equal(r.status, 2, r.stderr);
    assert.match(
      r.stderr,
      /^e4proxy: upstream\.caFile: \S+\/junk-c2-ca\.pem is not a PEM certificate \(.*\) \[PROXY_CONFIG\]$/m,
    );
  });

  void it('says what is wrong with a state directory that is a file (PROXY_KEY_STORE)', async () => {
    const file = join(dir.path, 'a-file');
    await writeFile(file, 'not a directory\n');
    const r = failedStart(await variant('state-file.yaml', { stateDir: file }));
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      /^e4proxy: stateDir \S+a-file: cannot create the directory: \S+a-file: exists, and is not a directory \(EEXIST\) \[PROXY_KEY_STORE\]$/m,
    );
  });
});
