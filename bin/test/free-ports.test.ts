// Ports for a cluster plan: all distinct and free once chosen (each is held until all are), or
// held by the caller until it releases them; drawn below the kernel's ephemeral range, so that
// no outgoing connection or listener on port 0 takes one before its service listens there.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import {
  drawRangeBelow,
  ephemeralOverlapWarning,
  freePort,
  freePorts,
  holdFreePorts,
  listenOnFreePort,
  portIsFree,
} from '../free-ports.ts';

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

void describe('the draw below the ephemeral range', () => {
  void it('takes up to 12,000 ports just below it, from 10,000 up, or none when too few', () => {
    assert.deepEqual(drawRangeBelow(32_768), { low: 20_768, high: 32_767 });
    assert.deepEqual(drawRangeBelow(15_000), { low: 10_000, high: 14_999 });
    assert.equal(drawRangeBelow(10_500), undefined, '500 ports are too few');
    assert.equal(drawRangeBelow(1_024), undefined, 'an ephemeral range from 1024 leaves none');
  });

  void it("draws from below this machine's ephemeral range", async () => {
    const first = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    );
    const range = drawRangeBelow(first);
    assert.ok(range !== undefined, `this machine's ephemeral range starts at ${first}`);
    const ports = [...(await freePorts('127.0.0.1', 20)), await freePort()];
    for (const port of ports)
      assert.ok(port >= range.low && port <= range.high, `${port} in ${range.low}-${range.high}`);
  });

  void it('leaves the choice to the kernel when every port of the range is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      assert.equal(await portIsFree('127.0.0.1', port), false, 'taken');
      const held = await holdFreePorts('127.0.0.1', 2, { low: port, high: port });
      await held.release();
      assert.equal(held.ports.length, 2);
      assert.ok(!held.ports.includes(port), `${held.ports.join(', ')} avoid ${port}`);
      assert.equal(new Set(held.ports).size, 2, 'distinct');
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
    assert.equal(await portIsFree('127.0.0.1', port), true, 'free once closed');
  });
});

void describe('a fixed --base-port in the ephemeral range', () => {
  void it('is warned about, with a base port that avoids it', () => {
    // An audit's cluster on 41000+ (this machine's range starts at 32768) failed its restarts:
    // outgoing connections had taken the ports.
    const warning = ephemeralOverlapWarning(41_000, 41_042, 32_768);
    assert.match(
      warning ?? '',
      /^ports 41000-41042 reach into the kernel's ephemeral range \(from 32768/,
    );
    assert.match(warning ?? '', /a --base-port below 32725 avoids it$/);
    assert.equal(ephemeralOverlapWarning(7000, 7042, 32_768), undefined, 'the default is below');
    assert.equal(ephemeralOverlapWarning(7000, 7042, undefined), undefined, 'unknown range');
  });
});

/** Two neighbouring ports free now, below the ephemeral range (a user's `--ports` range). */
async function freePair(): Promise<{ low: number; high: number; only: true }> {
  for (let i = 0; i < 50; i++) {
    const low = await freePort();
    if (low < 65_535 && (await portIsFree('127.0.0.1', low + 1)))
      return { low, high: low + 1, only: true };
  }
  throw new Error('no two neighbouring free ports');
}

void describe("a user's port range (the chaos suite's --ports)", () => {
  void it('gives every port from it, and an error naming it once it is full', async () => {
    const range = await freePair();
    const held = await holdFreePorts('127.0.0.1', 2, range);
    try {
      assert.deepEqual(
        [...held.ports].sort((a, b) => a - b),
        [range.low, range.high],
      );
      // Not the kernel's choice elsewhere, as a range below the ephemeral one falls back to.
      await assert.rejects(
        holdFreePorts('127.0.0.1', 1, range),
        new RegExp(`^Error: no free port on 127\\.0\\.0\\.1 in ${range.low}-${range.high}`),
      );
    } finally {
      await held.release();
    }
  });

  void it('makes a listener of its own listen there, past a taken port', async () => {
    const range = await freePair();
    const taken = await holdFreePorts('127.0.0.1', 1, { ...range, high: range.low });
    const server = createServer();
    try {
      await listenOnFreePort(server, '127.0.0.1', range);
      assert.equal((server.address() as AddressInfo).port, range.high);
      assert.equal(server.listenerCount('listening'), 0, 'no listener left from the taken port');
      assert.equal(server.listenerCount('error'), 0);
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await taken.release();
    }
  });
});
