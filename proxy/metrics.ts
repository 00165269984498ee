/** The proxy's Prometheus counters, in a registry of its own (nothing global, no key material). */
import { Counter, Gauge, Registry } from 'prom-client';
import type { DropReason } from './policy.ts';

/** Direction of a message: `outbound` device to broker, `inbound` broker to device. */
export type Direction = 'outbound' | 'inbound';

/** Why a downstream connection was refused or closed by the proxy. */
export type RejectReason =
  | 'malformed'
  | 'packet-too-large'
  | 'protocol'
  | 'auth'
  | 'unsupported-version'
  | 'upstream-unavailable'
  | 'timeout';

/** Counters and gauges of one proxy. */
export class ProxyMetrics {
  readonly registry = new Registry();
  readonly protected = new Counter({
    name: 'e4proxy_messages_protected_total',
    help: 'Messages protected with a topic key and forwarded to the broker',
    registers: [this.registry],
  });
  readonly unprotected = new Counter({
    name: 'e4proxy_messages_unprotected_total',
    help: 'Protected messages unprotected and delivered to a downstream client',
    registers: [this.registry],
  });
  readonly forwarded = new Counter({
    name: 'e4proxy_messages_forwarded_total',
    help: 'Messages on unprotected topics forwarded as they were',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly dropped = new Counter({
    name: 'e4proxy_messages_dropped_total',
    help: 'Messages dropped, never delivered, by direction and reason',
    labelNames: ['direction', 'reason'] as const,
    registers: [this.registry],
  });
  readonly commands = new Counter({
    name: 'e4proxy_commands_total',
    help: 'C2 commands received on control topics, by outcome (applied or rejected)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly rejected = new Counter({
    name: 'e4proxy_connections_rejected_total',
    help: 'Downstream connections refused or closed by the proxy, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  /**
   * The rotation hold (rotation-hold.ts) by outcome: `held` (entered it), `released` (delivered
   * once its key arrived), `expired` (dropped: no key within the hold time), `dropped` (tried
   * again and failed otherwise, e.g. stale), `discarded` (its connection closed first), `full`
   * (not held: a cap was reached; dropped at once).
   */
  readonly rotationHold = new Counter({
    name: 'e4proxy_rotation_hold_total',
    help: 'Inbound messages held for a key on its way (SetTopicKey, SetPubKey), by outcome',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly heldMessages = new Gauge({
    name: 'e4proxy_rotation_held_messages',
    help: 'Inbound messages held now, waiting for their topic key',
    registers: [this.registry],
  });
  readonly heldBytes = new Gauge({
    name: 'e4proxy_rotation_held_bytes',
    help: 'Payload bytes of the messages held now, waiting for their topic key',
    registers: [this.registry],
  });
  readonly connections = new Gauge({
    name: 'e4proxy_downstream_connections',
    help: 'Open downstream MQTT connections',
    registers: [this.registry],
  });

  /** Counts a dropped message. */
  drop(direction: Direction, reason: DropReason): void {
    this.dropped.inc({ direction, reason });
  }

  /** Sum of a counter's values (for the status output and tests). */
  async total(counter: Counter, labels: Record<string, string> = {}): Promise<number> {
    const { values } = await counter.get();
    return values
      .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
      .reduce((sum, v) => sum + v.value, 0);
  }
}
