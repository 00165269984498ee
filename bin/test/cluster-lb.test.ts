/**
 * The layer-4 load balancer of local clusters (`bin/lb/`) against fake backends on loopback: each
 * backend greets a connection with its name and then echoes, and serves a `/readyz` whose answer
 * the test controls (200, 503, or no answer at all).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { eventually } from '../../cluster/test/support/eventually.ts';
import { LoadBalancer, type LbEvent } from '../lb/index.ts';

type Readiness = 'ready' | 'not-ready' | 'hang';

interface FakeBackend {
  readonly name: string;
  port: number;
  readonly healthPort: number;
  readiness: Readiness;
  /** Stops accepting on the service port (connections are then refused). */
  down(): Promise<void>;
  /** Listens again on the same service port. */
  up(): Promise<void>;
  close(): Promise<void>;
}

function listen(server: Server | HttpServer, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : 0);
    });
  });
}

function closeServer(server: Server | HttpServer): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => {
      resolve();
    });
    if ('closeAllConnections' in server) server.closeAllConnections();
  });
}

async function fakeBackend(name: string): Promise<FakeBackend> {
  const sockets = new Set<Socket>();
  const service = (): Server =>
    createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
      socket.write(`${name}\n`);
      socket.pipe(socket);
    });
  let server = service();
  const port = await listen(server);
  const hanging = new Set<ServerResponse>();
  const health = createHttpServer((req, res) => {
    if (b.readiness === 'hang') {
      hanging.add(res);
      return;
    }
    res.writeHead(b.readiness === 'ready' ? 200 : 503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ready: b.readiness === 'ready' }));
  });
  const healthPort = await listen(health);
  const b: FakeBackend = {
    name,
    port,
    healthPort,
    readiness: 'ready',
    async down() {
      for (const s of sockets) s.destroy();
      await closeServer(server);
    },
    async up() {
      server = service();
      await listen(server, port);
    },
    async close() {
      for (const res of hanging) res.destroy();
      await b.down();
      await closeServer(health);
    },
  };
  return b;
}

/** Connects through the balancer and reads the greeting line: the backend's name. */
function greeting(port: number, timeoutMs = 3000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no greeting'));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\n')) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text.split('\n')[0] ?? '');
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      reject(new Error('closed without a greeting'));
    });
  });
}

