/**
 * A test automation node as a process (spawned by `engine-processes.ts`): configured by the
 * environment, prints one JSON line per leadership change, runs until killed.
 */
import { startAutomationNode } from './automation-node.ts';

const env = (name: string): string => {
  const v = process.env[name];
  if (v === undefined) throw new Error(`${name} is required`);
  return v;
};

const node = await startAutomationNode({
  databaseUrl: env('AE_TEST_DATABASE_URL'),
  schema: env('AE_TEST_SCHEMA'),
  redisUrl: env('AE_TEST_REDIS_URL'),
  leaseKey: env('AE_TEST_LEASE_KEY'),
  kekHex: env('AE_TEST_KEK'),
  nodeId: env('AE_TEST_NODE_ID'),
  ttlMs: Number(env('AE_TEST_TTL_MS')),
  tickMs: Number(env('AE_TEST_TICK_MS')),
  actionDelayMs: Number(process.env['AE_TEST_ACTION_DELAY_MS'] ?? '0'),
  onLeader: (isLeader, epoch) => {
    process.stdout.write(`${JSON.stringify({ leader: isLeader, epoch: epoch ?? null })}\n`);
  },
});
process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
process.on('SIGTERM', () => {
  void node.close().then(() => process.exit(0));
});
