/**
 * One automation "node" for tests: its own pool, Redis connection, C2 service and engine, on a
 * shared test schema. Used in-process by the integration tests and, through `engine-child.ts`, as
 * a separate process that a test (or a chaos scenario) can SIGKILL.
 */
import { Redis } from 'ioredis';
import { LeaderElection, RedisLeaderLease } from '../../../../cluster/coordination/index.ts';
import type { AutomationCapabilities, C2Service } from '../../../../cluster/domain/index.ts';
import { createPool, PgAutomationStore } from '../../../../cluster/storage/index.ts';
import {
  AutomationEngine,
  type AutomationC2,
  type AutomationObserver,
} from '../../../automation/index.ts';
import { testService } from '../../../../cluster/test/support/test-service.ts';

/** What a test node is built from. */
export interface AutomationNodeOptions {
  readonly databaseUrl: string;
  readonly schema: string;
  readonly redisUrl: string;
  /** Redis key of the leader lease (unique per test). */
  readonly leaseKey: string;
  /** Key-encryption key shared by every node of the test (hex, 32 bytes). */
  readonly kekHex: string;
  readonly nodeId: string;
  readonly ttlMs: number;
  readonly tickMs: number;
  /** Slows every rotation down by this much (to kill a leader mid-firing). */
  readonly actionDelayMs?: number;
  /** The C2 the engine uses, built on the node's service (a fault injected in its calls). */
  readonly wrapC2?: (service: C2Service) => AutomationC2;
  /** How often keys are checked against max-key-age triggers (the engine's default: 30 s). */
  readonly keyAgeScanMs?: number;
  readonly onLeader?: (isLeader: boolean, epoch: string | undefined) => void;
  /**
   * The node's crypto settings (default: symmetric-key mode), for its C2 service and for the
   * engine's check of what it can run.
   */
  readonly capabilities?: AutomationCapabilities;
  /** Observes the node's engine (what its metrics would show). */
  readonly observer?: AutomationObserver;
}

/** A running test node. */
export interface AutomationNode {
  readonly service: C2Service;
  readonly store: PgAutomationStore;
  readonly engine: AutomationEngine;
  readonly errors: unknown[];
  close(): Promise<void>;
}

/** Builds and starts a node. */
export async function startAutomationNode(options: AutomationNodeOptions): Promise<AutomationNode> {
  const pool = await createPool({ url: options.databaseUrl, schema: options.schema, max: 4 });
  const redis = new Redis(options.redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  redis.on('error', () => undefined);
  await redis.connect();
  const capabilities = options.capabilities ?? { mode: 'symkey', pkServerKeygen: false };
  const { service } = await testService(
    pool,
    new Uint8Array(Buffer.from(options.kekHex, 'hex')),
    capabilities,
  );
  const automation = new PgAutomationStore(pool);
  const errors: unknown[] = [];
  const election = new LeaderElection({
    lease: new RedisLeaderLease(redis, options.leaseKey),
    epochs: automation.read,
    nodeId: options.nodeId,
    ttlMs: options.ttlMs,
    onChange: (l) => options.onLeader?.(l !== undefined, l?.epoch),
    onError: (err) => errors.push(err),
  });
  const delay = options.actionDelayMs ?? 0;
  const c2: AutomationC2 =
    delay === 0
      ? service
      : Object.assign(Object.create(service) as C2Service, {
          rotateTopicKey: async (...args: Parameters<C2Service['rotateTopicKey']>) => {
            const result = await service.rotateTopicKey(...args);
            await new Promise((r) => setTimeout(r, delay));
            return result;
          },
        });
  const engine = new AutomationEngine({
    store: automation,
    c2: options.wrapC2?.(service) ?? c2,
    ...(options.keyAgeScanMs === undefined ? {} : { keyAgeScanMs: options.keyAgeScanMs }),
    election,
    capabilities,
    nodeId: options.nodeId,
    ...(options.observer === undefined ? {} : { observer: options.observer }),
    tickMs: options.tickMs,
    onError: (err) => errors.push(err),
  });
  engine.start();
  return {
    service,
    store: automation,
    engine,
    errors,
    async close() {
      await engine.stop();
      redis.disconnect();
      await pool.end();
    },
  };
}
