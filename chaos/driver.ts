/**
 * The workload: logical clients calling the API through the load balancer (HTTP, a connection
 * per call), one call in flight each, every call recorded as invoke then ok, fail or unknown.
 * Rotations carry idempotency keys; a call whose outcome is unknown is retried with the same key
 * (I4), and some ok rotations are replayed with their key on purpose (the answer must not
 * change). Bursts send rotations of one topic from several clients a few milliseconds apart.
 */
import { randomBytes } from 'node:crypto';
import { httpJson, type JsonAnswer } from '../bin/test/support/http-json.ts';
import type { Operation, OperationKind } from './history.ts';
import type { Rng } from './rng.ts';

/** What a call needs to say. */
interface Call {
  /** A re-flash carries a key, which the driver never sees: its maker records it (`record`). */
  readonly kind: Exclude<OperationKind, 'reflash-client'>;
  readonly topic?: string;
  readonly client?: string;
  readonly requestId?: string;
  /**
   * One API node's `http://host:port` to call instead of the load balancer (the upgrade practice
   * rotates through each node in turn: ops/upgrade/).
   */
  readonly via?: string;
}

/** Options of {@link Driver}. */
export interface DriverOptions {
  /** `http://host:port` of the load balancer. */
  readonly base: string;
  readonly elapsed: () => number;
  /** Per-call timeout; past it the outcome is unknown. */
  readonly timeoutMs: number;
}

/** Records every call it makes. */
export class Driver {
  readonly operations: Operation[] = [];
  #nextId = 0;

  constructor(private readonly options: DriverOptions) {}

  /** A fresh idempotency key. */
  static requestId(prefix: string): string {
    return `${prefix}-${randomBytes(6).toString('hex')}`;
  }

  async #send(call: Call): Promise<JsonAnswer> {
    const { timeoutMs } = this.options;
    const base = call.via ?? this.options.base;
    const t = encodeURIComponent(call.topic ?? '');
    const c = encodeURIComponent(call.client ?? '');
    const opts = {
      timeoutMs,
      ...(call.requestId === undefined ? {} : { idempotencyKey: call.requestId }),
    };
    switch (call.kind) {
      case 'create-topic':
        return httpJson(base, 'POST', `/e4/topic/${t}`, opts);
      case 'rotate-topic':
        return httpJson(base, 'POST', `/v1/topics/${t}/rotate`, { ...opts, body: {} });
      case 'read-topic':
        return httpJson(base, 'GET', `/v1/topics/${t}`, opts);
      case 'join':
        return httpJson(base, 'PUT', `/e4/client/${c}/topic/${t}`, opts);
      case 'leave':
        return httpJson(base, 'DELETE', `/e4/client/${c}/topic/${t}`, opts);
      case 'rotate-client':
        return httpJson(base, 'POST', `/v1/clients/${c}/rotate`, { ...opts, body: {} });
      case 'resync-client':
        return httpJson(base, 'POST', `/v1/clients/${c}/resync`, { ...opts, body: {} });
      case 'rotate-c2':
        return httpJson(base, 'POST', '/e4/new-c2-key', { ...opts, body: { force: true } });
    }
  }

  /** Makes one call and records it. */
  async call(process: number, call: Call): Promise<Operation> {
    const id = this.#nextId++;
    const invokedAt = this.options.elapsed();
    let op: Operation;
    const base = {
      id,
      process,
      kind: call.kind,
      ...(call.topic === undefined ? {} : { topic: call.topic }),
      ...(call.client === undefined ? {} : { client: call.client }),
      ...(call.requestId === undefined ? {} : { requestId: call.requestId }),
      ...(call.via === undefined ? {} : { via: call.via }),
      invokedAt,
    };
    try {
      const res = await this.#send(call);
      const completedAt = this.options.elapsed();
      if (res.status === 200) {
        const version = Number(res.json['keyVersion']);
        let fingerprint = res.json['fingerprint'];
        if (call.kind === 'read-topic' && Array.isArray(res.json['keys'])) {
          const keys = res.json['keys'] as Array<{ version?: number; fingerprint?: string }>;
          fingerprint = keys.find((k) => k.version === version)?.fingerprint;
        }
        op = {
          ...base,
          completedAt,
          outcome: 'ok',
          ...(Number.isInteger(version) && version > 0 ? { version } : {}),
          ...(typeof fingerprint === 'string' ? { fingerprint } : {}),
        };
      } else {
        const code = typeof res.json['code'] === 'string' ? ` ${res.json['code']}` : '';
        const error = `HTTP ${res.status}${code}`;
        // A 5xx may have committed before it failed (a database cut mid-commit): unknown.
        op = { ...base, completedAt, outcome: res.status >= 500 ? 'unknown' : 'fail', error };
      }
    } catch (err) {
      op = {
        ...base,
        completedAt: this.options.elapsed(),
        outcome: 'unknown',
        error: (err as Error).message.slice(0, 200),
      };
    }
    this.operations.push(op);
    return op;
  }

  /**
   * Records a call made elsewhere (a re-flash's NewClient, which carries a key), numbered with
   * the driver's own, so that the checker reads it with them.
   */
  record(call: Omit<Operation, 'id'>): Operation {
    const op: Operation = { ...call, id: this.#nextId++ };
    this.operations.push(op);
    return op;
  }

  /** A call with an idempotency key, retried with that key while its outcome is unknown. */
  async callRetrying(
    process: number,
    call: Call,
    attempts: number,
    stop: () => boolean,
  ): Promise<Operation> {
    let op = await this.call(process, call);
    for (let i = 1; i < attempts && op.outcome === 'unknown' && !stop(); i++) {
      await new Promise((r) => setTimeout(r, 200 * i));
      op = await this.call(process, call);
    }
    return op;
  }
}

