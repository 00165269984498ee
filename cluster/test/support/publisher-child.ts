/**
 * A command publisher in a process of its own, for tests that kill it (`fork` with `--import
 * tsx`; argv: broker URL, keep-alive seconds). It publishes `before` and reports `ready`; on the
 * message `stale` it publishes `stale` without waiting for the PUBACK and reports `sent`.
 */
import { MqttCommandPublisher } from '../../delivery/index.ts';

const [url, keepalive] = process.argv.slice(2);
if (url === undefined || keepalive === undefined)
  throw new Error('usage: publisher-child URL KEEPALIVE');
const publisher = await MqttCommandPublisher.connect({
  url,
  clientId: `publisher-child-${process.pid}`,
  pubackTimeoutMs: 60_000,
  keepaliveSeconds: Number(keepalive),
});
await publisher.publish('e4/device', Buffer.from('before'));
process.send?.('ready');
process.on('message', (message) => {
  if (message !== 'stale') return;
  publisher.publish('e4/device', Buffer.from('stale')).catch(() => undefined);
  // The bytes are in the socket once the event loop has turned.
  setTimeout(() => process.send?.('sent'), 100);
});
