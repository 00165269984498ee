/** Traffic monitoring: classify what devices publish on protected topics (docs/monitoring.md). */
export {
  classifyMessage,
  TRAFFIC_CLASSES,
  type Classification,
  type ClassifyInput,
  type MonitoredKey,
  type TrafficClass,
} from './traffic-classifier.ts';
export { MqttTrafficFeed, type MqttTrafficFeedOptions } from './mqtt-traffic-feed.ts';
export {
  TrafficMonitor,
  type TrafficFeed,
  type TrafficMonitorOptions,
  type TrafficSource,
} from './traffic-monitor.ts';