void describe('layer-4 load balancer', () => {
  const cleanups: Array<() => Promise<void>> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  const setup = async (
    count: number,
    extra: { maxConnections?: number } = {},
  ): Promise<{ backends: FakeBackend[]; lb: LoadBalancer; events: LbEvent[]; port: number }> => {
    const backends = await Promise.all(
      Array.from({ length: count }, (_, i) => fakeBackend(`b${i + 1}`)),
    );
    const events: LbEvent[] = [];
    const lb = await LoadBalancer.start({
      listeners: [{ name: 'tcp', host: '127.0.0.1', port: 0 }],
      backends: backends.map((b) => ({
        name: b.name,
        host: '127.0.0.1',
        ports: { tcp: b.port },
        healthUrl: `http://127.0.0.1:${b.healthPort}/readyz`,
      })),
      onEvent: (e) => events.push(e),
      ...extra,
    });
    cleanups.push(async () => {
      await lb.close(0);
      await Promise.all(backends.map((b) => b.close()));
    });
    return { backends, lb, events, port: lb.address('tcp').port };
  };

  void it('spreads connections round robin over healthy backends', async () => {
    const { port } = await setup(3);
    const seen: string[] = [];
    for (let i = 0; i < 9; i++) seen.push(await greeting(port));
    const counts = Object.fromEntries(['b1', 'b2', 'b3'].map((n) => [n, 0]));
    for (const n of seen) counts[n] = (counts[n] ?? 0) + 1;
    assert.deepEqual(counts, { b1: 3, b2: 3, b3: 3 }, seen.join(','));
  });

  void it('fails over when a backend refuses before any byte was forwarded, and takes it out', async () => {
    const { backends, lb, events, port } = await setup(3);
    const [b1] = backends;
    assert.ok(b1 !== undefined);
    await b1.down(); // its /readyz still answers 200: only the connect tells
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(await greeting(port));
    assert.ok(!seen.includes('b1'), seen.join(','));
    assert.ok(
      events.some((e) => e.type === 'connect-failed' && e.backend === 'b1'),
      'the failed connect was reported',
    );
    assert.equal(lb.backends().find((b) => b.name === 'b1')?.state, 'down');
    // The probes bring it back once it accepts again (rise: 2 probes) — here it never stopped
    // answering /readyz, so it comes back, and the next refused connect takes it out again.
    await b1.up();
    await eventually(() => {
      assert.equal(lb.backends().find((b) => b.name === 'b1')?.state, 'up');
    }, 3000);
    const again: string[] = [];
    for (let i = 0; i < 6; i++) again.push(await greeting(port));
    assert.ok(again.includes('b1'), again.join(','));
  });

  void it('removes a backend whose /readyz fails within ~1 s, and restores it', async () => {
    const { backends, lb, port } = await setup(2);
    const [b1] = backends;
    assert.ok(b1 !== undefined);
    b1.readiness = 'not-ready';
    const t0 = Date.now();
    await eventually(
      () => {
        assert.equal(lb.backends().find((b) => b.name === 'b1')?.state, 'down');
      },
      5000,
      10,
    );
    const removedMs = Date.now() - t0;
    // Nominal: two failed checks 250 ms apart (~0.5 s); the rest is headroom for a loaded CI box.
    assert.ok(removedMs <= 2500, `removed after ${removedMs} ms`);
    for (let i = 0; i < 4; i++) assert.equal(await greeting(port), 'b2');
    b1.readiness = 'ready';
    const t1 = Date.now();
    await eventually(
      () => {
        assert.equal(lb.backends().find((b) => b.name === 'b1')?.state, 'up');
      },
      5000,
      10,
    );
    const restoredMs = Date.now() - t1;
    assert.ok(restoredMs <= 2500, `restored after ${restoredMs} ms`);
  });

  void it('removes a backend whose /readyz hangs within ~2 s (probe deadline)', async () => {
    const { backends, lb } = await setup(2);
    const [b1] = backends;
    assert.ok(b1 !== undefined);
    b1.readiness = 'hang';
    const t0 = Date.now();
    await eventually(
      () => {
        assert.equal(lb.backends().find((b) => b.name === 'b1')?.state, 'down');
      },
      6000,
      10,
    );
    const removedMs = Date.now() - t0;
    // Nominal worst case: two checks of 250 ms wait + 500 ms deadline (~1.5 s); headroom for load.
    assert.ok(removedMs <= 3500, `removed after ${removedMs} ms`);
    assert.equal(lb.backends().find((b) => b.name === 'b1')?.reason, 'timeout');
  });

  void it('fails open when no backend is healthy, and closes the client when none accepts', async () => {
    const { backends, lb, events, port } = await setup(2);
    for (const b of backends) b.readiness = 'not-ready';
    await eventually(() => {
      assert.ok(
        lb.backends().every((b) => b.state === 'down'),
        'every backend down',
      );
    }, 3000);
    assert.match(await greeting(port), /^b[12]$/, 'served although both report not ready');
    for (const b of backends) await b.down();
    await assert.rejects(greeting(port), /closed without a greeting|ECONNRESET/);
    assert.ok(events.some((e) => e.type === 'no-backend' && e.tried === 2));
  });

  void it('passes bytes unchanged both ways, with back-pressure', async () => {
    const { port } = await setup(1);
    const payload = randomBytes(4 * 1024 * 1024);
    const echoed = await new Promise<Buffer>((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port });
      const chunks: Buffer[] = [];
      let size = 0;
      const expected = payload.length + 'b1\n'.length;
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= expected) {
          socket.destroy();
          resolve(Buffer.concat(chunks).subarray('b1\n'.length));
        }
      });
      socket.on('error', reject);
      socket.end(payload);
    });
    const digest = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
    assert.equal(digest(echoed), digest(payload));
  });

  void it('bounds open connections', async () => {
    const { lb, port } = await setup(1, { maxConnections: 2 });
    const open: Socket[] = [];
    for (let i = 0; i < 2; i++) {
      const s = connect({ host: '127.0.0.1', port });
      s.on('error', () => undefined);
      open.push(s);
      await new Promise((r) => s.once('data', r));
    }
    await assert.rejects(greeting(port, 1000));
    assert.equal(lb.stats()['tcp']?.active, 2);
    for (const s of open) s.destroy();
  });

  void it('closes cleanly: stops accepting, ends open connections after the grace period', async () => {
    const backends = [await fakeBackend('b1')];
    const lb = await LoadBalancer.start({
      listeners: [{ name: 'tcp', host: '127.0.0.1', port: 0 }],
      backends: backends.map((b) => ({
        name: b.name,
        host: '127.0.0.1',
        ports: { tcp: b.port },
        healthUrl: `http://127.0.0.1:${b.healthPort}/readyz`,
      })),
    });
    cleanups.push(async () => {
      await Promise.all(backends.map((b) => b.close()));
    });
    const port = lb.address('tcp').port;
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    await new Promise((r) => socket.once('data', r));
    const closedAt = new Promise<number>((resolve) => {
      socket.once('close', () => {
        resolve(Date.now());
      });
    });
    const t0 = Date.now();
    await lb.close(300);
    const tookMs = Date.now() - t0;
    assert.ok(tookMs >= 250 && tookMs < 2000, `closed after the grace period (${tookMs} ms)`);
    assert.ok((await closedAt) - t0 < 2000, 'the open connection was ended');
    await assert.rejects(greeting(port, 1000), /ECONNREFUSED/);
    await lb.close(); // idempotent
  });
});
