/**
 * Confirming a command from a device's receipt (real PostgreSQL, broker and device): a replayed
 * receipt confirms nothing new, also after a resync; a receipt of an older command never confirms
 * a newer one recorded meanwhile.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { E4Client, randomSymKey, toHex, topicHash } from '../../../e4/index.ts';
import { PgDelivery } from '../../storage/index.ts';
import { startHarness, type C2Harness } from '../support/c2-harness.ts';
import { eventually } from '../support/eventually.ts';
import { SimDevice } from '../support/sim-device.ts';

const ctx = { actor: 'test' };
const unique = (prefix: string): string => `${prefix}-${randomBytes(5).toString('hex')}`;

void describe('confirming a command from a receipt', () => {
  let h: C2Harness;
  let delivery: PgDelivery;
  const devices: SimDevice[] = [];
  before(async () => {
    h = await startHarness();
    delivery = new PgDelivery(h.schema.pool);
  });
  after(async () => {
    await Promise.all(devices.map((d) => d.close()));
    await h.close();
  });

  /** A device holding a topic's key; its membership's last command, not yet confirmed. */
  async function delivered(): Promise<{
    name: string;
    clientId: string;
    commandId: Buffer;
    hash: Buffer;
  }> {
    const name = unique('dev');
    const topic = unique('t');
    const key = randomSymKey();
    await h.service.newClient(ctx, name, key);
    const device = await SimDevice.connect(await E4Client.createSymmetric({ name }, { key }));
    devices.push(device);
    await h.service.newTopic(ctx, topic);
    await h.service.newTopicClient(ctx, name, topic);
    const hash = toHex(topicHash(topic));
    await device.waitFor(() => device.topicKeyFingerprint(hash) !== undefined, 10_000, 'key');
    let row: { client_id: string; last_command_id: Buffer; topic_hash: Buffer } | undefined;
    await eventually(async () => {
      row = (
        await h.schema.pool.query<{
          client_id: string;
          last_command_id: Buffer;
          topic_hash: Buffer;
        }>(
          `SELECT client_id, last_command_id, topic_hash FROM device_topics
            WHERE last_command_id IS NOT NULL
              AND client_id = (SELECT id FROM clients WHERE name = $1)`,
          [name],
        )
      ).rows[0];
      assert.ok(row, 'the delivery is recorded');
    });
    assert.ok(row);
    return { name, clientId: row.client_id, commandId: row.last_command_id, hash: row.topic_hash };
  }

  void it('a replayed receipt confirms nothing new, also after a resync', async () => {
    const d = await delivered();
    assert.equal((await delivery.confirmCommand(d.clientId, d.commandId)).status, 'confirmed');
    assert.equal((await delivery.confirmCommand(d.clientId, d.commandId)).status, 'already');
    // The device is stopped first, so that the resync's own delivery does not land meanwhile.
    await devices.pop()?.close();
    await h.service.resyncClient(ctx, d.name);
    assert.equal((await delivery.confirmCommand(d.clientId, d.commandId)).status, 'unmatched');
  });

  void it('a receipt of an older command never confirms a newer one recorded meanwhile', async () => {
    const d = await delivered();
    const writer = await h.schema.pool.connect();
    try {
      // A newer command's delivery, recorded while the receipt of the older one is handled.
      await writer.query('BEGIN');
      await writer.query(
        `UPDATE device_topics SET last_command_id = '\\x00', last_command_version = last_command_version + 1
          WHERE client_id = $1 AND topic_hash = $2`,
        [d.clientId, d.hash],
      );
      const confirming = delivery.confirmCommand(d.clientId, d.commandId);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await writer.query('COMMIT');
      assert.notEqual((await confirming).status, 'confirmed');
    } finally {
      writer.release();
    }
    const { rows } = await h.schema.pool.query<{
      confirmed_version: number;
      last_command_version: number;
    }>(
      'SELECT confirmed_version, last_command_version FROM device_topics WHERE client_id = $1 AND topic_hash = $2',
      [d.clientId, d.hash],
    );
    assert.ok(
      (rows[0]?.confirmed_version ?? 0) < (rows[0]?.last_command_version ?? 0),
      'not confirmed',
    );
  });
});
