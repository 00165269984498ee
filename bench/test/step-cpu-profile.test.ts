import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { StepCpuProfile } from '../lib/step-cpu-profile.ts';

void test('a step profile is written into a directory that does not exist yet', async () => {
  const root = await mkdtemp(join(tmpdir(), 'step-profile-'));
  try {
    const dir = join(root, 'not', 'there');
    const profile = await StepCpuProfile.start();
    const path = await profile.stop(dir, 'c2 [1 engine]');
    assert.equal(path, join(dir, 'c2-1-engine-.cpuprofile'));
    const written = JSON.parse(await readFile(path, 'utf8')) as { nodes?: unknown[] };
    assert.ok(Array.isArray(written.nodes) && written.nodes.length > 0);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
