/**
 * When the node's database stops answering (its connections black-holed, as after a failover or
 * behind a partition), API calls fail within the statement bound with `C2_UNAVAILABLE` (503,
 * retry), not a hang and not an internal error; when it answers again, so does the node.
 * Real PostgreSQL behind a forwarder that can turn into a black hole.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { AutomationService } from '../../cluster/domain/index.ts';
import { createPool, PgAutomationStore } from '../../cluster/storage/index.ts';
import { BlackholeProxy } from '../../cluster/test/support/blackhole-proxy.ts';
import {
  createTestSchema,
  TEST_DATABASE_URL,
  type TestSchema,
} from '../../cluster/test/support/postgres.ts';
import { testService } from '../../cluster/test/support/test-service.ts';
import { ApiServer } from '../index.ts';
import { TEST_AUTOMATION_CAPABILITIES } from '../../cluster/test/support/test-service.ts';
import { httpCall, MemoryLogger, type HttpResult } from './support/api-harness.ts';

void describe('API: a database that stops answering', () => {
  let schema: TestSchema;
  let hole: BlackholeProxy;
  let pool: pg.Pool;
  let api: ApiServer;

  before(async () => {
    schema = await createTestSchema();
    const target = new URL(TEST_DATABASE_URL);
    hole = await BlackholeProxy.start({
      host: target.hostname,
      port: Number(target.port || 5432),
    });
    const through = new URL(TEST_DATABASE_URL);
    through.hostname = '127.0.0.1';
    through.port = String(hole.port);
    pool = await createPool({
      url: through.toString(),
      schema: schema.schema,
      max: 2,
      queryTimeoutMs: 500,
    });
    const { service } = await testService(pool, new Uint8Array(randomBytes(32)));
    await service.init();
    api = await ApiServer.start({
      service,
      grpc: { host: '127.0.0.1', port: 0 },
      http: { host: '127.0.0.1', port: 0 },
      readiness: () => Promise.resolve({ ready: true, checks: {} }),
      logger: new MemoryLogger(),
      maxMessageBytes: 1 << 20,
      automation: new AutomationService(new PgAutomationStore(pool), TEST_AUTOMATION_CAPABILITIES),
    });
  });
  after(async () => {
    await api.close(2000);
    await hole.close();
    await pool.end().catch(() => undefined);
    await schema.drop();
  });

  const call = (method: string, path: string): Promise<HttpResult> =>
    httpCall(api.httpAddress.port, method, path);

  /** A 503 in grpc-gateway's shape (the `/e4` routes): UNAVAILABLE, reason C2_UNAVAILABLE. */
  function assertUnavailable(result: HttpResult): void {
    assert.equal(result.status, 503, result.text);
    const body = result.json as { code: number; message: string; details: { reason: string }[] };
    assert.equal(body.code, 14, 'gRPC UNAVAILABLE');
    assert.equal(body.details[0]?.reason, 'C2_UNAVAILABLE');
    assert.match(body.message, /retry/);
    assert.doesNotMatch(body.message, /127\.0\.0\.1|postgres/i, 'no driver text');
  }

  void it('reads and writes fail with C2_UNAVAILABLE, then work again', async () => {
    assert.equal((await call('POST', '/e4/topic/before')).status, 200);
    hole.blackhole(true);
    assertUnavailable(await call('GET', '/e4/topic/before/clients/count'));
    assertUnavailable(await call('POST', '/e4/topic/during'));
    const rules = await call('GET', '/v1/automation/rules');
    assert.equal(rules.status, 503, rules.text);
    assert.equal((rules.json as { error: { code: string } }).error.code, 'C2_UNAVAILABLE');
    hole.blackhole(false);
    assert.equal((await call('POST', '/e4/topic/after')).status, 200);
    const count = await call('GET', '/e4/topic/after/clients/count');
    assert.equal(count.status, 200, count.text);
    // The write refused while the database was silent did not happen.
    assert.equal((await call('DELETE', '/e4/topic/during')).status, 404);
  });
});
