/**
 * The traffic monitor of a node (roles `all` and `worker`, when `E4C2_MONITORING` is true): its
 * own MQTT connection, a shared subscription group in a cluster so each message is classified by
 * one worker, counters flushed to PostgreSQL. docs/monitoring.md.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Config } from '../cluster/config/index.ts';
import type { C2Service } from '../cluster/domain/index.ts';
import type { Lifecycle } from '../cluster/lifecycle.ts';
import type { C2Metrics } from '../cluster/telemetry/index.ts';
import { MqttTrafficFeed, TRAFFIC_CLASSES, TrafficMonitor } from '../worker/monitoring/index.ts';

/** Shared subscription group of the monitors of a cluster. */
export const MONITOR_SHARE_GROUP = 'e4c2-monitor';

/**
 * Starts the monitor when the configuration asks for it on this role.
 * @returns a note for the start-up banner, or undefined when it does not run here
 */
export async function startTrafficMonitor(
  config: Config,
  brokerUrl: string,
  service: C2Service,
  lifecycle: Lifecycle,
  logger: Logger,
  metrics: C2Metrics | undefined,
): Promise<string | undefined> {
  const settings = config.monitoring;
  if (settings?.enabled !== true || config.node.role === 'api') return undefined;
  const feed = await MqttTrafficFeed.connect({
    url: brokerUrl,
    clientId: `${config.mqtt.clientIdPrefix}-${config.node.id}-monitor-${randomBytes(3).toString('hex')}`,
    ...(config.mqtt.username === undefined ? {} : { username: config.mqtt.username }),
    ...(config.mqtt.password === undefined ? {} : { password: config.mqtt.password.reveal() }),
    ...(config.node.role === 'worker' ? { shareGroup: MONITOR_SHARE_GROUP } : {}),
  });
  const monitor = new TrafficMonitor({
    source: service,
    feed,
    maxQueued: settings.maxQueued,
    maxQueuedBytes: settings.maxQueuedBytes,
    onClassified: (verdict) => metrics?.monitoredMessage(verdict),
    onDropped: (reason) => metrics?.monitorDropped(reason),
    onError: (err, context) => {
      logger.warn({ err, context }, 'traffic monitor error');
    },
  });
  try {
    await monitor.start();
  } catch (err) {
    await feed.close();
    throw err;
  }
  lifecycle.add('traffic monitor', () => monitor.close());
  metrics?.monitorStarted(TRAFFIC_CLASSES);
  return `traffic monitoring on: ${monitor.topics} topic(s) subscribed`;
}
