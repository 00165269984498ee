// `client resync --all` against the fake API: paging, state filter, per-client request ids,
// refusals that concern one client, failures that stop the run, concurrency and Ctrl-C.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { clientRequestId } from '../commands/client-resync.ts';
import { ExitCode } from '../errors.ts';
import { FakeApi, grpcError, runWith } from './support/fake-api.ts';

interface Listed {
  readonly name: string;
  readonly state: string;
}

/** A fake whose ListClients pages over `clients` (`size` per page) and counts them. */
function fleet(clients: readonly Listed[], size = 2): FakeApi {
  return new FakeApi()
    .onReference('CountClients', () => ({ count: String(clients.length) }))
    .onAdmin('ListClients', (req) => {
      const start = req.cursor === '' ? 0 : Number(req.cursor);
      const page = clients.slice(start, start + size);
      const next = start + size < clients.length ? String(start + size) : '';
      return {
        clients: page.map((c) => ({ name: c.name, key_version: 1, delivery_state: c.state })),
        next_cursor: next,
      };
    });
}

function resyncedNames(api: FakeApi): string[] {
  return api.calls
    .filter((c) => c.method === 'ResyncClient')
    .map((c) => (c.request as { name: string }).name);
}

const FLEET: readonly Listed[] = [
  { name: 'a', state: 'idle' },
  { name: 'b', state: 'failed' },
  { name: 'c', state: 'unreachable' },
  { name: 'd', state: 'pending' },
  { name: 'e', state: 'idle' },
];

