/**
 * Which identities' control topics the proxy's control session at the broker is subscribed to,
 * and the C2 was asked to resync since (`<stateDir>/control-subscriptions.json`).
 *
 * The broker keeps commands only for the topics a session is subscribed to. An identity added to
 * the configuration of a deployed proxy gets its control topic subscribed at the next start, but
 * what the C2 sent it before (the topic keys `register` made it send) was dropped, and the session
 * being present says nothing about that. The identities missing from this list are the ones to
 * resync. Nothing here is secret: identity names only.
 */
import { join } from 'node:path';
import { readNameList, writeNameList } from './name-list-file.ts';

const FILE = 'control-subscriptions.json';

/**
 * The identities recorded as subscribed and resynced; empty when nothing was recorded (a first
 * start, or a state directory of a version that did not record it: all are then resynced once).
 * @throws ProxyError `PROXY_KEY_STORE` when the file is not such a list
 */
export async function subscribedIdentities(stateDir: string): Promise<Set<string>> {
  return new Set(
    await readNameList(join(stateDir, FILE), 'remove it: every identity is then resynced once'),
  );
}

/** Replaces the list. */
export function recordSubscribedIdentities(
  stateDir: string,
  names: Iterable<string>,
): Promise<void> {
  return writeNameList(join(stateDir, FILE), [...names].sort());
}
