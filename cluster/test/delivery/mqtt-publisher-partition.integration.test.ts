/**
 * The MQTT command publisher across a real network partition (a broker in a network namespace,
 * the link taken down and brought back): a command whose PUBACK timed out while the link was cut
 * never reaches the broker afterwards. Before, its bytes waited in this host's socket buffer and
 * went out when the link came back, ahead of anything sent later; had another node sent the
 * device a newer key meanwhile, the device would have gone back to the older one.
 */
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { MqttCommandPublisher, PubackTimeoutError } from '../../delivery/index.ts';
import { eventually } from '../support/eventually.ts';
import { NetnsLink, netnsUnavailable } from '../support/netns.ts';

const MOSQUITTO = '/usr/sbin/mosquitto';

/**
 * Prints each message's payload on `e4/#`, and the broker's count of connected clients, as lines
 * (runs inside the namespace).
 */
const SUBSCRIBER = `
const mqtt = require('mqtt');
const client = mqtt.connect('mqtt://127.0.0.1:1883', { clientId: 'partition-listener' });
const count = '$SYS/broker/clients/connected';
client.on('connect', () => client.subscribe(['e4/#', count], { qos: 1 }, () => console.log('READY')));
client.on('message', (topic, payload) =>
  console.log((topic === count ? 'CONNECTED ' : 'MSG ') + payload.toString()));
`;

/** Another node, next to the broker (inside the namespace): publishes `newer` and exits. */
const OTHER_NODE = `
const mqtt = require('mqtt');
const client = mqtt.connect('mqtt://127.0.0.1:1883', { clientId: 'partition-other-node' });
client.on('connect', () =>
  client.publish('e4/device', 'newer', { qos: 1 }, (err) => client.end(() => process.exit(err ? 1 : 0))));
`;

const PUBLISHER_CHILD = fileURLToPath(new URL('../support/publisher-child.ts', import.meta.url));

/** Where `require('mqtt')` resolves for the listener. */
const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

const unavailable =
  (await netnsUnavailable()) ??
  (existsSync(MOSQUITTO) ? undefined : `${MOSQUITTO} is not installed (apt-get install mosquitto)`);

void describe(
  'MqttCommandPublisher across a network partition',
  { skip: unavailable, timeout: 60_000 },
  () => {
    let link: NetnsLink;
    let dir: string;
    const received: string[] = [];
    let connectedClients = -1;
    let listening = false;
    before(async () => {
      link = await NetnsLink.create();
      dir = await mkdtemp(join(tmpdir(), 'e4c2-partition-'));
      const config = join(dir, 'mosquitto.conf');
      await writeFile(
        config,
        'listener 1883 0.0.0.0\nallow_anonymous true\npersistence false\nuser root\nsys_interval 1\n',
      );
      link.spawn(MOSQUITTO, ['-c', config]);
      // The broker needs a moment; the listener retries on its own (mqtt.js reconnects).
      const listener = link.spawn(process.execPath, ['-e', SUBSCRIBER], REPO_ROOT);
      let buffered = '';
      listener.stdout?.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const lines = buffered.split('\n');
        buffered = lines.pop() ?? '';
        for (const line of lines) {
          if (line === 'READY') listening = true;
          else if (line.startsWith('MSG ')) received.push(line.slice(4));
          else if (line.startsWith('CONNECTED ')) connectedClients = Number(line.slice(10));
        }
      });
      await eventually(() => {
        assert.ok(listening, 'the listener inside the namespace subscribed');
      }, 20_000);
    });
    after(async () => {
      await link.close();
      await rm(dir, { recursive: true, force: true });
    });

    void it('a command that timed out while the link was cut is never delivered after it heals', async () => {
      let resetsReported = 0;
      const publisher = await MqttCommandPublisher.connect({
        url: `mqtt://${link.nsIp}:1883`,
        clientId: `partition-publisher-${process.pid}`,
        pubackTimeoutMs: 500,
        onStalledReset: () => {
          resetsReported++;
        },
      });
      try {
        await publisher.publish('e4/device', Buffer.from('before'));
        await eventually(() => {
          assert.deepEqual(received, ['before']);
        }, 10_000);
        await link.cut();
        await assert.rejects(
          publisher.publish('e4/device', Buffer.from('stale')),
          PubackTimeoutError,
        );
        await link.heal();
        await eventually(() => {
          assert.equal(publisher.connected, true);
        }, 20_000);
        await publisher.publish('e4/device', Buffer.from('after'));
        await eventually(() => {
          assert.ok(received.includes('after'), "'after' received");
        }, 10_000);
        assert.deepEqual(received, ['before', 'after'], 'the stale command never arrived');
        assert.equal(
          resetsReported,
          1,
          'nothing acknowledged after it: reset, and the node is told',
        );
      } finally {
        await link.heal(); // a failed assertion may leave it cut; close needs the broker
        await publisher.close();
      }
    });

    void it("a node killed while cut off: the broker refuses its socket's late bytes after the keep-alive", async () => {
      // The kernel keeps sending a dead process's unsent bytes once the link heals; nothing in
      // the process can reset them. The broker refuses them if it dropped the connection first,
      // which it does 1.5 x keep-alive after it last heard from it (publisherKeepaliveSeconds).
      received.length = 0;
      const keepalive = process.env['E4C2_TEST_CHILD_KEEPALIVE'] ?? '2';
      const child = fork(PUBLISHER_CHILD, [`mqtt://${link.nsIp}:1883`, keepalive], {
        execArgv: ['--import', 'tsx'],
        stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      });
      const said = (what: string): Promise<void> =>
        new Promise((resolve) => {
          const listen = (m: unknown): void => {
            if (m !== what) return;
            child.off('message', listen);
            resolve();
          };
          child.on('message', listen);
        });
      try {
        await said('ready');
        await eventually(() => {
          assert.deepEqual(received, ['before']);
          assert.equal(connectedClients, 2, 'the listener and the node, as the broker counts');
        }, 10_000);
        await link.cut();
        const staleWrittenAt = Date.now();
        child.send('stale');
        await said('sent');
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
        // The broker drops the dead node's connection (its $SYS count: the listener alone).
        connectedClients = -1;
        await eventually(() => {
          assert.equal(connectedClients, 1);
        }, 20_000);
        // Meanwhile another node sends the device a newer command.
        const other = link.spawn(process.execPath, ['-e', OTHER_NODE], REPO_ROOT);
        const code = await new Promise((resolve) => other.once('exit', resolve));
        assert.equal(code, 0, 'the other node published');
        await link.heal();
        // The dead socket's retransmissions come 6.2 and 12.6 s after the write (RTO doubling
        // from 200 ms): the broker must have refused them by then.
        while (Date.now() - staleWrittenAt < 14_000 && !received.includes('stale'))
          await new Promise((r) => setTimeout(r, 250));
        assert.deepEqual(
          received,
          ['before', 'newer'],
          "the dead node's stale command never arrived",
        );
      } finally {
        child.kill('SIGKILL');
        await link.heal();
      }
    });
  },
);
