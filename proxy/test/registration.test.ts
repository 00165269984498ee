/** The C2 client of the proxy: what the C2 answers on failure reaches the operator. */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ProxyError } from '../errors.ts';
import { C2Registrar, C2UnreachableError, MAX_ANSWER_BYTES } from '../registration.ts';
import { selfSignedCert, startFakeC2, tempDir, type FakeC2 } from './support.ts';

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

  void it('keeps dot segments of a topic: a/./b is not a/b', async () => {
    const ok = await startFakeC2((method) =>
      method === 'GET' ? undefined : { status: 200, body: {} },
    );
    try {
      await new C2Registrar(`${ok.url}/`, undefined).attachTopic('app', 'a/./b/..');
      assert.deepEqual(ok.requests, [
        'GET /v1/topics/a%2F.%2Fb%2F..',
        'POST /e4/topic/a/%2E/b/%2E%2E',
        'PUT /e4/client/app/topic/a/%2E/b/%2E%2E',
      ]);
    } finally {
      await ok.close();
    }
  });

  void it("trusts a C2's self-signed certificate given as c2.caFile, and says so when missing", async () => {
    const cert = await selfSignedCert();
    const https = await startFakeC2(
      (_method, path) =>
        path.startsWith('/v1/clients/known') ? { status: 200, body: {} } : undefined,
      { tls: cert },
    );
    const dir = await tempDir();
    try {
      await assert.rejects(new C2Registrar(https.url, undefined).isRegistered('known'), (err) => {
        assert.ok(err instanceof C2UnreachableError, String(err));
        assert.equal(err.code, 'PROXY_REGISTRATION');
        assert.match(
          err.message,
          /^cannot reach the C2 at https:\/\/127\.0\.0\.1:\d+: self-signed certificate \(DEPTH_ZERO_SELF_SIGNED_CERT\); set c2\.caFile /,
        );
        return true;
      });
      const caFile = join(dir.path, 'c2-cert.pem');
      await writeFile(caFile, cert.cert);
      const registrar = new C2Registrar(https.url, 'tok', { caFile });
      assert.equal(await registrar.isRegistered('known'), true);
      await registrar.rotateClient('known');
      assert.deepEqual(https.requests, ['GET /v1/clients/known', 'POST /v1/clients/known/rotate']);
    } finally {
      await https.close();
      await dir.cleanup();
    }
  });

  void it('refuses a c2.caFile that is a directory or holds no certificate (PROXY_CONFIG)', async () => {
    const dir = await tempDir();
    try {
      const junk = join(dir.path, 'junk.pem');
      await writeFile(junk, 'not a certificate\n');
      const refused = (caFile: string, message: RegExp): void => {
        assert.throws(
          () => new C2Registrar('https://127.0.0.1:8888', undefined, { caFile }),
          (err: unknown) => {
            assert.ok(ProxyError.is(err, 'PROXY_CONFIG'), String(err));
            assert.match(err.message, message);
            return true;
          },
        );
      };
      refused(dir.path, /^c2\.caFile: cannot read \S+: is a directory, not a file \(EISDIR\)$/);
      refused(junk, /^c2\.caFile: \S+\/junk\.pem is not a PEM certificate \(.+\)$/);
    } finally {
      await dir.cleanup();
    }
  });

  void it('bounds the answer, reports a stalled body, and never follows a redirect', async () => {
    const big = 'x'.repeat(MAX_ANSWER_BYTES + 1);
    const odd = await startFakeC2((_method, path) => {
      switch (path) {
        case '/v1/clients/huge':
          return { status: 200, body: big };
        case '/v1/clients/huge-declared':
          return {
            status: 200,
            body: big,
            headers: { 'content-length': String(Buffer.byteLength(JSON.stringify(big))) },
          };
        case '/v1/clients/stalled':
          return { status: 200, stall: 'after-headers' };
        case '/v1/clients/silent':
          return { status: 200, stall: 'before-headers' };
        case '/v1/clients/moved':
          return {
            status: 302,
            headers: { location: 'http://elsewhere.example/v1/clients/moved' },
          };
        default:
          return undefined;
      }
    });
    try {
      const registrar = new C2Registrar(odd.url, 'tok', { timeoutMs: 300 });
      for (const name of ['huge', 'huge-declared']) {
        await refusedWith(
          registrar.isRegistered(name),
          `GET /v1/clients/${name}: HTTP 200: the answer of ${odd.url} exceeds ${MAX_ANSWER_BYTES} bytes (the C2's answers are small: is c2.url the C2's API?)`,
        );
      }
      await refusedWith(
        registrar.isRegistered('moved'),
        `GET /v1/clients/moved: HTTP 302 redirect to http://elsewhere.example/v1/clients/moved, not followed; set c2.url to the C2's API address (${odd.url} redirects)`,
      );
      for (const [name, failure] of [
        ['stalled', 'no complete answer within 300 ms (the body stalled after the headers)'],
        ['silent', 'no answer within 300 ms'],
      ] as const) {
        await assert.rejects(registrar.isRegistered(name), (err: unknown) => {
          assert.ok(err instanceof C2UnreachableError, String(err));
          assert.equal(err.message, `cannot reach the C2 at ${odd.url}: ${failure}`);
          return true;
        });
      }
      // Only the C2 was asked: the redirect was not followed.
      assert.deepEqual(
        odd.requests,
        ['huge', 'huge-declared', 'moved', 'stalled', 'silent'].map((n) => `GET /v1/clients/${n}`),
      );
    } finally {
      await odd.close();
    }
  });
});
