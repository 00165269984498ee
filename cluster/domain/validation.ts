/** Input limits of the C2 API (DESIGN §10): every field is checked before anything is stored. */
import { C2Error } from '../errors.ts';

const utf8 = new TextEncoder();
/** Decodes strictly: a lossy decoder turns bytes that are not UTF-8 into U+FFFD. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Whether `text` holds a C0 or C1 control character or DEL (`allowed` excepted, e.g. a newline in
 * free text). NUL cannot be stored at all (PostgreSQL text refuses it), and the others reach
 * operators' terminals as escape sequences through the CLI.
 */
export function hasControlCharacter(text: string, allowed = ''): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if ((code < 0x20 || (code >= 0x7f && code <= 0x9f)) && !allowed.includes(text.charAt(i)))
      return true;
  }
  return false;
}

/**
 * Whether `text` is well-formed and holds no U+FFFD. The gRPC decoder (protobufjs) replaces
 * bytes that are not UTF-8 with U+FFFD instead of refusing them as the reference's Go decoder
 * does; a name made that way names nothing a device uses.
 */
function isCleanUnicode(text: string): boolean {
  return text.isWellFormed() && !text.includes('\uFFFD');
}

function invalid(message: string, field: string): C2Error {
  return new C2Error('C2_VALIDATION', message, { details: { field } });
}

/**
 * A client name: 1..255 bytes of UTF-8 without control characters.
 * @throws C2Error `C2_VALIDATION`
 */
export function checkClientName(name: unknown, field = 'client.name'): string {
  if (typeof name !== 'string' || name.length === 0)
    throw invalid('a client name is required', field);
  if (!isCleanUnicode(name))
    throw invalid('client name is not valid UTF-8 (or holds U+FFFD)', field);
  const length = utf8.encode(name).length;
  if (length > 255) throw invalid(`client name is ${length} bytes; the maximum is 255`, field);
  if (hasControlCharacter(name)) throw invalid('client name contains control characters', field);
  return name;
}

/**
 * A topic: 1..512 bytes of UTF-8, no MQTT wildcards (`+`, `#`), no NUL, not a `$` system topic.
 * @throws C2Error `C2_VALIDATION`
 */
