/**
 * `npm start`: one C2 node. With no configuration it runs on embedded defaults (an embedded
 * PostgreSQL and MQTT broker, data under ./data, a self-signed certificate for gRPC and HTTP);
 * with DATABASE_URL / MQTT_URL (and an optional E4C2_CONFIG_FILE) it uses those services.
 * This is a composition root: it reads the environment and the config file (`read-config.ts`).
 */
import {
  describeConfig,
  describeSources,
  ConfigError,
  type Config,
} from '../cluster/config/index.ts';
import { C2Error } from '../cluster/errors.ts';
import { StopSignals } from '../runtime/stop-signals.ts';
import { createLogger } from '../cluster/telemetry/index.ts';
import { startC2Node } from './c2-node.ts';
import { readNodeConfig } from './read-config.ts';

function fail(message: string): never {
  process.stderr.write(`e4c2: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = await readNodeConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    fail(`cannot read the configuration: ${(err as Error).message}`);
  }
  const logger = createLogger({ level: config.log.level, nodeId: config.node.id });
  // A signal during start-up is held until the node is up, then stops it: the default action
  // would kill the process half-way and leave an embedded PostgreSQL running without it. Held
  // from before the "starting" line: a signal sent on seeing it found no handler yet.
  let stopSignal: NodeJS.Signals | undefined;
  const signals = new StopSignals();
  const holdSignal = (signal: NodeJS.Signals): void => {
    const meaning = signals.receive();
    if (meaning === 'again') process.exit(130);
    if (meaning === 'copy') return;
    stopSignal = signal;
    logger.info({ signal }, 'stop requested during start-up: stopping once started');
  };
  process.on('SIGTERM', holdSignal);
  process.on('SIGINT', holdSignal);
  // Settings under their config-file keys; `sources` says what they chose (embedded, ...).
  logger.info({ config: describeConfig(config), sources: describeSources(config) }, 'starting');
  let node;
  try {
    node = await startC2Node(config, logger);
  } catch (err) {
    if (C2Error.is(err)) {
      // An expected refusal (configuration, a port, the data dir): its code and message, not a
      // stack trace; the cause stays for what it adds.
      const cause = err.cause instanceof Error ? err.cause.message : undefined;
      logger.error({ code: err.code, message: err.message, cause }, 'start-up failed');
      fail(`${err.message} (${err.code})`);
    }
    logger.error({ err }, 'start-up failed');
    fail(`start-up failed: ${(err as Error).message}`);
  }
  if (stopSignal !== undefined) {
    // holdSignal stays: a copy of the signal is ignored, a second one forces the exit.
    const clean = await node.lifecycle.shutdown(config.node.shutdownTimeoutMs, stopSignal);
    process.exit(clean ? 0 : 1);
  }
  process.off('SIGTERM', holdSignal);
  process.off('SIGINT', holdSignal);
  node.lifecycle.installSignalHandlers(config.node.shutdownTimeoutMs, signals);
  const a = node.addresses;
  const lines = [
    '',
    `E4 C2 node ${config.node.id} is running (role ${a.role}, ${config.crypto.mode} mode)`,
    ...(a.grpc === undefined ? [] : [`  gRPC (reference pb.C2 and e4c2.v1): ${a.grpc}`]),
    ...(a.http === undefined ? [] : [`  HTTP (reference /e4/..., ours /v1/...): ${a.http}`]),
    ...(a.http === undefined ? [] : [`  web console: ${a.http}/console/`]),
    `  health (/healthz, /readyz): ${a.health}`,
    `  PostgreSQL: ${a.database}`,
    ...(a.mqtt === undefined ? [] : [`  MQTT broker: ${a.mqtt}`]),
    ...(a.grpc === undefined
      ? []
      : a.tlsCertPath === undefined
        ? ['  TLS: off']
        : [
            `  TLS certificate (give it to clients, e.g. e4c2 --cert or c2cli --cert): ${a.tlsCertPath}`,
          ]),
    ...(a.dataDir === undefined ? [] : [`  data directory: ${a.dataDir}`]),
    ...a.notes.map((n) => `  note: ${n}`),
    '  stop with Ctrl-C',
    '',
  ];
  process.stdout.write(lines.join('\n') + '\n');
}

await main();
