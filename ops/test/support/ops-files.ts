/**
 * Readers for the operator files (docker-compose.ha.yml, haproxy.cfg, mosquitto.conf, Dockerfile,
 * .dockerignore) so the ops tests can check them against the code without a Docker engine.
 * Parsers are deliberately small: they understand the subset these files use and fail loudly on
 * anything else.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDocument } from 'yaml';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Text of a repository file. */
export function readRepoFile(path: string): string {
  return readFileSync(join(ROOT, path), 'utf8');
}

/** Does a repository path exist? */
export function repoFileExists(path: string): boolean {
  return existsSync(join(ROOT, path));
}

// ------------------------------------------------------------------ narrowing parsed data

/** A plain object (YAML mapping, JSON object). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `value` as a mapping; fails the test naming `where` otherwise. */
export function record(value: unknown, where: string): Record<string, unknown> {
  assert.ok(isRecord(value), `${where}: expected a mapping`);
  return value;
}

/** `value` as a sequence; fails the test naming `where` otherwise. */
export function list(value: unknown, where: string): unknown[] {
  assert.ok(Array.isArray(value), `${where}: expected a sequence`);
  return value as unknown[];
}

/** A scalar as a string (numbers and booleans as YAML would print them). */
export function scalar(value: unknown, where: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  assert.fail(`${where}: expected a scalar`);
}

/** A sequence of scalars as strings. */
export function scalars(value: unknown, where: string): string[] {
  return list(value, where).map((item, i) => scalar(item, `${where}[${i}]`));
}

// ------------------------------------------------------------------ YAML

/**
 * Parses YAML the way Docker Compose and Prometheus do (YAML 1.1 merge keys `<<` allowed).
 * @throws AssertionError listing every syntax error or warning
 */
export function parseYaml(text: string, label: string): unknown {
  const doc = parseDocument(text, { merge: true, prettyErrors: true });
  const issues = [...doc.errors, ...doc.warnings].map((e) => e.message);
  assert.deepEqual(issues, [], `${label} does not parse cleanly`);
  return doc.toJS({ maxAliasCount: 1000 }) as unknown;
}

// ------------------------------------------------------------------ Compose

/** One service of the compose file, with the parts the tests read normalized. */
export interface ComposeService {
  readonly name: string;
  readonly raw: Record<string, unknown>;
  /** `image`, interpolated with defaults. */
  readonly image: string | undefined;
  readonly environment: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly command: readonly string[];
  readonly secrets: readonly string[];
  readonly networks: readonly string[];
  /** Published ports as `{ host, container }` (host part interpolated). */
  readonly ports: readonly { readonly host: string; readonly container: number }[];
  /** Volume mounts as given (`source:target[:mode]`). */
  readonly volumes: readonly string[];
}

/** The compose file, parsed. */
export interface Compose {
  readonly raw: Record<string, unknown>;
  readonly services: ReadonlyMap<string, ComposeService>;
}

/**
 * Compose interpolation with the defaults the file provides: `${VAR:-default}` and
 * `${VAR-default}` become the default, `$$` a literal `$`. A variable without a default would
 * make the file depend on the operator's shell, so it fails the test.
 */
export function interpolate(value: string, where: string): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, braced: string | undefined, fallback: string | undefined, bare: string | undefined) => {
      if (match === '$$') return '$';
      assert.ok(
        fallback !== undefined,
        `${where}: ${braced ?? bare ?? match} has no default (use \${VAR:-default})`,
      );
      return fallback;
    },
  );
}

