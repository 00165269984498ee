/**
 * Everything the CLI prints on stdout: human text (aligned tables, one name per line as the
 * reference c2cli does) or, with `--json`, one JSON document per command and one JSON line per
 * streamed event. Errors go to stderr and are printed by `run.ts`.
 */

/** Where text goes; `process.stdout` fits, tests pass a string collector. */
export interface TextSink {
  write(chunk: string): unknown;
}

/** The stdout of one command, in human or JSON mode. */
export class Output {
  /**
   * @param sink - stdout
   * @param json - true with `--json`
   * @param warnings - stderr, for warnings that must not pollute the result
   */
  constructor(
    private readonly sink: TextSink,
    readonly json: boolean,
    private readonly warnings: TextSink = sink,
  ) {}

  /**
   * Prints the result of a command: `value` as one JSON document in JSON mode, else `human`
   * verbatim (the caller supplies the final newline, so `protect-message` can omit it).
   */
  result(value: unknown, human: string): void {
    this.sink.write(this.json ? `${toJson(value)}\n` : printable(human));
  }

  /** Prints one streamed item: one JSON line in JSON mode, else the `human` line. */
  event(value: unknown, human: string): void {
    this.sink.write(this.json ? `${toJson(value)}\n` : `${printable(human)}\n`);
  }

  /** Prints human-only text (banners, notes); nothing in JSON mode. */
  note(human: string): void {
    if (!this.json) this.sink.write(printable(human));
  }

  /** Prints a progress line of a long command on stderr, in both modes (stdout stays the result). */
  progress(message: string): void {
    this.warnings.write(`${printable(message)}\n`);
  }

  /** Prints `warning: <message>` on stderr, in both modes. */
  warn(message: string): void {
    this.warnings.write(`warning: ${printable(message)}\n`);
  }
}

/**
 * Unicode's bidirectional formatting characters (embeddings and overrides, isolates, marks):
 * invisible, they reorder the text around them, so `dev\u202Egpj.exe` would print as
 * `devexe.jpg`. The server refuses them in new names, but older names and free text (rule
 * descriptions, pause reasons) can still hold them.
 */
const BIDI_CONTROL = /^[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]$/;

/**
 * `text` with control characters other than newline and tab shown as `\xHH`, and bidirectional
 * formatting characters as `\uHHHH`. Human output holds names, descriptions and messages that
 * come from the server, and so from whoever wrote them: an ESC sequence there would drive the
 * reader's terminal (colours, cursor moves, a window title, on some terminals worse), and a
 * bidirectional override would show the reader another name than the one the server holds. JSON
 * output escapes control characters itself and keeps the exact text.
 */
export function printable(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.charCodeAt(0);
    const control = code < 0x20 || (code >= 0x7f && code <= 0x9f);
    if (control && c !== '\n' && c !== '\t') out += `\\x${code.toString(16).padStart(2, '0')}`;
    else if (BIDI_CONTROL.test(c)) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += c;
  }
  return out;
}

/** Compact JSON: bytes as base64 strings, bigints as decimal strings. */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v === 'bigint') return v.toString();
    if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
    // JSON.stringify calls Buffer's toJSON before the replacer sees it.
    if (isBufferJson(v)) return Buffer.from(v.data).toString('base64');
    return v;
  });
}

function isBufferJson(v: unknown): v is { type: 'Buffer'; data: number[] } {
  return (
    typeof v === 'object' &&
    v !== null &&
    (v as { type?: unknown }).type === 'Buffer' &&
    Array.isArray((v as { data?: unknown }).data)
  );
}

/** One name per line (the reference's list format); empty for no names. */
export function lines(items: readonly string[]): string {
  return items.map((item) => `${item}\n`).join('');
}

function width(text: string): number {
  return Array.from(text).length;
}

/**
 * An aligned table: upper-case headers, columns two spaces apart, no trailing spaces, one
 * final newline. An empty `rows` still prints the header.
 */
export function renderTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  return alignRows([headers.map((h) => h.toUpperCase()), ...rows]);
}

/** Rows whose columns are aligned two spaces apart, without a header. */
export function alignRows(rows: readonly (readonly string[])[]): string {
  const columns = Math.max(0, ...rows.map((row) => row.length));
  const widths = Array.from({ length: columns }, (_v, i) =>
    Math.max(...rows.map((row) => width(row[i] ?? ''))),
  );
  return rows
    .map((row) =>
      widths
        .map((w, i) => {
          const cell = row[i] ?? '';
          return i === columns - 1 ? cell : cell + ' '.repeat(w - width(cell));
        })
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}

/** Aligned `label  value` lines, one per field, in the given order. */
export function renderFields(fields: readonly (readonly [string, string])[]): string {
  const labelWidth = Math.max(0, ...fields.map(([label]) => width(label)));
  return fields
    .map(([label, value]) => `${label}${' '.repeat(labelWidth - width(label))}  ${value}`.trimEnd())
    .map((line) => `${line}\n`)
    .join('');
}

/** A value for a human field: `-` for the empty string. */
export function orDash(value: string): string {
  return value === '' ? '-' : value;
}
