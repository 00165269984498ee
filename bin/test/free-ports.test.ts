// Ports for a cluster plan: all distinct and free once chosen (each is held until all are), or
// held by the caller until it releases them.
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { describe, it } from 'node:test';
import { freePorts, holdFreePorts } from '../cluster.ts';

/** Whether `port` can be listened on now (closed again at once). */
function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => {
      resolve(false);
    });
    server.listen(port, '127.0.0.1', () => {
      server.close(() => {
        resolve(true);
      });
    });
  });
}

void describe('freePorts', () => {
  void it('gives distinct ports that can be bound right after', async () => {
    const ports = await freePorts('127.0.0.1', 40);
    assert.equal(ports.length, 40);
    assert.equal(new Set(ports).size, 40, 'no port twice');
    for (const port of ports) assert.ok(port > 0 && port < 65_536);
    const servers = ports.map((port) => createServer().listen(port, '127.0.0.1'));
    try {
      await Promise.all(
        servers.map(
          (s) =>
            new Promise<void>((resolve, reject) => {
              s.once('listening', resolve);
              s.once('error', reject);
            }),
        ),
      );
    } finally {
      await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    }
  });

  void it('holds the ports until released, so nothing else can listen there meanwhile', async () => {
    const held = await holdFreePorts('127.0.0.1', 3);
    assert.equal(new Set(held.ports).size, 3);
    for (const port of held.ports) assert.equal(await canListen(port), false, `${port} held`);
    await held.release();
    for (const port of held.ports) assert.equal(await canListen(port), true, `${port} released`);
  });

  void it('gives nothing for a count of 0, and rejects a host it cannot listen on', async () => {
    assert.deepEqual(await freePorts('127.0.0.1', 0), []);
    await assert.rejects(freePorts('192.0.2.1', 2), { code: 'EADDRNOTAVAIL' });
  });
});
