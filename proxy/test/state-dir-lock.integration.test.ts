/**
 * One proxy per state directory, between real processes against the real Mosquitto: a second
 * start with the same configuration is refused before it reaches the broker (it would take the
 * running proxy's control session, and the C2's commands with it), and the lock of a proxy killed
 * with SIGKILL is taken over by the next start.
 */
import assert from 'node:assert/strict';
import { access, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../bin/free-ports.ts';
import { runProxy, spawnProxy, startupLine, type ProxyProcess } from './proxy-process.ts';
import { BROKER_URL, tempDir, unique } from './support.ts';

function exitOf(child: ProxyProcess): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      resolve({ code: child.exitCode, signal: child.signalCode });
      return;
    }
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });
}

void describe('the state directory lock', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let config: string;
  const started: ProxyProcess[] = [];

  before(async () => {
    dir = await tempDir();
    config = join(dir.path, 'proxy.yaml');
    await writeFile(
      config,
      [
        'listen: { host: 127.0.0.1, port: 0 }',
        `health: { host: 127.0.0.1, port: ${await freePort()} }`,
        `upstream: { url: "${BROKER_URL}", controlClientId: ${unique('e4proxy-lock')} }`,
        'stateDir: state',
        'policy: { protect: ["plant/#"] }',
        `identities: [{ name: ${unique('lock-app')} }]`,
      ].join('\n'),
    );
  });
  after(async () => {
    for (const child of started) if (child.exitCode === null) child.kill('SIGKILL');
    await dir.cleanup();
  });

  void it('refuses a second start while the first runs, and is taken over after a SIGKILL', async () => {
    const stateDir = join(dir.path, 'state');
    const lockFile = join(stateDir, 'proxy.lock');
    const first = spawnProxy(config);
    started.push(first);
    await startupLine(first);
    const firstPid = String(first.pid);

    const second = runProxy(['--mode', 'local', '--config', config]);
    assert.equal(second.status, 1, second.stderr);
    // Refused for the state directory, naming the holder: not for the health port, which it
    // would only meet after taking the control session at the broker.
    assert.match(
      second.stderr,
      new RegExp(
        `^e4proxy: stateDir ${stateDir} is in use by another proxy \\(pid ${firstPid} since [^;]+; lock ${lockFile}\\): .*\\[PROXY_STATE_IN_USE\\]$`,
        'm',
      ),
    );
    assert.doesNotMatch(second.stdout, /control connection|started/);
    assert.equal(runProxy(['status', '--config', config]).status, 0);
    // The refused start left the running proxy's lock as it was.
    assert.equal((await readFile(lockFile, 'utf8')).split('\n')[0], String(first.pid));

    first.kill('SIGKILL');
    assert.deepEqual(await exitOf(first), { code: null, signal: 'SIGKILL' });
    // Left behind by the killed proxy.
    await access(lockFile);

    const third = spawnProxy(config);
    started.push(third);
    let stdout = '';
    third.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    await startupLine(third);
    assert.match(
      stdout,
      new RegExp(`left by a proxy that is no longer running \\(pid ${firstPid}\\): taken over`),
    );
    assert.equal((await readFile(lockFile, 'utf8')).split('\n')[0], String(third.pid));
    third.kill('SIGTERM');
    assert.deepEqual(await exitOf(third), { code: 0, signal: null });
    // A stop frees the state directory.
    await assert.rejects(access(lockFile), { code: 'ENOENT' });
  });
});
