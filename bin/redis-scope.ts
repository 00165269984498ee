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
  const database = db.kind === 'external' ? databaseName(db.url.reveal()) : 'embedded';
  return `${database}:${db.schema}`;
}

/**
 * The database part of {@link deploymentScope} for an external PostgreSQL URL: its path's
 * database name, `default` when it has none or is no URL (never the URL: it may hold a password).
 */
export function databaseName(url: string): string {
  try {
    return new URL(url).pathname.replace(/^\//, '') || 'default';
  } catch {
    return 'default';
  }
}

/** The BullMQ prefix of the device queue: `e4c2:<database>:<schema>`. */
export function queuePrefix(config: Config): string {
  return queuePrefixOf(deploymentScope(config));
}

/** The device queue's prefix of a {@link deploymentScope}. */
export function queuePrefixOf(scope: string): string {
  return `e4c2:${scope}`;
}

/** The automation leader lease's key of a {@link deploymentScope}. */
export function leaseKeyOf(scope: string): string {
  return `e4c2:automation:leader:${scope}`;
}
