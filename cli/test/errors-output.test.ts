// Exit codes for every gRPC status, the error lines and hints, the retry of unanswered calls,
// and the output helpers (tables, fields, JSON).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { ExitCode, exitCodeForStatus, fromGrpcError, type ConnectionFacts } from '../errors.ts';
import { withRetry } from '../grpc-client.ts';
import { alignRows, renderFields, renderTable, toJson } from '../output.ts';
import { FakeApi, grpcError, runWith } from './support/fake-api.ts';

const FACTS: ConnectionFacts = {
  endpoint: 'c2.local:5555',
  transport: 'tls-system',
  clientCert: false,
  timeoutMs: 10_000,
};

void describe('exit codes', () => {
  void it('maps every gRPC status', () => {
    const expected: [status, ExitCode][] = [
      [status.INVALID_ARGUMENT, ExitCode.Refused],
      [status.NOT_FOUND, ExitCode.Refused],
      [status.ALREADY_EXISTS, ExitCode.Refused],
      [status.PERMISSION_DENIED, ExitCode.Refused],
      [status.UNAUTHENTICATED, ExitCode.Refused],
      [status.RESOURCE_EXHAUSTED, ExitCode.Refused],
      [status.FAILED_PRECONDITION, ExitCode.Refused],
      [status.ABORTED, ExitCode.Refused],
      [status.OUT_OF_RANGE, ExitCode.Refused],
      [status.UNIMPLEMENTED, ExitCode.Refused],
      [status.UNAVAILABLE, ExitCode.Unreachable],
      [status.DEADLINE_EXCEEDED, ExitCode.Unreachable],
      [status.INTERNAL, ExitCode.Internal],
      [status.UNKNOWN, ExitCode.Internal],
      [status.DATA_LOSS, ExitCode.Internal],
      [status.CANCELLED, ExitCode.Interrupted],
    ];
    for (const [code, exit] of expected) assert.equal(exitCodeForStatus(code), exit, status[code]);
  });

  void it('every failure of a command is printed as "error: <message> (<code>)"', async () => {
    const cases: [status, string, ExitCode, RegExp][] = [
      [
        status.ABORTED,
        'version conflict',
        ExitCode.Refused,
        /^error: version conflict \(ABORTED\)\n$/,
      ],
      [
        status.FAILED_PRECONDITION,
        'pubkey mode only',
        ExitCode.Refused,
        /^error: pubkey mode only \(FAILED_PRECONDITION\)\n$/,
      ],
      [
        status.INTERNAL,
        'internal error; see the server logs (request id r1)',
        ExitCode.Internal,
        /^error: internal error; see the server logs \(request id r1\) \(INTERNAL\)\n$/,
      ],
      [status.UNKNOWN, 'a source client is required', ExitCode.Internal, /\(UNKNOWN\)\n$/],
      [
        status.UNIMPLEMENTED,
        'The server does not implement the method',
        ExitCode.Refused,
        /hint: this server does not offer that call/,
      ],
      [
        status.DEADLINE_EXCEEDED,
        'Deadline exceeded',
        ExitCode.Unreachable,
        /^error: no answer from the C2 at 127\.0\.0\.1:5555 within 10 s \(DEADLINE_EXCEEDED\)\nhint: raise --timeout/,
      ],
    ];
    for (const [code, details, exit, output] of cases) {
      const api = new FakeApi().onReference('CountTopics', () => {
        throw grpcError(code, details);
      });
      const r = await runWith(['count', '--topics'], { api });
      assert.equal(r.code, exit, status[code]);
      assert.match(r.stderr, output);
      assert.equal(r.stdout, '');
      assert.equal(r.api.closed, 1, 'the connection is closed on failure too');
    }
  });

  void it('control characters from the server are shown escaped, never sent to the terminal', async () => {
    const hostile = 'plant\u001b]0;owned\u0007/\u001b[31mred\rback\u009b';
    const api = new FakeApi()
      .onReference('CountTopics', () => ({ count: '1' }))
      .onReference('GetTopics', () => ({ topics: [hostile] }));
    const listed = await runWith(['topic', 'list'], { api });
    assert.equal(listed.code, ExitCode.Ok, listed.stderr);
    assert.equal(listed.stdout, 'plant\\x1b]0;owned\\x07/\\x1b[31mred\\x0dback\\x9b\n');
    const json = await runWith(['--json', 'topic', 'list'], { api });
    assert.deepEqual(JSON.parse(json.stdout), { topics: [hostile] }, 'JSON keeps the exact name');
    const refused = await runWith(['count', '--topics'], {
      api: new FakeApi().onReference('CountTopics', () => {
        throw grpcError(status.NOT_FOUND, `no topic ${hostile}`);
      }),
    });
    for (const c of ['\u001b', '\u0007', '\r', '\u009b'])
      assert.ok(!refused.stderr.includes(c), `raw ${JSON.stringify(c)} in: ${refused.stderr}`);
    assert.match(refused.stderr, /no topic plant\\x1b/);
  });

  void it('bidirectional formatting characters from the server are shown as \\u escapes', async () => {
    // dev<RLO>gpj.exe would read "devexe.jpg" on a terminal.
    const spoofing = 'dev\u202egpj.exe \u2066x\u2069 \u200f';
    const api = new FakeApi()
      .onReference('CountTopics', () => ({ count: '1' }))
      .onReference('GetTopics', () => ({ topics: [spoofing] }));
    const listed = await runWith(['topic', 'list'], { api });
    assert.equal(listed.code, ExitCode.Ok, listed.stderr);
    assert.equal(listed.stdout, 'dev\\u202egpj.exe \\u2066x\\u2069 \\u200f\n');
    const json = await runWith(['--json', 'topic', 'list'], { api });
    assert.deepEqual(JSON.parse(json.stdout), { topics: [spoofing] }, 'JSON keeps the exact name');
  });

  void it('an unexpected exception is an internal error of the CLI (exit 4)', async () => {
    const api = new FakeApi().onReference('CountTopics', () => {
      throw new TypeError('boom');
    });
    const r = await runWith(['count', '--topics'], { api });
    assert.equal(r.code, ExitCode.Internal);
    assert.equal(r.stderr, 'error: internal error in e4c2: boom\n');
  });

  void it('a call cancelled by Ctrl-C is exit 130', async () => {
    const interrupt = new AbortController();
    const api = new FakeApi().onReference('CountTopics', () => {
      interrupt.abort();
      throw grpcError(status.CANCELLED, 'Cancelled on client');
    });
    const r = await runWith(['count', '--topics'], { api, signal: interrupt.signal });
    assert.equal(r.code, ExitCode.Interrupted);
    assert.equal(r.stderr, 'error: interrupted\n');
  });
});

