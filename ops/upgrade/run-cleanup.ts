/**
 * What an upgrade practice leaves behind in the shared services, removed after the run: its
 * PostgreSQL schema and its Redis keys. Its own processes the run stops itself (roll-run.ts).
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import type { RollArgs } from './roll-args.ts';
import { runKeyPatterns } from './run-keys.ts';

/**
 * Removes what the run left in the shared services: its schema (unless `--keep`) and its Redis
 * keys (run-keys.ts: the device queue, the automation lease and, with `--redlock 1`, the run's
 * locks). Never throws.
 */
export async function cleanUpRun(
  args: RollArgs,
  schema: string,
  tag: string,
  log: (line: string) => void,
): Promise<void> {
  if (!args.keep) {
    const db = new pg.Client({ connectionString: args.databaseUrl });
    db.on('error', () => undefined);
    await db
      .connect()
      .then(() => db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`))
      .catch((err: unknown) => {
        log(`upgrade: could not drop schema ${schema}: ${(err as Error).message}`);
      })
      .finally(() => db.end().catch(() => undefined));
  } else log(`upgrade: kept schema ${schema}`);
  const patterns = runKeyPatterns({ ...args, schema, tag });
  const redis = new Redis(args.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    for (const pattern of patterns) {
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
    }
  } catch (err) {
    log(`upgrade: could not remove the run's Redis keys: ${(err as Error).message}`);
  } finally {
    redis.disconnect();
  }
}
