/**
 * The fault injectors on loopback: the TCP fault proxy (stall, close after N bytes, slicing,
 * reset, refusal) against an echo server, the MQTT framer, and the MQTT proxy's duplication
 * against the machine's Mosquitto (the copy arrives, the extra PUBACK is swallowed).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { freePort } from '../../bin/free-ports.ts';
import { MqttFaultProxy, MqttFramer } from '../faults/mqtt-fault-proxy.ts';
import { TcpFaultProxy } from '../faults/tcp-fault-proxy.ts';

/** Connects through the proxy; collects what comes back. */
function client(
  port: number,
): Promise<{ socket: Socket; received: () => Buffer; closed: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: '127.0.0.1', port });
    const closed = new Promise<string>((done) => {
      socket.on('error', (err: NodeJS.ErrnoException) => {
        done(err.code ?? 'error');
      });
      socket.on('close', () => {
        done('closed');
      });
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('connect', () => {
      resolve({ socket, received: () => Buffer.concat(chunks), closed });
    });
    socket.once('error', reject);
  });
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

void describe('TcpFaultProxy.close()', () => {
  void it('leaves nothing holding the process after a Connection: close exchange', async () => {
    // In a child of its own: a leaked handle keeps a process alive, which only its exit shows.
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', fileURLToPath(new URL('support/proxy-close-exit.ts', import.meta.url))],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    // A bound on a hang, not on speed: the child exits within a second or two when nothing leaks.
    let killed = false;
    const hung = setTimeout(() => {
      killed = child.kill('SIGKILL');
    }, 30_000);
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    }).finally(() => {
      clearTimeout(hung);
    });
    assert.equal(out, 'hello\n', 'the exchange went through the proxy');
    assert.ok(!killed, 'the process did not exit by itself within 30 s after close(): killed');
    assert.equal(code, 0, err);
  });
});

void describe('TcpFaultProxy', () => {
  let echo: Server;
  let proxy: TcpFaultProxy;

  before(async () => {
    echo = createServer((s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const address = echo.address();
    proxy = await TcpFaultProxy.start({
      name: 'echo',
      targetHost: '127.0.0.1',
      targetPort: typeof address === 'object' && address !== null ? address.port : 0,
    });
  });

  after(async () => {
    await proxy.close();
    await new Promise<void>((r) => {
      echo.close(() => {
        r();
      });
    });
  });

  void it('passes data untouched without toxics, and sliced data intact', async () => {
    const payload = randomBytes(10_000);
    proxy.set('upstream', { sliceBytes: 7, sliceDelayMs: 0 });
    const c = await client(proxy.port);
    c.socket.write(payload);
    await until(() => c.received().length === payload.length, 'the echo');
    assert.deepEqual(c.received(), payload);
    c.socket.destroy();
    proxy.heal();
  });

  void it('holds every byte while stalled and delivers them once healed', async () => {
    const c = await client(proxy.port);
    proxy.set('downstream', { stall: true });
    c.socket.write('held');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(c.received().length, 0, 'nothing passed while stalled');
    proxy.heal();
    await until(() => c.received().toString() === 'held', 'the held bytes');
    c.socket.destroy();
  });

  void it('closes the connection after N bytes', async () => {
    proxy.set('downstream', { limitBytes: 5 });
    const c = await client(proxy.port);
    c.socket.write('0123456789');
    await c.closed;
    assert.equal(c.received().toString(), '01234');
    proxy.heal();
  });

  void it('resets open connections, and refuses new ones while told to', async () => {
    const c = await client(proxy.port);
    c.socket.write('x');
    await until(() => c.received().length === 1, 'the echo');
    proxy.resetAll();
    assert.equal(await c.closed, 'ECONNRESET');
    proxy.refuse(true);
    // The reset may come before or after the connect completes; either way no byte comes back.
    const ended = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: proxy.port });
      let got = 0;
      socket.on('data', (chunk: Buffer) => {
        got += chunk.length;
      });
      socket.on('connect', () => socket.write('x'));
      socket.on('error', (err: NodeJS.ErrnoException) => {
        resolve(`${err.code ?? 'error'} after ${got} bytes`);
      });
      socket.on('close', () => {
        resolve(`closed after ${got} bytes`);
      });
    });
    assert.match(ended, /after 0 bytes$/);
    assert.ok(proxy.counts.refused >= 1);
    proxy.heal();
  });
});

