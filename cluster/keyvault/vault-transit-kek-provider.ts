/**
 * A KEK held by HashiCorp Vault's transit secrets engine (DESIGN R8): the key never leaves
 * Vault; data keys are sent to `encrypt` and `decrypt` and come back wrapped as Vault's
 * versioned ciphertext (`vault:v<N>:…`), stored as is. A key rotation inside Vault (a new key
 * version) is followed with `rewrap`, which moves a ciphertext to the newest version without
 * revealing it ({@link VaultTransitKekProvider.refresh}); Vault's `min_decryption_version` then
 * retires the old versions.
 *
 * Plain HTTP(S) with node:http, no client library: four endpoints are used. Authentication by
 * token or AppRole (the token is renewed by logging in again before it expires, and after a
 * 403). Vault's transient answers (503 sealed or standby, 429, 5xx, network errors) are retried a
 * few times with backoff, then surface as `C2_UNAVAILABLE`.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { inspect } from 'node:util';
import { C2Error } from '../errors.ts';
import { notWrappedBy, type KekProvider, type WrappedKey } from './kek-provider.ts';

const KIND = 'vault-transit';
/** Longest answer read from Vault. */
const MAX_ANSWER_BYTES = 1024 * 1024;

/** How the provider authenticates. */
export type VaultAuth =
  | { readonly kind: 'token'; readonly token: string }
  | { readonly kind: 'approle'; readonly roleId: string; readonly secretId: string };

/** Where the KEK is and how to reach it. */
export interface VaultTransitOptions {
  /** Vault's address, `https://vault.example:8200` (`http://` for a loopback or test server). */
  readonly addr: string;
  /** The transit key's name. */
  readonly keyName: string;
  /** Where the transit engine is mounted (default `transit`). */
  readonly mount?: string;
  readonly auth: VaultAuth;
  /** Vault Enterprise namespace (`X-Vault-Namespace`), if any. */
  readonly namespace?: string;
  /** PEM of the CA that signed Vault's certificate, when not a public one. */
  readonly caPem?: string;
  /** One request's timeout. Default 5 s. */
  readonly timeoutMs?: number;
  /** Tries per call on a transient failure. Default 3. */
  readonly attempts?: number;
}

/** One answer: status and the parsed JSON body (`{}` when it is not JSON). */
interface Answer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/**
 * The `details` of a set-up error caused by option `option` (`{ option: 'pin' }`), from which the
 * composition root names the setting the option came from.
 */
const at = (option: keyof VaultTransitOptions): { readonly option: string } => ({ option });

/** A failure worth trying again (network, sealed or standby node, overload). */
class Transient extends Error {}

const messagesOf = (body: Record<string, unknown>): string => {
  const list = Array.isArray(body['errors']) ? (body['errors'] as unknown[]) : [];
  return list.length === 0 ? 'no error message' : list.map(String).join('; ');
};

/** The Vault key version in a wrapped key (`vault:v<N>:…`), or 0. */
const versionOf = (wrapped: WrappedKey): number =>
  Number(/^vault:v(\d+):/.exec(Buffer.from(wrapped.ciphertext).toString('utf8'))?.[1] ?? 0);

const dataOf = (body: Record<string, unknown>): Record<string, unknown> => {
  const data = body['data'];
  return typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : {};
};

/**
 * Wraps data keys with a Vault transit key. The KEK id is `<mount>/<key name>`: Vault's own key
 * versions are inside the ciphertext, so a key rotation in Vault does not change the KEK id.
 */
export class VaultTransitKekProvider implements KekProvider {
  readonly kind = KIND;
  readonly keyId: string;
  readonly #options: VaultTransitOptions;
  readonly #base: URL;
  readonly #mount: string;
  #token: string | undefined;
  /** When an AppRole token must be replaced (ms since epoch). */
  #tokenRenewAt = Infinity;

