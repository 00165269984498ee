/** Roles, the credentials file and the authenticator, without a server. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { C2Error } from '../../cluster/errors.ts';
import { callerOf, type Authenticate, type AuthRequest } from '../api-types.ts';
import {
  credentialAuthenticator,
  newToken,
  parseApiCredentials,
  requiredRole,
  roleAllows,
  tokenDigest,
} from '../auth/index.ts';
import { ADMIN_UNARY_RPCS } from '../operations/admin-ops.ts';
import { REFERENCE_UNARY_RPCS } from '../operations/reference-ops.ts';

const reader = newToken();
const operator = newToken();
const admin = newToken();
const credentials = parseApiCredentials(
  JSON.stringify({
    tokens: [
      { name: 'dashboard', role: 'read-only', sha256: reader.sha256 },
      { name: 'ops-alice', role: 'operator', sha256: operator.sha256 },
      { name: 'root', role: 'admin', sha256: admin.sha256 },
    ],
    certificates: [
      { subject: 'automation', role: 'operator' },
      { fingerprint256: Array(32).fill('AB').join(':'), role: 'admin' },
    ],
  }),
);
const authenticate = credentialAuthenticator(credentials);
/** The actor of the authenticator's answer (it answers at once). */
function actorOf(answer: ReturnType<Authenticate>): string {
  assert.ok(!(answer instanceof Promise), 'the credential authenticator answers synchronously');
  return callerOf(answer).actor;
}

function request(operation: string, extra: Partial<AuthRequest> & { token?: string } = {}) {
  const { token, ...rest } = extra;
  const r: AuthRequest = {
    transport: 'grpc',
    operation,
    peer: '127.0.0.1:1',
    header: (name) =>
      name === 'authorization' && token !== undefined ? `Bearer ${token}` : undefined,
    ...rest,
  };
  return r;
}

function refusedWith(code: 'C2_UNAUTHENTICATED' | 'C2_PERMISSION_DENIED') {
  return (err: unknown): boolean => C2Error.is(err, code);
}

void describe('roles', () => {
  void it('classifies every RPC of both services', () => {
    const byRole = (role: string) =>
      [...REFERENCE_UNARY_RPCS, ...ADMIN_UNARY_RPCS].filter((rpc) => requiredRole(rpc) === role);
    assert.deepEqual(
      byRole('admin').sort(),
      [
        'NewC2Key',
        'NewClient',
        'RemoveClient',
        'RemoveClient',
        'RemoveTopic',
        'ReconcileAfterRestore',
      ].sort(),
    );
    for (const rpc of [
      'RotateTopicKey',
      'NewTopic',
      'NewTopicClient',
      'ProtectMessage',
      'ResyncClient',
    ])
      assert.equal(requiredRole(rpc), 'operator', rpc);
    for (const rpc of [
      'GetClients',
      'CountTopics',
      'ListEvents',
      'GetRotationStatus',
      'HealthCheck',
    ])
      assert.equal(requiredRole(rpc), 'read-only', rpc);
  });

  void it('reads the method of a qualified name, and closes unknown methods to all but admin', () => {
    assert.equal(requiredRole('pb.C2/GetTopics'), 'read-only');
    assert.equal(requiredRole('/e4c2.v1.C2Admin/RotateTopicKey'), 'operator');
    assert.equal(requiredRole('e4c2.v1.Automation/DeleteRule'), 'admin');
    assert.equal(requiredRole('SomethingNew'), 'admin');
  });

  void it('orders the roles', () => {
    assert.ok(roleAllows('admin', 'operator'));
    assert.ok(roleAllows('operator', 'read-only'));
    assert.ok(!roleAllows('read-only', 'operator'));
    assert.ok(!roleAllows('operator', 'admin'));
  });
});

void describe('the credentials file', () => {
  const bad: Array<[string, string, RegExp]> = [
    ['not JSON', '{', /not valid JSON/],
    ['an array', '[]', /must be a JSON object/],
    ['an unknown field', '{"tokens":[],"extra":1}', /unknown field 'extra'/],
    ['nobody', '{"tokens":[]}', /nobody could call the API/],
    [
      'a bad role',
      `{"tokens":[{"name":"a","role":"root","sha256":"${'0'.repeat(64)}"}]}`,
      /role must be one of/,
    ],
    [
      'a bad digest',
      '{"tokens":[{"name":"a","role":"admin","sha256":"abc"}]}',
      /sha256 must be 64/,
    ],
    [
      'a bad name',
      `{"tokens":[{"name":"a b","role":"admin","sha256":"${'0'.repeat(64)}"}]}`,
      /name must be/,
    ],
    ['a certificate without subject', '{"certificates":[{"role":"admin"}]}', /give subject/],
    [
      'a bad fingerprint',
      '{"certificates":[{"fingerprint256":"ab","role":"admin"}]}',
      /fingerprint256 must be/,
    ],
  ];
  for (const [what, text, message] of bad)
    void it(`refuses ${what} with C2_CONFIG`, () => {
      assert.throws(
        () => parseApiCredentials(text),
        (err: unknown) => C2Error.is(err, 'C2_CONFIG') && message.test((err as Error).message),
      );
    });

  void it('refuses a name used twice', () => {
    const t = { role: 'admin', sha256: '0'.repeat(64) };
    assert.throws(
      () =>
        parseApiCredentials(
          JSON.stringify({
            tokens: [
              { name: 'x', ...t },
              { name: 'x', ...t },
            ],
          }),
        ),
      /used twice/,
    );
  });

  void it('stores tokens as their SHA-256 only', () => {
    const { token, sha256 } = newToken();
    assert.equal(sha256, tokenDigest(token));
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(newToken().token, token);
  });

  void it('any text is parsed or refused with C2_CONFIG, never another error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        try {
          parseApiCredentials(text);
        } catch (err) {
          assert.ok(C2Error.is(err, 'C2_CONFIG'), String(err));
        }
      }),
    );
  });
});

