/**
 * What an upgrade practice records, and what its checks read: the chaos suite's run record (API
 * calls, what every device applied, the final state: chaos/history.ts) plus the roll's own steps,
 * the NewClient calls and the nodes' warning and error lines. Fingerprints only, never keys.
 */
import type { RunRecord } from '../../chaos/history.ts';

/** Which release a node runs: the earlier one rolled from, or this checkout's. */
export type Release = 'old' | 'new';

/** One node replaced: stopped, then started on `to`, ready, and listed UP by the balancer. */
export interface RollStep {
  readonly node: string;
  readonly role: 'api' | 'worker';
  readonly to: Release;
  /** An API node's own HTTP address (`http://host:port`), which calls made through it name. */
  readonly http?: string;
  /** Milliseconds since the run started: the SIGTERM. */
  readonly stoppingAt: number;
  /** Its process exited. */
  readonly stoppedAt: number;
  /** The replacement answered `/readyz` (and, for an API node, the balancer listed it UP). */
  readonly readyAt: number;
}

/**
 * A call made outside the chaos driver: NewClient, which carries a key the driver never sees, for
 * a new device. (A re-flash's NewClient is among the driver's operations, as `reflash-client`:
 * the checker reads it as a resync.)
 */
export interface ExtraCall {
  readonly kind: 'new-client';
  readonly client: string;
  readonly invokedAt: number;
  readonly completedAt: number;
  readonly outcome: 'ok' | 'fail' | 'unknown';
  readonly error?: string;
}

/** A line a node wrote at level warn or above, or that was no log line at all (on stderr). */
export interface NodeLine {
  readonly node: string;
  readonly release: Release;
  /** Milliseconds since the run started. */
  readonly at: number;
  readonly line: string;
}

/** A message one device of the own-key ring read after the roll (own-keys.ts). */
export interface OwnKeyRead {
  readonly device: string;
  /** The neighbour that protected (and signed) it. */
  readonly peer: string;
  readonly topic: string;
  /** Why it could not be read (an E4 error code), absent when it was. */
  readonly error?: string;
}

/** Public-key mode's devices that draw their own identity keys (own-keys.ts), and what they did. */
export interface OwnKeyRecord {
  /** Each device and the neighbour whose messages it reads. */
  readonly devices: ReadonlyArray<{ readonly name: string; readonly peer: string }>;
  /**
   * Milliseconds since the run started when the workload ended: every own key rotation was over
   * by then, so a command a device applied later was protected under its own newest key.
   */
  readonly rolledAt: number;
  readonly reads: readonly OwnKeyRead[];
}

/** One practice roll, as its checks see it. */
export interface RollRecord {
  readonly from: string;
  readonly to: string;
  /** The cluster's crypto mode (`--mode`); absent in records made before it was chosen. */
  readonly mode?: 'symmetric' | 'public-key';
  readonly run: RunRecord;
  readonly steps: readonly RollStep[];
  readonly extraCalls: readonly ExtraCall[];
  readonly nodeLines: readonly NodeLine[];
  /** Warnings the practice's set-up causes (node-lines.ts), counted and not judged. */
  readonly expectedLines: number;
  /** Warnings of the earlier release's nodes that `--known-old-warning` names: not judged. */
  readonly knownOldLines?: number;
  /** Node exits nobody asked for (the launcher's notices). */
  readonly crashes: readonly string[];
  /** Devices that draw their own identity keys; absent when there were none. */
  readonly ownKeys?: OwnKeyRecord;
}
