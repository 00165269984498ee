/**
 * A node's configuration for tests of its Redlock connections: the given instances (the first
 * also as `REDIS_URL`), the machine's PostgreSQL and broker, and a KEK file never opened.
 */
import { loadConfig, type Config } from '../../../cluster/config/index.ts';

/** The configuration of a node whose Redlock instances are `urls`. */
export function redlockConfig(urls: readonly string[]): Config {
  return loadConfig({
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
    MQTT_URL: 'mqtt://127.0.0.1:1883',
    E4C2_KEK_FILE: '/nonexistent/kek.bin',
    REDIS_URL: urls[0] ?? '',
    E4C2_REDLOCK_URLS: urls.join(','),
  });
}
