/**
 * What the tests of protection proxies against our C2 share: `npm run proxy -- register` as an
 * operator runs it, and the fingerprints of a topic's key on the C2 and in a proxy.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { toHex, topicHash } from '../../../e4/index.ts';
import { keyFingerprint } from '../../../cluster/keyvault/index.ts';
import { startApi, type ApiHarness } from '../../../api/test/support/api-harness.ts';
import { tempDir } from '../../../proxy/test/support.ts';
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

/** What {@link useC2AndDir} provides, once the suite's `before` has run. */
export interface C2AndDir {
  /** Our C2's API node. */
  readonly a: ApiHarness;
  /** Its HTTP API, as `c2.url`. */
  readonly c2Url: string;
  /** A temporary directory for the proxy's configuration and state. */
  readonly dir: string;
}

/**
 * Starts our C2 and makes a temporary directory before the current suite's tests, and stops and
 * removes them after (call it in a `describe`).
 */
export function useC2AndDir(): C2AndDir {
  let started: { a: ApiHarness; dir: Awaited<ReturnType<typeof tempDir>> } | undefined;
  const get = (): NonNullable<typeof started> => {
    assert.ok(started, 'used before the suite started');
    return started;
  };
  before(async () => {
    started = { a: await startApi(), dir: await tempDir() };
  });
  after(async () => {
    await started?.dir.cleanup();
    await started?.a.close();
  });
  return {
    get a() {
      return get().a;
    },
    get c2Url() {
      return `http://127.0.0.1:${get().a.api.httpAddress.port}`;
    },
    get dir() {
      return get().dir.path;
    },
  };
}
