/**
 * The two-way check of a protection proxy against an E4 device on the real broker: a plain client
 * behind the proxy publishes, an eavesdropper at the broker sees only ciphertext and the device
 * reads it; the device publishes protected and the plain client reads it in clear.
 */
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { eventually } from '../../../cluster/test/support/eventually.ts';
import type { SimDevice } from '../../../cluster/test/support/sim-device.ts';
import type { ProtectionProxy } from '../../../proxy/protection-proxy.ts';
import { BROKER_URL, Collector, proxyUrl, unique } from '../../../proxy/test/support.ts';

/** What one round trip needs; `cleanups` receives what it opened. */
export interface RoundTrip {
  readonly proxy: ProtectionProxy;
  readonly device: SimDevice;
  readonly topic: string;
  /** What the plain client subscribes to (the topic, or a filter matching it). */
  readonly subscription: string;
  readonly fromApp: string;
  readonly fromDevice: string;
  readonly cleanups: Array<() => Promise<void>>;
}

/** Runs the round trip. @returns the plain client, for further checks */
export async function proxyRoundTrip(t: RoundTrip): Promise<Collector> {
  const eavesdropper = await Collector.connect(BROKER_URL);
  t.cleanups.push(() => eavesdropper.close());
  await eavesdropper.client.subscribeAsync(t.topic, { qos: 1 });
  const app = await Collector.connect(proxyUrl(t.proxy));
  t.cleanups.push(() => app.close());
  await app.client.subscribeAsync(t.subscription, { qos: 1 });

  await app.client.publishAsync(t.topic, t.fromApp, { qos: 1 });
  await eavesdropper.waitFor(1);
  const wire = eavesdropper.messages[0]?.payload ?? Buffer.alloc(0);
  assert.ok(!wire.toString('latin1').includes(t.fromApp), 'ciphertext at the broker');
  assert.equal(Buffer.from(t.device.client.unprotectMessage(wire, t.topic)).toString(), t.fromApp);

  const devicePublisher = await mqtt.connectAsync(BROKER_URL, { clientId: unique('dev-pub') });
  t.cleanups.push(() => devicePublisher.endAsync());
  await devicePublisher.publishAsync(
    t.topic,
    Buffer.from(t.device.client.protectMessage(Buffer.from(t.fromDevice), t.topic)),
    { qos: 1 },
  );
  await eventually(() => {
    assert.ok(app.texts(t.topic).includes(t.fromDevice), 'the application got the device message');
  });
  return app;
}
