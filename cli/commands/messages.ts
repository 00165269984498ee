/**
 * `protect-message` and `unprotect-message` (reference API): the C2 protects or opens a message
 * with a topic key. Both print base64 without a final newline, as the reference c2cli.
 */
import type { CommandSpec, FlagSpec } from '../spec.ts';
import { decodeBase64, encodeBase64 } from './shared.ts';

function messageFlags(what: string): readonly FlagSpec[] {
  return [
    { name: 'topic', kind: 'string', value: 'TOPIC', description: 'the topic', required: true },
    {
      name: 'message',
      kind: 'string',
      value: 'B64',
      description: `the ${what}, standard base64`,
      required: true,
    },
  ];
}

const protect: CommandSpec = {
  path: ['protect-message'],
  summary: 'Protect a message with a topic key; prints base64 (no newline)',
  calls: ['pb.C2/ProtectMessage'],
  flags: messageFlags('clear message'),
  examples: ['protect-message --topic sensors/temp --message MjEuNQ=='],
  async run(ctx) {
    const topic = ctx.flags.string('topic');
    const binaryData = decodeBase64('message', ctx.flags.string('message'));
    const response = await ctx.api.reference('ProtectMessage', { topic, binaryData });
    const protectedB64 = encodeBase64(response.protectedBinaryData);
    ctx.out.result({ topic, protected: protectedB64 }, protectedB64);
  },
};

const unprotect: CommandSpec = {
  path: ['unprotect-message'],
  summary: 'Open a message protected with a topic key; prints base64 (no newline)',
  calls: ['pb.C2/UnprotectMessage'],
  flags: messageFlags('protected message'),
  examples: ['unprotect-message --topic sensors/temp --message <base64>'],
  async run(ctx) {
    const topic = ctx.flags.string('topic');
    const protectedBinaryData = decodeBase64('message', ctx.flags.string('message'));
    const response = await ctx.api.reference('UnprotectMessage', { topic, protectedBinaryData });
    const clearB64 = encodeBase64(response.binaryData);
    ctx.out.result({ topic, message: clearB64 }, clearB64);
  },
};

/** `protect-message`, `unprotect-message`. */
export const MESSAGE_COMMANDS: readonly CommandSpec[] = [protect, unprotect];
