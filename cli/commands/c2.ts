/**
 * The server itself: `new-c2key` (reference), `c2-public-key` and `health` (ours, with the
 * reference HealthCheck as fallback).
 */
import { status as GrpcStatus } from '@grpc/grpc-js';
import { CliError, ExitCode, isGrpcStatusError } from '../errors.ts';
import { renderFields } from '../output.ts';
import type { CommandSpec } from '../spec.ts';

const newC2Key: CommandSpec = {
  path: ['new-c2key'],
  summary: 'Generate a new C2 key pair and send the public key to every client (public-key mode)',
  calls: ['pb.C2/NewC2Key'],
  flags: [
    {
      name: 'force',
      kind: 'boolean',
      description: 'confirm: every device receives the new C2 public key',
    },
  ],
  examples: ['new-c2key --force'],
  async run(ctx) {
    if (!ctx.flags.boolean('force')) {
      throw CliError.usage(
        'this command is potentially destructive. Please rerun it with --force to confirm',
        ['new-c2key'],
      );
    }
    await ctx.api.reference('NewC2Key', { force: true }, { idempotencyKey: ctx.globals.requestId });
    ctx.out.result({ new_c2_key: true }, 'New C2 key set with success\n');
  },
};

const c2PublicKey: CommandSpec = {
  path: ['c2-public-key'],
  summary: "Print the C2's current public key, its version and fingerprint (public-key mode)",
  calls: ['e4c2.v1.C2Admin/GetC2PublicKey'],
  flags: [],
  examples: ['c2-public-key', 'c2-public-key --json'],
  async run(ctx) {
    const key = await ctx.api.admin('GetC2PublicKey', {});
    ctx.out.result(
      key,
      renderFields([
        ['version', String(key.version)],
        ['public key', key.public_key],
        ['fingerprint', key.fingerprint],
      ]),
    );
  },
};

const health: CommandSpec = {
  path: ['health'],
  summary: 'Check the server: grpc.health.v1 when offered, else the reference HealthCheck',
  description:
    'Asks the standard gRPC health service (grpc.health.v1.Health/Check), which our server ' +
    'answers with its readiness (database and broker reachable); a server without it (the ' +
    'reference C2) is asked pb.C2/HealthCheck instead. Exits 0 when serving, 1 when the server ' +
    'answers that it is not.',
  calls: ['grpc.health.v1.Health/Check', 'pb.C2/HealthCheck (fallback)'],
  flags: [],
  examples: ['health', 'health --json'],
  async run(ctx) {
    let service = 'grpc.health.v1.Health';
    let status: string;
    try {
      status = (await ctx.api.health()).status;
    } catch (err) {
      if (!isGrpcStatusError(err) || err.code !== GrpcStatus.UNIMPLEMENTED) throw err;
      service = 'pb.C2/HealthCheck';
      const reference = await ctx.api.reference('HealthCheck', {});
      status = reference.Code === '0' ? 'SERVING' : `NOT_SERVING (${reference.Status})`;
    }
    const serving = status === 'SERVING';
    ctx.out.result({ status, serving, service }, `${status}\n`);
    if (!serving) {
      throw new CliError(ExitCode.Refused, `the C2 at ${ctx.globals.endpoint} reports ${status}`);
    }
  },
};

/** `new-c2key`, `c2-public-key`, `health`. */
export const C2_COMMANDS: readonly CommandSpec[] = [newC2Key, c2PublicKey, health];
