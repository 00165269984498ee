/**
 * Pieces the command files share: common flag definitions, the reference paging loop, local
 * file and base64 input, and small formatting helpers.
 */
import { CliError } from '../errors.ts';
import type { CommandContext, FlagSpec } from '../spec.ts';

/** The reference CLI's page size (`cli.MaxPageSize`), under every server's cap. */
export const PAGE_SIZE = 100;

/** `--name NAME` (required) for a client. */
export const CLIENT_NAME: FlagSpec = {
  name: 'name',
  kind: 'string',
  value: 'NAME',
  description: 'the client name',
  required: true,
};

/** `--name TOPIC` (required) for a topic. */
export const TOPIC_NAME: FlagSpec = {
  name: 'name',
  kind: 'string',
  value: 'TOPIC',
  description: 'the topic',
  required: true,
};

/** `--offset N` and `--count N` of the reference list verbs. */
export const PAGING_FLAGS: readonly FlagSpec[] = [
  {
    name: 'offset',
    kind: 'integer',
    value: 'N',
    min: 0,
    description: 'skip the first N entries (default 0)',
  },
  {
    name: 'count',
    kind: 'integer',
    value: 'N',
    description: 'print at most N entries; 0 or less means all (default 0)',
  },
];

/** `--source NAME` and `--target NAME`, both required. */
export const SOURCE_TARGET_FLAGS: readonly FlagSpec[] = [
  {
    name: 'source',
    kind: 'string',
    value: 'NAME',
    description: 'the source client',
    required: true,
  },
  {
    name: 'target',
    kind: 'string',
    value: 'NAME',
    description: 'the target client',
    required: true,
  },
];

/** An int64 count as the API returns it (a decimal string), as a number. */
export function countOf(response: { readonly count: string }): number {
  const value = Number(response.count);
  return Number.isSafeInteger(value) && value >= 0 ? value : 0;
}

/**
 * The reference listing loop: counts first, then fetches pages of {@link PAGE_SIZE} from
 * `--offset`, at most `--count` entries (all for `<= 0`). Unlike the reference it stops at the
 * first short page, so a list that shrank meanwhile ends cleanly. In human mode each page is
 * printed as it arrives (one name per line); in JSON mode the whole list is one document.
 */
export async function listPaged(
  ctx: CommandContext,
  jsonKey: string,
  count: () => Promise<{ readonly count: string }>,
  fetchPage: (offset: number, count: number) => Promise<readonly string[]>,
): Promise<void> {
  const offset = ctx.flags.integer('offset', 0);
  const wanted = ctx.flags.integer('count', 0);
  const available = Math.max(0, countOf(await count()) - offset);
  let remaining = wanted > 0 ? Math.min(wanted, available) : available;
  let cursor = offset;
  const all: string[] = [];
  while (remaining > 0) {
    const size = Math.min(PAGE_SIZE, remaining);
    const page = (await fetchPage(cursor, size)).slice(0, size);
    if (ctx.out.json) all.push(...page);
    else ctx.out.note(page.map((name) => `${name}\n`).join(''));
    if (page.length < size) break;
    cursor += size;
    remaining -= size;
  }
  if (ctx.out.json) ctx.out.result({ [jsonKey]: all }, '');
}

/** Reads a local file named by a flag. @throws CliError exit 2 when it cannot be read */
export async function readLocalFile(
  ctx: CommandContext,
  path: string,
  what: string,
): Promise<Uint8Array> {
  try {
    return await ctx.readFile(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw CliError.input(`cannot read ${what} file ${path}: ${reason}`, { cause: err });
  }
}

/** Strict standard base64 (as Go's `BytesBase64Var`). @throws CliError exit 2 */
export function decodeBase64(flag: string, text: string): Uint8Array {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw CliError.input(`--${flag} must be standard base64`);
  }
  return new Uint8Array(Buffer.from(text, 'base64'));
}

/** Standard base64 of bytes. */
export function encodeBase64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}
