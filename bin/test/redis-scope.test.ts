// The deployment's part of its Redis keys: two clusters on one Redis (other schema or database)
// get their own job queue and automation lease, the same deployment always the same ones.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../cluster/config/index.ts';
import { automationLeaseKey } from '../automation-part.ts';
import { deploymentScope, queuePrefix } from '../redis-scope.ts';

const external = (url: string, schema?: string) =>
  loadConfig({
    DATABASE_URL: url,
    MQTT_URL: 'mqtt://127.0.0.1:1883',
    REDIS_URL: 'redis://127.0.0.1:6379',
    E4C2_KEK_PASSPHRASE: 'a passphrase long enough for the test',
    ...(schema === undefined ? {} : { E4C2_DB_SCHEMA: schema }),
  });

void describe('redis scope', () => {
  void it('names the database and the schema', () => {
    assert.equal(deploymentScope(loadConfig({})), 'embedded:public');
    const a = external('postgres://u@db:5432/c2', 'site_a');
    assert.equal(deploymentScope(a), 'c2:site_a');
    assert.equal(queuePrefix(a), 'e4c2:c2:site_a');
    assert.equal(automationLeaseKey(a), 'e4c2:automation:leader:c2:site_a');
  });

  void it('differs between deployments that share a Redis, and is stable for one', () => {
    const prefixes = [
      queuePrefix(external('postgres://u@db:5432/c2', 'site_a')),
      queuePrefix(external('postgres://u@db:5432/c2', 'site_b')),
      queuePrefix(external('postgres://u@db:5432/other', 'site_a')),
    ];
    assert.equal(new Set(prefixes).size, 3);
    assert.equal(
      queuePrefix(external('postgres://v@db2:5433/c2', 'site_a')),
      prefixes[0],
      'the same database and schema through another address',
    );
  });
});