void describe('connection failures name the endpoint and suggest a fix', () => {
  void it('an UNAVAILABLE answered by the C2 (its error code in the trailers) is not a connection failure', () => {
    const answered = Object.assign(
      grpcError(
        status.UNAVAILABLE,
        'could not acquire the lock on resource "topic:t": only 0 of 3 lock instances answered',
      ),
      { metadata: { get: (key: string) => (key === 'e4c2-error-code' ? ['C2_UNAVAILABLE'] : []) } },
    );
    const e = fromGrpcError(answered, FACTS);
    assert.equal(e.exitCode, ExitCode.Unreachable);
    assert.match(e.message, /^the C2 at c2.local:5555 is unavailable: could not acquire the lock/);
    assert.match(e.hint ?? '', /does not answer \(its \/readyz names which\)/);
    assert.doesNotMatch(e.hint ?? '', /--cert|--insecure/);
  });

  void it("a refusal names the C2's own code when it says more than the gRPC status", () => {
    const withCode = (code: status, c2Code: string): ReturnType<typeof grpcError> =>
      Object.assign(grpcError(code, 'refused'), {
        metadata: { get: (key: string) => (key === 'e4c2-error-code' ? [c2Code] : []) },
      });
    // ABORTED is a lost race or a request id reused for another request: the code tells which.
    assert.equal(
      fromGrpcError(withCode(status.ABORTED, 'C2_CONFLICT'), FACTS).grpcCode,
      'ABORTED, C2_CONFLICT',
    );
    assert.equal(
      fromGrpcError(withCode(status.FAILED_PRECONDITION, 'C2_CRYPTO_MODE'), FACTS).grpcCode,
      'FAILED_PRECONDITION, C2_CRYPTO_MODE',
    );
    assert.equal(
      fromGrpcError(withCode(status.NOT_FOUND, 'C2_NOT_FOUND'), FACTS).grpcCode,
      'NOT_FOUND',
    );
  });

  void it('nothing listening', () => {
    const e = fromGrpcError(
      grpcError(
        status.UNAVAILABLE,
        'No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:5555. Resolution note: ',
      ),
      FACTS,
    );
    assert.equal(e.exitCode, ExitCode.Unreachable);
    assert.equal(
      e.message,
      'cannot reach the C2 at c2.local:5555: connect ECONNREFUSED 127.0.0.1:5555',
    );
    assert.equal(e.grpcCode, 'UNAVAILABLE');
    assert.match(e.hint ?? '', /is the C2 running and listening on c2\.local:5555\?/);
  });

  void it('TLS failures suggest --cert (or dropping --insecure)', () => {
    const selfSigned = fromGrpcError(
      grpcError(
        status.UNAVAILABLE,
        'No connection established. Last error: Error: self-signed certificate',
      ),
      FACTS,
    );
    assert.equal(
      selfSigned.message,
      'cannot reach the C2 at c2.local:5555: self-signed certificate',
    );
    assert.match(selfSigned.hint ?? '', /--cert FILE \(npm start prints its path\)/);
    const plainToTls = fromGrpcError(grpcError(status.UNAVAILABLE, 'Connection dropped'), {
      ...FACTS,
      transport: 'insecure',
    });
    assert.match(
      plainToTls.hint ?? '',
      /if the server uses TLS, pass its certificate with --cert FILE instead of --insecure/,
    );
    const tlsToPlain = fromGrpcError(
      grpcError(
        status.UNAVAILABLE,
        'No connection established. Last error: 808C6D5D897F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n',
      ),
      FACTS,
    );
    assert.equal(
      tlsToPlain.message,
      'cannot reach the C2 at c2.local:5555: TLS handshake failed: wrong version number',
    );
    assert.match(tlsToPlain.hint ?? '', /does not speak TLS on c2\.local:5555: use --insecure/);
  });

  void it('a server that requires a client certificate: the hint names --client-cert/--client-key (not --cert)', () => {
    const alerts = [
      'No connection established. Last error: 40F8C1E5A37F0000:error:0A00045C:SSL routines::tlsv13 alert certificate required:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1605:SSL alert number 116\n',
      'No connection established. Last error: Error: 00000000:error:0A000412:SSL routines:ssl3_read_bytes:sslv3 alert bad certificate:ssl/record/rec_layer_s3.c:1584:SSL alert number 42',
      'No connection established. Last error: Error: 00000000:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:ssl/record/rec_layer_s3.c:1584:SSL alert number 48',
      'alert certificate required',
    ];
    for (const details of alerts) {
      for (const transport of ['tls-cert', 'tls-system'] as const) {
        const e = fromGrpcError(grpcError(status.UNAVAILABLE, details), { ...FACTS, transport });
        assert.equal(e.exitCode, ExitCode.Unreachable);
        assert.match(
          e.hint ?? '',
          /^the server requires a client certificate \(mutual TLS\): pass yours with --client-cert FILE --client-key FILE \(or E4C2_CLIENT_CERT and E4C2_CLIENT_KEY\)/,
          details,
        );
        assert.doesNotMatch(e.hint ?? '', /pass the server certificate/, details);
      }
    }
    const required = fromGrpcError(grpcError(status.UNAVAILABLE, alerts[0] ?? ''), FACTS);
    assert.equal(
      required.message,
      'cannot reach the C2 at c2.local:5555: TLS handshake failed: tlsv13 alert certificate required',
    );
    const refused = fromGrpcError(grpcError(status.UNAVAILABLE, alerts[2] ?? ''), {
      ...FACTS,
      clientCert: true,
    });
    assert.match(refused.hint ?? '', /^the server refused the client certificate: .*--client-cert/);
    // A failed check of the server's own certificate is not the server asking for the client's.
    for (const details of [
      'No connection established. Last error: Error: self-signed certificate',
      'No connection established. Last error: Error: unable to verify the first certificate',
      "No connection established. Last error: Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames",
    ]) {
      for (const clientCert of [false, true]) {
        const e = fromGrpcError(grpcError(status.UNAVAILABLE, details), {
          ...FACTS,
          transport: 'tls-cert',
          clientCert,
        });
        assert.match(
          e.hint ?? '',
          /^TLS failed: pass the server certificate \(or its CA\) with --cert FILE/,
        );
      }
    }
  });

  void it('a client certificate the server dropped the connection over (TLS 1.3: a reset)', () => {
    const reset = 'No connection established. Last error: read ECONNRESET (2025-01-01T00:00:00Z)';
    const withCert = fromGrpcError(grpcError(status.UNAVAILABLE, reset), {
      ...FACTS,
      clientCert: true,
    });
    assert.match(withCert.hint ?? '', /--client-cert is issued by the CA it trusts/);
    const without = fromGrpcError(grpcError(status.UNAVAILABLE, reset), FACTS);
    assert.match(without.hint ?? '', /^is the C2 running and listening on c2\.local:5555\?/);
  });
});