void describe('client resync --all', () => {
  void it('resyncs every client but the unreachable ones, each under its own request id', async () => {
    const api = fleet(FLEET).onAdmin('ResyncClient', (req) => ({
      keys_resent: req.name === 'b' ? ['identity'] : [],
    }));
    const r = await runWith(['client', 'resync', '--all', '--request-id', 'run-1'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(resyncedNames(api).sort(), ['a', 'b', 'd', 'e']);
    const ids = api.calls
      .filter((c) => c.method === 'ResyncClient')
      .map((c) => (c.request as { name: string; request_id: string }).request_id);
    assert.deepEqual(
      ids.sort(),
      ['a', 'b', 'd', 'e'].map((n) => clientRequestId('run-1', n)).sort(),
    );
    assert.equal(
      r.stdout,
      'Resync queued for 4 clients (1 with a rotated key re-sent under the one before)\n' +
        '1 unreachable left alone: they hold a key the C2 does not have; re-provision them ' +
        '(client create --key, or --state unreachable to resync them anyway)\n',
    );
    const j = await runWith(['--json', 'client', 'resync', '--all'], { api: fleet(FLEET) });
    assert.equal(j.code, ExitCode.Ok, j.stderr);
    assert.deepEqual(JSON.parse(j.stdout), {
      resynced: 4,
      keys_resent: 0,
      removed_meanwhile: [],
      refused: [],
      left_alone: { unreachable: 1 },
    });
  });

  void it('--state picks the states to resync', async () => {
    const api = fleet(FLEET);
    const r = await runWith(['client', 'resync', '--all', '--state', 'failed,unreachable'], {
      api,
    });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.deepEqual(resyncedNames(api).sort(), ['b', 'c']);
    assert.match(r.stdout, /^Resync queued for 2 clients\n/);
    assert.match(r.stdout, /\n2 idle left alone \(--state\)\n/);
    assert.match(r.stdout, /\n1 pending left alone \(--state\)\n/);
  });

  void it('bad flags are usage errors before any call', async () => {
    const cases: readonly (readonly string[])[] = [
      ['client', 'resync', '--all', '--state', 'idle,lost'],
      ['client', 'resync', '--name', 'a', '--state', 'idle'],
      ['client', 'resync', '--name', 'a', '--concurrency', '2'],
      ['client', 'resync', '--name', 'a', '--all'],
      ['client', 'resync'],
      ['client', 'resync', '--all', '--concurrency', '0'],
    ];
    for (const argv of cases) {
      const r = await runWith(argv);
      assert.equal(r.code, ExitCode.Usage, `${argv.join(' ')}: ${r.stderr}`);
      assert.equal(r.api.calls.length, 0, argv.join(' '));
    }
    const bad = await runWith(['client', 'resync', '--all', '--state', 'idle,lost']);
    assert.match(bad.stderr, /unknown delivery state "lost"/);
  });

  void it('a client removed meanwhile is skipped; a refusal of one client is reported, and exit 1', async () => {
    let abortedOnce = false;
    const api = fleet(FLEET).onAdmin('ResyncClient', (req) => {
      if (req.name === 'a') throw grpcError(status.NOT_FOUND, 'client "a" not found');
      if (req.name === 'd')
        throw grpcError(status.FAILED_PRECONDITION, 'client "d" is being reset');
      if (req.name === 'e' && !abortedOnce) {
        abortedOnce = true;
        throw grpcError(status.ABORTED, 'changed concurrently; retry');
      }
      return { keys_resent: [] };
    });
    const r = await runWith(['client', 'resync', '--all'], { api });
    assert.equal(r.code, ExitCode.Refused);
    assert.equal(
      r.stdout,
      'Resync queued for 2 clients\n' +
        '1 removed meanwhile, skipped\n' +
        '1 unreachable left alone: they hold a key the C2 does not have; re-provision them ' +
        '(client create --key, or --state unreachable to resync them anyway)\n' +
        'refused: d: client "d" is being reset\n',
    );
    assert.match(r.stderr, /^error: the server refused the resync of 1 client \(listed above\)\n/);
    // The ABORTED call was tried again and went through.
    assert.equal(resyncedNames(api).filter((n) => n === 'e').length, 2);
  });

  void it('a failure of the server stops the run after the calls in flight, with how to continue', async () => {
    const clients = Array.from({ length: 40 }, (_, i) => ({
      name: `dev-${String(i).padStart(2, '0')}`,
      state: 'idle',
    }));
    let calls = 0;
    const api = fleet(clients, 10).onAdmin('ResyncClient', async () => {
      calls++;
      await new Promise((resolve) => setImmediate(resolve));
      if (calls === 5) throw grpcError(status.UNAVAILABLE, 'connection refused');
      return { keys_resent: [] };
    });
    const r = await runWith(
      ['client', 'resync', '--all', '--concurrency', '2', '--request-id', 'run-9'],
      { api },
    );
    assert.equal(r.code, ExitCode.Unreachable);
    assert.match(r.stderr, /stopped after queuing [34] of about 40 clients/);
    assert.match(r.stderr, /--request-id run-9/);
    assert.ok(calls <= 6, `${calls} calls: the run went on after the failure`);
  });

  void it('never has more calls in flight than --concurrency', async () => {
    const clients = Array.from({ length: 30 }, (_, i) => ({ name: `n${i}`, state: 'idle' }));
    let inFlight = 0;
    let most = 0;
    const api = fleet(clients, 7).onAdmin('ResyncClient', async () => {
      inFlight++;
      most = Math.max(most, inFlight);
      await new Promise((resolve) => setTimeout(resolve, 2));
      inFlight--;
      return { keys_resent: [] };
    });
    const r = await runWith(['client', 'resync', '--all', '--concurrency', '3'], { api });
    assert.equal(r.code, ExitCode.Ok, r.stderr);
    assert.equal(resyncedNames(api).length, 30);
    assert.equal(most, 3);
  });

  void it('Ctrl-C stops it: exit 130, how far it got, and the request id to continue', async () => {
    const clients = Array.from({ length: 20 }, (_, i) => ({ name: `n${i}`, state: 'idle' }));
    const interrupt = new AbortController();
    let calls = 0;
    const api = fleet(clients, 5).onAdmin('ResyncClient', async () => {
      calls++;
      if (calls === 3) interrupt.abort();
      await new Promise((resolve) => setImmediate(resolve));
      return { keys_resent: [] };
    });
    const r = await runWith(['client', 'resync', '--all', '--concurrency', '1'], {
      api,
      signal: interrupt.signal,
    });
    assert.equal(r.code, ExitCode.Interrupted);
    assert.match(r.stderr, /^error: interrupted; stopped after queuing 3 of about 20 clients\n/);
    assert.match(r.stderr, /--request-id generated-request-id/);
    assert.equal(calls, 3);
  });
});

void describe('clientRequestId', () => {
  void it('is stable per run and name, differs between names and runs, and fits 128 characters', () => {
    assert.equal(clientRequestId('r', 'a'), clientRequestId('r', 'a'));
    assert.notEqual(clientRequestId('r', 'a'), clientRequestId('r', 'b'));
    assert.notEqual(clientRequestId('r', 'a'), clientRequestId('s', 'a'));
    const long = 'x'.repeat(128);
    assert.ok(clientRequestId(long, 'n'.repeat(255)).length <= 128);
    assert.notEqual(clientRequestId(`${long}1`, 'a'), clientRequestId(`${long}2`, 'a'));
    assert.match(clientRequestId('r', 'a'), /^[\x21-\x7e]+$/);
  });
});
