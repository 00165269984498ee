/**
 * What the tests of protection proxies against our C2 share: `npm run proxy -- register` as an
 * operator runs it, and the fingerprints of a topic's key on the C2 and in a proxy.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { toHex, topicHash } from '../../../e4/index.ts';
import { keyFingerprint } from '../../../cluster/keyvault/index.ts';
import type { ApiHarness } from '../../../api/test/support/api-harness.ts';
import type { ProtectionProxy } from '../../../proxy/protection-proxy.ts';

/** `npm run proxy -- register --config file ...flags`, as a process. */
export function proxyRegister(file: string, ...flags: string[]): Promise<{ stdout: string }> {
  // Not spawnSync: the C2 answering it runs in this process.
  return promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'proxy/main.ts', 'register', ...flags, '--config', file],
    { encoding: 'utf8', timeout: 60_000 },
  );
}

/** The fingerprint of the current key of `topic` at the C2. */
export async function topicFingerprint(a: ApiHarness, topic: string): Promise<string> {
  const details = (await a.http('GET', `/v1/topics/${encodeURIComponent(topic)}`)).json as {
    keyVersion: number;
    keys: Array<{ version: number; fingerprint: string }>;
  };
  const fp = details.keys.find((k) => k.version === details.keyVersion)?.fingerprint;
  assert.ok(fp !== undefined);
  return fp;
}

/** The fingerprint of the key of `topic` that the identity `name` of `proxy` holds. */
export function proxyFingerprint(
  proxy: ProtectionProxy,
  name: string,
  topic: string,
): string | undefined {
  const key = proxy.ring.get(name)?.client.state.topicKeys.get(toHex(topicHash(topic)));
  return key === undefined ? undefined : keyFingerprint(key);
}

/** The current identity key version of the client `name` at the C2. */
export async function clientKeyVersion(a: ApiHarness, name: string): Promise<number> {
  const answer = await a.http('GET', `/v1/clients/${encodeURIComponent(name)}`);
  assert.equal(answer.status, 200, answer.text);
  return (answer.json as { keyVersion: number }).keyVersion;
}
