/**
 * Bad input for every route and every RPC (table-driven): each case asserts the status, the
 * stable error code, and that nothing stored changed (counts, key versions, memberships, links,
 * audit log, events, idempotency records).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { ed25519PublicKey, randomEd25519Key } from '../../e4/index.ts';
import { compilePath, matchPath } from '../http/router.ts';
import { ADMIN_ROUTE_LIST, loadProtos, REFERENCE_ROUTE_LIST } from '../index.ts';
import { snapshot, startApi, type ApiHarness, type Message } from './support/api-harness.ts';

const LONG_NAME = 'n'.repeat(256);
const LONG_UTF8_NAME = encodeURIComponent('é'.repeat(128)); // 256 bytes of UTF-8
const LONG_TOPIC = 't'.repeat(513);
const b64 = (bytes: Uint8Array | number): string =>
  Buffer.from(typeof bytes === 'number' ? randomBytes(bytes) : bytes).toString('base64');

// gRPC codes
const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const RESOURCE_EXHAUSTED = 8;
const FAILED_PRECONDITION = 9;

interface HttpCase {
  readonly method: string;
  readonly path: string;
  readonly body?: string | object;
  readonly headers?: Record<string, string>;
  readonly status: number;
  /** Expected stable code (C2_...). */
  readonly code?: string;
  /** Expected field named in the error details. */
  readonly field?: string;
}

interface GrpcCase {
  readonly service?: 'pb.C2' | 'e4c2.v1.C2Admin';
  readonly rpc: string;
  readonly request: Message;
  readonly grpc: number;
  readonly code?: string;
  readonly metadata?: Record<string, string>;
}

function errorOf(json: unknown): { code: string; field: unknown } {
  const body = json as Record<string, unknown>;
  if (typeof body['error'] === 'object' && body['error'] !== null) {
    const e = body['error'] as { code: string; details?: Record<string, unknown> };
    return { code: e.code, field: e.details?.['field'] };
  }
  const [info] = body['details'] as Array<{ reason: string; metadata: Record<string, unknown> }>;
  return { code: info?.reason ?? '', field: info?.metadata['field'] };
}

async function runHttpCases(a: ApiHarness, cases: readonly HttpCase[]): Promise<void> {
  const before = await snapshot(a.h);
  for (const c of cases) {
    const label = `${c.method} ${c.path.slice(0, 80)} ${typeof c.body === 'string' ? c.body.slice(0, 40) : JSON.stringify(c.body ?? '').slice(0, 60)}`;
    const res = await a.http(c.method, c.path, {
      ...(c.body === undefined ? {} : { body: c.body }),
      ...(c.headers === undefined ? {} : { headers: c.headers }),
    });
    assert.equal(res.status, c.status, `${label}: ${res.text}`);
    assert.equal(res.headers['content-type'], 'application/json', label);
    assert.ok(res.json !== undefined, `${label}: JSON body`);
    if (c.code !== undefined) assert.equal(errorOf(res.json).code, c.code, `${label}: ${res.text}`);
    if (c.field !== undefined)
      assert.equal(errorOf(res.json).field, c.field, `${label}: ${res.text}`);
    assert.deepEqual(await snapshot(a.h), before, `${label}: nothing stored changed`);
  }
}

async function runGrpcCases(a: ApiHarness, cases: readonly GrpcCase[]): Promise<void> {
  const before = await snapshot(a.h);
  for (const c of cases) {
    const label = `${c.rpc} ${JSON.stringify(c.request, (_k, v: unknown) => (typeof v === 'string' && v.length > 60 ? `${v.slice(0, 20)}…(${v.length})` : v)).slice(0, 160)}`;
    const client = c.service === 'e4c2.v1.C2Admin' ? a.admin : a.grpc;
    const metadata = new Metadata();
    for (const [k, v] of Object.entries(c.metadata ?? {})) metadata.set(k, v);
    await assert.rejects(
      client.call(c.rpc, c.request, metadata),
      (err: ServiceError) => {
        assert.equal(err.code, c.grpc, `${label}: ${err.details}`);
        if (c.code !== undefined)
          assert.equal(err.metadata.get('e4c2-error-code')[0], c.code, `${label}: ${err.details}`);
        return true;
      },
      `${label}: expected an error`,
    );
    assert.deepEqual(await snapshot(a.h), before, `${label}: nothing stored changed`);
  }
}

function assertEveryRoute(cases: readonly HttpCase[], routes: readonly string[]): void {
  for (const route of routes) {
    const [method, template] = route.split(' ');
    const pattern = compilePath(template ?? '');
    const covered = cases.some((c) => {
      const path = c.path.split('?')[0] ?? '';
      try {
        return c.method === method && matchPath(pattern, path.slice(1).split('/')) !== undefined;
      } catch {
        return c.method === method;
      }
    });
    assert.ok(covered, `no bad-input case for ${route}`);
  }
}

