/**
 * The proxy's configuration file (YAML or JSON) and its validation. Every problem is reported at
 * once, naming the setting, as a {@link ProxyError} `PROXY_CONFIG`. Relative paths are resolved
 * against the configuration file's directory.
 */
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { BlockList, isIP } from 'node:net';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { fsFailure, ProxyError, ProxyErrorCode } from './errors.ts';
import {
  DEFAULT_ROTATION_HOLD,
  perConnectionDefaults,
  type RotationHoldLimits,
} from './rotation-hold.ts';
import { isValidTopicFilter, topicMatches } from './topic-filter.ts';

/** `local`: one identity for an application on this machine; `gateway`: many devices. */
export type ProxyMode = 'local' | 'gateway';

/** What happens to a topic that matches no `protect` pattern. */
export type OtherTopics = 'forward' | 'drop';

/** TLS of the downstream listener. */
export interface ListenTls {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA of the devices' client certificates; with `requireClientCert`, a certificate is mandatory. */
  readonly caFile: string | undefined;
  readonly requireClientCert: boolean;
}

/** One E4 identity the proxy holds. */
export interface IdentityConfig {
  readonly name: string;
  /** Topics this identity is attached to at registration. */
  readonly topics: readonly string[];
  /**
   * Initial key (hex), used only when no state exists yet; random otherwise: the 32-byte
   * symmetric key, or in public-key mode the 64-byte Ed25519 private key (seed and public key).
   */
  readonly initialKeyHex: string | undefined;
}

/** How a downstream device is recognised and which identity it uses (gateway mode). */
export interface DeviceConfig {
  readonly clientId: string | undefined;
  readonly username: string | undefined;
  /** Common name of a verified TLS client certificate. */
  readonly certCommonName: string | undefined;
  /** `scrypt$<salt hex>$<hash hex>` (`npm run proxy -- hash-password`); required when set. */
  readonly passwordHash: string | undefined;
  readonly identity: string;
}

/** The whole validated configuration. */
export interface ProxyConfig {
  readonly mode: ProxyMode;
  readonly listen: { readonly host: string; readonly port: number; readonly tls?: ListenTls };
  readonly upstream: {
    readonly url: string;
    readonly username: string | undefined;
    readonly password: string | undefined;
    readonly caFile: string | undefined;
    /** Prepended to a downstream client id to form its upstream client id. */
    readonly clientIdPrefix: string;
    /** Client id of the proxy's own control connection (a persistent session). */
    readonly controlClientId: string;
    /**
     * True when `controlClientId` is not set in the file but derived from the first identity: the
     * start then keeps the id of earlier starts (see control-client-id.ts).
     */
    readonly controlClientIdDefaulted: boolean;
  };
  readonly stateDir: string;
  readonly localKeyFile: string;
  readonly health: { readonly host: string; readonly port: number };
  readonly policy: {
    readonly protect: readonly string[];
    readonly otherTopics: OtherTopics;
    readonly maxPayloadBytes: number;
    /** Hard limit of one MQTT packet; a larger one closes the connection. */
    readonly maxPacketBytes: number;
    /** How long and how much inbound messages wait for a topic key in flight. */
    readonly rotationHold: RotationHoldLimits;
  };
  readonly identities: readonly IdentityConfig[];
  readonly devices: readonly DeviceConfig[];
  /** Gateway: identity of devices that no `devices` entry names (refused when unset). */
  readonly gatewayIdentity: string | undefined;
  readonly c2: {
    readonly url: string | undefined;
    readonly token: string | undefined;
    /**
     * Trust on first use: a new identity is registered at start and, in symmetric mode, rotated
     * by the C2 (a public-key identity's private key never leaves the proxy: nothing to rotate).
     */
    readonly tofu: boolean;
    /** The C2's crypto mode, which the identities follow. */
    readonly mode: C2Mode;
    /** Public-key mode: the C2's Curve25519 public key (hex); fetched from `url` when unset. */
    readonly publicKeyHex: string | undefined;
    /** PEM CA (or self-signed certificate) trusted for an `https` `url`, instead of Node's CAs. */
    readonly caFile: string | undefined;
  };
}

/** The C2's crypto mode (`E4C2_CRYPTO_MODE` symkey / pubkey). */
export type C2Mode = 'symmetric' | 'public-key';

