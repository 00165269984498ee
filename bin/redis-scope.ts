/**
 * The part of a node's Redis keys that names its deployment: the database and the schema. Two
 * clusters sharing one Redis (a test cluster beside another, `npm run cluster --schema`, two
 * deployments on one managed Redis) must not share a leader lease or a job queue: a worker of one
 * would take the other's jobs, whose device ids its own database does not know, and drop them.
 */
import type { Config } from '../cluster/config/index.ts';

/** `<database>:<schema>` of the node's PostgreSQL (`embedded:public` for the embedded one). */
export function deploymentScope(config: Config): string {
  const db = config.database;
  let database = 'embedded';
  if (db.kind === 'external') {
    try {
      database = new URL(db.url.reveal()).pathname.replace(/^\//, '') || 'default';
    } catch {
      database = 'default';
    }
  }
  return `${database}:${db.schema}`;
}

/** The BullMQ prefix of the device queue: `e4c2:<database>:<schema>`. */
export function queuePrefix(config: Config): string {
  return `e4c2:${deploymentScope(config)}`;
}