void describe('the authenticator', () => {
  void it('names the caller by its token and enforces the role', () => {
    assert.deepEqual(authenticate(request('pb.C2/GetClients', { token: reader.token })), {
      actor: 'token:dashboard',
      role: 'read-only',
    });
    assert.throws(
      () => authenticate(request('pb.C2/NewTopic', { token: reader.token })),
      refusedWith('C2_PERMISSION_DENIED'),
    );
    assert.deepEqual(authenticate(request('pb.C2/NewTopic', { token: operator.token })), {
      actor: 'token:ops-alice',
      role: 'operator',
    });
    assert.throws(
      () => authenticate(request('pb.C2/NewClient', { token: operator.token })),
      refusedWith('C2_PERMISSION_DENIED'),
    );
    assert.deepEqual(authenticate(request('pb.C2/NewClient', { token: admin.token })), {
      actor: 'token:root',
      role: 'admin',
    });
  });

  void it('refuses a missing, malformed or unknown token', () => {
    assert.throws(() => authenticate(request('GetClients')), refusedWith('C2_UNAUTHENTICATED'));
    assert.throws(
      () => authenticate(request('GetClients', { header: () => 'Basic dXNlcjpwYXNz' })),
      refusedWith('C2_UNAUTHENTICATED'),
    );
    assert.throws(
      () => authenticate(request('GetClients', { token: newToken().token })),
      refusedWith('C2_UNAUTHENTICATED'),
    );
  });

  void it('takes the bearer scheme in any case, never the token', () => {
    const withHeader = (value: string): AuthRequest =>
      request('GetClients', { header: (name) => (name === 'authorization' ? value : undefined) });
    for (const scheme of ['bearer', 'BEARER', 'Bearer']) {
      assert.equal(
        actorOf(authenticate(withHeader(`${scheme} ${reader.token}`))),
        'token:dashboard',
      );
    }
    assert.throws(
      () => authenticate(withHeader(`Bearer ${reader.token.toUpperCase()}`)),
      refusedWith('C2_UNAUTHENTICATED'),
    );
  });

  void it('answers the reference HealthCheck probes without credentials', () => {
    for (const probe of ['pb.C2/HealthCheck', 'pb.C2AutomationEngine/HealthCheck', 'HealthCheck']) {
      assert.deepEqual(authenticate(request(probe)), { actor: 'probe', role: 'read-only' });
      // Even with a wrong token: a probe reads nothing.
      assert.equal(actorOf(authenticate(request(probe, { token: newToken().token }))), 'probe');
    }
    // Only the probes: other reads still need credentials.
    assert.throws(
      () => authenticate(request('pb.C2/GetClients')),
      refusedWith('C2_UNAUTHENTICATED'),
    );
  });

  void it('accepts listed client certificates by CN or fingerprint', () => {
    const bySubject = request('RotateTopicKey', {
      clientCertificate: { subject: 'automation', fingerprint256: '00' },
    });
    assert.equal(actorOf(authenticate(bySubject)), 'cert:automation');
    const byPrint = request('NewClient', {
      clientCertificate: { subject: 'x', fingerprint256: Array(32).fill('AB').join(':') },
    });
    assert.equal(actorOf(authenticate(byPrint)), 'cert:x');
    assert.throws(
      () =>
        authenticate(
          request('GetClients', {
            clientCertificate: { subject: 'stranger', fingerprint256: '01' },
          }),
        ),
      refusedWith('C2_UNAUTHENTICATED'),
    );
  });

  void it('lets a token decide when both are present: a wrong token is refused', () => {
    const both = request('GetClients', {
      token: newToken().token,
      clientCertificate: { subject: 'automation', fingerprint256: '00' },
    });
    assert.throws(() => authenticate(both), refusedWith('C2_UNAUTHENTICATED'));
  });

  void it('never puts the token in an error message', () => {
    const leaked = newToken().token;
    assert.throws(
      () => authenticate(request('GetClients', { token: leaked })),
      (err: unknown) => C2Error.is(err, 'C2_UNAUTHENTICATED') && !String(err).includes(leaked),
    );
  });
});