  private constructor(options: VaultTransitOptions) {
    this.#options = options;
    let base: URL;
    try {
      base = new URL(options.addr);
    } catch {
      throw new C2Error('C2_CONFIG', `the Vault address "${options.addr}" is not a URL`, {
        details: at('addr'),
      });
    }
    if (base.protocol !== 'https:' && base.protocol !== 'http:')
      throw new C2Error('C2_CONFIG', `the Vault address must be http(s), not ${base.protocol}`, {
        details: at('addr'),
      });
    this.#base = base;
    this.#mount = (options.mount ?? 'transit').replace(/^\/+|\/+$/g, '');
    if (this.#mount === '')
      throw new C2Error('C2_CONFIG', 'the Vault transit mount must be non-empty', {
        details: at('mount'),
      });
    if (options.keyName === '' || options.keyName.includes('/'))
      throw new C2Error('C2_CONFIG', 'the Vault transit key name must be non-empty, without "/"', {
        details: at('keyName'),
      });
    this.keyId = `${this.#mount}/${options.keyName}`;
    if (options.auth.kind === 'token') this.#token = options.auth.token;
  }

  /**
   * Connects and checks the key with a round trip, so that a wrong address, token, policy or key
   * name is a start-up error.
   * @throws C2Error `C2_CONFIG`, `C2_KEY_VAULT` or `C2_UNAVAILABLE`
   */
  static async connect(options: VaultTransitOptions): Promise<VaultTransitKekProvider> {
    const provider = new VaultTransitKekProvider(options);
    const probe = new Uint8Array(randomBytes(32));
    const back = await provider.unwrap(await provider.wrap(probe));
    if (Buffer.compare(Buffer.from(back), Buffer.from(probe)) !== 0)
      throw new C2Error('C2_KEY_VAULT', `Vault transit key ${provider.keyId} did not round-trip`);
    probe.fill(0);
    back.fill(0);
    return provider;
  }

  /** Wraps `dataKey` with the key's newest version. @throws C2Error */
  async wrap(dataKey: Uint8Array): Promise<WrappedKey> {
    const data = await this.#transit('encrypt', {
      plaintext: Buffer.from(dataKey).toString('base64'),
    });
    return this.#wrapped(data, 'encrypt');
  }

  /**
   * Unwraps a key this provider wrapped.
   * @throws C2Error `C2_KEY_VAULT` when it names another KEK, or Vault refuses it (tampered,
   *   or a version below the key's `min_decryption_version`)
   */
  async unwrap(wrapped: WrappedKey): Promise<Uint8Array> {
    const foreign = notWrappedBy(this, wrapped);
    if (foreign !== undefined) throw foreign;
    const data = await this.#transit('decrypt', {
      ciphertext: Buffer.from(wrapped.ciphertext).toString('utf8'),
    });
    const plaintext = data['plaintext'];
    if (typeof plaintext !== 'string')
      throw new C2Error(
        'C2_KEY_VAULT',
        `Vault's decrypt answer for ${this.keyId} has no plaintext`,
      );
    return new Uint8Array(Buffer.from(plaintext, 'base64'));
  }

  /**
   * Vault's `rewrap`: the same data key under the key's newest version, never leaving Vault in
   * clear. @returns the new wrapped key, or `wrapped` itself when it is at the newest version
   * @throws C2Error as {@link unwrap}
   */
  async refresh(wrapped: WrappedKey): Promise<WrappedKey> {
    const foreign = notWrappedBy(this, wrapped);
    if (foreign !== undefined) throw foreign;
    const data = await this.#transit('rewrap', {
      ciphertext: Buffer.from(wrapped.ciphertext).toString('utf8'),
    });
    const refreshed = this.#wrapped(data, 'rewrap');
    // Vault encrypts afresh even at the newest version: same version, nothing moved.
    return versionOf(refreshed) === versionOf(wrapped) ? wrapped : refreshed;
  }

  #wrapped(data: Record<string, unknown>, operation: string): WrappedKey {
    const ciphertext = data['ciphertext'];
    if (typeof ciphertext !== 'string' || !/^vault:v\d+:/.test(ciphertext))
      throw new C2Error(
        'C2_KEY_VAULT',
        `Vault's ${operation} answer for ${this.keyId} has no ciphertext`,
      );
    return {
      kekKind: KIND,
      kekId: this.keyId,
      ciphertext: new Uint8Array(Buffer.from(ciphertext)),
    };
  }

  /** One transit call, with login, one re-login after a 403 (AppRole), and retries. */
  async #transit(
    operation: 'encrypt' | 'decrypt' | 'rewrap',
    body: Record<string, unknown>,
  ): Promise<Record<string, unknown>> {
    const path = `/v1/${this.#mount}/${operation}/${encodeURIComponent(this.#options.keyName)}`;
    let answer = await this.#withRetries(async () => this.#call(path, body, await this.#auth()));
    if (answer.status === 403 && this.#options.auth.kind === 'approle') {
      this.#token = undefined; // revoked or expired early: log in again, once
      answer = await this.#withRetries(async () => this.#call(path, body, await this.#auth()));
    }
    if (answer.status === 200) return dataOf(answer.body);
    const what = `Vault ${operation} with transit key ${this.keyId}`;
    if (answer.status === 403)
      throw new C2Error(
        'C2_KEY_VAULT',
        `${what} was denied (403: ${messagesOf(answer.body)}): check the token and its policy`,
        { details: at('auth') },
      );
    if (answer.status === 404)
      throw new C2Error(
        'C2_CONFIG',
        `${what}: no such route (404: ${messagesOf(answer.body)}): is a transit engine mounted at "${this.#mount}"?`,
        { details: at('mount') },
      );
    // An encrypt refused (Vault says 400 "encryption key not found") is about the key; a refused
    // decrypt or rewrap is about the ciphertext (tampered, or a retired key version).
    throw new C2Error(
      'C2_KEY_VAULT',
      `${what} was refused (${answer.status}: ${messagesOf(answer.body)})`,
      operation === 'encrypt' ? { details: at('keyName') } : undefined,
    );
  }

  /** The token to send, logging in with AppRole when there is none or it is about to expire. */
  async #auth(): Promise<string> {
    const auth = this.#options.auth;
    if (auth.kind === 'token') return auth.token;
    if (this.#token !== undefined && Date.now() < this.#tokenRenewAt) return this.#token;
    const answer = await this.#call('/v1/auth/approle/login', {
      role_id: auth.roleId,
      secret_id: auth.secretId,
    });
    const login = answer.body['auth'];
    const token =
      typeof login === 'object' && login !== null
        ? (login as Record<string, unknown>)['client_token']
        : undefined;
    // A sealed or standby Vault answers the login as any other call: worth another try.
    if (answer.status === 429 || answer.status >= 500)
      throw new Transient(
        `answered ${answer.status} to the AppRole login: ${messagesOf(answer.body)}`,
      );
    if (answer.status !== 200 || typeof token !== 'string') {
      throw new C2Error(
        'C2_KEY_VAULT',
        `Vault AppRole login failed (${answer.status}: ${messagesOf(answer.body)})`,
        { details: at('auth') },
      );
    }
    const ttl = Number((login as Record<string, unknown>)['lease_duration'] ?? 0);
    this.#token = token;
    // Renew at two thirds of the token's life; 0 means it does not expire.
    this.#tokenRenewAt = ttl > 0 ? Date.now() + (ttl * 1000 * 2) / 3 : Infinity;
    return token;
  }

  async #withRetries(call: () => Promise<Answer>): Promise<Answer> {
    const attempts = this.#options.attempts ?? 3;
    let last: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const answer = await call();
        if (answer.status === 429 || answer.status >= 500)
          throw new Transient(`answered ${answer.status}: ${messagesOf(answer.body)}`);
        return answer;
      } catch (err) {
        if (!(err instanceof Transient)) throw err;
        last = err;
        if (attempt < attempts) await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
    throw new C2Error(
      'C2_UNAVAILABLE',
      `Vault at ${this.#base.origin} is unavailable: ${(last as Error).message}`,
      { cause: last, details: at('addr') },
    );
  }

  /** POSTs JSON; a network failure or timeout is {@link Transient}. */
  #call(path: string, body: Record<string, unknown>, token?: string): Promise<Answer> {
    const url = new URL(path, this.#base);
    const payload = Buffer.from(JSON.stringify(body));
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': payload.length,
    };
    if (token !== undefined) headers['x-vault-token'] = token;
    if (this.#options.namespace !== undefined)
      headers['x-vault-namespace'] = this.#options.namespace;
    const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise<Answer>((resolve, reject) => {
      const req = request(
        url,
        {
          method: 'POST',
          headers,
          timeout: this.#options.timeoutMs ?? 5000,
          ...(this.#options.caPem === undefined ? {} : { ca: this.#options.caPem }),
        },
        (res: IncomingMessage) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) req.destroy(new Transient('answer too large'));
            else chunks.push(chunk);
          });
          res.on('end', () => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              parsed = {};
            }
            resolve({
              status: res.statusCode ?? 0,
              body:
                typeof parsed === 'object' && parsed !== null
                  ? (parsed as Record<string, unknown>)
                  : {},
            });
          });
          res.on('error', (err) => {
            reject(new Transient(err.message));
          });
        },
      );
      req.on('timeout', () => {
        req.destroy(new Transient(`no answer within ${this.#options.timeoutMs ?? 5000} ms`));
      });
      req.on('error', (err) => {
        reject(err instanceof Transient ? err : new Transient(err.message));
      });
      req.end(payload);
    });
  }

  /** Shows the KEK id only (never the token). */
  [inspect.custom](): string {
    return `VaultTransitKekProvider { keyId: '${this.keyId}' }`;
  }
}