/** Command-line values that take precedence over the file. */
export interface ConfigOverrides {
  readonly mode?: ProxyMode;
  readonly tofu?: boolean;
}

type Obj = Record<string, unknown>;

/**
 * Reads, at start, a file that `setting` names (a certificate, a key).
 * @throws ProxyError `PROXY_CONFIG` naming the setting and the path
 */
export function readSettingFile(setting: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new ProxyError(ProxyErrorCode.Config, `${setting}: cannot read ${fsFailure(err, path)}`, {
      cause: err,
    });
  }
}

/**
 * Checks the content of the file `setting` names with `use`, which throws when it is not `what`
 * it should be (OpenSSL's own messages name no file).
 * @throws ProxyError `PROXY_CONFIG`: `<setting>: <path> <what> (<reason>)`
 */
export function checkSettingFile(
  setting: string,
  path: string,
  what: string,
  use: () => unknown,
): void {
  try {
    use();
  } catch (err) {
    throw new ProxyError(
      ProxyErrorCode.Config,
      `${setting}: ${path} ${what} (${err instanceof Error ? err.message : String(err)})`,
      { cause: err },
    );
  }
}

/**
 * Reads, at start, the PEM file of a CA to trust that `setting` names. A file without a
 * certificate would be ignored by TLS, which then blames the peer's certificate instead.
 * @throws ProxyError `PROXY_CONFIG` naming the setting and the path
 */
export function readCaFile(setting: string, path: string): Buffer {
  const ca = readSettingFile(setting, path);
  checkSettingFile(setting, path, 'is not a PEM certificate', () => new X509Certificate(ca));
  return ca;
}

class Reader {
  readonly problems: string[] = [];
  constructor(readonly baseDir: string) {}

  obj(parent: Obj, key: string, where: string): Obj {
    const v = parent[key];
    if (v === undefined || v === null) return {};
    if (typeof v !== 'object' || Array.isArray(v)) {
      this.problems.push(`${where}${key}: must be a mapping`);
      return {};
    }
    return v as Obj;
  }

  str(parent: Obj, key: string, where: string): string | undefined {
    const v = parent[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.length === 0) {
      this.problems.push(`${where}${key}: must be a non-empty string`);
      return undefined;
    }
    return v;
  }

  path(parent: Obj, key: string, where: string): string | undefined {
    const v = this.str(parent, key, where);
    return v === undefined ? undefined : isAbsolute(v) ? v : resolve(this.baseDir, v);
  }

  /** A path to a file read at start (certificates): one that cannot be read is a problem now. */
  readablePath(parent: Obj, key: string, where: string): string | undefined {
    const path = this.path(parent, key, where);
    if (path !== undefined) {
      try {
        accessSync(path, constants.R_OK);
        // A directory is readable too, and fails only when the file is read.
        if (statSync(path).isDirectory()) {
          this.problems.push(
            `${where}${key}: cannot read ${path} (EISDIR: a directory, not a file)`,
          );
        }
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        this.problems.push(
          `${where}${key}: cannot read ${path}${typeof code === 'string' ? ` (${code})` : ''}`,
        );
      }
    }
    return path;
  }

  int(parent: Obj, key: string, where: string, min: number, max: number, dflt: number): number {
    const v = parent[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.problems.push(`${where}${key}: must be a whole number from ${min} to ${max}`);
      return dflt;
    }
    return v;
  }

  bool(parent: Obj, key: string, where: string, dflt: boolean): boolean {
    const v = parent[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') {
      this.problems.push(`${where}${key}: must be true or false`);
      return dflt;
    }
    return v;
  }

  list(parent: Obj, key: string, where: string): unknown[] {
    const v = parent[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.problems.push(`${where}${key}: must be a list`);
      return [];
    }
    return v as unknown[];
  }

  strings(parent: Obj, key: string, where: string): string[] {
    const out: string[] = [];
    this.list(parent, key, where).forEach((v, i) => {
      if (typeof v === 'string' && v.length > 0) out.push(v);
      else this.problems.push(`${where}${key}[${i}]: must be a non-empty string`);
    });
    return out;
  }

  unknownKeys(o: Obj, allowed: readonly string[], where: string): void {
    for (const k of Object.keys(o)) {
      if (!allowed.includes(k)) this.problems.push(`${where}${k}: unknown setting`);
    }
  }
}

