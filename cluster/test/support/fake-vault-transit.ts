/**
 * A stand-in for HashiCorp Vault's transit secrets engine on loopback, for tests of the Vault
 * KEK provider (no real Vault can run on these machines: not in Debian, no Docker). It keeps to
 * the documented API for what the provider uses: token and AppRole authentication
 * (`X-Vault-Token`, `POST /v1/auth/approle/login`), namespaces (`X-Vault-Namespace`), and the
 * transit `encrypt`, `decrypt` and `rewrap` endpoints with versioned keys: ciphertexts
 * `vault:v<N>:<base64 of nonce, ciphertext and tag>` (aes256-gcm96), key rotation, and
 * `min_decryption_version`. Errors come back as Vault's do: a status and `{"errors": [...]}`.
 */
import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

interface TransitKey {
  readonly versions: Buffer[];
  minDecryptionVersion: number;
}

/** One issued token and when it expires (ms since epoch; Infinity for a root-like token). */
interface Token {
  readonly expiresAt: number;
}

/** What the test can do to the fake server. */
export interface FakeVault {
  /** `http://127.0.0.1:<port>` */
  readonly addr: string;
  /** A token that never expires. */
  readonly rootToken: string;
  /** Creates a transit key (version 1) under `mount`. */
  createKey(name: string, mount?: string): void;
  /** Adds a version to a key (`vault write -f transit/keys/<name>/rotate`). */
  rotateKey(name: string, mount?: string): void;
  /** `min_decryption_version` of a key. */
  setMinDecryptionVersion(name: string, version: number, mount?: string): void;
  /** An AppRole whose logins give tokens valid for `ttlSeconds`. */
  addAppRole(roleId: string, secretId: string, ttlSeconds: number): void;
  /** Makes the next `count` requests answer 503 (a sealed or standby node). */
  failNext(count: number): void;
  /** Revokes every token issued so far but the root one. */
  revokeTokens(): void;
  /** Requests seen, as `METHOD path`. */
  readonly requests: string[];
  /** Namespaces seen on transit requests. */
  readonly namespaces: string[];
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const errors = (res: ServerResponse, status: number, ...messages: string[]): void => {
  send(res, status, { errors: messages });
};

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') return {};
  const parsed: unknown = JSON.parse(text);
  return typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
}

