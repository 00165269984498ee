/**
 * `token new`: makes an API bearer token locally (no call to the C2). The token is printed once
 * (or written to a file with mode 0600); the C2 only ever stores its SHA-256, in the entry this
 * command prints for the API credentials file (`E4C2_API_CREDENTIALS_FILE`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { CliError } from '../errors.ts';
import type { CommandSpec } from '../spec.ts';

const ROLES = ['read-only', 'operator', 'admin'];
const NAME = /^[A-Za-z0-9._@-]{1,64}$/;

const newToken: CommandSpec = {
  path: ['token', 'new'],
  summary: 'Make an API bearer token and the entry to add to the credentials file (local)',
  description:
    'Generates 256 random bits as a base64url token. The C2 stores only the SHA-256 of a token: ' +
    'add the printed entry to the "tokens" list of the file named by E4C2_API_CREDENTIALS_FILE ' +
    'and restart or roll the API nodes. Roles: read-only (gets, lists, counts, events), operator ' +
    '(also rotations, memberships, resyncs, message protection), admin (everything). Give the ' +
    'token to the CLI with --token-file FILE or E4C2_TOKEN. No call is made to the C2.',
  calls: [],
  flags: [
    { name: 'name', kind: 'string', value: 'NAME', description: 'who holds it', required: true },
    {
      name: 'role',
      kind: 'string',
      value: 'ROLE',
      description: `one of ${ROLES.join(', ')}`,
      required: true,
    },
    {
      name: 'out',
      kind: 'string',
      value: 'FILE',
      description: 'write the token to FILE (mode 0600, must not exist) instead of printing it',
    },
  ],
  examples: ['token new --name ops-alice --role operator --out alice.token'],
  async run(ctx) {
    const name = ctx.flags.string('name');
    const role = ctx.flags.string('role');
    if (!NAME.test(name))
      throw CliError.usage('--name must be 1-64 characters of A-Z a-z 0-9 . _ @ -', [
        'token',
        'new',
      ]);
    if (!ROLES.includes(role))
      throw CliError.usage(`--role must be one of ${ROLES.join(', ')}`, ['token', 'new']);
    const token = randomBytes(32).toString('base64url');
    const entry = { name, role, sha256: createHash('sha256').update(token, 'utf8').digest('hex') };
    const out = ctx.flags.optionalString('out');
    if (out !== undefined) {
      try {
        await writeFile(out, `${token}\n`, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        const reason = err instanceof Error ? err.message : String(err);
        throw CliError.input(`cannot write the token to ${out}: ${reason}`);
      }
    }
    ctx.out.result(
      out === undefined ? { token, entry } : { token_file: out, entry },
      (out === undefined ? `token (shown once): ${token}\n` : `token written to ${out}\n`) +
        `add to "tokens" in the credentials file: ${JSON.stringify(entry)}\n`,
    );
  },
};

/** Local token commands. */
export const TOKEN_COMMANDS: readonly CommandSpec[] = [newToken];