const TOP_KEYS = [
  'mode',
  'listen',
  'upstream',
  'stateDir',
  'localKeyFile',
  'health',
  'policy',
  'identities',
  'devices',
  'gatewayIdentity',
  'c2',
] as const;

/** Default of `policy.maxPayloadBytes`: 256 KiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 256 * 1024;

/**
 * Why the C2 would refuse `name` as a client name (docs/api.md, "Input limits"), or undefined.
 * `.` and `..` are path steps to every URL parser: the HTTP API could never address them.
 */
/** `policy.rotationHold`: each limit, or its default. */
function readRotationHold(r: Reader, policy: Obj): RotationHoldLimits {
  const hold = r.obj(policy, 'rotationHold', 'policy.');
  const at = 'policy.rotationHold.';
  const d = DEFAULT_ROTATION_HOLD;
  r.unknownKeys(hold, Object.keys(d), at);
  const GiB = 1024 * 1024 * 1024;
  const messages = r.int(hold, 'messages', at, 1, 1_000_000, d.messages);
  const bytes = r.int(hold, 'bytes', at, 1, GiB, d.bytes);
  // A connection's share defaults to a quarter of the totals given, and may not exceed them.
  const share = perConnectionDefaults(messages, bytes);
  return {
    ms: r.int(hold, 'ms', at, 0, 60_000, d.ms),
    messagesPerTopic: r.int(hold, 'messagesPerTopic', at, 1, 100_000, d.messagesPerTopic),
    bytesPerTopic: r.int(hold, 'bytesPerTopic', at, 1, GiB, d.bytesPerTopic),
    messagesPerConnection: r.int(
      hold,
      'messagesPerConnection',
      at,
      1,
      messages,
      share.messagesPerConnection,
    ),
    bytesPerConnection: r.int(hold, 'bytesPerConnection', at, 1, bytes, share.bytesPerConnection),
    messages,
    bytes,
  };
}

function clientNameProblem(name: string): string | undefined {
  if (name === '.' || name === '..') {
    return `'${name}' cannot be a name: URLs resolve it as a path step (the C2 refuses it)`;
  }
  if (!name.isWellFormed() || name.includes('\uFFFD')) return 'not valid UTF-8 (or holds U+FFFD)';
  if (Buffer.byteLength(name) > 255) return 'longer than 255 bytes';
  // C0 and C1 control characters and DEL.
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return 'holds control characters';
  return undefined;
}

function readIdentities(r: Reader, root: Obj, c2Mode: C2Mode): IdentityConfig[] {
  const out: IdentityConfig[] = [];
  r.list(root, 'identities', '').forEach((raw, i) => {
    const where = `identities[${i}].`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      r.problems.push(`identities[${i}]: must be a mapping`);
      return;
    }
    const o = raw as Obj;
    r.unknownKeys(o, ['name', 'topics', 'initialKey'], where);
    const name = r.str(o, 'name', where);
    if (name === undefined) r.problems.push(`${where}name: is required`);
    else {
      const refused = clientNameProblem(name);
      if (refused !== undefined) r.problems.push(`${where}name: ${refused}`);
    }
    const initialKeyHex = r.str(o, 'initialKey', where);
    const keyDigits = c2Mode === 'symmetric' ? 64 : 128;
    if (
      initialKeyHex !== undefined &&
      !new RegExp(`^[0-9a-fA-F]{${keyDigits}}$`).test(initialKeyHex)
    ) {
      r.problems.push(
        c2Mode === 'symmetric'
          ? `${where}initialKey: must be 64 hex digits (a 32-byte key)`
          : `${where}initialKey: must be 128 hex digits (a 64-byte Ed25519 private key)`,
      );
    }
    const topics = r.strings(o, 'topics', where);
    topics.forEach((t, j) => {
      if (/[#+]/.test(t)) r.problems.push(`${where}topics[${j}]: must be a topic, not a filter`);
    });
    if (name !== undefined) out.push({ name, topics, initialKeyHex: initialKeyHex?.toLowerCase() });
  });
  const seen = new Set<string>();
  for (const id of out) {
    if (seen.has(id.name)) r.problems.push(`identities: '${id.name}' is listed twice`);
    seen.add(id.name);
  }
  return out;
}

function readDevices(r: Reader, root: Obj, names: ReadonlySet<string>): DeviceConfig[] {
  const out: DeviceConfig[] = [];
  r.list(root, 'devices', '').forEach((raw, i) => {
    const where = `devices[${i}].`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      r.problems.push(`devices[${i}]: must be a mapping`);
      return;
    }
    const o = raw as Obj;
    r.unknownKeys(o, ['clientId', 'username', 'certCommonName', 'passwordHash', 'identity'], where);
    const device: DeviceConfig = {
      clientId: r.str(o, 'clientId', where),
      username: r.str(o, 'username', where),
      certCommonName: r.str(o, 'certCommonName', where),
      passwordHash: r.str(o, 'passwordHash', where),
      identity: r.str(o, 'identity', where) ?? '',
    };
    if (
      device.clientId === undefined &&
      device.username === undefined &&
      device.certCommonName === undefined
    ) {
      r.problems.push(`devices[${i}]: needs clientId, username or certCommonName`);
    }
    if (
      device.passwordHash !== undefined &&
      !/^scrypt\$[0-9a-f]+\$[0-9a-f]+$/.test(device.passwordHash)
    ) {
      r.problems.push(`${where}passwordHash: must be 'scrypt$<salt hex>$<hash hex>'`);
    }
    if (o['identity'] === undefined) {
      r.problems.push(`${where}identity: is required (the identity the device speaks as)`);
    } else if (device.identity !== '' && !names.has(device.identity)) {
      r.problems.push(`${where}identity: '${device.identity}' is not one of the identities`);
    }
    out.push(device);
  });
  return out;
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** True for `localhost` and addresses of 127.0.0.0/8 and ::1 (in any of their spellings). */
export function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const family = isIP(host);
  return family !== 0 && LOOPBACK.check(host, family === 4 ? 'ipv4' : 'ipv6');
}