function keyValues(value: unknown, where: string): Record<string, string> {
  if (value === undefined) return {};
  if (Array.isArray(value)) {
    const out: Record<string, string> = {};
    for (const [i, item] of value.entries()) {
      const text = scalar(item, `${where}[${i}]`);
      const eq = text.indexOf('=');
      assert.ok(eq > 0, `${where}[${i}]: expected NAME=value`);
      out[text.slice(0, eq)] = interpolate(text.slice(eq + 1), `${where}.${text.slice(0, eq)}`);
    }
    return out;
  }
  const out: Record<string, string> = {};
  for (const [key, item] of Object.entries(record(value, where))) {
    out[key] = interpolate(scalar(item, `${where}.${key}`), `${where}.${key}`);
  }
  return out;
}

function names(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  if (Array.isArray(value)) {
    return value.map((item, i) =>
      isRecord(item) ? scalar(item['source'], `${where}[${i}].source`) : scalar(item, where),
    );
  }
  return Object.keys(record(value, where));
}

function portsOf(value: unknown, where: string): { host: string; container: number }[] {
  if (value === undefined) return [];
  return scalars(value, where).map((text) => {
    const parts = interpolate(text, where).split(':');
    const container = Number(parts.at(-1));
    assert.ok(Number.isInteger(container), `${where}: cannot read the container port of ${text}`);
    return { host: parts.slice(0, -1).join(':'), container };
  });
}

/** Reads and parses `docker-compose.ha.yml` (or `path`). */
export function loadCompose(path = 'docker-compose.ha.yml'): Compose {
  const raw = record(parseYaml(readRepoFile(path), path), path);
  const services = new Map<string, ComposeService>();
  for (const [name, value] of Object.entries(record(raw['services'], 'services'))) {
    const where = `services.${name}`;
    const svc = record(value, where);
    const image = svc['image'] === undefined ? undefined : scalar(svc['image'], `${where}.image`);
    const command = svc['command'];
    services.set(name, {
      name,
      raw: svc,
      image: image === undefined ? undefined : interpolate(image, `${where}.image`),
      environment: keyValues(svc['environment'], `${where}.environment`),
      labels: keyValues(svc['labels'], `${where}.labels`),
      command:
        command === undefined
          ? []
          : typeof command === 'string'
            ? command.split(/\s+/)
            : scalars(command, `${where}.command`),
      secrets: names(svc['secrets'], `${where}.secrets`),
      networks: names(svc['networks'], `${where}.networks`),
      ports: portsOf(svc['ports'], `${where}.ports`),
      volumes:
        svc['volumes'] === undefined
          ? []
          : scalars(svc['volumes'], `${where}.volumes`).map((v) => interpolate(v, where)),
    });
  }
  return { raw, services };
}

/** The value that follows `flag` in a command line (`--maxmemory-policy noeviction`). */
export function flagValue(command: readonly string[], flag: string): string | undefined {
  const i = command.indexOf(flag);
  return i < 0 ? undefined : command[i + 1];
}

// ------------------------------------------------------------------ HAProxy

/** One section of haproxy.cfg: `backend api_grpc` with its lines split into words. */
export interface HaproxySection {
  readonly kind: string;
  readonly name: string;
  readonly lines: readonly (readonly string[])[];
}

const HAPROXY_SECTIONS = new Set([
  'global',
  'defaults',
  'frontend',
  'backend',
  'listen',
  'resolvers',
  'peers',
  'userlist',
  'mailers',
  'program',
  'cache',
  'http-errors',
  'ring',
]);

/** Splits one line into words the way HAProxy does: quotes, backslash escapes, `#` comments. */
export function haproxyWords(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line.charAt(i);
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word += line.charAt(++i);
      else word += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      word += line.charAt(++i);
      inWord = true;
    } else if (c === '#') {
      break;
    } else if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  assert.equal(quote, undefined, `haproxy.cfg: unterminated quote in: ${line}`);
  if (inWord) words.push(word);
  return words;
}

