/**
 * The client id of the proxy's control session, kept stable across configuration changes.
 *
 * Without `upstream.controlClientId` the id is derived from the first identity, so removing or
 * reordering identities would change it: the old session would stay at the broker queuing
 * commands no one reads, and the new one would need a full resync. So the first id used is kept
 * in the state directory (`control-client-id`), and a later derived default that differs gives
 * way to it, with a warning. An id set in the configuration is the operator's choice and is
 * used, with a warning when it replaces the kept one.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProxyConfig } from './config.ts';
import type { ProxyLogger } from './logger.ts';

const FILE = 'control-client-id';

/**
 * The control client id to use, recorded in `stateDir` (which must exist) for the next start.
 * @param upstream - the configured id, and whether it is the derived default
 */
export async function settleControlClientId(
  stateDir: string,
  upstream: Pick<ProxyConfig['upstream'], 'controlClientId' | 'controlClientIdDefaulted'>,
  logger: ProxyLogger,
): Promise<string> {
  const path = join(stateDir, FILE);
  let kept: string | undefined;
  try {
    kept = (await readFile(path, 'utf8')).trim() || undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const configured = upstream.controlClientId;
  if (kept === configured) return configured;
  if (kept !== undefined && upstream.controlClientIdDefaulted) {
    logger.warn(
      { controlClientId: kept, derivedDefault: configured },
      `upstream.controlClientId is not set and its default (from the first identity) is now '${configured}'; the control session keeps the id of earlier starts, '${kept}'. Set upstream.controlClientId: '${kept}' in the configuration to make it explicit`,
    );
    return kept;
  }
  if (kept !== undefined) {
    logger.warn(
      { controlClientId: configured, previous: kept },
      `upstream.controlClientId changed from '${kept}' to '${configured}': a new control session at the broker (every identity is resynced); the session '${kept}' stays at the broker and queues commands no one reads until it expires`,
    );
  }
  await writeFile(path, `${configured}\n`, { mode: 0o600 });
  return configured;
}
