/**
 * A C2 harness with a receipt receiver on the real broker and an uplink connection devices send
 * their receipts on: what the receipt and delivery-event tests share.
 */
import { randomBytes } from 'node:crypto';
import mqtt, { type MqttClient } from 'mqtt';
import { ReceiptReceiver, type ReceiptEvent } from '../../delivery/index.ts';
import { PgDelivery } from '../../storage/index.ts';
import { startHarness, TEST_MQTT_URL, type C2Harness } from './c2-harness.ts';
import type { SimDevice } from './sim-device.ts';

/** Everything a receipt test needs; `close()` in `after`. */
export interface ReceiptHarness {
  readonly h: C2Harness;
  readonly receiver: ReceiptReceiver;
  /** A plain MQTT connection for sending receipts (or forgeries). */
  readonly uplink: MqttClient;
  /** Every receipt the receiver handled. */
  readonly receipts: ReceiptEvent[];
  /** Devices the test connects; closed by `close()`. */
  readonly devices: SimDevice[];
  close(): Promise<void>;
}

/** Starts the harness, the receiver (retrying failed devices through the engine) and the uplink. */
export async function startReceiptHarness(): Promise<ReceiptHarness> {
  const h = await startHarness();
  const receipts: ReceiptEvent[] = [];
  const devices: SimDevice[] = [];
  const uplink = await mqtt.connectAsync(TEST_MQTT_URL, {
    clientId: `uplink-${randomBytes(3).toString('hex')}`,
  });
  const receiver = await ReceiptReceiver.start({
    url: TEST_MQTT_URL,
    clientId: `receipts-${randomBytes(3).toString('hex')}`,
    store: h.store,
    delivery: new PgDelivery(h.schema.pool),
    sealer: h.service.deps.sealer,
    mode: 'symkey',
    retry: (id) => {
      h.engine.enqueue([id]);
    },
    onError: () => undefined,
    onReceipt: (e) => receipts.push(e),
  });
  return {
    h,
    receiver,
    uplink,
    receipts,
    devices,
    async close() {
      await Promise.all(devices.map((d) => d.close()));
      await receiver.close();
      await uplink.endAsync();
      await h.close();
    },
  };
}
