// Our e4c2.v1 verbs, health and the event streams against a fake server: requests, human
// tables, JSON documents, exit codes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { ed25519PublicKey, randomEd25519Key, toHex } from '../../e4/index.ts';
import type { ClientDetails, TopicDetails } from '../api.ts';
import { summarizeEventArchive } from '../commands/restore.ts';
import { ExitCode } from '../errors.ts';
import { FakeApi, fakeStream, grpcError, runWith } from './support/fake-api.ts';
import { json } from './support/output.ts';

/** A pending delivery, without its last rejection. */
const PENDING = {
  state: 'pending',
  attempts: 2,
  error: 'puback timeout',
  failed_at: '',
  last_delivery_at: '2025-01-02T00:00:01Z',
};

const DETAILS: ClientDetails = {
  name: 'sensor-1',
  id: 'ab'.repeat(16),
  control_topic: `e4/${'ab'.repeat(16)}`,
  key_version: 2,
  delivered_key_version: 1,
  c2_key_version: 0,
  keys: [
    { version: 1, fingerprint: 'f1f1', created_at: '2025-01-01T00:00:00Z' },
    { version: 2, fingerprint: 'f2f2', created_at: '2025-01-02T00:00:00Z' },
  ],
  delivery: {
    ...PENDING,
    last_rejected_at: '2025-01-02T00:00:02Z',
    last_rejection_reason: 'InvalidKey',
    last_rejected_command: 'SetTopicKey',
  },
  topics: [
    {
      topic: 'sensors/temp',
      topic_hash: 'cd',
      desired_version: 3,
      delivered_version: 3,
      confirmed_version: 3,
      state: 'delivered',
      observed_version: 3,
      observed_at: '2025-01-03T00:00:00Z',
      observed_behind: false,
    },
    {
      topic: 'sensors/hum',
      topic_hash: 'ce',
      desired_version: 2,
      delivered_version: 2,
      state: 'delivered',
      observed_version: 1,
      observed_at: '2025-01-03T00:00:00Z',
      observed_behind: true,
    },
    {
      topic: 'sensors/wind',
      topic_hash: 'cf',
      desired_version: 1,
      delivered_version: 0,
      state: 'pending',
    },
  ],
};

const TOPIC: TopicDetails = {
  name: 'sensors/temp',
  topic_hash: 'cdcd',
  key_version: 3,
  keys: [{ version: 3, fingerprint: 'f3f3', created_at: '2025-01-03T00:00:00Z' }],
  rollout: { members: 4, delivered: 2, confirmed: 1, pending: 1, failed: 1 },
};