void describe('bad input, symmetric-key mode', () => {
  let a: ApiHarness;
  before(async () => {
    a = await startApi();
    await a.grpc.call('NewClient', { client: { name: 'alice' }, key: randomBytes(32) });
    await a.grpc.call('NewClient', { client: { name: 'bob' }, key: randomBytes(32) });
    await a.grpc.call('NewTopic', { topic: 't1' });
    await a.grpc.call('NewTopicClient', { client: { name: 'alice' }, topic: 't1' });
    await a.grpc.call('LinkClient', {
      sourceClient: { name: 'bob' },
      targetClient: { name: 'alice' },
    });
  });
  after(async () => {
    await a.close();
  });

  const key = (): object => ({ key: b64(32) });
  const httpCases: HttpCase[] = [
    // NewClient: names, keys, JSON
    {
      method: 'POST',
      path: '/e4/client/',
      body: key(),
      status: 400,
      code: 'C2_VALIDATION',
      field: 'client.name',
    },
    {
      method: 'POST',
      path: `/e4/client/${LONG_NAME}`,
      body: key(),
      status: 400,
      field: 'client.name',
    },
    {
      method: 'POST',
      path: `/e4/client/${LONG_UTF8_NAME}`,
      body: key(),
      status: 400,
      field: 'client.name',
    },
    { method: 'POST', path: '/e4/client/a%01b', body: key(), status: 400, field: 'client.name' },
    // A C1 control character (U+0085), and U+FFFD (what a lossy decoder makes of a bad byte).
    { method: 'POST', path: '/e4/client/a%C2%85b', body: key(), status: 400, field: 'client.name' },
    {
      method: 'POST',
      path: '/e4/client/a%EF%BF%BDb',
      body: key(),
      status: 400,
      field: 'client.name',
    },
    // `.` and `..` (URL parsers resolve them as path steps: nothing could address them later).
    { method: 'POST', path: '/e4/client/%2E', body: key(), status: 400, field: 'client.name' },
    { method: 'POST', path: '/e4/client/%2E%2E', body: key(), status: 400, field: 'client.name' },
    // Bidirectional formatting characters (U+202E override, U+2066 isolate, U+200F mark): the
    // name would display as another one.
    {
      method: 'POST',
      path: '/e4/client/dev%E2%80%AEgpj.exe',
      body: key(),
      status: 400,
      code: 'C2_VALIDATION',
      field: 'client.name',
    },
    {
      method: 'POST',
      path: '/e4/client/a%E2%81%A6b',
      body: key(),
      status: 400,
      field: 'client.name',
    },
    {
      method: 'POST',
      path: '/e4/client/a%E2%80%8Fb',
      body: key(),
      status: 400,
      field: 'client.name',
    },
    // Only whitespace (a space, NBSP, an ideographic space) or characters displayed as nothing
    // (zero-width space, word joiner, BOM, soft hyphen): reads as no name at all.
    ...['%20', '%20%C2%A0', '%E3%80%80', '%E2%80%8B%E2%81%A0', '%EF%BB%BF%C2%AD'].map((name) => ({
      method: 'POST',
      path: `/e4/client/${name}`,
      body: key(),
      status: 400,
      code: 'C2_VALIDATION',
      field: 'client.name',
    })),
    { method: 'POST', path: '/e4/client/carol', body: {}, status: 400, field: 'key' },
    { method: 'POST', path: '/e4/client/carol', status: 400, field: 'key' },
    { method: 'POST', path: '/e4/client/carol', body: { key: b64(31) }, status: 400, field: 'key' },
    { method: 'POST', path: '/e4/client/carol', body: { key: b64(33) }, status: 400, field: 'key' },
    {
      method: 'POST',
      path: '/e4/client/carol',
      body: { key: b64(new Uint8Array(32)) },
      status: 400,
      field: 'key',
    },
    {
      method: 'POST',
      path: '/e4/client/carol',
      body: { key: 'not base64!' },
      status: 400,
      field: 'key',
    },
    { method: 'POST', path: '/e4/client/carol', body: { key: 'QUJD=' }, status: 400, field: 'key' },
    { method: 'POST', path: '/e4/client/carol', body: { key: 1234 }, status: 400, field: 'key' },
    { method: 'POST', path: '/e4/client/carol', body: { key: [1, 2] }, status: 400, field: 'key' },
    {
      method: 'POST',
      path: '/e4/client/carol',
      body: '{"key": "AAAA"',
      status: 400,
      field: 'body',
    },
    { method: 'POST', path: '/e4/client/carol', body: 'key=AAAA', status: 400, field: 'body' },
    { method: 'POST', path: '/e4/client/carol', body: '[]', status: 400, field: 'body' },
    { method: 'POST', path: '/e4/client/carol', body: 'null', status: 400, field: 'body' },
    {
      method: 'POST',
      path: '/e4/client/carol',
      body: { ...key(), extra: true },
      status: 400,
      field: 'extra',
    },
    {
      method: 'POST',
      path: '/e4/client/carol',
      body: { ...key(), client: { name: 'carol', id: 'x' } },
      status: 400,
      field: 'client.id',
    },
    {
      method: 'POST',
      path: '/e4/client/carol',
      body: { ...key(), client: { name: 'mallory' } },
      status: 400,
      field: 'name',
    },
    {
      method: 'POST',
      path: '/e4/client/carol',
      body: { ...key(), client: 'carol' },
      status: 400,
      field: 'client',
    },
    { method: 'POST', path: '/e4/client/carol?key=AAAA', body: key(), status: 400, field: 'key' },
    // RemoveClient, ResetClient, NewClientKey
    { method: 'DELETE', path: '/e4/client/', status: 400, field: 'client.name' },
    { method: 'DELETE', path: `/e4/client/${LONG_NAME}`, status: 400 },
    { method: 'DELETE', path: '/e4/client/nobody', status: 404, code: 'C2_NOT_FOUND' },
    { method: 'DELETE', path: '/e4/client/alice?reset=true', status: 400, field: 'reset' },
    { method: 'PUT', path: '/e4/client/', status: 400 },
    { method: 'PUT', path: '/e4/client/nobody', status: 404 },
    { method: 'PATCH', path: '/e4/client/', status: 400 },
    { method: 'PATCH', path: `/e4/client/${LONG_NAME}`, status: 400 },
    { method: 'PATCH', path: '/e4/client/nobody', status: 404 },
    {
      method: 'PATCH',
      path: '/e4/client/alice',
      body: { key: b64(32) },
      status: 400,
      field: 'key',
    },
    { method: 'PATCH', path: '/e4/client/alice', body: '{', status: 400, field: 'body' },
    // NewTopic, RemoveTopic
    { method: 'POST', path: '/e4/topic/', status: 400, field: 'topic' },
    { method: 'POST', path: '/e4/topic/a/%2B/b', status: 400, field: 'topic' },
    { method: 'POST', path: '/e4/topic/a/%23', status: 400, field: 'topic' },
    { method: 'POST', path: '/e4/topic/%24SYS/x', status: 400, field: 'topic' },
    { method: 'POST', path: `/e4/topic/${LONG_TOPIC}`, status: 400, field: 'topic' },
    { method: 'POST', path: '/e4/topic/a%00b', status: 400, field: 'topic' },
    { method: 'POST', path: '/e4/topic/%2E%2E', status: 400, field: 'topic' },
    { method: 'POST', path: '/e4/topic/a/%E2%80%AEb', status: 400, field: 'topic' },
    { method: 'POST', path: '/e4/topic/a%E2%81%A9', status: 400, field: 'topic' },
    // Control characters (MQTT 5 §1.5.4): ESC, DEL, a C1 (CSI), a tab; they would reach
    // operators' terminals as escape sequences through the CLI.
    ...['a%1B%5B31mb', 'a%7Fb', 'a%C2%9B2Jb', 'a%09b'].map((topic) => ({
      method: 'POST',
      path: `/e4/topic/${topic}`,
      status: 400,
      code: 'C2_VALIDATION',
      field: 'topic',
    })),
    ...['%20', '%E2%80%83%20'].map((topic) => ({
      method: 'POST',
      path: `/e4/topic/${topic}`,
      status: 400,
      code: 'C2_VALIDATION',
      field: 'topic',
    })),
    // E4's own topics: a device's control topic, the receipts.
    {
      method: 'POST',
      path: '/e4/topic/e4/00112233445566778899aabbccddeeff',
      status: 400,
      field: 'topic',
    },
    { method: 'POST', path: '/e4/topic/e4/receipts/x', status: 400, field: 'topic' },
    { method: 'POST', path: '/e4/topic/%zz', status: 400, field: 'path' },
    { method: 'POST', path: '/e4/topic/t2?force=1', status: 400, field: 'force' },
    { method: 'DELETE', path: '/e4/topic/', status: 400 },
    { method: 'DELETE', path: '/e4/topic/a/%2B', status: 400 },
    { method: 'DELETE', path: '/e4/topic/nope', status: 404, code: 'C2_NOT_FOUND' },
    // NewTopicClient, RemoveTopicClient
    { method: 'PUT', path: '/e4/client//topic/t1', status: 400, field: 'client.name' },
    { method: 'PUT', path: '/e4/client/alice/topic/', status: 400, field: 'topic' },
    { method: 'PUT', path: '/e4/client/alice/topic/a%2Bb', status: 400, field: 'topic' },
    { method: 'PUT', path: `/e4/client/alice/topic/${LONG_TOPIC}`, status: 400 },
    { method: 'PUT', path: `/e4/client/${LONG_NAME}/topic/t1`, status: 400 },
    { method: 'PUT', path: '/e4/client/nobody/topic/t1', status: 404 },
    { method: 'PUT', path: '/e4/client/alice/topic/nope', status: 404 },
    { method: 'DELETE', path: '/e4/client//topic/t1', status: 400 },
    { method: 'DELETE', path: '/e4/client/alice/topic/', status: 400 },
    { method: 'DELETE', path: '/e4/client/bob/topic/t1', status: 404, code: 'C2_NOT_FOUND' },
    // Counts and lists
    { method: 'GET', path: '/e4/client//topics/count', status: 400 },
    { method: 'GET', path: '/e4/client/nobody/topics/count', status: 404 },
    { method: 'GET', path: '/e4/client//topics', status: 400 },
    { method: 'GET', path: '/e4/client/alice/topics?offset=-1', status: 400, field: 'offset' },
    { method: 'GET', path: '/e4/client/alice/topics?count=-1', status: 400, field: 'count' },
    { method: 'GET', path: '/e4/client/alice/topics?count=ten', status: 400, field: 'count' },
    { method: 'GET', path: '/e4/client/alice/topics?count=1.5', status: 400, field: 'count' },
    {
      method: 'GET',
      path: '/e4/client/alice/topics?count=99999999999999999999',
      status: 400,
      field: 'count',
    },
    { method: 'GET', path: '/e4/client/alice/topics?cout=10', status: 400, field: 'cout' },
    { method: 'GET', path: '/e4/client/alice/topics?count=1&count=2', status: 400, field: 'count' },
    {
      method: 'GET',
      path: '/e4/client/alice/topics?client.name=bob',
      status: 400,
      field: 'client.name',
    },
    { method: 'GET', path: '/e4/topic//clients/count', status: 400, field: 'topic' },
    { method: 'GET', path: '/e4/topic/a%2B/clients/count', status: 400 },
    { method: 'GET', path: '/e4/topic/nope/clients/count', status: 404 },
    { method: 'GET', path: '/e4/topic//clients', status: 400 },
    { method: 'GET', path: '/e4/topic/t1/clients?offset=-5', status: 400, field: 'offset' },
    { method: 'GET', path: '/e4/topic/t1/clients?topic=x', status: 400, field: 'topic' },
    { method: 'GET', path: '/e4/clients/count?x=1', status: 400, field: 'x' },
    { method: 'GET', path: '/e4/clients?offset=-1', status: 400, field: 'offset' },
    { method: 'GET', path: '/e4/clients?count=', status: 400, field: 'count' },
    { method: 'GET', path: '/e4/topics/count?offset=1', status: 400, field: 'offset' },
    { method: 'GET', path: '/e4/topics?count=-100', status: 400, field: 'count' },
    { method: 'GET', path: '/e4/topics?offset=abc', status: 400, field: 'offset' },
    // Links
    { method: 'POST', path: '/e4/client//link/bob', status: 400, field: 'targetClient.name' },
    { method: 'POST', path: '/e4/client/alice/link/', status: 400, field: 'sourceClient.name' },
    { method: 'POST', path: '/e4/client/alice/link/alice', status: 400 },
    { method: 'POST', path: `/e4/client/alice/link/${LONG_NAME}`, status: 400 },
    { method: 'POST', path: '/e4/client/alice/link/nobody', status: 404 },
    { method: 'DELETE', path: '/e4/client//unlink/bob', status: 400 },
    { method: 'DELETE', path: '/e4/client/bob/unlink/alice', status: 404, code: 'C2_NOT_FOUND' },
    { method: 'GET', path: '/e4/client//link/count', status: 400 },
    { method: 'GET', path: '/e4/client/nobody/link/count', status: 404 },
    { method: 'GET', path: '/e4/client//link', status: 400 },
    { method: 'GET', path: '/e4/client/alice/link?offset=-1', status: 400 },
    // Public-key mode only: FAILED_PRECONDITION (400) in symmetric-key mode
    {
      method: 'POST',
      path: '/e4/send-client-pubkey',
      body: { sourceClient: { name: 'bob' }, targetClient: { name: 'alice' } },
      status: 400,
      code: 'C2_CRYPTO_MODE',
    },
    {
      method: 'POST',
      path: '/e4/send-client-pubkey',
      body: { source: 'bob' },
      status: 400,
      field: 'source',
    },
    {
      method: 'POST',
      path: '/e4/remove-client-pubkey',
      body: { sourceClient: { name: 'bob' }, targetClient: { name: 'alice' } },
      status: 400,
      code: 'C2_CRYPTO_MODE',
    },
    {
      method: 'POST',
      path: '/e4/reset-client-pubkeys',
      body: { targetClient: { name: 'alice' } },
      status: 400,
      code: 'C2_CRYPTO_MODE',
    },
    {
      method: 'POST',
      path: '/e4/new-c2-key',
      body: { force: true },
      status: 400,
      code: 'C2_CRYPTO_MODE',
    },
    { method: 'POST', path: '/e4/new-c2-key', body: { force: 'yes' }, status: 400, field: 'force' },
    // ProtectMessage, UnprotectMessage, sizes
    { method: 'POST', path: '/e4/protect-message', body: {}, status: 400, field: 'topic' },
    {
      method: 'POST',
      path: '/e4/protect-message',
      body: { topic: 't1' },
      status: 400,
      field: 'binaryData',
    },
    {
      method: 'POST',
      path: '/e4/protect-message',
      body: { topic: 't1', binaryData: '@@' },
      status: 400,
      field: 'binaryData',
    },
    {
      method: 'POST',
      path: '/e4/protect-message',
      body: { topic: 'nope', binaryData: b64(4) },
      status: 404,
    },
    {
      method: 'POST',
      path: '/e4/protect-message',
      body: { topic: 't1', binaryData: b64((1 << 20) + 1) },
      status: 400,
      field: 'binaryData',
    },
    {
      method: 'POST',
      path: '/e4/protect-message',
      body: { topic: 't1', binaryData: b64(1_200_000) },
      status: 413,
      field: 'body',
    },
    {
      method: 'POST',
      path: '/e4/unprotect-message',
      body: { topic: 't1', protectedBinaryData: b64(40) },
      status: 400,
      field: 'protectedBinaryData',
    },
    {
      method: 'POST',
      path: '/e4/unprotect-message',
      body: { topic: 't1', protectedBinaryData: b64(8) },
      status: 400,
    },
    {
      method: 'POST',
      path: '/e4/unprotect-message',
      body: { topic: 't1', binaryData: b64(40) },
      status: 400,
      field: 'binaryData',
    },
    { method: 'GET', path: '/e4/health-check?verbose=1', status: 400, field: 'verbose' },
    { method: 'GET', path: '/e4/crypto-mode?x=', status: 400, field: 'x' },
    // Transport: routes, methods, idempotency keys
    { method: 'GET', path: '/e4/nothing', status: 404, code: 'C2_NOT_FOUND' },
    { method: 'GET', path: '/v1/nothing', status: 404, code: 'C2_NOT_FOUND' },
    { method: 'GET', path: '/e4/topic/t1', status: 405 },
    { method: 'POST', path: '/e4/clients', status: 405 },
    {
      method: 'POST',
      path: '/e4/topic/t9',
      headers: { 'idempotency-key': 'x'.repeat(129) },
      status: 400,
      field: 'idempotency-key',
    },
    // v1
    { method: 'GET', path: '/v1/clients/', status: 400, field: 'client.name' },
    { method: 'GET', path: `/v1/clients/${LONG_NAME}`, status: 400 },
    { method: 'GET', path: '/v1/clients/nobody', status: 404, code: 'C2_NOT_FOUND' },
    { method: 'GET', path: '/v1/clients?limit=100000', status: 400, field: 'limit' },
    { method: 'GET', path: '/v1/clients?limit=-1', status: 400, field: 'limit' },
    { method: 'GET', path: '/v1/clients?cursor=%21%21', status: 400, field: 'cursor' },
    // Base64url of bytes that are not UTF-8: was read as a position past every name.
    { method: 'GET', path: '/v1/clients?cursor=garbage', status: 400, field: 'cursor' },
    // Base64url of a NUL (and of "a\0b"): PostgreSQL refuses it in text, a 500.
    { method: 'GET', path: '/v1/clients?cursor=AA', status: 400, field: 'cursor' },
    { method: 'GET', path: '/v1/topics?cursor=YQBi', status: 400, field: 'cursor' },
    { method: 'GET', path: '/v1/clients?offset=1', status: 400, field: 'offset' },
    { method: 'DELETE', path: '/v1/clients/', status: 400 },
    { method: 'DELETE', path: '/v1/clients/nobody', status: 404 },
    { method: 'DELETE', path: '/v1/clients/alice?reset=maybe', status: 400, field: 'reset' },
    // A body on a route that takes none: the reset was dropped and the client removed without it.
    {
      method: 'DELETE',
      path: '/v1/clients/alice',
      body: { reset: true },
      status: 400,
      field: 'body',
    },
    { method: 'POST', path: '/v1/clients//rotate', status: 400 },
    { method: 'POST', path: '/v1/clients/nobody/rotate', status: 404 },
    {
      method: 'POST',
      path: '/v1/clients/alice/rotate',
      body: { publicKey: b64(32) },
      status: 400,
      field: 'publicKey',
      code: 'C2_CRYPTO_MODE',
    },
    {
      method: 'POST',
      path: '/v1/clients/alice/rotate',
      body: { publicKey: '%%%' },
      status: 400,
      field: 'publicKey',
    },
    {
      method: 'POST',
      path: '/v1/clients/alice/rotate',
      body: { name: 'bob' },
      status: 400,
      field: 'name',
    },
    {
      method: 'POST',
      path: '/v1/clients/alice/rotate',
      body: { requestId: 'a' },
      headers: { 'idempotency-key': 'b' },
      status: 400,
      field: 'request_id',
    },
    { method: 'POST', path: '/v1/clients//resync', status: 400 },
    {
      method: 'POST',
      path: '/v1/clients/alice/resync',
      body: { force: true },
      status: 400,
      field: 'force',
    },
    { method: 'GET', path: '/v1/topics/', status: 400, field: 'topic' },
    { method: 'GET', path: '/v1/topics/a%2F%2B', status: 400, field: 'topic' },
    { method: 'GET', path: '/v1/topics/nope', status: 404 },
    { method: 'GET', path: '/v1/topics?limit=abc', status: 400, field: 'limit' },
    { method: 'POST', path: '/v1/topics//rotate', status: 400 },
    { method: 'POST', path: '/v1/topics/a%2B', status: 400, field: 'topic' },
    { method: 'POST', path: '/v1/topics/e4%2Fx', status: 400, field: 'topic' },
    { method: 'POST', path: '/v1/topics/a%1Bb', status: 400, field: 'topic' },
    {
      method: 'POST',
      path: '/v1/topics/t2',
      body: { name: 'other' },
      status: 400,
      field: 'name',
    },
    { method: 'POST', path: '/v1/topics/nope/rotate', status: 404 },
    { method: 'POST', path: `/v1/topics/${LONG_TOPIC}/rotate`, status: 400 },
    {
      method: 'POST',
      path: '/v1/topics/t1/rotate',
      body: '{"requestId": 5}',
      status: 400,
      field: 'requestId',
    },
    // A request id in the body follows the Idempotency-Key header's rule.
    ...['has space', 'é', 'x'.repeat(129)].map((requestId) => ({
      method: 'POST',
      path: '/v1/topics/t1/rotate',
      body: { requestId },
      status: 400,
      field: 'requestId',
    })),
    { method: 'GET', path: '/v1/topics/t1/rollout?version=2', status: 400, field: 'version' },
    { method: 'GET', path: '/v1/topics/t1/rollout?version=x', status: 400, field: 'version' },
    { method: 'GET', path: '/v1/topics//rollout', status: 400 },
    { method: 'GET', path: '/v1/topics//traffic', status: 400 },
    { method: 'GET', path: '/v1/topics/unknown-topic/traffic', status: 404, code: 'C2_NOT_FOUND' },
    { method: 'GET', path: '/v1/c2-public-key', status: 400, code: 'C2_CRYPTO_MODE' },
    { method: 'GET', path: '/v1/admin/restore-status?bogus=1', status: 400, field: 'bogus' },
    { method: 'GET', path: '/v1/events?after=abc', status: 400, field: 'after' },
    { method: 'GET', path: '/v1/events?after_seq=abc', status: 400, field: 'after_seq' },
    { method: 'GET', path: '/v1/events?after=-1', status: 400 },
    // One field under two names, or a stream parameter it does not take: refused, not ignored.
    { method: 'GET', path: '/v1/events?after=5&after_seq=1', status: 400, field: 'after_seq' },
    { method: 'GET', path: '/v1/events/stream?bogus=1', status: 400, field: 'bogus' },
    { method: 'GET', path: '/v1/events/stream?after=1&after=2', status: 400, field: 'after' },
    {
      method: 'POST',
      path: '/v1/topics/t1/rotate',
      body: '{"requestId":"k-5","request_id":"k-6"}',
      status: 400,
      field: 'request_id',
    },
    { method: 'GET', path: '/v1/events?limit=5000', status: 400, field: 'limit' },
    {
      method: 'POST',
      path: '/v1/admin/reconcile-restore',
      body: { version_margin: 2_000_000 },
      status: 400,
      field: 'versionMargin',
    },
  ];

  void it('every reference and v1 route has bad-input cases', () => {
    assertEveryRoute(httpCases, [...REFERENCE_ROUTE_LIST, ...ADMIN_ROUTE_LIST]);
  });

  void it('HTTP: each bad request gets its status and code, and nothing changes', async () => {
    await runHttpCases(a, httpCases);
  });

  void it('HTTP: a body over the limit is 413 even when chunked', async () => {
    const before = await snapshot(a.h);
    const big = Buffer.alloc(2 * 1024 * 1024, 0x20);
    const res = await a.http('POST', '/e4/protect-message', {
      body: big,
      headers: { 'transfer-encoding': 'chunked' },
    });
    assert.equal(res.status, 413);
    assert.deepEqual(await snapshot(a.h), before);
  });

  void it('HTTP: a malformed body is refused without quoting it, as is one that is not UTF-8', async () => {
    const before = await snapshot(a.h);
    const key = b64(32);
    // A key typed without its quotes: V8's parser message quoted the text around it.
    const malformed = await a.http('POST', '/e4/client/quoted', { body: `{"key":${key}}` });
    assert.equal(malformed.status, 400, malformed.text);
    assert.equal(errorOf(malformed.json).code, 'C2_VALIDATION');
    assert.ok(!malformed.text.includes(key.slice(0, 4)), `no part of the body: ${malformed.text}`);
    assert.match(malformed.text, /malformed JSON/);
    const notUtf8 = await a.http('POST', '/e4/client/not-utf8', {
      body: Buffer.concat([
        Buffer.from('{"name":"plant/'),
        Buffer.from([0xff, 0xfe]),
        Buffer.from('"}'),
      ]),
    });
    assert.equal(notUtf8.status, 400, notUtf8.text);
    assert.deepEqual(errorOf(notUtf8.json), { code: 'C2_VALIDATION', field: 'body' });
    assert.deepEqual(await snapshot(a.h), before);
  });

  void it('HTTP: what the parser refuses gets a JSON error; a client gone mid-body is no error', async () => {
    const port = a.api.httpAddress.port;
    const oversized = await rawHttp(
      port,
      `GET /e4/clients HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    assert.match(oversized, /^HTTP\/1\.1 431 /);
    assert.match(
      oversized,
      /\r\n\r\n\{"error":\{"code":"C2_VALIDATION","message":"the request headers are too large","requestId":"[0-9a-f-]{36}"\}\}$/,
    );
    // The headers of every API answer, the id in the header being the one in the body.
    const id = /\r\nX-Request-Id: ([0-9a-f-]{36})\r\n/i.exec(oversized)?.[1];
    assert.ok(id !== undefined && oversized.includes(`"requestId":"${id}"`), oversized);
    assert.match(oversized, /\r\nCache-Control: no-store\r\n/i);
    assert.match(
      oversized,
      /\r\ncontent-security-policy: default-src 'none'; frame-ancestors 'none'\r\n/i,
    );
    const garbage = await rawHttp(port, 'NOT-A-METHOD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400 [^]*"code":"C2_VALIDATION"/);

    const errorsBefore = a.log.lines.filter((l) => l.level === 'error').length;
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(
      'POST /e4/client/gone HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{"key":',
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.destroy();
    await waitFor(() => a.log.lines.some((l) => l.msg === 'client went away mid-request'));
    assert.equal(
      a.log.lines.filter((l) => l.level === 'error').length,
      errorsBefore,
      'no error logged',
    );
  });

  void it('HTTP: huge counts are capped, not rejected', async () => {
    const res = await a.http('GET', '/e4/clients?offset=0&count=9223372036854775807');
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.json, { clients: [{ name: 'alice' }, { name: 'bob' }] });
    const big = await a.http('GET', '/e4/topics?offset=9223372036854775807');
    assert.deepEqual(big.json, { topics: [] });
  });

  const grpcCases: GrpcCase[] = [
    { rpc: 'NewClient', request: {}, grpc: INVALID_ARGUMENT, code: 'C2_VALIDATION' },
    {
      rpc: 'NewClient',
      request: { client: { name: '' }, key: randomBytes(32) },
      grpc: INVALID_ARGUMENT,
    },
    {
      rpc: 'NewClient',
      request: { client: { name: LONG_NAME }, key: randomBytes(32) },
      grpc: INVALID_ARGUMENT,
    },
    { rpc: 'NewClient', request: { client: { name: 'carol' } }, grpc: INVALID_ARGUMENT },
    {
      rpc: 'NewClient',
      request: { client: { name: 'carol' }, key: randomBytes(16) },
      grpc: INVALID_ARGUMENT,
    },
    {
      rpc: 'NewClient',
      request: { client: { name: 'carol' }, key: Buffer.alloc(32) },
      grpc: INVALID_ARGUMENT,
    },
    { rpc: 'RemoveClient', request: {}, grpc: INVALID_ARGUMENT },
    {
      rpc: 'RemoveClient',
      request: { client: { name: 'nobody' } },
      grpc: NOT_FOUND,
      code: 'C2_NOT_FOUND',
    },
    { rpc: 'ResetClient', request: { client: {} }, grpc: INVALID_ARGUMENT },
    { rpc: 'ResetClient', request: { client: { name: 'nobody' } }, grpc: NOT_FOUND },
    { rpc: 'NewClientKey', request: {}, grpc: INVALID_ARGUMENT },
    { rpc: 'NewClientKey', request: { client: { name: LONG_NAME } }, grpc: INVALID_ARGUMENT },
    { rpc: 'NewTopic', request: {}, grpc: INVALID_ARGUMENT },
    { rpc: 'NewTopic', request: { topic: 'a/+/b' }, grpc: INVALID_ARGUMENT },
    { rpc: 'NewTopic', request: { topic: 'a/#' }, grpc: INVALID_ARGUMENT },
    { rpc: 'NewTopic', request: { topic: LONG_TOPIC }, grpc: INVALID_ARGUMENT },
    { rpc: 'NewTopic', request: { topic: '.' }, grpc: INVALID_ARGUMENT },
    {
      rpc: 'NewTopic',
      request: { topic: 'a/\u202eb' },
      grpc: INVALID_ARGUMENT,
      code: 'C2_VALIDATION',
    },
    {
      rpc: 'NewClient',
      request: { client: { name: 'dev\u202egpj.exe' }, key: randomBytes(32) },
      grpc: INVALID_ARGUMENT,
      code: 'C2_VALIDATION',
    },
    { rpc: 'NewTopic', request: { topic: 'e4/x' }, grpc: INVALID_ARGUMENT },
    // Only whitespace or invisible characters, for a new topic and a new client.
    ...[' ', '\u3000\u00a0', '\u200b', '\u2060 \ufeff'].map((topic) => ({
      rpc: 'NewTopic',
      request: { topic },
      grpc: INVALID_ARGUMENT,
      code: 'C2_VALIDATION',
    })),
    ...[' ', '\u2003\u205f', '\u200d\u200c'].map((name) => ({
      rpc: 'NewClient',
      request: { client: { name }, key: randomBytes(32) },
      grpc: INVALID_ARGUMENT,
      code: 'C2_VALIDATION',
    })),
    ...['a\u001b[31mb', 'a\u007fb', 'a\u009bb', 'a\nb'].map((topic) => ({
      rpc: 'NewTopic',
      request: { topic },
      grpc: INVALID_ARGUMENT,
      code: 'C2_VALIDATION',
    })),
    { rpc: 'RemoveTopic', request: { topic: '' }, grpc: INVALID_ARGUMENT },
    { rpc: 'RemoveTopic', request: { topic: 'nope' }, grpc: NOT_FOUND },
    { rpc: 'NewTopicClient', request: { topic: 't1' }, grpc: INVALID_ARGUMENT },
    { rpc: 'NewTopicClient', request: { client: { name: 'alice' } }, grpc: INVALID_ARGUMENT },
    {
      rpc: 'NewTopicClient',
      request: { client: { name: 'alice' }, topic: '#' },
      grpc: INVALID_ARGUMENT,
    },
    {
      rpc: 'NewTopicClient',
      request: { client: { name: 'nobody' }, topic: 't1' },
      grpc: NOT_FOUND,
    },
    { rpc: 'RemoveTopicClient', request: { client: { name: 'alice' } }, grpc: INVALID_ARGUMENT },
    {
      rpc: 'RemoveTopicClient',
      request: { client: { name: 'bob' }, topic: 't1' },
      grpc: NOT_FOUND,
    },
    { rpc: 'CountTopicsForClient', request: {}, grpc: INVALID_ARGUMENT },
    { rpc: 'CountTopicsForClient', request: { client: { name: 'nobody' } }, grpc: NOT_FOUND },
    {
      rpc: 'GetTopicsForClient',
      request: { client: { name: 'alice' }, offset: -1 },
      grpc: INVALID_ARGUMENT,
    },
    {
      rpc: 'GetTopicsForClient',
      request: { client: { name: 'alice' }, count: -1 },
      grpc: INVALID_ARGUMENT,
    },
    {
      rpc: 'GetTopicsForClient',
      request: { client: { name: 'alice' }, count: '-9223372036854775808' },
      grpc: INVALID_ARGUMENT,
    },
    { rpc: 'CountClientsForTopic', request: { topic: '' }, grpc: INVALID_ARGUMENT },
    { rpc: 'CountClientsForTopic', request: { topic: 'nope' }, grpc: NOT_FOUND },
    { rpc: 'GetClientsForTopic', request: { topic: 'a+' }, grpc: INVALID_ARGUMENT },
    { rpc: 'GetClientsForTopic', request: { topic: 't1', offset: -3 }, grpc: INVALID_ARGUMENT },
    { rpc: 'GetClients', request: { offset: -1 }, grpc: INVALID_ARGUMENT },
    { rpc: 'GetClients', request: { count: -1 }, grpc: INVALID_ARGUMENT },
    { rpc: 'GetTopics', request: { offset: -1 }, grpc: INVALID_ARGUMENT },
    { rpc: 'LinkClient', request: {}, grpc: INVALID_ARGUMENT },
    { rpc: 'LinkClient', request: { sourceClient: { name: 'bob' } }, grpc: INVALID_ARGUMENT },
    {
      rpc: 'LinkClient',
      request: { sourceClient: { name: 'bob' }, targetClient: { name: 'bob' } },
      grpc: INVALID_ARGUMENT,
    },
    {
      rpc: 'LinkClient',
      request: { sourceClient: { name: 'bob' }, targetClient: { name: 'nobody' } },
      grpc: NOT_FOUND,
    },
    { rpc: 'UnlinkClient', request: { targetClient: { name: 'alice' } }, grpc: INVALID_ARGUMENT },
    {
      rpc: 'UnlinkClient',
      request: { sourceClient: { name: 'alice' }, targetClient: { name: 'bob' } },
      grpc: NOT_FOUND,
    },
    { rpc: 'CountLinkedClients', request: {}, grpc: INVALID_ARGUMENT },
    {
      rpc: 'GetLinkedClients',
      request: { client: { name: 'alice' }, offset: -1 },
      grpc: INVALID_ARGUMENT,
    },
    { rpc: 'GetLinkedClients', request: { client: { name: 'nobody' } }, grpc: NOT_FOUND },
    {
      rpc: 'SendClientPubKey',
      request: { sourceClient: { name: 'bob' }, targetClient: { name: 'alice' } },
      grpc: FAILED_PRECONDITION,
      code: 'C2_CRYPTO_MODE',
    },
    { rpc: 'SendClientPubKey', request: {}, grpc: FAILED_PRECONDITION },
    {
      rpc: 'RemoveClientPubKey',
      request: { sourceClient: { name: 'bob' }, targetClient: { name: 'alice' } },
      grpc: FAILED_PRECONDITION,
    },
    {
      rpc: 'ResetClientPubKeys',
      request: { targetClient: { name: 'alice' } },
      grpc: FAILED_PRECONDITION,
    },
    {
      rpc: 'NewC2Key',
      request: { force: true },
      grpc: FAILED_PRECONDITION,
      code: 'C2_CRYPTO_MODE',
    },
    { rpc: 'ProtectMessage', request: { binaryData: Buffer.from('x') }, grpc: INVALID_ARGUMENT },
    { rpc: 'ProtectMessage', request: { topic: 't1' }, grpc: INVALID_ARGUMENT },
    {
      rpc: 'ProtectMessage',
      request: { topic: 'nope', binaryData: Buffer.from('x') },
      grpc: NOT_FOUND,
    },
    {
      rpc: 'ProtectMessage',
      request: { topic: 't1', binaryData: Buffer.alloc((1 << 20) + 1) },
      grpc: INVALID_ARGUMENT,
    },
    {
      rpc: 'ProtectMessage',
      request: { topic: 't1', binaryData: Buffer.alloc(5 * 1024 * 1024) },
      grpc: RESOURCE_EXHAUSTED,
    },
    {
      rpc: 'UnprotectMessage',
      request: { topic: 't1', protectedBinaryData: randomBytes(64) },
      grpc: INVALID_ARGUMENT,
    },
    { rpc: 'UnprotectMessage', request: { topic: 't1' }, grpc: INVALID_ARGUMENT },
    {
      rpc: 'NewTopic',
      request: { topic: 't9' },
      metadata: { 'idempotency-key': 'with space' },
      grpc: INVALID_ARGUMENT,
    },
    { service: 'e4c2.v1.C2Admin', rpc: 'GetClient', request: {}, grpc: INVALID_ARGUMENT },
    { service: 'e4c2.v1.C2Admin', rpc: 'GetClient', request: { name: 'nobody' }, grpc: NOT_FOUND },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'ListClients',
      request: { limit: 100_000 },
      grpc: INVALID_ARGUMENT,
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'ListClients',
      request: { cursor: '***' },
      grpc: INVALID_ARGUMENT,
    },
    { service: 'e4c2.v1.C2Admin', rpc: 'RemoveClient', request: {}, grpc: INVALID_ARGUMENT },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'RemoveClient',
      request: { name: 'nobody', reset: true },
      grpc: NOT_FOUND,
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'RotateClientKey',
      request: { name: 'alice', public_key: randomBytes(32) },
      // A public key in symmetric-key mode: a mode error, as every public-key-only request.
      grpc: FAILED_PRECONDITION,
      code: 'C2_CRYPTO_MODE',
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'RotateClientKey',
      request: { name: '' },
      grpc: INVALID_ARGUMENT,
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'RotateClientKey',
      request: { name: 'alice', request_id: 'x'.repeat(129) },
      grpc: INVALID_ARGUMENT,
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'RotateClientKey',
      request: { name: 'alice', request_id: 'a b' },
      grpc: INVALID_ARGUMENT,
      code: 'C2_VALIDATION',
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'ResyncClient',
      request: { name: 'nobody' },
      grpc: NOT_FOUND,
    },
    { service: 'e4c2.v1.C2Admin', rpc: 'GetTopic', request: { name: '+' }, grpc: INVALID_ARGUMENT },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'ListTopics',
      request: { limit: 5000 },
      grpc: INVALID_ARGUMENT,
    },
    { service: 'e4c2.v1.C2Admin', rpc: 'RotateTopicKey', request: {}, grpc: INVALID_ARGUMENT },
    ...[
      {},
      { name: 'a/#' },
      { name: 'e4/x' },
      { name: ' ' },
      { name: 't9', request_id: 'a b' },
    ].map((request) => ({
      service: 'e4c2.v1.C2Admin' as const,
      rpc: 'NewTopic',
      request,
      grpc: INVALID_ARGUMENT,
      code: 'C2_VALIDATION',
    })),
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'RotateTopicKey',
      request: { name: 'nope' },
      grpc: NOT_FOUND,
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'GetRotationStatus',
      request: { name: 't1', version: 99 },
      grpc: INVALID_ARGUMENT,
    },
    { service: 'e4c2.v1.C2Admin', rpc: 'GetC2PublicKey', request: {}, grpc: FAILED_PRECONDITION },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'ListEvents',
      request: { after_seq: 'x' },
      grpc: INVALID_ARGUMENT,
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'ListEvents',
      request: { limit: 5000 },
      grpc: INVALID_ARGUMENT,
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'ReconcileAfterRestore',
      request: { topics: [{ name: '', version: 1 }] },
      grpc: INVALID_ARGUMENT,
    },
    // A NUL reached PostgreSQL (500) after every topic key and the event stream had jumped.
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'ReconcileAfterRestore',
      request: { topics: [{ name: 'a\u0000b', version: 1 }] },
      grpc: INVALID_ARGUMENT,
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'ReconcileAfterRestore',
      request: { clients: [{ name: 'c\u0000', version: 1 }] },
      grpc: INVALID_ARGUMENT,
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'ReconcileAfterRestore',
      request: { memberships: [{ client: 'c', topic: 'plant/+', attached: true }] },
      grpc: INVALID_ARGUMENT,
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'GetTopicTraffic',
      request: { name: '' },
      grpc: INVALID_ARGUMENT,
    },
    {
      service: 'e4c2.v1.C2Admin',
      rpc: 'GetTopicTraffic',
      request: { name: 'no/such/topic' },
      grpc: NOT_FOUND,
    },
  ];

  void it('every RPC with input has bad-input cases', () => {
    const { definition } = loadProtos();
    const skip = new Set([
      // No input to get wrong.
      'HealthCheck',
      'GetCryptoMode',
      'CountClients',
      'CountTopics',
      'GetRestoreStatus',
      // Streams: see device-and-events.integration.test.ts.
      'SubscribeToEventStream',
      'StreamEvents',
    ]);
    for (const service of ['pb.C2', 'e4c2.v1.C2Admin'] as const) {
      for (const rpc of Object.keys(definition[service] ?? {})) {
        if (skip.has(rpc)) continue;
        assert.ok(
          grpcCases.some((c) => c.rpc === rpc && (c.service ?? 'pb.C2') === service),
          `no bad-input case for ${service}/${rpc}`,
        );
      }
    }
  });

  void it('gRPC: each bad call gets its status and code, and nothing changes', async () => {
    await runGrpcCases(a, grpcCases);
  });

  void it('gRPC: bytes that are no protobuf message are C2_VALIDATION, not INTERNAL', async () => {
    const before = await snapshot(a.h);
    const client = new Client(`127.0.0.1:${a.api.grpcAddress.port}`, credentials.createInsecure());
    try {
      for (const method of ['/pb.C2/NewTopic', '/e4c2.v1.C2Admin/RotateTopicKey']) {
        // Field 15 with wire type 7, which does not exist: protobufjs cannot skip it.
        const err = await new Promise<ServiceError>((resolve, reject) => {
          client.makeUnaryRequest(
            method,
            (b: Buffer) => b,
            (b: Buffer) => b,
            Buffer.from([0x7f, 0x00]),
            { deadline: Date.now() + 10_000 },
            (e) => {
              if (e === null) reject(new Error(`${method} accepted the bytes`));
              else resolve(e);
            },
          );
        });
        assert.equal(err.code, INVALID_ARGUMENT, `${method}: ${err.message}`);
        assert.equal(err.metadata.get('e4c2-error-code')[0], 'C2_VALIDATION');
      }
    } finally {
      client.close();
    }
    assert.deepEqual(await snapshot(a.h), before);
  });
});

void describe('bad input, public-key mode', () => {
  let a: ApiHarness;
  const pub = (): Buffer => Buffer.from(ed25519PublicKey(randomEd25519Key()));
  before(async () => {
    a = await startApi({ mode: 'pubkey' });
    await a.grpc.call('NewClient', { client: { name: 'alice' }, key: pub() });
    await a.grpc.call('NewClient', { client: { name: 'bob' }, key: pub() });
  });
  after(async () => {
    await a.close();
  });

  void it('HTTP', async () => {
    await runHttpCases(a, [
      {
        method: 'POST',
        path: '/e4/new-c2-key',
        body: {},
        status: 400,
        code: 'C2_FAILED_PRECONDITION',
      },
      {
        method: 'POST',
        path: '/e4/new-c2-key',
        body: { force: false },
        status: 400,
        code: 'C2_FAILED_PRECONDITION',
      },
      { method: 'POST', path: '/e4/new-c2-key', status: 400, code: 'C2_FAILED_PRECONDITION' },
      {
        method: 'POST',
        path: '/e4/send-client-pubkey',
        body: {},
        status: 400,
        field: 'sourceClient',
      },
      {
        method: 'POST',
        path: '/e4/send-client-pubkey',
        body: { sourceClient: { name: 'bob' } },
        status: 400,
        field: 'targetClient',
      },
      {
        method: 'POST',
        path: '/e4/send-client-pubkey',
        body: { sourceClient: { name: 'bob' }, targetClient: { name: 'bob' } },
        status: 400,
      },
      {
        method: 'POST',
        path: '/e4/send-client-pubkey',
        body: { sourceClient: { name: '' }, targetClient: { name: 'bob' } },
        status: 400,
        field: 'sourceClient.name',
      },
      {
        method: 'POST',
        path: '/e4/send-client-pubkey',
        body: { sourceClient: { name: 'nobody' }, targetClient: { name: 'bob' } },
        status: 404,
      },
      {
        method: 'POST',
        path: '/e4/remove-client-pubkey',
        body: { targetClient: { name: 'bob' } },
        status: 400,
        field: 'sourceClient',
      },
      {
        method: 'POST',
        path: '/e4/reset-client-pubkeys',
        body: {},
        status: 400,
        field: 'targetClient',
      },
      {
        method: 'POST',
        path: '/e4/reset-client-pubkeys',
        body: { targetClient: { name: 'nobody' } },
        status: 404,
      },
      {
        method: 'POST',
        path: '/e4/client/carol',
        body: { key: b64(31) },
        status: 400,
        field: 'key',
      },
      {
        method: 'POST',
        path: '/e4/client/carol',
        body: { key: b64(new Uint8Array(32)) },
        status: 400,
        field: 'key',
      },
      { method: 'PATCH', path: '/e4/client/alice', status: 400, code: 'C2_FAILED_PRECONDITION' },
      {
        method: 'POST',
        path: '/v1/clients/alice/rotate',
        body: { publicKey: b64(31) },
        status: 400,
        field: 'publicKey',
      },
    ]);
  });

  void it('gRPC', async () => {
    await runGrpcCases(a, [
      { rpc: 'NewC2Key', request: {}, grpc: FAILED_PRECONDITION, code: 'C2_FAILED_PRECONDITION' },
      { rpc: 'NewC2Key', request: { force: false }, grpc: FAILED_PRECONDITION },
      { rpc: 'SendClientPubKey', request: {}, grpc: INVALID_ARGUMENT },
      {
        rpc: 'SendClientPubKey',
        request: { sourceClient: { name: 'alice' } },
        grpc: INVALID_ARGUMENT,
      },
      {
        rpc: 'RemoveClientPubKey',
        request: { sourceClient: { name: 'alice' }, targetClient: { name: 'nobody' } },
        grpc: NOT_FOUND,
      },
      { rpc: 'ResetClientPubKeys', request: {}, grpc: INVALID_ARGUMENT },
      { rpc: 'NewClientKey', request: { client: { name: 'alice' } }, grpc: FAILED_PRECONDITION },
      {
        rpc: 'NewClient',
        request: { client: { name: 'carol' }, key: Buffer.alloc(32) },
        grpc: INVALID_ARGUMENT,
      },
      {
        rpc: 'NewClient',
        request: { client: { name: 'carol' }, key: randomBytes(64) },
        grpc: INVALID_ARGUMENT,
      },
      {
        service: 'e4c2.v1.C2Admin',
        rpc: 'RotateClientKey',
        request: { name: 'alice', public_key: randomBytes(33) },
        grpc: INVALID_ARGUMENT,
      },
    ]);
  });
});

/** Sends `request` as is and returns everything the server answers until it closes. */
async function rawHttp(port: number, request: string): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(request);
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Polls `condition` every 20 ms for up to 5 s. */
async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 250 && !condition(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(condition(), 'the condition held within 5 s');
}
