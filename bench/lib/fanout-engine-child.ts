/**
 * Child process of `bench/fanout.ts`: a second delivery node. It runs a {@link DeliveryEngine}
 * with the production settings on the benchmark's schema, with its own pool, key vault (same
 * throw-away KEK, so it opens the same data keys), MQTT publisher and claim owner, exactly as a
 * second node of role `all` would, and reports its PUBACKs.
 */
import { randomBytes } from 'node:crypto';
import { DeliveryEngine, type MqttCommandPublisher } from '../../cluster/delivery/index.ts';
import { KeyVault, LocalKekProvider } from '../../cluster/keyvault/index.ts';
import { createPool, PgC2Store, PgDataKeyStore } from '../../cluster/storage/index.ts';
import { connectPublisher, engineOptions, POOL_MAX, syncDeps } from './fanout-c2.ts';
import {
  AckCounter,
  errorMessage,
  peakRssMiB,
  type EngineCommand,
  type EngineEvent,
  type EngineInit,
} from './fanout-common.ts';

interface Node {
  readonly engine: DeliveryEngine;
  readonly publisher: MqttCommandPublisher;
  readonly pool: { end(): Promise<void> };
}

const acks = new AckCounter();
const errors: string[] = [];
let node: Node | undefined;

function send(event: EngineEvent, then: () => void = () => undefined): void {
  process.send?.(event, then);
}

async function start(init: EngineInit): Promise<Node> {
  const pool = await createPool({
    url: init.databaseUrl,
    schema: init.schema,
    max: POOL_MAX,
    applicationName: 'bench-fanout-engine-b',
  });
  const store = new PgC2Store(pool);
  const vault = await KeyVault.create({
    provider: LocalKekProvider.fromKey(Buffer.from(init.kekHex, 'hex')),
    store: new PgDataKeyStore(pool),
  });
  const publisher = await connectPublisher(init.brokerUrl, 'bench-fanout-b');
  const engine = new DeliveryEngine(
    store,
    syncDeps(
      store,
      vault,
      pool,
      publisher,
      `${init.owner}-${randomBytes(3).toString('hex')}`,
      acks,
    ),
    engineOptions(errors),
  );
  engine.start();
  return { engine, publisher, pool };
}

async function stop(): Promise<void> {
  const n = node;
  node = undefined;
  if (n === undefined) return;
  await n.engine.close();
  await n.publisher.close();
  await n.pool.end();
}

async function handle(command: EngineCommand): Promise<void> {
  switch (command.type) {
    case 'init':
      node = await start(command);
      send({ type: 'ready' });
      return;
    case 'kick':
      node?.engine.kick();
      return;
    case 'reset':
      acks.reset();
      send({ type: 'stats', ...acks.stats() });
      return;
    case 'stats':
      send({ type: 'stats', ...acks.stats() });
      return;
    case 'stop':
      await stop();
      send({ type: 'stopped', peakRssMiB: peakRssMiB(), errors: errors.length }, () => {
        process.disconnect();
      });
      return;
  }
}

process.on('message', (message: EngineCommand) => {
  handle(message).catch((err: unknown) => {
    send({ type: 'error', message: errorMessage(err) });
  });
});
// The benchmark went away: stop sending and leave.
process.on('disconnect', () => {
  void stop()
    .catch(() => undefined)
    .finally(() => process.exit());
  setTimeout(() => process.exit(), 5000).unref();
});