void describe('client remove --reset (e4c2.v1)', () => {
  void it('calls v1 RemoveClient with reset and the request id', async () => {
    const api = new FakeApi().onAdmin('RemoveClient', () => ({ reset_pending: true }));
    const r = await runWith(['client', 'remove', '--name', 'a', '--reset', '--request-id', 'r1'], {
      api,
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.methods(), ['e4c2.v1/RemoveClient']);
    assert.deepEqual(r.api.calls[0]?.request, { name: 'a', reset: true, request_id: 'r1' });
    assert.equal(r.stdout, 'Client a removed successfully; reset command queued for delivery\n');
    const j = await runWith(['client', 'remove', '--name', 'a', '--reset', '--json'], { api });
    assert.deepEqual(json(j.stdout), {
      client: 'a',
      removed: true,
      reset: true,
      reset_pending: true, // the e4c2.v1 field, by its proto name like every other
    });
  });
});

void describe('e4c2.v1 verbs', () => {
  void it('client show: fields, key versions and topics as aligned tables; --json is the message', async () => {
    const api = new FakeApi().onAdmin('GetClient', () => DETAILS);
    const r = await runWith(['client', 'show', '--name', 'sensor-1'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.calls[0]?.request, { name: 'sensor-1' });
    assert.equal(
      r.stdout,
      [
        'name            sensor-1',
        `id              ${DETAILS.id}`,
        `control topic   ${DETAILS.control_topic}`,
        'key version     2 (delivered 1)',
        'c2 key version  - (symmetric-key mode)',
        'delivery        pending, 2 attempts, last delivery 2025-01-02T00:00:01Z',
        'last error      puback timeout',
        'last rejection  SetTopicKey rejected: InvalidKey (at 2025-01-02T00:00:02Z)',
        '',
        'KEY VERSION  FINGERPRINT  CREATED',
        '1            f1f1         2025-01-01T00:00:00Z',
        '2            f2f2         2025-01-02T00:00:00Z',
        '',
        'TOPIC         DESIRED  DELIVERED  CONFIRMED  STATE      SEEN USING',
        'sensors/temp  3        3          3          delivered  3',
        'sensors/hum   2        2          -          delivered  1 (behind: resync)',
        'sensors/wind  1        0          -          pending    -',
        '',
      ].join('\n'),
    );
    const j = await runWith(['client', 'show', '--name', 'sensor-1', '--json'], { api });
    assert.deepEqual(json(j.stdout), DETAILS);
    // A device that never rejected anything (or a server of an earlier release): no line.
    const never = new FakeApi().onAdmin('GetClient', () => ({
      ...DETAILS,
      delivery: {
        ...PENDING,
        last_rejected_at: '',
        last_rejection_reason: '',
        last_rejected_command: '',
      },
    }));
    const n = await runWith(['client', 'show', '--name', 'sensor-1'], { api: never });
    assert.doesNotMatch(n.stdout, /last rejection/);
  });

  void it('client show of an unknown client: exit 1', async () => {
    const api = new FakeApi().onAdmin('GetClient', () => {
      throw grpcError(status.NOT_FOUND, 'client "ghost" not found');
    });
    const r = await runWith(['client', 'show', '--name', 'ghost'], { api });
    assert.equal(r.code, ExitCode.Refused);
    assert.equal(r.stderr, 'error: client "ghost" not found (NOT_FOUND)\n');
  });

  void it('client rotate: v1 RotateClientKey, optional public key file, prints the version', async () => {
    const api = new FakeApi().onAdmin('RotateClientKey', () => ({
      key_version: 4,
      fingerprint: 'ffee',
    }));
    const r = await runWith(['client', 'rotate', '--name', 'a', '--request-id', 'r'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.calls[0]?.request, {
      name: 'a',
      public_key: new Uint8Array(0),
      request_id: 'r',
    });
    assert.equal(r.stdout, 'Client a key rotated to version 4 (fingerprint ffee)\n');
    const pub = ed25519PublicKey(randomEd25519Key());
    const withKey = await runWith(
      ['client', 'rotate', '--name', 'a', '--public-key', 'pub', '--json'],
      {
        api,
        files: { pub: toHex(pub) },
      },
    );
    assert.equal(withKey.code, ExitCode.Ok, withKey.stderr);
    assert.deepEqual(
      (withKey.api.calls.at(-1)?.request as { public_key: Uint8Array }).public_key,
      pub,
    );
    assert.deepEqual(json(withKey.stdout), { client: 'a', key_version: 4, fingerprint: 'ffee' });
    const bad = await runWith(['client', 'rotate', '--name', 'a', '--public-key', 'pub'], {
      files: { pub: new Uint8Array(32) },
    });
    assert.equal(bad.code, ExitCode.Usage);
    assert.match(bad.stderr, /^error: invalid key: invalid public key, all zeros\n/);
  });

  void it('client resync', async () => {
    const r = await runWith(['client', 'resync', '--name', 'a', '--request-id', 'r']);
    assert.equal(r.code, ExitCode.Ok);
    assert.deepEqual(r.api.calls[0], {
      service: 'e4c2.v1',
      method: 'ResyncClient',
      request: { name: 'a', request_id: 'r' },
    });
    assert.equal(r.stdout, 'Client a resync queued: its current keys will be delivered again\n');
    // A rotated identity key is re-sent: the operator is told, and scripts see which keys.
    const api = new FakeApi().onAdmin('ResyncClient', () => ({ keys_resent: ['identity'] }));
    const resent = await runWith(['client', 'resync', '--name', 'a'], { api });
    assert.equal(
      resent.stdout,
      'Client a resync queued: its current keys will be delivered again; the identity key is ' +
        're-sent under the one before (a device that missed one rotation)\n',
    );
    const both = new FakeApi().onAdmin('ResyncClient', () => ({ keys_resent: ['identity', 'c2'] }));
    const asJson = await runWith(['--json', 'client', 'resync', '--name', 'a'], { api: both });
    assert.deepEqual(json(asJson.stdout), {
      client: 'a',
      resync: true,
      keys_resent: ['identity', 'c2'],
    });
  });

  void it('topic show', async () => {
    const api = new FakeApi().onAdmin('GetTopic', () => TOPIC);
    const r = await runWith(['topic', 'show', '--name', 'sensors/temp'], { api });
    assert.equal(r.code, ExitCode.Ok);
    assert.equal(
      r.stdout,
      [
        'name         sensors/temp',
        'topic hash   cdcd',
        'key version  3',
        'rollout      4 members: 2 delivered (1 confirmed by receipts), 1 pending, 1 failed',
        '',
        'KEY VERSION  FINGERPRINT  CREATED',
        '3            f3f3         2025-01-03T00:00:00Z',
        '',
      ].join('\n'),
    );
  });

  void it('topic rotate prints the new version; --json carries it', async () => {
    const api = new FakeApi().onAdmin('RotateTopicKey', () => ({
      key_version: 2,
      fingerprint: 'abcd',
      members: 3,
    }));
    const r = await runWith(['topic', 'rotate', '--name', 't', '--request-id', 'r9'], { api });
    assert.equal(r.code, ExitCode.Ok);
    assert.deepEqual(r.api.calls[0]?.request, { name: 't', request_id: 'r9' });
    assert.equal(r.stdout, 'Topic t key rotated to version 2 (fingerprint abcd, 3 members)\n');
    const j = await runWith(['topic', 'rotate', '--name', 't', '--json'], { api });
    assert.deepEqual(json(j.stdout), {
      topic: 't',
      key_version: 2,
      fingerprint: 'abcd',
      members: 3,
    });
  });

  void it('a change that got no answer says how to learn its outcome without doing it twice', async () => {
    const timedOut = new FakeApi().onAdmin('RotateTopicKey', () => {
      throw grpcError(status.DEADLINE_EXCEEDED, 'Deadline exceeded');
    });
    const r = await runWith(['-e', 'h:1', '--insecure', 'topic', 'rotate', '--name', 't'], {
      api: timedOut,
    });
    assert.equal(r.code, ExitCode.Unreachable);
    assert.match(
      r.stderr,
      /\nhint: it may have been done: run the same command with --request-id generated-request-id to get its outcome/,
    );
    // A read sends no request id: nothing to repeat safely, no such hint.
    const read = await runWith(['-e', 'h:1', '--insecure', 'topic', 'show', '--name', 't'], {
      api: new FakeApi().onAdmin('GetTopic', () => {
        throw grpcError(status.DEADLINE_EXCEEDED, 'Deadline exceeded');
      }),
    });
    assert.equal(read.code, ExitCode.Unreachable);
    assert.doesNotMatch(read.stderr, /may have been done/);
  });

  void it('status: current version by default, --version to pick one', async () => {
    const api = new FakeApi().onAdmin('GetRotationStatus', (r) => ({
      topic: r.name,
      key_version: r.version === 0 ? 3 : r.version,
      rollout: { members: 4, delivered: 2, confirmed: 1, pending: 1, failed: 1 },
    }));
    const r = await runWith(['status', '--topic', 't'], { api });
    assert.equal(r.code, ExitCode.Ok);
    assert.deepEqual(r.api.calls[0]?.request, { name: 't', version: 0 });
    assert.equal(
      r.stdout,
      'topic        t\nkey version  3\nmembers      4\ndelivered    2 (accepted by the broker)\n' +
        'confirmed    1 (acknowledged by devices that send receipts)\npending      1\nfailed       1\n',
    );
    const j = await runWith(['status', '--topic', 't', '--version', '2', '--json'], { api });
    assert.deepEqual(json(j.stdout), {
      topic: 't',
      key_version: 2,
      rollout: { members: 4, delivered: 2, confirmed: 1, pending: 1, failed: 1 },
    });
  });

  void it('topic traffic: counts by version and class, then devices on old versions', async () => {
    const api = new FakeApi().onAdmin('GetTopicTraffic', (r) => ({
      topic: r.name,
      key_version: 3,
      counts: [
        { key_version: 3, class: 'current', messages: '120', first_at: 'a', last_at: 't3' },
        { key_version: 2, class: 'previous_key', messages: '4', first_at: 'a', last_at: 't2' },
      ],
      devices: [{ client: 'sensor-1', key_version: 2, last_at: 't2' }],
    }));
    const r = await runWith(['topic', 'traffic', '--name', 't'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.calls[0]?.request, { name: 't' });
    assert.equal(
      r.stdout,
      'topic t, current key version 3\n' +
        'VERSION  CLASS         MESSAGES  LAST SEEN\n' +
        '3        current       120       t3\n' +
        '2        previous_key  4         t2\n' +
        '\nDEVICE    VERSION  LAST SEEN\n' +
        'sensor-1  2        t2\n',
    );
  });

  void it('c2-public-key; in symmetric-key mode the server refuses (exit 1)', async () => {
    const api = new FakeApi().onAdmin('GetC2PublicKey', () => ({
      version: 1,
      public_key: 'aa'.repeat(32),
      fingerprint: 'ff',
    }));
    const r = await runWith(['c2-public-key'], { api });
    assert.equal(r.code, ExitCode.Ok);
    assert.equal(r.stdout, `version      1\npublic key   ${'aa'.repeat(32)}\nfingerprint  ff\n`);
    const sym = new FakeApi().onAdmin('GetC2PublicKey', () => {
      throw grpcError(status.FAILED_PRECONDITION, 'the C2 key exists only in public-key mode');
    });
    const refused = await runWith(['c2-public-key'], { api: sym });
    assert.equal(refused.code, ExitCode.Refused);
    assert.equal(
      refused.stderr,
      'error: the C2 key exists only in public-key mode (FAILED_PRECONDITION)\n',
    );
  });
});

void describe('health', () => {
  void it('grpc.health.v1 SERVING: exit 0', async () => {
    const r = await runWith(['health']);
    assert.equal(r.code, ExitCode.Ok);
    assert.deepEqual(r.api.methods(), ['health/Check']);
    assert.equal(r.stdout, 'SERVING\n');
    const j = await runWith(['health', '--json']);
    assert.deepEqual(json(j.stdout), {
      status: 'SERVING',
      serving: true,
      service: 'grpc.health.v1.Health',
    });
  });

  void it('NOT_SERVING: prints it and exits 1', async () => {
    const api = new FakeApi();
    api.healthHandler = () => ({ status: 'NOT_SERVING' });
    const r = await runWith(['-e', 'h:1', 'health'], { api });
    assert.equal(r.code, ExitCode.Refused);
    assert.equal(r.stdout, 'NOT_SERVING\n');
    assert.equal(r.stderr, 'error: the C2 at h:1 reports NOT_SERVING\n');
  });

  void it('falls back to the reference HealthCheck when the health service is missing', async () => {
    const api = new FakeApi().onReference('HealthCheck', () => ({ Code: '0', Status: 'OK' }));
    api.healthHandler = () => {
      throw grpcError(status.UNIMPLEMENTED, 'unknown service grpc.health.v1.Health');
    };
    const r = await runWith(['health', '--json'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(r.api.methods(), ['health/Check', 'pb.C2/HealthCheck']);
    assert.deepEqual(json(r.stdout), {
      status: 'SERVING',
      serving: true,
      service: 'pb.C2/HealthCheck',
    });
  });
});

void describe('events', () => {
  const event = {
    type: 'CLIENT_SUBSCRIBED',
    source: 'sensor-1',
    target: 'sensors/temp',
    timestamp: { seconds: '1700000000', nanos: 120_000_000 },
  };

  void it('reference stream: the banner, then the reference line per event', async () => {
    const api = new FakeApi();
    api.referenceStream = fakeStream([
      event,
      { ...event, type: 'CLIENT_UNSUBSCRIBED', timestamp: { seconds: '1700000001', nanos: 0 } },
    ]);
    const r = await runWith(['events'], { api });
    // The stream ended without a Ctrl-C: the server stopped, which a script must see.
    assert.equal(r.code, ExitCode.Unreachable, r.stderr);
    assert.match(r.stderr, /^error: the C2 ended the event stream.*\nhint: subscribe again/);
    assert.equal(
      r.stdout,
      'Subscribed to server event stream...\n' +
        'Received event: Type: CLIENT_SUBSCRIBED, Source: sensor-1, Target: sensors/temp, Timestamp: 2023-11-14T22:13:20.12Z\n' +
        'Received event: Type: CLIENT_UNSUBSCRIBED, Source: sensor-1, Target: sensors/temp, Timestamp: 2023-11-14T22:13:21Z\n',
    );
  });

  void it('--json: one JSON line per event, no banner', async () => {
    const api = new FakeApi();
    api.referenceStream = fakeStream([event, event]);
    const r = await runWith(['events', '--json'], { api });
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.deepEqual(JSON.parse(lines[0] ?? ''), {
      type: 'CLIENT_SUBSCRIBED',
      source: 'sensor-1',
      target: 'sensors/temp',
      timestamp: '2023-11-14T22:13:20.12Z',
    });
  });

  void it('Ctrl-C cancels the stream and exits 0', async () => {
    const api = new FakeApi();
    const stream = fakeStream([event], 'hang');
    api.referenceStream = stream;
    const interrupt = new AbortController();
    const running = runWith(['events'], { api, signal: interrupt.signal });
    await new Promise((resolve) => setTimeout(resolve, 20));
    interrupt.abort();
    const r = await running;
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.equal(stream.cancelled, true);
    assert.match(r.stdout, /Received event: Type: CLIENT_SUBSCRIBED/);
  });

  void it('--after: v1 StreamEvents from that sequence, lines start with the seq', async () => {
    const api = new FakeApi();
    api.adminStream = fakeStream([
      {
        seq: '42',
        at: '2025-01-01T00:00:00Z',
        type: 'topic.rotated',
        client: '',
        topic: 't',
        key_version: 2,
        details: { members: '3' },
      },
      {
        seq: '43',
        at: '2025-01-01T00:00:01Z',
        type: 'client.created',
        client: 'c',
        topic: '',
        key_version: 1,
        details: {},
      },
    ]);
    const r = await runWith(['events', '--after', '41'], { api });
    assert.equal(r.code, ExitCode.Unreachable, 'the server ended the stream');
    assert.match(r.stderr, /hint: resume with: e4c2 events --after 43\n$/);
    assert.deepEqual(r.api.calls[0]?.request, { after_seq: '41' });
    assert.equal(
      r.stdout,
      'Following the event log after sequence 41...\n' +
        '42  2025-01-01T00:00:00Z  topic.rotated  topic=t version=2 members=3\n' +
        '43  2025-01-01T00:00:01Z  client.created  client=c version=1\n',
    );
  });

  void it('--after: a broken stream says where to resume', async () => {
    const api = new FakeApi();
    api.adminStream = fakeStream(
      [{ seq: '7', at: 'x', type: 't', client: '', topic: '', key_version: 0, details: {} }],
      grpcError(status.UNAVAILABLE, 'Connection dropped'),
    );
    const r = await runWith(['-e', 'h:1', '--insecure', 'events', '--after', '0', '--json'], {
      api,
    });
    assert.equal(r.code, ExitCode.Unreachable);
    assert.match(
      r.stderr,
      /^error: cannot reach the C2 at h:1: Connection dropped \(UNAVAILABLE\)\n/,
    );
    assert.match(r.stderr, /hint: resume with: e4c2 events --after 7\n$/);
  });

  void it('--after: a refusal gives no resume hint (resuming would be refused again)', async () => {
    const api = new FakeApi();
    api.adminStream = fakeStream(
      [],
      grpcError(status.UNAUTHENTICATED, 'this API needs credentials'),
    );
    const r = await runWith(['-e', 'h:1', '--insecure', 'events', '--after', '0'], { api });
    assert.equal(r.code, ExitCode.Refused, r.stderr);
    assert.match(r.stderr, /this API needs credentials \(UNAUTHENTICATED\)/);
    assert.doesNotMatch(r.stderr, /resume with/);
  });

  void it('--after needs a number', async () => {
    const r = await runWith(['events', '--after', 'last']);
    assert.equal(r.code, ExitCode.Usage);
    assert.match(r.stderr, /^error: --after needs a sequence number, got "last"/);
    for (const after of ['9223372036854775808', '99999999999999999999']) {
      const big = await runWith(['events', '--after', after]);
      assert.equal(big.code, ExitCode.Usage, `${after} is past the largest position`);
      assert.equal(big.api.calls.length, 0);
    }
    const largest = new FakeApi();
    largest.adminStream = fakeStream([]);
    const ok = await runWith(['events', '--after', '9223372036854775807'], { api: largest });
    assert.deepEqual(ok.api.calls[0]?.request, { after_seq: '9223372036854775807' });
  });
});

void describe('restore-reconcile', () => {
  void it('an archive that cannot be read is a usage error (exit 2), not an internal one', async () => {
    const api = new FakeApi();
    const r = await runWith(['restore-reconcile', '--archive', '/nonexistent.jsonl'], { api });
    assert.equal(r.code, ExitCode.Usage, r.stderr);
    assert.match(r.stderr, /cannot read event archive file \/nonexistent\.jsonl: ENOENT/);
    assert.deepEqual(api.calls, [], 'nothing was called');
  });

  void it('sends only what the archive has after the restored position, memberships too', async () => {
    const archive = [
      { seq: '1', type: 'client.created', client: 'old', topic: '', key_version: 1 },
      { seq: '2', type: 'client.subscribed', client: 'old', topic: 't', key_version: 1 },
      { seq: '3', type: 'topic.rotated', client: '', topic: 't', key_version: 2 },
      { seq: '4', type: 'client.key_rotated', client: 'old', topic: '', key_version: 2 },
      { seq: '5', type: 'client.unsubscribed', client: 'old', topic: 't', key_version: 0 },
      { seq: '6', type: 'client.created', client: 'new', topic: '', key_version: 1 },
      { seq: '7', type: 'client.subscribed', client: 'new', topic: 't', key_version: 2 },
    ];
    const api = new FakeApi()
      .onAdmin('GetRestoreStatus', () => ({ pending: true, restored_position: '3' }))
      .onAdmin('ReconcileAfterRestore', () => ({
        topics_rotated: 1,
        unreachable_clients: ['old'],
        missing_clients: ['new'],
        missing_topics: [],
        resurrected_clients: [],
        resurrected_topics: [],
        c2_key_rotated_after_backup: false,
        event_seq_floor: '1000008',
        missing_memberships: [{ client: 'new', topic: 't', attached: true }],
        resurrected_memberships: [{ client: 'old', topic: 't', attached: false }],
      }));
    const r = await runWith(['restore-reconcile', '--archive', 'a.jsonl'], {
      api,
      files: {
        'a.jsonl': new TextEncoder().encode(archive.map((e) => JSON.stringify(e)).join('\n')),
      },
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    const sent = api.calls.find((c) => c.method === 'ReconcileAfterRestore')?.request as Record<
      string,
      unknown
    >;
    assert.deepEqual(sent['topics'], [], "the rotation to v2 is the restored database's own");
    assert.deepEqual(sent['clients'], [
      { name: 'old', version: 2, removed: false },
      { name: 'new', version: 1, removed: false, created_seq: '6' },
    ]);
    assert.deepEqual(sent['memberships'], [
      { client: 'old', topic: 't', attached: false },
      { client: 'new', topic: 't', attached: true },
    ]);
    assert.equal(sent['archive_last_seq'], '7');
    assert.match(r.stdout, /^Attached after the backup \(attach again\): new on t$/m);
    assert.match(r.stdout, /^Detached after the backup \(detach again\): old on t$/m);
  });

  const RECONCILED = {
    topics_rotated: 3,
    unreachable_clients: [],
    missing_clients: [],
    missing_topics: [],
    resurrected_clients: [],
    resurrected_topics: [],
    c2_key_rotated_after_backup: false,
    event_seq_floor: '9',
  };

  void it('warns when the archive ends before the backup', async () => {
    const answer = { ...RECONCILED, archive_ends_before_backup: true };
    const api = new FakeApi()
      .onAdmin('GetRestoreStatus', () => ({ pending: true, restored_position: '' }))
      .onAdmin('ReconcileAfterRestore', () => answer);
    const r = await runWith(['restore-reconcile'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.match(r.stdout, /^WARNING: the archive ends before the backup/m);
  });

  void it('refuses a database never restored (it re-keyed every topic and moved the stream), unless --force', async () => {
    const notRestored = (): FakeApi =>
      new FakeApi()
        .onAdmin('GetRestoreStatus', () => ({ pending: false, restored_position: '' }))
        .onAdmin('ReconcileAfterRestore', () => RECONCILED);
    const refused = notRestored();
    const r = await runWith(['restore-reconcile'], { api: refused });
    // The server's state refuses it, as FAILED_PRECONDITION would: exit 1, not a usage error (2)
    // that a script would take for a mistake in its own flags.
    assert.equal(r.code, ExitCode.Refused, r.stderr);
    assert.match(
      r.stderr,
      /^error: the C2 at \S+ is not marked as restored .*nothing was changed$/m,
    );
    assert.match(r.stderr, /^hint: check the endpoint; .*--force runs it anyway$/m);
    assert.deepEqual(
      refused.calls.map((c) => c.method),
      ['GetRestoreStatus'],
      'nothing was rotated',
    );
    const forced = notRestored();
    const f = await runWith(['restore-reconcile', '--force'], { api: forced });
    assert.equal(f.code, ExitCode.Ok, f.stderr);
    assert.match(f.stdout, /^Topic keys rotated: 3$/m);
    // The server refuses an unmarked database too: --force is passed on to it.
    const sent = forced.calls.find((c) => c.method === 'ReconcileAfterRestore');
    assert.equal((sent?.request as { force?: boolean } | undefined)?.force, true);
    // A run after a completed one (the runbook's step 6) finds the position the first one kept.
    const again = new FakeApi()
      .onAdmin('GetRestoreStatus', () => ({ pending: false, restored_position: '41' }))
      .onAdmin('ReconcileAfterRestore', () => RECONCILED);
    const a = await runWith(['restore-reconcile'], { api: again });
    assert.equal(a.code, ExitCode.Ok, a.stderr);
    const unforced = again.calls.find((c) => c.method === 'ReconcileAfterRestore');
    assert.equal((unforced?.request as { force?: boolean } | undefined)?.force, false);
  });

  void it('a client removed and created again starts a new history in the summary', () => {
    const line = (seq: number, type: string, client: string, keyVersion = 0): string =>
      JSON.stringify({ seq: String(seq), type, client, key_version: keyVersion });
    const summary = summarizeEventArchive(
      [
        line(1, 'client.created', 'x', 1),
        line(2, 'client.key_rotated', 'x', 2),
        line(3, 'client.key_rotated', 'x', 3),
        line(4, 'client.removed', 'x'),
        line(5, 'client.created', 'x', 1), // another device under the same name
        line(6, 'client.created', 'y', 1),
        line(7, 'client.key_rotated', 'y', 2),
      ].join('\n'),
    );
    assert.deepEqual(summary.clients, [
      // Not version 3: that was the earlier device's, and would call this one unreachable.
      { name: 'x', version: 1, removed: false, created_seq: '5' },
      { name: 'y', version: 2, removed: false, created_seq: '6' },
    ]);
  });
});
