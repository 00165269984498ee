/**
 * The `redis` section of a node's configuration for a test's private `redis-server`, as
 * `loadConfig` makes it from the environment (the other settings are placeholders).
 */
import assert from 'node:assert/strict';
import { loadConfig, type Config } from '../../../cluster/config/index.ts';

/** `config.redis` of a node whose `REDIS_URL` is `url`. */
export function externalRedisConfig(url: string): Extract<Config['redis'], { kind: 'external' }> {
  const config = loadConfig({
    DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/test',
    MQTT_URL: 'mqtt://127.0.0.1:1883',
    E4C2_KEK_FILE: '/nonexistent/kek.bin',
    REDIS_URL: url,
  });
  assert.ok(config.redis.kind === 'external');
  return config.redis;
}
