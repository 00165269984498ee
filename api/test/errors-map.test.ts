/** The error table: complete, and internal failures never reach a client with their message. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status as GrpcStatus } from '@grpc/grpc-js';
import { C2Error, C2ErrorCode } from '../../cluster/errors.ts';
import { describeFailure, ERROR_MAP, internalMessage } from '../index.ts';

void describe('ERROR_MAP', () => {
  void it('has an entry for every C2ErrorCode, and nothing else', () => {
    assert.deepEqual(Object.keys(ERROR_MAP).sort(), Object.values(C2ErrorCode).sort());
    for (const [code, mapping] of Object.entries(ERROR_MAP)) {
      assert.ok(GrpcStatus[mapping.grpc] !== 'OK', code);
      assert.ok(mapping.http >= 400 && mapping.http < 600, code);
    }
  });

  void it('maps the codes as documented in docs/api.md', () => {
    const table = Object.fromEntries(
      Object.entries(ERROR_MAP).map(([code, m]) => [code, [GrpcStatus[m.grpc], m.http]]),
    );
    assert.deepEqual(table, {
      C2_VALIDATION: ['INVALID_ARGUMENT', 400],
      C2_NOT_FOUND: ['NOT_FOUND', 404],
      C2_ALREADY_EXISTS: ['ALREADY_EXISTS', 409],
      C2_CONFLICT: ['ABORTED', 409],
      C2_CRYPTO_MODE: ['FAILED_PRECONDITION', 400],
      C2_FAILED_PRECONDITION: ['FAILED_PRECONDITION', 400],
      C2_UNAUTHENTICATED: ['UNAUTHENTICATED', 401],
      C2_PERMISSION_DENIED: ['PERMISSION_DENIED', 403],
      C2_UNAVAILABLE: ['UNAVAILABLE', 503],
      C2_CONFIG: ['INTERNAL', 500],
      C2_KEY_VAULT: ['INTERNAL', 500],
      C2_INTERNAL: ['INTERNAL', 500],
    });
  });
});

void describe('describeFailure', () => {
  void it('keeps the message and details of client errors', () => {
    const failure = describeFailure(
      new C2Error('C2_NOT_FOUND', 'topic not found', { details: { topic: 't' } }),
      'req-1',
    );
    assert.deepEqual(failure, {
      code: 'C2_NOT_FOUND',
      message: 'topic not found',
      details: { topic: 't' },
      grpc: GrpcStatus.NOT_FOUND,
      http: 404,
      internal: false,
      requestId: 'req-1',
    });
  });

  const secret = 'password=hunter2 at 10.0.0.7';
  const internal: Array<[string, unknown]> = [
    ['a plain Error', new Error(secret)],
    ['a thrown string', secret],
    ['C2_INTERNAL', new C2Error('C2_INTERNAL', secret, { details: { dsn: secret } })],
    ['C2_KEY_VAULT', new C2Error('C2_KEY_VAULT', secret)],
    ['C2_CONFIG', new C2Error('C2_CONFIG', secret)],
    ['a wrapped error', C2Error.from(new Error(secret))],
  ];
  for (const [what, err] of internal) {
    void it(`never exposes ${what}: generic message with the request id, no details`, () => {
      const failure = describeFailure(err, 'req-42');
      assert.equal(failure.internal, true);
      assert.equal(failure.grpc, GrpcStatus.INTERNAL);
      assert.equal(failure.http, 500);
      assert.equal(failure.message, internalMessage('req-42'));
      assert.equal(failure.message, 'internal error; see the server logs (request id req-42)');
      assert.equal(failure.details, undefined);
      assert.ok(!JSON.stringify(failure).includes('hunter2'), 'no secret in the failure');
    });
  }
});
