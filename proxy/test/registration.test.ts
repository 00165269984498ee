/** The C2 client of the proxy: what the C2 answers on failure reaches the operator. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ProxyError } from '../errors.ts';
import { C2Registrar } from '../registration.ts';
import { startFakeC2, type FakeC2 } from './support.ts';

void describe('C2 registrar', () => {
  let c2: FakeC2;
  before(async () => {
    c2 = await startFakeC2((method, path) => {
      if (path.startsWith('/v1/clients/gone/')) {
        return {
          status: 404,
          body: { error: { code: 'C2_NOT_FOUND', message: 'client not found', requestId: 'r1' } },
        };
      }
      if (path === '/v1/clients/denied') {
        return {
          status: 403,
          body: { error: { code: 'C2_PERMISSION_DENIED', message: 'role viewer may not' } },
        };
      }
      if (method === 'POST' && path.startsWith('/e4/topic/')) {
        // The reference routes' grpc-gateway body.
        return {
          status: 400,
          body: {
            error: 'topic: must not start with $',
            code: 3,
            message: 'topic: must not start with $',
            details: [
              {
                '@type': 'type.googleapis.com/google.rpc.ErrorInfo',
                reason: 'C2_VALIDATION',
                domain: 'e4c2',
              },
            ],
          },
        };
      }
      if (path === '/v1/clients/broken/rotate') return { status: 500, body: 'not json' };
      return undefined;
    });
  });
  after(() => c2.close());

  /** Asserts that `call` fails as PROXY_REGISTRATION with exactly `message`. */
  async function refusedWith(call: Promise<unknown>, message: string): Promise<void> {
    await assert.rejects(call, (err: unknown) => {
      assert.ok(ProxyError.is(err, 'PROXY_REGISTRATION'), String(err));
      assert.equal(err.message, message);
      return true;
    });
  }

  void it("reports the C2's code and message, from /v1 and from /e4 bodies", async () => {
    const registrar = new C2Registrar(c2.url, undefined);
    await refusedWith(
      registrar.resync('gone'),
      'POST /v1/clients/gone/resync: HTTP 404 C2_NOT_FOUND: client not found',
    );
    await refusedWith(
      registrar.isRegistered('denied'),
      'GET /v1/clients/denied: HTTP 403 C2_PERMISSION_DENIED: role viewer may not',
    );
    await refusedWith(
      registrar.attachTopic('app', '$bad'),
      'POST /e4/topic/%24bad: HTTP 400 C2_VALIDATION: topic: must not start with $',
    );
    await refusedWith(registrar.rotateClient('broken'), 'POST /v1/clients/broken/rotate: HTTP 500');
  });
});
