/**
 * Help text, generated from the command table (`spec.ts`): the whole CLI, a group of commands,
 * or one command with its synopsis, flags, flag rules, RPCs and examples.
 */
import type { CommandTable } from './args.ts';
import { GLOBAL_FLAGS, type CommandSpec, type FlagSpec } from './spec.ts';

/** The program name used in help text. */
export const PROGRAM = 'e4c2';

const EXIT_CODES =
  'Exit codes: 0 ok; 1 the server refused (NOT_FOUND, INVALID_ARGUMENT, FAILED_PRECONDITION, ...);\n' +
  '  2 usage or local input error; 3 cannot reach the server (unreachable, TLS, timeout,\n' +
  '  UNAVAILABLE); 4 internal error (INTERNAL, UNKNOWN, DATA_LOSS); 130 interrupted.\n';

/**
 * Help for `path`: `[]` is the whole CLI, `['client']` a group, else a command. `brief` (after
 * a usage error) keeps only the synopsis and flags of a command, or the command list.
 */
export function renderUsage(path: readonly string[], table: CommandTable, brief = false): string {
  const command = table.commands.find(
    (c) => c.path.length === path.length && c.path.every((w, i) => path[i] === w),
  );
  if (command !== undefined) return brief ? briefCommandUsage(command) : commandUsage(command);
  const group = path[0];
  if (group !== undefined && table.groups.some((g) => g.name === group)) {
    return groupUsage(group, table);
  }
  return brief ? briefRootUsage(table) : rootUsage(table);
}

function briefCommandUsage(command: CommandSpec): string {
  const rules = constraintLines(command);
  return [
    `Usage: ${synopsis(command)} [global flags]\n`,
    ...(command.flags.length === 0
      ? []
      : [`Flags:\n${flagRows(command.flags)}${rules.length > 0 ? `\n${rules.join('\n')}\n` : ''}`]),
    `Run "${PROGRAM} ${command.path.join(' ')} --help" for details and the global flags.\n`,
  ].join('\n');
}

function briefRootUsage(table: CommandTable): string {
  const groups = table.groups.map((g) => `${g.name} <verb>`);
  const others = table.commands.filter((c) => c.path.length === 1).map((c) => c.path[0]);
  return [
    `Usage: ${PROGRAM} [global flags] <command> [flags]\n`,
    ...wrap(`Commands: ${[...groups, ...others].join(', ')}`, WIDTH).map((l) => `${l}\n`),
    `\nRun "${PROGRAM} --help" for every command and the global flags.\n`,
  ].join('');
}

/** Help text lines are wrapped to this many columns. */
const WIDTH = 100;

/** Greedy word wrap of one paragraph to `width` columns. */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter((w) => w !== '')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') out.push(line);
  return out;
}

/** Two columns, the second wrapped with a hanging indent; each line indented by two spaces. */
function twoColumns(rows: readonly (readonly [string, string])[]): string {
  const labelWidth = Math.max(0, ...rows.map(([label]) => label.length));
  const textWidth = Math.max(30, WIDTH - labelWidth - 4);
  return rows
    .map(([label, text]) => {
      const [first = '', ...rest] = wrap(text, textWidth);
      const pad = ' '.repeat(labelWidth + 4);
      return [`  ${label.padEnd(labelWidth)}  ${first}`.trimEnd(), ...rest.map((l) => pad + l)]
        .map((l) => `${l}\n`)
        .join('');
    })
    .join('');
}

function flagRows(flags: readonly FlagSpec[]): string {
  const anyShort = flags.some((f) => f.short !== undefined);
  return twoColumns(
    flags.map((f) => {
      const long = `--${f.name}${f.kind === 'boolean' ? '' : ` ${f.value ?? 'VALUE'}`}`;
      const label =
        f.short !== undefined ? `-${f.short}, ${long}` : anyShort ? `    ${long}` : long;
      return [label, f.required === true ? `${f.description} (required)` : f.description];
    }),
  );
}

