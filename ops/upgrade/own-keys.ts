/**
 * Devices that draw their own identity keys, in public-key mode (`--own-key-devices`): the C2
 * learns only the public half, at registration (NewClient) and at each rotation, which the device
 * makes itself: a new Ed25519 pair, held as pending beside its key *before* the C2 is told
 * (`E4Client.beginOwnKeyRotation`), then RotateClientKey with `publicKey`. The device opens what
 * the C2 sends under either key and switches at the first command under the new one
 * (docs/protocol-extensions.md §2), so that no command is lost around the switch, whatever it
 * carries: a topic key, the C2's key, a neighbour's key. own-key-checks.ts holds the practice to
 * that (no command refused as not authentic).
 *
 * They form a ring: each follows its neighbour's public key (SendClientPubKey, which makes the C2
 * send it the neighbour's every new key), so that after the roll each can be asked to read a
 * message its neighbour protected on every topic: that needs the topic's current key, and the
 * neighbour's newest public key, which the C2 sent it as a command protected under its own newest
 * key.
 */
import { httpJson } from '../../bin/test/support/http-json.ts';
import { Driver } from '../../chaos/driver.ts';
import type { Operation } from '../../chaos/history.ts';
import { E4Error, randomEd25519Key } from '../../e4/index.ts';
import { failedCall } from './call-outcome.ts';
import type { RollFleet } from './roll-fleet.ts';
import type { OwnKeyRead } from './roll-history.ts';
import { until } from './waits.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The device whose messages `name` reads: the next one of the ring. */
export function ringPeer(names: readonly string[], name: string): string {
  const i = names.indexOf(name);
  if (i < 0 || names.length < 2) throw new RangeError(`${name} has no neighbour in the ring`);
  return names[(i + 1) % names.length] ?? '';
}

/**
 * Makes each device of the ring follow its neighbour's public key (SendClientPubKey through the
 * balancer, retried for 20 s).
 * @throws Error when a link cannot be made
 */
export async function linkRing(lb: string, names: readonly string[]): Promise<void> {
  for (const target of names) {
    const source = ringPeer(names, target);
    const linked = await until(async () => {
      const res = await httpJson(lb, 'POST', '/e4/send-client-pubkey', {
        body: { sourceClient: { name: source }, targetClient: { name: target } },
        timeoutMs: 8000,
      });
      return res.status === 200;
    }, 20_000);
    if (!linked) throw new Error(`SendClientPubKey of ${source} to ${target} failed for 20 s`);
  }
}

/** What {@link rotateOwnKey} needs. */
export interface OwnRotation {
  readonly fleet: RollFleet;
  readonly name: string;
  readonly attempts: number;
  /** The API node (`http://host:port`) attempt `i` (from 0) goes to. */
  readonly through: (attempt: number) => string;
  /** Records each attempt, as a `rotate-client` operation. */
  readonly record: (call: Omit<Operation, 'id'>) => void;
  readonly elapsed: () => number;
}

/**
 * One rotation a device makes of its own identity key: it draws a new pair and begins the
 * rotation, then registers the public half (RotateClientKey with `publicKey`, straight to an API
 * node, each attempt with the same idempotency key); it switches by itself at the first command
 * under the new key. A registration the C2 refused is abandoned (the device keeps its key). One
 * whose outcome stayed unknown is left pending: the C2 may hold it. The device's next turn then
 * registers that key again (the C2 makes no new version of the key it holds) instead of drawing
 * another.
 * @returns the API node that took it; `undefined` when no attempt succeeded
 */
export async function rotateOwnKey(o: OwnRotation): Promise<string | undefined> {
  const { fleet, name, elapsed } = o;
  const device = fleet.device(name);
  const own = randomEd25519Key();
  const requestId = Driver.requestId('roll-own');
  /** Whether an attempt's outcome is unknown: the C2 may have taken the key. */
  let unknown = false;
  try {
    const pending = device.client.pendingPublicKey;
    const publicKey = Buffer.from(pending ?? (await device.beginOwnKeyRotation(own))).toString(
      'base64',
    );
    for (let i = 0; i < o.attempts; i++) {
      const via = o.through(i);
      const invokedAt = elapsed();
      const res = await httpJson(via, 'POST', `/v1/clients/${encodeURIComponent(name)}/rotate`, {
        body: { publicKey },
        idempotencyKey: requestId,
        timeoutMs: 8000,
      }).catch((err: unknown) => (err as Error).message.slice(0, 200));
      const call = { process: 8, kind: 'rotate-client' as const, client: name, requestId, via };
      const completedAt = elapsed();
      if (typeof res !== 'string' && res.status === 200) {
        const version = Number(res.json['keyVersion']);
        const fingerprint = res.json['fingerprint'];
        o.record({
          ...call,
          invokedAt,
          completedAt,
          outcome: 'ok',
          ...(Number.isInteger(version) && version > 0 ? { version } : {}),
          ...(typeof fingerprint === 'string' ? { fingerprint } : {}),
        });
        return via;
      }
      const failed = failedCall(res);
      o.record({ ...call, invokedAt, completedAt, ...failed });
      if (failed.outcome === 'fail') {
        // Refused: nothing registered, unless an earlier attempt's outcome is unknown (it may
        // still commit, and the C2 would then hold a key the device dropped).
        if (!unknown) await device.abandonOwnKeyRotation();
        return undefined;
      }
      unknown = true;
      await sleep(300 * (i + 1));
    }
    return undefined;
  } finally {
    own.fill(0);
  }
}

/**
 * After the roll: each device of the ring reads a message its neighbour protects (and signs) on
 * each of `topics`, as it would receive it.
 */
export function readPeerMessages(fleet: RollFleet, topics: readonly string[]): OwnKeyRead[] {
  const reads: OwnKeyRead[] = [];
  for (const name of fleet.ownKeyNames) {
    const peer = ringPeer(fleet.ownKeyNames, name);
    const reader = fleet.device(name).client;
    const writer = fleet.device(peer).client;
    for (const topic of topics) {
      const text = `upgrade practice: ${peer} to ${name} on ${topic}`;
      let error: string | undefined;
      let message: Uint8Array | undefined;
      try {
        message = writer.protectMessage(new TextEncoder().encode(text), topic);
      } catch (err) {
        error = `${peer} could not protect it: ${E4Error.is(err) ? err.code : String(err)}`;
      }
      if (message !== undefined) {
        try {
          const clear = new TextDecoder().decode(reader.unprotectMessage(message, topic));
          if (clear !== text) error = 'it read another text';
        } catch (err) {
          error = E4Error.is(err) ? err.code : String(err);
        }
      }
      reads.push({ device: name, peer, topic, ...(error === undefined ? {} : { error }) });
    }
  }
  return reads;
}
