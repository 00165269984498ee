/**
 * The keys an upgrade practice owns in the shared Redis (`REDIS_URL`), as `SCAN MATCH` patterns:
 * the secrecy scan (I8) reads only these, and the clean-up removes them. The shared Redis may hold
 * other deployments' keys, which are neither this run's to read nor to delete.
 */
import { LOCK_KEY_PREFIX } from '../../cluster/coordination/index.ts';
import { databaseName, leaseKeyOf, queuePrefixOf } from '../../bin/redis-scope.ts';

/** What names a run's keys. */
export interface RunKeyScope {
  readonly databaseUrl: string;
  /** The run's PostgreSQL schema, part of its nodes' deployment scope. */
  readonly schema: string;
  /** Names the run's topics (`upgrade/<tag>/…`) and devices (`upgrade-<tag>-…`). */
  readonly tag: string;
  /** Redlock instances: with 1, the nodes' lock keys are in the shared Redis too. */
  readonly redlock: 1 | 3;
}

/** `text` matched literally by a Redis glob pattern. */
export function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/**
 * The patterns of every key the run's nodes write to the shared Redis: the device queue
 * (`e4c2:<database>:<schema>:…`), the automation leader lease and, with `--redlock 1`, the locks
 * of the run's topics and devices (`e4c2:lock:{topic:upgrade/<tag>/…}`; lock keys carry no
 * deployment scope, but the run's names carry its tag).
 */
export function runKeyPatterns(o: RunKeyScope): string[] {
  const scope = `${databaseName(o.databaseUrl)}:${o.schema}`;
  const tag = globEscape(o.tag);
  return [
    `${globEscape(queuePrefixOf(scope))}:*`,
    globEscape(leaseKeyOf(scope)),
    ...(o.redlock === 1
      ? [
          `${globEscape(LOCK_KEY_PREFIX)}{topic:upgrade/${tag}/*}`,
          `${globEscape(LOCK_KEY_PREFIX)}{client:upgrade-${tag}-*}`,
        ]
      : []),
  ];
}