/** Starts the fake server on 127.0.0.1 with a free port. */
export async function startFakeVault(): Promise<FakeVault> {
  const keys = new Map<string, TransitKey>();
  const tokens = new Map<string, Token>();
  const roles = new Map<string, { secretId: string; ttlSeconds: number }>();
  const requests: string[] = [];
  const namespaces: string[] = [];
  const rootToken = `root-${randomUUID()}`;
  tokens.set(rootToken, { expiresAt: Infinity });
  let failing = 0;

  const keyOf = (mount: string, name: string): TransitKey | undefined =>
    keys.get(`${mount}/${name}`);

  const encrypt = (key: TransitKey, plaintext: Buffer): string => {
    const version = key.versions.length;
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key.versions[version - 1] as Buffer, nonce);
    const body = Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return `vault:v${version}:${Buffer.concat([nonce, body]).toString('base64')}`;
  };

  /** The plaintext, or the error Vault would give. */
  const decrypt = (key: TransitKey, ciphertext: unknown): Buffer | string => {
    const match = typeof ciphertext === 'string' ? /^vault:v(\d+):(.*)$/.exec(ciphertext) : null;
    if (match === null) return 'invalid ciphertext: no prefix';
    const version = Number(match[1]);
    if (version < key.minDecryptionVersion)
      return 'ciphertext or signature version is disallowed by policy (too old)';
    const secret = key.versions[version - 1];
    if (secret === undefined) return 'invalid ciphertext: version is too new';
    const raw = Buffer.from(match[2] ?? '', 'base64');
    try {
      const decipher = createDecipheriv('aes-256-gcm', secret, raw.subarray(0, 12));
      decipher.setAuthTag(raw.subarray(raw.length - 16));
      return Buffer.concat([decipher.update(raw.subarray(12, raw.length - 16)), decipher.final()]);
    } catch {
      return 'cipher: message authentication failed';
    }
  };

  const authenticated = (req: IncomingMessage): boolean => {
    const header = req.headers['x-vault-token'];
    const token = typeof header === 'string' ? tokens.get(header) : undefined;
    return token !== undefined && token.expiresAt > Date.now();
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://vault').pathname;
    requests.push(`${req.method ?? ''} ${path}`);
    if (failing > 0) {
      failing--;
      errors(res, 503, 'Vault is sealed');
      return;
    }
    const body = await readJson(req);
    if (req.method === 'POST' && path === '/v1/auth/approle/login') {
      const role = roles.get(String(body['role_id']));
      if (role === undefined || role.secretId !== body['secret_id']) {
        errors(res, 400, 'invalid role or secret ID');
        return;
      }
      const token = `s.${randomUUID()}`;
      tokens.set(token, { expiresAt: Date.now() + role.ttlSeconds * 1000 });
      send(res, 200, {
        auth: { client_token: token, lease_duration: role.ttlSeconds, renewable: false },
      });
      return;
    }
    const transit = /^\/v1\/(.+)\/(encrypt|decrypt|rewrap)\/([^/]+)$/.exec(path);
    if (req.method !== 'POST' || transit === null) {
      errors(res, 404, `no handler for route "${path}"`);
      return;
    }
    if (!authenticated(req)) {
      errors(res, 403, 'permission denied');
      return;
    }
    const namespace = req.headers['x-vault-namespace'];
    if (typeof namespace === 'string') namespaces.push(namespace);
    const [, mount = '', operation, name = ''] = transit;
    if (![...keys.keys()].some((k) => k.startsWith(`${mount}/`))) {
      errors(res, 404, `no handler for route "${path}". route entry not found.`);
      return;
    }
    const key = keyOf(mount, name);
    if (key === undefined) {
      errors(res, 400, 'encryption key not found');
      return;
    }
    if (operation === 'encrypt') {
      if (typeof body['plaintext'] !== 'string') {
        errors(res, 400, 'missing plaintext to encrypt');
        return;
      }
      const ciphertext = encrypt(key, Buffer.from(body['plaintext'], 'base64'));
      send(res, 200, { data: { ciphertext, key_version: key.versions.length } });
      return;
    }
    const clear = decrypt(key, body['ciphertext']);
    if (typeof clear === 'string') {
      errors(res, 400, clear);
      return;
    }
    if (operation === 'decrypt') {
      send(res, 200, { data: { plaintext: clear.toString('base64') } });
    } else {
      send(res, 200, {
        data: { ciphertext: encrypt(key, clear), key_version: key.versions.length },
      });
    }
    clear.fill(0);
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      errors(res, 500, String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const mustKey = (name: string, mount: string): TransitKey => {
    const key = keyOf(mount, name);
    if (key === undefined) throw new Error(`no transit key ${mount}/${name}`);
    return key;
  };
  return {
    addr: `http://127.0.0.1:${port}`,
    rootToken,
    requests,
    namespaces,
    createKey(name, mount = 'transit') {
      keys.set(`${mount}/${name}`, { versions: [randomBytes(32)], minDecryptionVersion: 1 });
    },
    rotateKey(name, mount = 'transit') {
      mustKey(name, mount).versions.push(randomBytes(32));
    },
    setMinDecryptionVersion(name, version, mount = 'transit') {
      mustKey(name, mount).minDecryptionVersion = version;
    },
    addAppRole(roleId, secretId, ttlSeconds) {
      roles.set(roleId, { secretId, ttlSeconds });
    },
    failNext(count) {
      failing = count;
    },
    revokeTokens() {
      for (const token of [...tokens.keys()]) if (token !== rootToken) tokens.delete(token);
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}