/** True when listening on `a` and on `b` (at one port) would collide: equal, or one a wildcard. */
function sameAddress(a: string, b: string): boolean {
  const wildcard = (h: string): boolean => h === '0.0.0.0' || h === '::';
  const norm = (h: string): string => (h.toLowerCase() === 'localhost' ? '127.0.0.1' : h);
  return wildcard(a) || wildcard(b) || norm(a) === norm(b);
}

/** `upstream.clientIdPrefix`: any string, the empty one included (the default). */
function clientIdPrefix(r: Reader, upstream: Obj): string {
  const value = upstream['clientIdPrefix'];
  if (value === undefined || value === null) return '';
  if (typeof value === 'string') return value;
  r.problems.push('upstream.clientIdPrefix: must be a string');
  return '';
}

/**
 * Parses and validates a configuration file's text.
 * @param text - YAML (JSON is valid YAML)
 * @param filePath - the file's path, against which relative paths are resolved
 * @throws ProxyError `PROXY_CONFIG` listing every problem
 */
export function parseProxyConfig(
  text: string,
  filePath: string,
  overrides: ConfigOverrides = {},
): ProxyConfig {
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (err) {
    // Where, not what: the parser's message quotes the line, which may hold a password.
    const at = (err as { linePos?: ReadonlyArray<{ line: number; col: number }> }).linePos?.[0];
    const where = at === undefined ? '' : ` (line ${at.line}, column ${at.col})`;
    throw new ProxyError(ProxyErrorCode.Config, `${filePath}: not valid YAML or JSON${where}`, {
      cause: err,
    });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ProxyError(ProxyErrorCode.Config, `${filePath}: must be a mapping of settings`);
  }
  const root = parsed as Obj;
  const r = new Reader(dirname(resolve(filePath)));
  r.unknownKeys(root, TOP_KEYS, '');

  const modeText = overrides.mode ?? r.str(root, 'mode', '') ?? 'local';
  if (modeText !== 'local' && modeText !== 'gateway') {
    r.problems.push(`mode: must be 'local' or 'gateway'`);
  }
  const mode: ProxyMode = modeText === 'gateway' ? 'gateway' : 'local';

  const listen = r.obj(root, 'listen', '');
  r.unknownKeys(listen, ['host', 'port', 'tls'], 'listen.');
  const tlsRaw = listen['tls'] === undefined ? undefined : r.obj(listen, 'tls', 'listen.');
  let tls: ListenTls | undefined;
  if (tlsRaw !== undefined) {
    r.unknownKeys(tlsRaw, ['certFile', 'keyFile', 'caFile', 'requireClientCert'], 'listen.tls.');
    const certFile = r.readablePath(tlsRaw, 'certFile', 'listen.tls.');
    const keyFile = r.readablePath(tlsRaw, 'keyFile', 'listen.tls.');
    const caFile = r.readablePath(tlsRaw, 'caFile', 'listen.tls.');
    const requireClientCert = r.bool(tlsRaw, 'requireClientCert', 'listen.tls.', false);
    if (certFile === undefined || keyFile === undefined) {
      r.problems.push('listen.tls: certFile and keyFile are required');
    }
    if (requireClientCert && caFile === undefined) {
      r.problems.push('listen.tls.requireClientCert: needs listen.tls.caFile');
    }
    tls = { certFile: certFile ?? '', keyFile: keyFile ?? '', caFile, requireClientCert };
  }

  const upstream = r.obj(root, 'upstream', '');
  r.unknownKeys(
    upstream,
    ['url', 'username', 'password', 'caFile', 'clientIdPrefix', 'controlClientId'],
    'upstream.',
  );
  const url = r.str(upstream, 'url', 'upstream.') ?? 'mqtt://127.0.0.1:1883';
  if (!/^(mqtt|mqtts|tcp|tls):\/\/[^/]+/.test(url)) {
    r.problems.push('upstream.url: must be mqtt://host:port or mqtts://host:port');
  } else if (/^[a-z]+:\/\/[^/]*@/.test(url)) {
    // The URL is printed at start and in errors; credentials have settings of their own.
    r.problems.push(
      'upstream.url: must not hold credentials; use upstream.username and upstream.password',
    );
  }

  const stateDir = r.path(root, 'stateDir', '') ?? resolve(r.baseDir, 'data/proxy');
  const health = r.obj(root, 'health', '');
  r.unknownKeys(health, ['host', 'port'], 'health.');
  const policy = r.obj(root, 'policy', '');
  r.unknownKeys(policy, ['protect', 'otherTopics', 'maxPayloadBytes', 'rotationHold'], 'policy.');
  const protect = r.strings(policy, 'protect', 'policy.');
  protect.forEach((p, i) => {
    if (!isValidTopicFilter(p)) r.problems.push(`policy.protect[${i}]: not a valid topic filter`);
  });
  const other = r.str(policy, 'otherTopics', 'policy.') ?? 'forward';
  if (other !== 'forward' && other !== 'drop') {
    r.problems.push(`policy.otherTopics: must be 'forward' or 'drop'`);
  }
  const maxPayloadBytes = r.int(
    policy,
    'maxPayloadBytes',
    'policy.',
    1,
    256 * 1024 * 1024,
    DEFAULT_MAX_PAYLOAD_BYTES,
  );

  const c2 = r.obj(root, 'c2', '');
  r.unknownKeys(c2, ['url', 'token', 'tofu', 'mode', 'publicKey', 'caFile'], 'c2.');
  const c2ModeText = r.str(c2, 'mode', 'c2.') ?? 'symmetric';
  if (c2ModeText !== 'symmetric' && c2ModeText !== 'public-key') {
    r.problems.push(`c2.mode: must be symmetric or public-key, not '${c2ModeText}'`);
  }
  const c2Mode: C2Mode = c2ModeText === 'public-key' ? 'public-key' : 'symmetric';
  const publicKeyHex = r.str(c2, 'publicKey', 'c2.');
  if (publicKeyHex !== undefined) {
    if (c2Mode !== 'public-key') r.problems.push('c2.publicKey: only with c2.mode public-key');
    else if (!/^[0-9a-fA-F]{64}$/.test(publicKeyHex))
      r.problems.push("c2.publicKey: must be 64 hex digits (the C2's Curve25519 public key)");
  }

  const identities = readIdentities(r, root, c2Mode);
  // A topic the C2 delivers keys for that no filter protects would leave in plaintext, silently.
  identities.forEach((identity, i) => {
    identity.topics.forEach((topic, j) => {
      if (!protect.some((filter) => topicMatches(filter, topic))) {
        r.problems.push(
          `identities[${i}].topics[${j}]: '${topic}' is matched by no policy.protect filter, so its messages would pass in plaintext; add a filter for it`,
        );
      }
    });
  });
  const names = new Set(identities.map((i) => i.name));
  const devices = readDevices(r, root, names);
  const gatewayIdentity = r.str(root, 'gatewayIdentity', '');
  if (gatewayIdentity !== undefined && !names.has(gatewayIdentity)) {
    r.problems.push(`gatewayIdentity: '${gatewayIdentity}' is not one of the identities`);
  }
  if (identities.length === 0) r.problems.push('identities: at least one identity is required');
  if (mode === 'local') {
    if (identities.length > 1) r.problems.push('identities: local mode holds exactly one');
    if (devices.length > 0) r.problems.push('devices: only in gateway mode');
  }

  const c2Url = r.str(c2, 'url', 'c2.');
  if (c2Url !== undefined && !/^https?:\/\/[^/]+/.test(c2Url)) {
    r.problems.push('c2.url: must be http(s)://host:port');
  } else if (c2Url !== undefined && /^[a-z]+:\/\/[^/]*@/i.test(c2Url)) {
    // The URL is printed in errors; the C2 takes a bearer token, which has a setting of its own.
    r.problems.push('c2.url: must not hold credentials; use c2.token');
  }
  const tofu = overrides.tofu ?? r.bool(c2, 'tofu', 'c2.', false);
  if (tofu && c2Url === undefined) r.problems.push('c2.tofu: needs c2.url');
  if (c2Mode === 'public-key' && publicKeyHex === undefined && c2Url === undefined) {
    r.problems.push(
      "c2.mode public-key: needs c2.publicKey (the C2's public key) or c2.url to fetch it",
    );
  }

  const listenHost =
    r.str(listen, 'host', 'listen.') ?? (mode === 'local' ? '127.0.0.1' : '0.0.0.0');
  // Local mode authenticates no one: every client is the identity, so only this machine may connect.
  if (mode === 'local' && !isLoopback(listenHost)) {
    r.problems.push(
      `listen.host: '${listenHost}' is not a loopback address; local mode accepts every client as its identity, so it listens on 127.0.0.1, ::1 or localhost only (use gateway mode with devices for a network listener)`,
    );
  }

  const firstName = identities[0]?.name ?? 'proxy';
  const controlClientId = r.str(upstream, 'controlClientId', 'upstream.');
  const config: ProxyConfig = {
    mode,
    listen: {
      host: listenHost,
      port: r.int(listen, 'port', 'listen.', 0, 65_535, 1884),
      ...(tls === undefined ? {} : { tls }),
    },
    upstream: {
      url,
      username: r.str(upstream, 'username', 'upstream.'),
      password: r.str(upstream, 'password', 'upstream.'),
      caFile: r.readablePath(upstream, 'caFile', 'upstream.'),
      clientIdPrefix: clientIdPrefix(r, upstream),
      controlClientId: controlClientId ?? `e4proxy-${mode}-${firstName}`,
      controlClientIdDefaulted: controlClientId === undefined,
    },
    stateDir,
    localKeyFile: r.path(root, 'localKeyFile', '') ?? join(stateDir, 'local.key'),
    health: {
      host: r.str(health, 'host', 'health.') ?? '127.0.0.1',
      port: r.int(health, 'port', 'health.', 0, 65_535, 9464),
    },
    policy: {
      protect,
      otherTopics: other === 'drop' ? 'drop' : 'forward',
      maxPayloadBytes,
      maxPacketBytes: maxPayloadBytes + 65_536 + 1024,
      rotationHold: readRotationHold(r, policy),
    },
    identities,
    devices,
    gatewayIdentity,
    c2: {
      url: c2Url?.replace(/\/+$/, ''),
      token: r.str(c2, 'token', 'c2.'),
      tofu,
      mode: c2Mode,
      publicKeyHex: publicKeyHex?.toLowerCase(),
      caFile: r.readablePath(c2, 'caFile', 'c2.'),
    },
  };
  if (
    config.listen.port !== 0 &&
    config.listen.port === config.health.port &&
    sameAddress(config.listen.host, config.health.host)
  ) {
    r.problems.push(
      `health.port: ${config.health.port} is listen.port too (on ${config.health.host} and ${config.listen.host}); one port cannot serve both`,
    );
  }
  if (r.problems.length > 0) {
    throw new ProxyError(
      ProxyErrorCode.Config,
      `${filePath}: invalid configuration:\n  ${r.problems.join('\n  ')}`,
    );
  }
  return config;
}
