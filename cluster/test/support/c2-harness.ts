/**
 * A C2 domain and delivery engine on the real PostgreSQL (private schema) and the real broker,
 * for integration tests of the use-cases without the API layer.
 */
import { randomBytes } from 'node:crypto';
import type { LockService } from '../../coordination/index.ts';
import type { C2CryptoMode, C2Service } from '../../domain/index.ts';
import {
  DeliveryEngine,
  MqttCommandPublisher,
  type DeliveryAttempt,
} from '../../delivery/index.ts';
import { PgDelivery, type PgC2Store } from '../../storage/index.ts';
import { createTestSchema, type TestSchema } from './postgres.ts';
import { testService } from './test-service.ts';

/** Broker the tests use (the machine's Mosquitto unless MQTT_TEST_URL says otherwise). */
export const TEST_MQTT_URL = process.env['MQTT_TEST_URL'] ?? 'mqtt://127.0.0.1:1883';

/** Everything a domain integration test needs. */
export interface C2Harness {
  readonly schema: TestSchema;
  readonly store: PgC2Store;
  readonly service: C2Service;
  readonly engine: DeliveryEngine;
  readonly attempts: DeliveryAttempt[];
  readonly errors: unknown[];
  close(): Promise<void>;
}

/** Options of {@link startHarness}. */
export interface HarnessOptions {
  readonly mode?: C2CryptoMode;
  readonly pkServerKeygen?: boolean;
  readonly maxAttempts?: number;
  readonly pubackTimeoutMs?: number;
  readonly start?: boolean;
  /** Lock service of the rotations (default: the in-process one of a single node). */
  readonly locks?: LockService;
  /** `DomainDeps.observedLagGraceSeconds` (default: the domain's). */
  readonly observedLagGraceSeconds?: number;
}

/** Starts a harness; call `close()` in `after`. */
export async function startHarness(options: HarnessOptions = {}): Promise<C2Harness> {
  const schema = await createTestSchema();
  const publisher = await MqttCommandPublisher.connect({
    url: TEST_MQTT_URL,
    clientId: `e4c2-test-${randomBytes(4).toString('hex')}`,
    pubackTimeoutMs: options.pubackTimeoutMs ?? 3000,
  });
  const mode = options.mode ?? 'symkey';
  const attempts: DeliveryAttempt[] = [];
  const errors: unknown[] = [];
  const kickTarget: { engine?: DeliveryEngine } = {};
  const { store, vault, service } = await testService(
    schema.pool,
    new Uint8Array(randomBytes(32)),
    {
      mode,
      kick: { kick: () => kickTarget.engine?.kick() },
      pkServerKeygen: options.pkServerKeygen ?? false,
      ...(options.locks === undefined ? {} : { locks: options.locks }),
      ...(options.observedLagGraceSeconds === undefined
        ? {}
        : { observedLagGraceSeconds: options.observedLagGraceSeconds }),
    },
  );
  await service.init();
  const engine = new DeliveryEngine(
    store,
    {
      store,
      sealer: vault,
      mode,
      publisher,
      clock: Date.now,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      policy: {
        maxAttempts: options.maxAttempts ?? 5,
        initialBackoffMs: 20,
        maxBackoffMs: 200,
        deadlineMs: 30_000,
      },
      onAttempt: (a) => attempts.push(a),
      delivery: new PgDelivery(schema.pool),
      owner: `test-${randomBytes(4).toString('hex')}`,
      claimTtlMs: 30_000,
      publishConcurrency: 64,
    },
    {
      concurrency: 4,
      batchSize: 200,
      claimBatch: 200,
      pollIntervalMs: 200,
      sweepIntervalMs: 2000,
      busyRetryMs: 200,
      onError: (err) => errors.push(err),
    },
  );
  kickTarget.engine = engine;
  if (options.start !== false) engine.start();
  const running = engine;
  return {
    schema,
    store,
    service,
    engine: running,
    attempts,
    errors,
    async close() {
      await running.close();
      await publisher.close();
      await schema.drop();
    },
  };
}
