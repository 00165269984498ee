/** The command table of `e4c2`: every command and group, in help order. */
import type { CommandTable } from '../args.ts';
import { C2_COMMANDS } from './c2.ts';
import { CLIENT_PEER_COMMANDS } from './client-peers.ts';
import { CLIENT_COMMANDS } from './client.ts';
import { EVENT_COMMANDS } from './events.ts';
import { MEMBERSHIP_COMMANDS } from './membership.ts';
import { MESSAGE_COMMANDS } from './messages.ts';
import { RESTORE_COMMANDS } from './restore.ts';
import { RULE_COMMANDS } from './rules.ts';
import { TOKEN_COMMANDS } from './token.ts';
import { TOPIC_COMMANDS } from './topic.ts';

/** Every command of the CLI. */
export const COMMAND_TABLE: CommandTable = {
  groups: [
    { name: 'client', summary: 'Client commands' },
    { name: 'topic', summary: 'Topic commands' },
    { name: 'token', summary: 'API token commands (local)' },
    { name: 'rules', summary: 'Automation rule commands' },
    { name: 'automation', summary: 'Automation engine commands' },
  ],
  commands: [
    ...CLIENT_COMMANDS,
    ...CLIENT_PEER_COMMANDS,
    ...TOPIC_COMMANDS.filter((c) => c.path[0] === 'topic'),
    ...MEMBERSHIP_COMMANDS,
    ...TOPIC_COMMANDS.filter((c) => c.path[0] !== 'topic'),
    ...EVENT_COMMANDS,
    ...MESSAGE_COMMANDS,
    ...C2_COMMANDS,
    ...RESTORE_COMMANDS,
    ...TOKEN_COMMANDS,
    ...RULE_COMMANDS,
  ],
};