export function checkTopicName(topic: unknown, field = 'topic'): string {
  if (typeof topic !== 'string' || topic.length === 0) throw invalid('a topic is required', field);
  if (!isCleanUnicode(topic)) throw invalid('topic is not valid UTF-8 (or holds U+FFFD)', field);
  const length = utf8.encode(topic).length;
  if (length > 512) throw invalid(`topic is ${length} bytes; the maximum is 512`, field);
  if (/[+#]/.test(topic) || topic.includes('\u0000'))
    throw invalid('topic must not contain MQTT wildcards (+, #) or NUL', field);
  if (topic.startsWith('$'))
    throw invalid('topics starting with $ are reserved by the broker', field);
  return topic;
}

/**
 * Refuses `.` and `..` as the name of a new client or topic: in an HTTP path they are resolved
 * by every URL parser (browsers and `fetch` also decode `%2E` first), so such an entity could
 * never be addressed by the HTTP API or the console. Existing ones stay reachable over gRPC.
 * @throws C2Error `C2_VALIDATION`
 */
function checkAddressableName(name: string, field: string): string {
  if (name === '.' || name === '..')
    throw invalid(`"${name}" cannot be a name: URLs resolve it as a path step`, field);
  return name;
}

/**
 * Unicode's bidirectional formatting characters: the embeddings and overrides (U+202A-U+202E),
 * the isolates (U+2066-U+2069) and the marks (U+200E, U+200F, U+061C). They are invisible and
 * reorder the text around them, so a name holding one is displayed as another name (`dev\u202Egpj.exe`
 * reads `devexe.jpg`) in the console, the CLI and logs: an operator could act on the wrong device.
 */
const BIDI_CONTROL = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/;

/**
 * Refuses bidirectional formatting characters in the name of a new client or topic (see
 * {@link BIDI_CONTROL}). Ones made before this rule stay reachable.
 * @throws C2Error `C2_VALIDATION`
 */
function checkNoBidiControls(name: string, field: string): string {
  if (BIDI_CONTROL.test(name))
    throw invalid(
      `${field} holds a bidirectional formatting character (such as U+202E), which displays it as another name`,
      field,
    );
  return name;
}

/**
 * Refuses C0 and C1 control characters and DEL in the name of a new topic (client names refuse
 * them always, {@link checkClientName}): MQTT 5 §1.5.4 says UTF-8 strings should not hold them,
 * and a name holding ESC reaches operators' terminals through the CLI as an escape sequence.
 * Topics made before this rule stay reachable: lookups, rotation and removal take them.
 * @throws C2Error `C2_VALIDATION`
 */
export function checkNoControlCharacters(name: string, field: string): string {
  if (hasControlCharacter(name))
    throw invalid(`${field} contains control characters (U+0001-U+001F, U+007F-U+009F)`, field);
  return name;
}

/**
 * Refuses a name made only of whitespace (Unicode's White_Space: spaces of every width, NBSP,
 * U+3000...) and characters displayed as nothing (Default_Ignorable_Code_Point: zero-width space
 * and joiners, U+2060, U+FEFF, the soft hyphen...) as the name of a new client or topic: it reads
 * as no name at all in the console, the CLI's tables and logs, and one such name cannot be told
 * from another. Ones made before this rule stay reachable.
 * @throws C2Error `C2_VALIDATION`
 */
export function checkNotBlank(name: string, field: string): string {
  if (/^[\p{White_Space}\p{Default_Ignorable_Code_Point}]*$/u.test(name))
    throw invalid(`${field} is only whitespace or invisible characters`, field);
  return name;
}

/**
 * The rules for the name of a new client or topic beyond those of every name (`checkClientName`,
 * `checkTopicName`): addressable in a URL, no bidirectional formatting characters, not only
 * whitespace. They are not applied to lookups, so names made before a rule stay reachable.
 * @throws C2Error `C2_VALIDATION`
 */
export function checkNewName(name: string, field: string): string {
  return checkNotBlank(checkNoBidiControls(checkAddressableName(name, field), field), field);
}

/**
 * The refusal `check` throws, or `undefined` when it passes: the rules for new names are judged
 * only once an upsert (NewClient, NewTopic) finds that it creates, so that a name made before a
 * rule still gets what the upsert does to an existing entity (a re-flash, a rotation).
 */
export function newNameRefusal(check: () => unknown): C2Error | undefined {
  try {
    check();
    return undefined;
  } catch (err) {
    if (err instanceof C2Error) return err;
    throw err;
  }
}

/**
 * Refuses a new topic under `e4/`, where E4 itself publishes: the devices' control topics
 * (`e4/<id>`) and the receipts (`e4/receipts/…`). A key for one of them would let traffic
 * monitoring count the C2's own commands as plaintext, and devices would take application
 * messages for commands (docs/protocol-extensions.md §1.1). Topics made by an earlier release
 * stay reachable.
 * @throws C2Error `C2_VALIDATION`
 */
export function checkNotReservedTopic(topic: string, field = 'topic'): string {
  if (topic === 'e4' || topic.startsWith('e4/'))
    throw invalid('topics under e4/ are reserved for E4 control and receipt messages', field);
  return topic;
}

/** An offset/count page of the reference API. */
export interface Page {
  readonly offset: number;
  readonly limit: number;
}

/**
 * Reference pagination: `count` 0 or absent means the default page (100), and every list is
 * capped at the configured maximum (the reference capped only two of its lists).
 * @throws C2Error `C2_VALIDATION` for negative or non-integer values
 */
export function checkPage(offset: unknown, count: unknown, maxPageSize: number): Page {
  const o = offset === undefined || offset === null ? 0 : Number(offset);
  const c = count === undefined || count === null ? 0 : Number(count);
  if (!Number.isSafeInteger(o) || o < 0)
    throw invalid('offset must be a non-negative integer', 'offset');
  if (!Number.isSafeInteger(c) || c < 0)
    throw invalid('count must be a non-negative integer', 'count');
  return { offset: o, limit: Math.min(c === 0 ? 100 : c, maxPageSize) };
}

/**
 * A cursor page of our own API: a limit (default 100) and an opaque cursor.
 * @throws C2Error `C2_VALIDATION`
 */
export function checkLimit(limit: unknown, maxPageSize: number): number {
  if (limit === undefined || limit === null || limit === 0) return Math.min(100, maxPageSize);
  const n = Number(limit);
  if (!Number.isSafeInteger(n) || n < 1) throw invalid('limit must be a positive integer', 'limit');
  if (n > maxPageSize) throw invalid(`limit must be at most ${maxPageSize}`, 'limit');
  return n;
}

/** Encodes a cursor (the last name of a page). */
export function encodeCursor(lastName: string): string {
  return Buffer.from(lastName, 'utf8').toString('base64url');
}

/** Decodes a cursor. @throws C2Error `C2_VALIDATION` for a malformed cursor */
export function decodeCursor(cursor: unknown): string | undefined {
  if (cursor === undefined || cursor === null || cursor === '') return undefined;
  if (typeof cursor !== 'string' || !/^[A-Za-z0-9_-]+$/.test(cursor) || cursor.length > 1400) {
    throw invalid('malformed cursor', 'cursor');
  }
  let name: string;
  try {
    name = STRICT_UTF8.decode(Buffer.from(cursor, 'base64url'));
  } catch {
    throw invalid('malformed cursor', 'cursor');
  }
  // A cursor holds a name, which never has a NUL (PostgreSQL refuses one in text: a 500).
  if (name.includes('\u0000')) throw invalid('malformed cursor', 'cursor');
  return name;
}
