/**
 * The MQTT command publisher across a real network partition (a broker in a network namespace,
 * the link taken down and brought back): a command whose PUBACK timed out while the link was cut
 * never reaches the broker afterwards. Before, its bytes waited in this host's socket buffer and
 * went out when the link came back, ahead of anything sent later; had another node sent the
 * device a newer key meanwhile, the device would have gone back to the older one.
 */
import assert from 'node:assert/strict';
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

/** Prints each message's payload on `e4/#` as a line (runs inside the namespace). */
const SUBSCRIBER = `
const mqtt = require('mqtt');
const client = mqtt.connect('mqtt://127.0.0.1:1883', { clientId: 'partition-listener' });
client.on('connect', () => client.subscribe('e4/#', { qos: 1 }, () => console.log('READY')));
client.on('message', (_topic, payload) => console.log('MSG ' + payload.toString()));
`;

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
    let listening = false;
    before(async () => {
      link = await NetnsLink.create();
      dir = await mkdtemp(join(tmpdir(), 'e4c2-partition-'));
      const config = join(dir, 'mosquitto.conf');
      await writeFile(
        config,
        'listener 1883 0.0.0.0\nallow_anonymous true\npersistence false\nuser root\n',
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
          assert.ok(received.includes('after'));
        }, 10_000);
        assert.deepEqual(received, ['before', 'after'], 'the stale command never arrived');
        assert.equal(publisher.stalledResets, 1, 'nothing acknowledged after it: reset');
        assert.equal(resetsReported, 1, 'the node is told (it logs a warning)');
      } finally {
        await link.heal(); // a failed assertion may leave it cut; close needs the broker
        await publisher.close();
      }
    });
  },
);
