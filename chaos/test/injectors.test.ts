// A fault's target stays held until its heal is over: a node killed again while its restart runs
// is skipped (and said so), instead of breaking that restart.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ChaosEnvironment } from '../environment.ts';
import { injectorFor, SKIPPED } from '../injectors.ts';

/** A cluster of one node whose restart takes until `finishRestart` is called. */
function fakeEnvironment() {
  const log: string[] = [];
  let running = true;
  let finishRestart: () => void = () => undefined;
  const env = {
    cluster: {
      kill: (name: string, signal: string) => {
        log.push(`${signal} ${name}`);
        if (signal === 'SIGKILL') running = false;
      },
      node: () => ({ running }),
    },
    killNode: (name: string) => {
      log.push(`SIGKILL ${name}`);
      running = false;
      return Promise.resolve();
    },
    restartNode: async (name: string) => {
      log.push(`restart ${name}`);
      await new Promise<void>((resolve) => {
        finishRestart = resolve;
      });
      running = true;
      log.push(`restarted ${name}`);
    },
  } as unknown as ChaosEnvironment;
  return {
    env,
    log,
    finishRestart: () => {
      finishRestart();
    },
  };
}

void describe('fault injectors', () => {
  void it('skip a kill of a node whose restart (the heal of the kill before) still runs', async () => {
    const w = fakeEnvironment();
    const inject = injectorFor(w.env, []);
    const kill = { kind: 'kill-node', target: 'worker-1' } as const;
    const heal = await inject(kill);
    assert.notEqual(heal, SKIPPED);
    const healing = heal();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(w.log, ['SIGKILL worker-1', 'restart worker-1']);
    assert.equal(await inject(kill), SKIPPED, 'the restart still runs: not killed again');
    w.finishRestart();
    await healing;
    const again = await inject(kill);
    assert.notEqual(again, SKIPPED, 'restarted: the next kill applies');
    assert.deepEqual(w.log, [
      'SIGKILL worker-1',
      'restart worker-1',
      'restarted worker-1',
      'SIGKILL worker-1',
    ]);
  });
});
