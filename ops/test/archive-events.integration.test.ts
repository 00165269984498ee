// ops/backup/archive-events.sh, run for real from another directory than the checkout (as cron
// or systemd run it): it appends the event stream to its file. With `npm run` as its CLI it
// found no package.json there, and every stream "ended" at once, for ever, silently.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startApi, type ApiHarness } from '../../api/test/support/api-harness.ts';

const SCRIPT = new URL('../backup/archive-events.sh', import.meta.url).pathname;

void describe('ops/backup/archive-events.sh', () => {
  let a: ApiHarness;
  let dir: string;
  before(async () => {
    a = await startApi();
    dir = await mkdtemp(join(tmpdir(), 'e4c2-archive-'));
  });
  after(async () => {
    await a.close();
    await rm(dir, { recursive: true, force: true });
  });

  void it('archives the event stream when started outside the checkout', async () => {
    await a.grpc.call('NewTopic', { topic: 'archived/topic' });
    const file = join(dir, 'events.jsonl');
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('E4C2_')) env[k] = v;
    const child = spawn(
      'bash',
      [SCRIPT, file, '-e', `127.0.0.1:${a.api.grpcAddress.port}`, '--insecure'],
      { cwd: dir, env, detached: true, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    try {
      let text = '';
      for (let i = 0; i < 150 && !text.includes('"topic.created"'); i++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        text = await readFile(file, 'utf8').catch(() => '');
      }
      assert.match(text, /"type":"topic\.created"/, `nothing archived within 30 s: ${stderr}`);
      const line = JSON.parse(text.split('\n')[0] ?? '') as { seq: string; topic: string };
      assert.equal(line.topic, 'archived/topic');
    } finally {
      // The script and the CLI it runs: its whole process group.
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGTERM');
    }
  });

  void it('stops (for a supervisor to alert) on what waiting cannot fix, instead of looping', () => {
    const stop = (args: string[]) =>
      spawnSync('bash', [SCRIPT, ...args], { encoding: 'utf8', timeout: 30_000 });
    const badFlag = stop([join(dir, 'flags.jsonl'), '--no-such-flag']);
    assert.equal(badFlag.status, 2, badFlag.stderr);
    assert.match(badFlag.stderr, /the CLI stopped with exit 2 .*stopping/);
    const unwritable = stop([join(dir, 'missing', 'dir', 'events.jsonl')]);
    assert.equal(unwritable.status, 1, unwritable.stderr);
    assert.match(unwritable.stderr, /cannot write .*events\.jsonl; stopping/);
  });
});
