/**
 * Readiness checks are bounded: a check that rejects or does not answer in time counts as not
 * ready, the others keep their own answer, and the whole run takes about the bound.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runReadinessChecks, type ReadinessCheck } from '../../telemetry/index.ts';

const check = (name: string, ok: () => Promise<boolean>): ReadinessCheck => ({ name, ok });

void describe('runReadinessChecks', () => {
  void it('reports each check by name; a rejection or a silence is false', async () => {
    let silentStarted = false;
    const results = await runReadinessChecks(
      [
        check('postgres', () => Promise.resolve(true)),
        check('mqtt', () => Promise.resolve(false)),
        check('redis', () => Promise.reject(new Error('Connection is closed.'))),
        check('redlock', () => {
          silentStarted = true;
          return new Promise<boolean>(() => undefined);
        }),
      ],
      50,
    );
    assert.ok(silentStarted, 'the silent check ran');
    assert.deepEqual(results, { postgres: true, mqtt: false, redis: false, redlock: false });
  });

  void it('does not wait for a silent check beyond the bound', async () => {
    const silent = runReadinessChecks([check('postgres', () => new Promise(() => undefined))], 50);
    const guard = new Promise<'guard'>((resolve) =>
      setTimeout(() => {
        resolve('guard');
      }, 5000),
    );
    assert.deepEqual(await Promise.race([silent, guard]), { postgres: false });
  });

  void it('is empty without checks', async () => {
    assert.deepEqual(await runReadinessChecks([]), {});
  });
});
