/** Process lifecycle ordering and log redaction. */
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { Lifecycle } from '../../lifecycle.ts';
import { createLogger } from '../../telemetry/index.ts';

void describe('Lifecycle', () => {
  const quiet = { info: () => undefined, error: () => undefined };

  void it('closes in reverse order, runs every step even after a failure, and is idempotent', async () => {
    const order: string[] = [];
    const lifecycle = new Lifecycle(quiet);
    lifecycle.add('pool', () => {
      order.push('pool');
    });
    lifecycle.add('broken', () => {
      order.push('broken');
      throw new Error('boom');
    });
    lifecycle.add('api', () => {
      order.push('api');
    });
    const first = lifecycle.shutdown(1000);
    assert.equal(lifecycle.state, 'stopping');
    assert.equal(await first, false);
    assert.equal(await lifecycle.shutdown(1000), false);
    assert.deepEqual(order, ['api', 'broken', 'pool']);
    assert.equal(lifecycle.state, 'stopped');
  });

  void it('bounds a hanging step by the grace period', async () => {
    const lifecycle = new Lifecycle(quiet);
    let closed = false;
    lifecycle.add('after', () => {
      closed = true;
    });
    lifecycle.add('hang', () => new Promise<void>(() => undefined));
    const started = Date.now();
    assert.equal(await lifecycle.shutdown(200), false);
    assert.ok(Date.now() - started < 2000);
    assert.ok(closed, 'steps after the hanging one still ran');
  });
});

void describe('logger', () => {
  void it('redacts key fields wherever they appear and tags every line with the node id', async () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (c: Buffer) => chunks.push(c.toString()));
    const logger = createLogger({ level: 'info', nodeId: 'node-a', destination: out });
    const secret = 'c0ffee'.repeat(8);
    logger.info(
      { key: secret, client: { privateKey: secret, name: 'dev1' }, password: secret },
      'op',
    );
    await new Promise((r) => setImmediate(r));
    const text = chunks.join('');
    assert.ok(!text.includes(secret));
    const line = JSON.parse(text) as { node: string; client: { name: string; privateKey: string } };
    assert.equal(line.node, 'node-a');
    assert.equal(line.client.name, 'dev1');
    assert.equal(line.client.privateKey, '[redacted]');
  });
});