/** Parses haproxy.cfg into sections. @throws AssertionError for a line outside any section */
export function parseHaproxy(text: string): HaproxySection[] {
  const sections: { kind: string; name: string; lines: string[][] }[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    const words = haproxyWords(line);
    const first = words[0];
    if (first === undefined) continue;
    const indented = /^\s/.test(line);
    if (!indented && HAPROXY_SECTIONS.has(first)) {
      sections.push({ kind: first, name: words[1] ?? '', lines: [] });
      continue;
    }
    const current = sections.at(-1);
    assert.ok(current !== undefined, `haproxy.cfg:${i + 1}: "${first}" outside any section`);
    current.lines.push(words);
  }
  return sections;
}

/** The section `kind name` (e.g. `backend api_grpc`). */
export function haproxySection(
  sections: readonly HaproxySection[],
  kind: string,
  name: string,
): HaproxySection {
  const found = sections.find((s) => s.kind === kind && s.name === name);
  assert.ok(found !== undefined, `haproxy.cfg has no ${kind} ${name}`);
  return found;
}

// ------------------------------------------------------------------ Dockerfile

/** One Dockerfile instruction, continuation lines joined. */
export interface DockerInstruction {
  readonly keyword: string;
  readonly args: string;
}

/** Parses a Dockerfile into instructions (comments and blank lines dropped). */
export function parseDockerfile(text: string): DockerInstruction[] {
  const out: DockerInstruction[] = [];
  let pending = '';
  for (const line of text.split('\n')) {
    // Docker drops comment lines, also inside an instruction continued with a backslash.
    if (/^\s*#/.test(line)) continue;
    const continued = /\\\s*$/.test(line);
    pending += `${continued ? line.replace(/\\\s*$/, '') : line} `;
    if (continued) continue;
    const text = pending.trim();
    pending = '';
    if (text === '') continue;
    const space = text.search(/\s/);
    out.push({
      keyword: (space < 0 ? text : text.slice(0, space)).toUpperCase(),
      args: space < 0 ? '' : text.slice(space + 1).trim(),
    });
  }
  return out;
}

// ------------------------------------------------------------------ .dockerignore

function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (pattern.startsWith('**/', i)) {
      out += '(?:.*/)?';
      i += 2;
    } else if (pattern.startsWith('**', i)) {
      out += '.*';
      i += 1;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else out += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}

/**
 * A `.dockerignore` as Docker applies it: patterns in order, the last one that matches a path or
 * one of its parent directories decides, `!` re-includes.
 * @returns whether a repository-relative path is sent to the build
 */
export function dockerignoreIncludes(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negated = l.startsWith('!');
      const body = (negated ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      return { negated, re: globToRegExp(body) };
    });
  return (path) => {
    const parts = path.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) {
      if (candidates.some((c) => rule.re.test(c))) excluded = !rule.negated;
    }
    return !excluded;
  };
}

// ------------------------------------------------------------------ sources

/** Every file below `dir` (repository-relative), skipping node_modules. */
export function filesBelow(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const entry of readdirSync(join(ROOT, rel), { withFileTypes: true })) {
      if (entry.name === 'node_modules') continue;
      const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
      if (entry.isDirectory()) walk(child);
      else out.push(child);
    }
  };
  walk(dir);
  return out.sort();
}

const IMPORT_RE =
  /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"](\.[^'"]+)['"]|(?:^|[\s;])import\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/gm;

/**
 * The project files `entry` loads, transitively, through relative imports (static, side-effect
 * and literal dynamic imports), repository-relative and sorted.
 */
export function importClosure(entry: string): string[] {
  const seen = new Set<string>();
  const queue = [entry];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readRepoFile(file);
    for (const match of text.matchAll(IMPORT_RE)) {
      const spec = match[1] ?? match[2] ?? match[3];
      if (spec === undefined) continue;
      const target = resolve(dirname(join(ROOT, file)), spec);
      assert.ok(
        existsSync(target) && statSync(target).isFile(),
        `${file} imports ${spec}, which does not exist`,
      );
      queue.push(relative(ROOT, target).split(sep).join('/'));
    }
  }
  return [...seen].sort();
}
