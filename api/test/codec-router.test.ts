/** The schema-driven JSON codec and the path router, without a server. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { C2Error } from '../../cluster/errors.ts';
import {
  decodeBase64,
  decodeMessage,
  decodeQueryValue,
  encodeMessage,
} from '../codec/proto-json.ts';
import { loadProtos } from '../codec/protos.ts';
import { compilePath, matchPath } from '../http/router.ts';
import { transportLimits } from '../index.ts';

const { schema } = loadProtos();

function rejects(fn: () => unknown, field: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(C2Error.is(err, 'C2_VALIDATION'), String(err));
    assert.equal(err.details?.['field'], field);
    if (message !== undefined) assert.match(err.message, message);
    return true;
  });
}

void describe('proto JSON codec', () => {
  void it('encodes as grpc-gateway: proto names, zero values, int64 strings, base64, enum names', () => {
    assert.deepEqual(
      encodeMessage(schema, 'pb.HealthCheckResponse', { Code: '0', Status: 'OK' }, 'proto'),
      { Code: '0', Status: 'OK' },
    );
    assert.equal(
      JSON.stringify(
        encodeMessage(schema, 'pb.HealthCheckResponse', { Code: '0', Status: 'OK' }, 'proto'),
      ),
      '{"Code":"0","Status":"OK"}',
    );
    assert.deepEqual(encodeMessage(schema, 'pb.GetClientsResponse', {}, 'proto'), { clients: [] });
    assert.deepEqual(encodeMessage(schema, 'pb.CountTopicsResponse', { count: 7 }, 'proto'), {
      count: '7',
    });
    assert.deepEqual(
      encodeMessage(
        schema,
        'pb.ProtectMessageResponse',
        { topic: 't', protectedBinaryData: Buffer.from([0xfb, 0xff]) },
        'proto',
      ),
      { topic: 't', protectedBinaryData: '+/8=' },
    );
    assert.deepEqual(encodeMessage(schema, 'pb.GetCryptoModeResponse', {}, 'proto'), {
      CryptoMode: 'CRYPTOMODE_UNDEFINED',
    });
    assert.deepEqual(encodeMessage(schema, 'pb.NewClientRequest', {}, 'proto'), {
      client: null,
      key: '',
    });
  });

  void it('encodes our messages with lowerCamelCase names and maps as objects', () => {
    assert.deepEqual(
      encodeMessage(
        schema,
        'e4c2.v1.EventRecord',
        { seq: '3', key_version: 2, details: { members: '4' } },
        'json',
      ),
      {
        seq: '3',
        at: '',
        type: '',
        client: '',
        topic: '',
        keyVersion: 2,
        details: { members: '4' },
      },
    );
  });

  void it('decodes with defaults filled, accepting proto and JSON names', () => {
    const m = decodeMessage(schema, 'pb.NewClientRequest', { key: 'AAEC' });
    assert.deepEqual(m, { client: null, key: Buffer.from([0, 1, 2]) });
    const r = decodeMessage(schema, 'e4c2.v1.RotateClientKeyRequest', {
      publicKey: 'AA==',
      request_id: 'x',
    });
    assert.deepEqual(r, { name: '', public_key: Buffer.from([0]), request_id: 'x' });
    assert.deepEqual(decodeMessage(schema, 'pb.GetClientsRequest', { offset: 2, count: '10' }), {
      offset: '2',
      count: '10',
    });
    assert.deepEqual(decodeMessage(schema, 'pb.NewC2KeyRequest', { force: null }), {
      force: false,
    });
  });

  void it('rejects unknown fields, wrong types and bad values, naming the field', () => {
    rejects(
      () => decodeMessage(schema, 'pb.NewClientRequest', { kee: 'AA==' }),
      'kee',
      /unknown field "kee"/,
    );
    rejects(
      () => decodeMessage(schema, 'pb.NewClientRequest', { client: { nam: 'x' } }),
      'client.nam',
    );
    // A key sent as a name is never repeated (the message reaches the caller and the logs).
    for (const name of [
      '4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eE=',
      '4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eE',
      'e1'.repeat(32),
    ]) {
      assert.throws(
        () => decodeMessage(schema, 'pb.NewClientRequest', { client: { [name]: 1 } }),
        (err: unknown) => {
          assert.ok(C2Error.is(err, 'C2_VALIDATION'), String(err));
          assert.equal(err.details?.['field'], 'client.*');
          assert.match(err.message, /unknown field: a name of \d+ characters, not shown/);
          assert.ok(!JSON.stringify([err.message, err.details]).includes(name.slice(0, 12)));
          return true;
        },
      );
    }
    rejects(
      () => decodeMessage(schema, 'pb.NewClientRequest', { key: 12 }),
      'key',
      /base64 string/,
    );
    rejects(
      () => decodeMessage(schema, 'pb.NewClientRequest', { key: 'not base64!' }),
      'key',
      /base64/,
    );
    rejects(
      () => decodeMessage(schema, 'pb.NewClientRequest', { client: 'x' }),
      'client',
      /object/,
    );
    rejects(() => decodeMessage(schema, 'pb.NewTopicRequest', { topic: ['t'] }), 'topic', /string/);
    rejects(
      () => decodeMessage(schema, 'pb.NewC2KeyRequest', { force: 'true' }),
      'force',
      /true or false/,
    );
    rejects(
      () => decodeMessage(schema, 'pb.GetClientsRequest', { count: 1.5 }),
      'count',
      /integer/,
    );
    rejects(
      () => decodeMessage(schema, 'pb.GetClientsRequest', { count: 'ten' }),
      'count',
      /integer/,
    );
    rejects(
      () => decodeMessage(schema, 'pb.GetClientsRequest', { count: '9223372036854775808' }),
      'count',
      /out of range/,
    );
    rejects(
      () => decodeMessage(schema, 'pb.GetClientsRequest', { count: 2 ** 60 }),
      'count',
      /string/,
    );
    rejects(
      () => decodeMessage(schema, 'e4c2.v1.ListRequest', { limit: -1 }),
      'limit',
      /^limit is out of range for uint32 \(0 to 4294967295\)$/,
    );
    // Too large for any uint32: out of range, not "send it as a string" (which then also fails).
    rejects(
      () => decodeMessage(schema, 'e4c2.v1.ListRequest', { limit: 1e20 }),
      'limit',
      /^limit is out of range for uint32 \(0 to 4294967295\)$/,
    );
    rejects(() => decodeMessage(schema, 'pb.NewTopicRequest', [1]), 'body', /JSON object/);
    rejects(() => decodeMessage(schema, 'pb.NewTopicRequest', 'x'), 'body', /JSON object/);
  });

  void it('decodes base64 in both alphabets, with or without padding, and nothing else', () => {
    assert.deepEqual(decodeBase64('+/8=', 'k'), Buffer.from([0xfb, 0xff]));
    assert.deepEqual(decodeBase64('-_8', 'k'), Buffer.from([0xfb, 0xff]));
    assert.deepEqual(decodeBase64('', 'k'), Buffer.alloc(0));
    for (const bad of ['a', 'ab=c', 'abc==', '!!!!', 'ab c', 'a==='])
      rejects(() => decodeBase64(bad, 'k'), 'k');
  });

  void it('decodes query values strictly', () => {
    const field = (type: string, name: string) => {
      const f = schema.message(type).fields.find((x) => x.name === name);
      assert.ok(f, `field ${name}`);
      return f;
    };
    const count = field('pb.GetClientsRequest', 'count');
    assert.equal(decodeQueryValue(schema, count, '10', 'count'), '10');
    assert.equal(decodeQueryValue(schema, count, '-1', 'count'), '-1');
    rejects(() => decodeQueryValue(schema, count, '', 'count'), 'count');
    rejects(() => decodeQueryValue(schema, count, '1e3', 'count'), 'count');
    const reset = field('e4c2.v1.RemoveClientRequest', 'reset');
    assert.equal(decodeQueryValue(schema, reset, 'true', 'reset'), true);
    assert.equal(decodeQueryValue(schema, reset, '0', 'reset'), false);
    rejects(() => decodeQueryValue(schema, reset, 'yes', 'reset'), 'reset');
  });
});

void describe('path router', () => {
  const segments = (path: string): string[] => path.slice(1).split('/');
  const topic = compilePath('/e4/topic/{topic=**}');
  const clients = compilePath('/e4/topic/{topic=**}/clients');
  const count = compilePath('/e4/topic/{topic=**}/clients/count');
  const client = compilePath('/e4/client/{client.name}');

  void it('binds single segments and decodes them', () => {
    assert.deepEqual(matchPath(client, segments('/e4/client/a%2Fb%20c')), {
      'client.name': 'a/b c',
    });
    assert.deepEqual(matchPath(client, segments('/e4/client/')), { 'client.name': '' });
    assert.equal(matchPath(client, segments('/e4/client/a/b')), undefined);
  });

  void it('lets ** span slashes, anchoring literal suffixes at the end', () => {
    assert.deepEqual(matchPath(topic, segments('/e4/topic/a/b/c')), { topic: 'a/b/c' });
    assert.deepEqual(matchPath(topic, segments('/e4/topic/a/clients')), { topic: 'a/clients' });
    assert.deepEqual(matchPath(clients, segments('/e4/topic/a/b/clients')), { topic: 'a/b' });
    assert.deepEqual(matchPath(count, segments('/e4/topic/a/clients/count')), { topic: 'a' });
    assert.equal(matchPath(clients, segments('/e4/topic/a/clients/count')), undefined);
    // The clients of topic "a/clients/count" are reached by adding the suffix once more.
    assert.deepEqual(matchPath(clients, segments('/e4/topic/a/clients/count/clients')), {
      topic: 'a/clients/count',
    });
    // A suffix route needs at least one topic segment; an encoded slash is not a separator.
    assert.equal(matchPath(clients, segments('/e4/topic/clients')), undefined);
    assert.equal(matchPath(count, segments('/e4/topic/a%2Fclients/count')), undefined);
    assert.deepEqual(matchPath(topic, segments('/e4/topic/')), { topic: '' });
  });

  void it('takes encoded dot segments as topic segments, not path steps', () => {
    assert.deepEqual(matchPath(topic, segments('/e4/topic/a/%2E/b/%2E%2E')), { topic: 'a/./b/..' });
  });

  void it('rejects malformed percent-encoding', () => {
    rejects(() => matchPath(client, segments('/e4/client/%zz')), 'path');
  });
});

void describe('transport limits', () => {
  void it('a request with the largest payload fits both transports, a larger one does not', () => {
    const max = 1 << 20;
    const { grpcReceiveBytes, httpBodyBytes } = transportLimits(max);
    const body = (n: number): number =>
      JSON.stringify({ topic: 't'.repeat(512), binaryData: Buffer.alloc(n).toString('base64') })
        .length;
    assert.ok(body(max) <= httpBodyBytes, 'largest payload fits the body limit');
    assert.ok(body(max + 64 * 1024) > httpBodyBytes, 'a larger payload does not');
    assert.ok(max + 600 <= grpcReceiveBytes, 'largest payload fits the gRPC limit');
    assert.equal(transportLimits(max, 1000).httpBodyBytes, 1000);
  });
});
