/**
 * Prepared topic keys shared by the E4 clients of one process. A host of many identities (the
 * gateway proxy, one identity per device behind it) holds the same topic key once per identity
 * subscribed to the topic; without sharing, each identity prepares that key itself (two OpenSSL
 * cipher contexts) after every rotation. With a {@link SharedTopicCiphers} given to every client
 * of the host, the first identity that uses a new key prepares it and the others reuse it: one
 * pair of contexts per key in the process, not per identity.
 *
 * Sharing is safe because an {@link AesSivKey} is only ever used synchronously (a call runs to
 * its end before another can start) and clients never wipe or change a prepared key; a client
 * just stops referring to it. Entries are found by a SHA-256 digest of the key (a digest of a
 * 256-bit key reveals nothing of it, where the key bytes as a map key would leave an unwipeable
 * string copy), and the key itself is compared before a hit is returned. The pool refers to its
 * keys weakly: a key no client uses any more is collected as it would be without the pool.
 */
import { createHash } from 'node:crypto';
import { AesSivKey } from '../aes-siv.ts';
import { requireBytes } from '../arguments.ts';

/** Domain separation of the digest, so it can never equal another use of SHA-256 of a key. */
const DIGEST_DOMAIN = Buffer.from('e4 shared topic cipher v1\0');

interface Entry {
  readonly key: WeakRef<AesSivKey>;
  /** The key bytes the entry was prepared from (the pool's own copy), compared on every hit. */
  readonly source: Uint8Array;
}

/** Constant-time comparison of two 32-byte keys. */
function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

/**
 * A process-wide pool of prepared topic keys; give the same instance to every client of a host
 * (`ClientOptions.sharedTopicCiphers`). Not for sharing across worker threads.
 */
export class SharedTopicCiphers {
  readonly #entries = new Map<string, Entry>();
  readonly #collected = new FinalizationRegistry<string>((digest) => {
    const entry = this.#entries.get(digest);
    if (entry !== undefined && entry.key.deref() === undefined) {
      entry.source.fill(0);
      this.#entries.delete(digest);
    }
  });
  #prepared = 0;
  #reused = 0;

  /**
   * The prepared key for `key` (32 bytes): the one a client of this pool prepared already while
   * any client still uses it, else a new one.
   * @throws E4Error `InvalidKey` when the key is not 32 bytes (from {@link AesSivKey}),
   *   `InvalidArgument` when it is not a `Uint8Array` (a string was hashed as its text first)
   */
  get(key: Uint8Array): AesSivKey {
    requireBytes(key, 'topic key');
    const digest = createHash('sha256').update(DIGEST_DOMAIN).update(key).digest('base64');
    const entry = this.#entries.get(digest);
    const live = entry?.key.deref();
    if (entry !== undefined && live !== undefined && sameKey(entry.source, key)) {
      this.#reused++;
      return live;
    }
    const prepared = new AesSivKey(key);
    // A collected entry not yet finalised is replaced: its finaliser then finds the new one alive.
    entry?.source.fill(0);
    this.#entries.set(digest, { key: new WeakRef(prepared), source: new Uint8Array(key) });
    this.#collected.register(prepared, digest);
    this.#prepared++;
    return prepared;
  }

  /** Keys held (some may already be unused and waiting to be collected). */
  get size(): number {
    return this.#entries.size;
  }

  /** How many keys were prepared, and how many requests reused one: for metrics and tests. */
  get stats(): { readonly prepared: number; readonly reused: number } {
    return { prepared: this.#prepared, reused: this.#reused };
  }
}