void describe('withRetry', () => {
  const unavailable = (): Error => grpcError(status.UNAVAILABLE, 'down');

  void it('retries UNAVAILABLE after each delay, then gives up', async () => {
    const slept: number[] = [];
    let attempts = 0;
    await assert.rejects(
      withRetry(
        () => {
          attempts++;
          return Promise.reject(unavailable());
        },
        [10, 20],
        (ms) => {
          slept.push(ms);
          return Promise.resolve();
        },
      ),
      /down/,
    );
    assert.equal(attempts, 3);
    assert.deepEqual(slept, [10, 20]);
  });

  void it('returns the first success', async () => {
    let attempts = 0;
    const value = await withRetry(
      () => (++attempts < 2 ? Promise.reject(unavailable()) : Promise.resolve('ok')),
      [1, 1],
      () => Promise.resolve(),
    );
    assert.equal(value, 'ok');
    assert.equal(attempts, 2);
  });

  void it('never retries an answer from the server, nor after Ctrl-C', async () => {
    let attempts = 0;
    await assert.rejects(
      withRetry(
        () => {
          attempts++;
          return Promise.reject(grpcError(status.NOT_FOUND, 'nope'));
        },
        [1],
        () => Promise.resolve(),
      ),
    );
    assert.equal(attempts, 1);
    const interrupt = new AbortController();
    interrupt.abort();
    attempts = 0;
    await assert.rejects(
      withRetry(
        () => {
          attempts++;
          return Promise.reject(unavailable());
        },
        [1],
        () => Promise.resolve(),
        interrupt.signal,
      ),
    );
    assert.equal(attempts, 1);
  });
});

void describe('output helpers', () => {
  void it('renderTable aligns columns, upper-cases headers, leaves no trailing spaces', () => {
    assert.equal(
      renderTable(
        ['name', 'version', 'state'],
        [
          ['a', '10', 'delivered'],
          ['long-name', '2', ''],
        ],
      ),
      'NAME       VERSION  STATE\na          10       delivered\nlong-name  2\n',
    );
    assert.equal(renderTable(['a', 'b'], []), 'A  B\n');
  });

  void it('alignRows counts characters, not bytes', () => {
    assert.equal(
      alignRows([
        ['é', 'x'],
        ['ab', 'y'],
      ]),
      'é   x\nab  y\n',
    );
  });

  void it('renderFields aligns labels', () => {
    assert.equal(
      renderFields([
        ['id', '1'],
        ['key version', '2'],
      ]),
      'id           1\nkey version  2\n',
    );
  });

  void it('toJson writes bytes as base64 and bigints as strings', () => {
    assert.equal(
      toJson({ a: new Uint8Array([1, 2]), b: Buffer.from([3]), c: 5n }),
      '{"a":"AQI=","b":"Aw==","c":"5"}',
    );
  });
});