/**
 * The C2's current public key (public-key mode), read through `base`.
 * @throws Error when there is none (the cluster is in symmetric mode) or the call fails
 */
export async function readC2PublicKey(base: string): Promise<Uint8Array> {
  const res = await httpJson(base, 'GET', '/v1/c2-public-key');
  const hex = res.json['publicKey'];
  if (res.status !== 200 || typeof hex !== 'string')
    throw new Error(`no C2 public key (HTTP ${res.status}): is the cluster in public-key mode?`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** The driver's view of the fleet it exercises. */
export interface Fleet {
  readonly topics: readonly string[];
  readonly devices: readonly string[];
  /** Devices the workload leaves alone for now (offline by design). */
  readonly quiet: ReadonlySet<string>;
  /** Whether client key rotations are part of this scenario. */
  readonly rotateClients: boolean;
  /** Whether bursts of concurrent rotations of one topic are sent. */
  readonly bursts: boolean;
  /** Public-key mode: C2 key rotations (NewC2Key) are part of the mix. */
  readonly rotateC2: boolean;
}

/** Runs `processes` logical clients until `stop()`; bounded by `maxOps` calls in all. */
export async function runWorkload(
  driver: Driver,
  fleet: Fleet,
  rng: Rng,
  processes: number,
  stop: () => boolean,
  maxOps: number,
): Promise<void> {
  const membership = new Map<string, boolean>();
  for (const d of fleet.devices) for (const t of fleet.topics) membership.set(`${d}\0${t}`, true);
  const done: Operation[] = [];
  const pace = (): Promise<void> => new Promise((r) => setTimeout(r, rng.int(30, 150)));
  const one = async (p: number): Promise<void> => {
    const roll = rng.next();
    const topic = rng.pick(fleet.topics);
    const candidates = fleet.devices.filter((d) => !fleet.quiet.has(d));
    if (fleet.bursts && roll < 0.15) {
      // A burst: the same topic rotated from several clients a few milliseconds apart.
      const n = rng.int(2, 4);
      await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          await new Promise((r) => setTimeout(r, rng.int(0, 5) * i));
          done.push(
            await driver.callRetrying(
              processes + p * 10 + i,
              { kind: 'rotate-topic', topic, requestId: Driver.requestId('burst') },
              3,
              stop,
            ),
          );
        }),
      );
    } else if (fleet.rotateC2 && roll < 0.25) {
      // C2 key rotations, sometimes two from different clients a few milliseconds apart.
      await Promise.all(
        Array.from({ length: rng.chance(0.3) ? 2 : 1 }, async (_, i) => {
          await new Promise((r) => setTimeout(r, rng.int(0, 5) * i));
          await driver.callRetrying(
            processes + p * 10 + i,
            { kind: 'rotate-c2', requestId: Driver.requestId('c2') },
            3,
            stop,
          );
        }),
      );
    } else if (roll < 0.6) {
      done.push(
        await driver.callRetrying(
          p,
          { kind: 'rotate-topic', topic, requestId: Driver.requestId('rot') },
          3,
          stop,
        ),
      );
    } else if (roll < 0.72) {
      await driver.call(p, { kind: 'read-topic', topic });
    } else if (roll < 0.84 && candidates.length > 0) {
      const device = rng.pick(candidates);
      const key = `${device}\0${topic}`;
      const member = membership.get(key) ?? false;
      const op = await driver.call(p, { kind: member ? 'leave' : 'join', topic, client: device });
      if (op.outcome === 'ok') membership.set(key, !member);
    } else if (roll < 0.9 && fleet.rotateClients && candidates.length > 0) {
      await driver.callRetrying(
        p,
        { kind: 'rotate-client', client: rng.pick(candidates), requestId: Driver.requestId('cli') },
        3,
        stop,
      );
    } else {
      // Replay an acknowledged rotation with its key: the same version must come back (I4).
      const earlier = done.filter((o) => o.outcome === 'ok' && o.requestId !== undefined);
      if (earlier.length === 0) return;
      const prior = rng.pick(earlier);
      await driver.call(p, {
        kind: 'rotate-topic',
        ...(prior.topic === undefined ? {} : { topic: prior.topic }),
        ...(prior.requestId === undefined ? {} : { requestId: prior.requestId }),
      });
    }
  };
  await Promise.all(
    Array.from({ length: processes }, async (_, p) => {
      while (!stop() && driver.operations.length < maxOps) {
        await one(p);
        await pace();
      }
    }),
  );
}
