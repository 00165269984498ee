// The port rules of `npm start`: a taken port is a clear C2_CONFIG error or a free port that is
// reported, never a stack trace; probes leave nothing listening.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, describe, it } from 'node:test';
import { C2Error } from '../../errors.ts';
import {
  choosePort,
  describeFallback,
  findFreePort,
  isPortFree,
  listenOrFallback,
} from '../../embedded/index.ts';
import { closeServer, holdPort } from './support.ts';

const HOST = '127.0.0.1';

void describe('embedded ports', () => {
  const servers: Server[] = [];
  after(async () => {
    for (const server of servers) await closeServer(server);
  });

  async function held(): Promise<number> {
    const { port, server } = await holdPort();
    servers.push(server);
    return port;
  }

  void it('isPortFree tells a taken port from a free one, and findFreePort finds a free one', async () => {
    const taken = await held();
    assert.equal(await isPortFree(HOST, taken), false);
    const free = await findFreePort(HOST);
    assert.ok(free > 0 && free < 65536);
    assert.equal(await isPortFree(HOST, free), true);
    // The probe itself must not keep the port.
    assert.equal(await isPortFree(HOST, free), true);
  });

  void it('isPortFree reports a host that is not ours as C2_CONFIG', async () => {
    // 192.0.2.1 (TEST-NET-1) is never a local address.
    await assert.rejects(isPortFree('192.0.2.1', 1883), (err: unknown) => {
      assert.ok(C2Error.is(err, 'C2_CONFIG'));
      assert.match(err.message, /cannot listen on 192\.0\.2\.1:1883/);
      return true;
    });
  });

  void it('choosePort keeps a free port, falls back from a taken one, or fails clearly', async () => {
    const free = await findFreePort(HOST);
    assert.deepEqual(await choosePort({ host: HOST, port: free, what: 'x' }), { port: free });
    const taken = await held();
    const fallback = await choosePort({ host: HOST, port: taken, what: 'x' });
    assert.equal(fallback.fallbackFrom, taken);
    assert.notEqual(fallback.port, taken);
    assert.equal(
      describeFallback(HOST, fallback),
      `port ${taken} on ${HOST} was taken; using ${fallback.port}`,
    );
    assert.equal(describeFallback(HOST, { port: free }), undefined);
    await assert.rejects(
      choosePort({ host: HOST, port: taken, onTaken: 'fail', what: 'embedded thing' }),
      (err: unknown) => {
        assert.ok(C2Error.is(err, 'C2_CONFIG'));
        assert.equal(
          err.message,
          `embedded thing: port ${taken} on ${HOST} is already in use (choose another port, or ` +
            `stop what listens there)`,
        );
        return true;
      },
    );
    const any = await choosePort({ host: HOST, port: 0, what: 'x' });
    assert.ok(any.port > 0);
    assert.equal(any.fallbackFrom, undefined);
  });

  void it('listenOrFallback binds the wanted port, or a free one, or fails without listening', async () => {
    const free = await findFreePort(HOST);
    const first = createServer();
    servers.push(first);
    assert.deepEqual(await listenOrFallback(first, { host: HOST, port: free, what: 'a' }), {
      port: free,
    });

    const second = createServer();
    servers.push(second);
    const choice = await listenOrFallback(second, { host: HOST, port: free, what: 'b' });
    assert.equal(choice.fallbackFrom, free);
    assert.ok(second.listening);
    assert.deepEqual(second.address(), { address: HOST, family: 'IPv4', port: choice.port });

    const third = createServer();
    await assert.rejects(
      listenOrFallback(third, { host: HOST, port: free, onTaken: 'fail', what: 'c' }),
      (err: unknown) => C2Error.is(err, 'C2_CONFIG') && err.message.includes(`port ${free}`),
    );
    assert.equal(third.listening, false);
  });
});