void describe('TcpFaultProxy partition', () => {
  // A server whose connections the test can close, echoing what it gets.
  let server: Server;
  const accepted: Socket[] = [];
  let proxy: TcpFaultProxy;

  before(async () => {
    server = createServer((s) => {
      accepted.push(s);
      s.on('error', () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const address = server.address();
    proxy = await TcpFaultProxy.start({
      name: 'partitioned',
      targetHost: '127.0.0.1',
      targetPort: typeof address === 'object' && address !== null ? address.port : 0,
    });
  });

  after(async () => {
    await proxy.close();
    for (const s of accepted) s.destroy();
    await new Promise<void>((r) => {
      server.close(() => {
        r();
      });
    });
  });

  const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  void it('holds both directions and new connections, and delivers everything once ended', async () => {
    const before = await client(proxy.port);
    before.socket.write('a');
    await until(() => before.received().toString() === 'a', 'the echo');
    const acceptedBefore = accepted.length;
    proxy.partition(true);
    before.socket.write('b');
    const during = await client(proxy.port);
    during.socket.write('c');
    await pause(300);
    assert.equal(before.received().toString(), 'a', 'nothing passed on an open connection');
    assert.equal(during.received().length, 0, 'nothing passed on a new connection');
    assert.equal(accepted.length, acceptedBefore, 'the new connection did not reach the server');
    proxy.partition(false);
    await until(() => before.received().toString() === 'ab', 'the held bytes');
    await until(() => during.received().toString() === 'c', 'the held connection');
    before.socket.destroy();
    during.socket.destroy();
  });

  void it('hides a close by the other side until it ends, then resets the survivor', async () => {
    const c = await client(proxy.port);
    c.socket.write('x');
    await until(() => c.received().toString() === 'x', 'the echo');
    const serverSide = accepted.at(-1);
    assert.ok(serverSide !== undefined);
    let closedEarly = false;
    void c.closed.then(() => {
      closedEarly = true;
    });
    proxy.partition(true);
    serverSide.destroy();
    await pause(300);
    assert.equal(closedEarly, false, 'the client did not learn of the close during the partition');
    const resetsBefore = proxy.counts.reset;
    proxy.partition(false);
    assert.equal(await c.closed, 'ECONNRESET');
    assert.equal(proxy.counts.reset, resetsBefore + 1);
  });

  void it('heal() ends a partition too', async () => {
    const c = await client(proxy.port);
    proxy.partition(true);
    c.socket.write('y');
    await pause(200);
    assert.equal(c.received().length, 0);
    proxy.heal();
    await until(() => c.received().toString() === 'y', 'the held bytes');
    c.socket.destroy();
  });
});

void describe('MqttFramer', () => {
  void it('splits a byte stream into whole packets, whatever the chunking', () => {
    const small = Buffer.from([0x30, 0x03, 0x00, 0x01, 0x61]); // PUBLISH QoS 0, topic "a"
    const big = Buffer.concat([Buffer.from([0x30, 0xc8, 0x01]), Buffer.alloc(200, 1)]); // 200 bytes
    const stream = Buffer.concat([small, big, small]);
    for (const size of [1, 2, 3, 50, stream.length]) {
      const framer = new MqttFramer();
      const packets: Buffer[] = [];
      for (let at = 0; at < stream.length; at += size)
        packets.push(...framer.push(stream.subarray(at, at + size)));
      assert.deepEqual(
        packets.map((p) => p.length),
        [5, 203, 5],
        `chunks of ${size}`,
      );
    }
  });
});

void describe('MqttFaultProxy', () => {
  void it('duplicates a QoS 1 PUBLISH: the subscriber gets two copies, the sender one PUBACK', async () => {
    const proxy = await MqttFaultProxy.start({
      targetHost: '127.0.0.1',
      targetPort: 1883,
      maxHoldMs: 500,
      random: () => 0,
    });
    const topic = `chaos-test/${randomBytes(6).toString('hex')}`;
    const sub = await mqtt.connectAsync('mqtt://127.0.0.1:1883', { reconnectPeriod: 0 });
    const pub = await mqtt.connectAsync(proxy.url, { reconnectPeriod: 0 });
    try {
      const got: string[] = [];
      sub.on('message', (_t, payload) => got.push(payload.toString()));
      await sub.subscribeAsync(topic, { qos: 1 });
      proxy.set({ duplicate: 1 });
      await pub.publishAsync(topic, 'once', { qos: 1 });
      await until(() => got.length === 2, 'two copies');
      assert.deepEqual(got, ['once', 'once']);
      assert.equal(proxy.counts.duplicated, 1);
      proxy.heal();
      await pub.publishAsync(topic, 'plain', { qos: 1 });
      await until(() => got.length === 3, 'the third message');
      assert.equal(got[2], 'plain');
    } finally {
      await pub.endAsync();
      await sub.endAsync();
      await proxy.close();
    }
  });
});

void describe('the proxies in a port range (--ports)', () => {
  void it('listen on a port of the range, and fail naming it when none is left', async () => {
    const port = await freePort();
    const range = { low: port, high: port, only: true } as const;
    const tcp = await TcpFaultProxy.start({
      name: 'ranged',
      targetHost: '127.0.0.1',
      targetPort: 1,
      portRange: range,
    });
    try {
      assert.equal(tcp.port, port);
      await assert.rejects(
        MqttFaultProxy.start({
          targetHost: '127.0.0.1',
          targetPort: 1,
          maxHoldMs: 100,
          random: Math.random,
          portRange: range,
        }),
        new RegExp(`no free port on 127\\.0\\.0\\.1 in ${port}-${port}`),
      );
    } finally {
      await tcp.close();
    }
    const mqttProxy = await MqttFaultProxy.start({
      targetHost: '127.0.0.1',
      targetPort: 1,
      maxHoldMs: 100,
      random: Math.random,
      portRange: range,
    });
    try {
      assert.equal(mqttProxy.url, `mqtt://127.0.0.1:${port}`);
    } finally {
      await mqttProxy.close();
    }
  });
});