function synopsisPart(flag: FlagSpec): string {
  return flag.kind === 'boolean' ? `--${flag.name}` : `--${flag.name} ${flag.value ?? 'VALUE'}`;
}

/** `e4c2 client create --name NAME (--key FILE | --password FILE)`. */
export function synopsis(command: CommandSpec): string {
  const parts = [PROGRAM, ...command.path];
  const grouped = new Set<string>();
  const byName = new Map(command.flags.map((f) => [f.name, f]));
  for (const flag of command.flags.filter((f) => f.required === true)) {
    parts.push(synopsisPart(flag));
  }
  for (const rule of command.constraints ?? []) {
    if (rule.kind !== 'exactly-one') continue;
    const alternatives = rule.flags.map((name) => byName.get(name)).filter((f) => f !== undefined);
    alternatives.forEach((f) => grouped.add(f.name));
    parts.push(`(${alternatives.map(synopsisPart).join(' | ')})`);
  }
  for (const flag of command.flags) {
    if (flag.required !== true && !grouped.has(flag.name)) parts.push(`[${synopsisPart(flag)}]`);
  }
  return parts.join(' ');
}

function constraintLines(command: CommandSpec): string[] {
  return (command.constraints ?? []).map((rule) =>
    rule.kind === 'exactly-one'
      ? `Exactly one of ${rule.flags.map((n) => `--${n}`).join(', ')}.`
      : `--${rule.flag} only together with --${rule.with}.`,
  );
}

function commandUsage(command: CommandSpec): string {
  const sections = [
    `Usage: ${synopsis(command)} [global flags]\n`,
    wrap(command.description ?? command.summary, WIDTH)
      .map((l) => `${l}\n`)
      .join(''),
  ];
  if (command.flags.length > 0) {
    const rules = constraintLines(command);
    sections.push(
      `Flags:\n${flagRows(command.flags)}${rules.length > 0 ? `\n${rules.join('\n')}\n` : ''}`,
    );
  }
  sections.push(
    command.calls.length > 0
      ? `Calls: ${command.calls.join(', ')}\n`
      : 'Calls: none (a local command: the connection flags do not apply)\n',
  );
  if (command.examples !== undefined && command.examples.length > 0) {
    sections.push(`Examples:\n${command.examples.map((e) => `  ${PROGRAM} ${e}\n`).join('')}`);
  }
  sections.push(`Global flags:\n${flagRows(GLOBAL_FLAGS)}`);
  sections.push(EXIT_CODES);
  return sections.join('\n');
}

function commandList(commands: readonly CommandSpec[]): string {
  return twoColumns(commands.map((c) => [c.path.join(' '), c.summary]));
}

function groupUsage(group: string, table: CommandTable): string {
  const summary = table.groups.find((g) => g.name === group)?.summary ?? '';
  const verbs = table.commands.filter((c) => c.path[0] === group && c.path.length > 1);
  return [
    `Usage: ${PROGRAM} ${group} <verb> [flags] [global flags]\n`,
    `${summary}\n`,
    `Verbs:\n${commandList(verbs)}`,
    `Run "${PROGRAM} ${group} <verb> --help" for the flags of a verb.\n`,
  ].join('\n');
}

function rootUsage(table: CommandTable): string {
  const sections = [
    `${PROGRAM}: command line of the E4 C2 key server (reference pb.C2 API and e4c2.v1)\n`,
    `Usage: ${PROGRAM} [global flags] <command> [flags]\n`,
  ];
  for (const group of table.groups) {
    const commands = table.commands.filter((c) => c.path[0] === group.name);
    sections.push(`${group.summary}:\n${commandList(commands)}`);
  }
  const others = table.commands.filter((c) => !table.groups.some((g) => g.name === c.path[0]));
  sections.push(`Other commands:\n${commandList(others)}`);
  sections.push(`Global flags:\n${flagRows(GLOBAL_FLAGS)}`);
  sections.push(EXIT_CODES);
  sections.push(`Run "${PROGRAM} <command> --help" for the flags of a command.\n`);
  return sections.join('\n');
}
