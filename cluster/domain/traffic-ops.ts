/**
 * Traffic monitoring use-cases: the keys the monitor needs to authenticate messages, recording
 * what it saw, and the per-topic report (which key versions devices really use, and how much
 * traffic is plaintext, forged or stale).
 */
import type { DeviceKeyUse, TrafficCount } from '../storage/index.ts';
import { notFound } from './mutation.ts';
import { bindings, type DomainDeps } from './ports.ts';
import { checkTopicName } from './validation.ts';

/** A topic's newest key versions, unsealed, for the monitor. The caller zeroes `key`. */
export interface MonitoringKeys {
  readonly topicId: string;
  readonly currentVersion: number;
  /** Newest first. */
  readonly keys: ReadonlyArray<{ readonly version: number; readonly key: Uint8Array }>;
}

/**
 * The `versions` newest keys of a topic (devices may still use an older one after a rotation),
 * or undefined for an unknown topic.
 */
export async function monitoringKeys(
  deps: DomainDeps,
  topic: string,
  versions: number,
): Promise<MonitoringKeys | undefined> {
  const row = await deps.store.read.topics.byName(topic);
  if (row === undefined) return undefined;
  const stored = await deps.store.read.topics.keys(row.id, versions);
  const keys = [];
  for (const k of [...stored].sort((a, b) => b.version - a.version))
    keys.push({
      version: k.version,
      key: await deps.sealer.open(k.sealed, bindings.topicKey(row.id, k.version)),
    });
  return { topicId: row.id, currentVersion: row.keyVersion, keys };
}

/** Stores what the monitor counted since its last flush. */
export async function recordTraffic(
  deps: DomainDeps,
  counts: readonly TrafficCount[],
  uses: readonly DeviceKeyUse[],
): Promise<void> {
  await deps.store.read.traffic.record(counts);
  await deps.store.read.traffic.recordDeviceUse(uses);
}

/** The report of one topic. */
export interface TopicTraffic {
  readonly topic: string;
  readonly keyVersion: number;
  readonly counts: ReadonlyArray<Omit<TrafficCount, 'topicId'>>;
  /** Public-key mode: each device's last seen key version, oldest versions first. */
  readonly devices: ReadonlyArray<{ client: string; keyVersion: number; lastAt: Date }>;
}

/** Devices listed in a report at most. */
const REPORT_DEVICES = 1000;

/**
 * What the monitor saw on a topic.
 * @throws C2Error `C2_VALIDATION` for a malformed name, `C2_NOT_FOUND` for an unknown topic
 */
export async function topicTraffic(deps: DomainDeps, topic: unknown): Promise<TopicTraffic> {
  const name = checkTopicName(topic);
  const row = await deps.store.read.topics.byName(name);
  if (row === undefined) throw notFound('topic', name);
  const counts = await deps.store.read.traffic.forTopic(row.id);
  const devices = await deps.store.read.traffic.devicesForTopic(row.id, REPORT_DEVICES);
  return {
    topic: name,
    keyVersion: row.keyVersion,
    counts: counts.map(({ topicId: _topicId, ...count }) => count),
    devices,
  };
}

/** A device's current Ed25519 public key by its E4 id (public-key mode signatures). */
export function devicePublicKey(
  deps: DomainDeps,
  e4Id: Uint8Array,
): Promise<Uint8Array | undefined> {
  return deps.store.read.traffic.devicePublicKey(e4Id);
}
