/**
 * The simulated fleet of an upgrade practice: devices built on `e4/` (the chaos suite's
 * {@link ChaosDevice}, which applies every command it receives and records each key version it
 * applies), each registered with NewClient through the load balancer. Their identity keys are
 * zeroed once registered and never recorded. A re-flash replaces a device by a new one of the same
 * name (and broker session) with a new key, registered by NewClient as a factory would; in
 * public-key mode each device is made with the C2's public key of the moment, and some devices
 * (`ownKeyNames`) later draw their identity keys themselves (own-keys.ts).
 */
import { httpJson } from '../../bin/test/support/http-json.ts';
import { ChaosDevice } from '../../chaos/chaos-device.ts';
import type { DeviceApply, Operation } from '../../chaos/history.ts';
import { failedCall } from './call-outcome.ts';
import type { ExtraCall } from './roll-history.ts';

/** What a NewClient call of the fleet records: when, and how it ended. */
type Attempt = Pick<ExtraCall, 'invokedAt' | 'completedAt' | 'outcome' | 'error'> & {
  /** The API node called directly, when not the balancer. */
  readonly via?: string;
};

/** Options of {@link RollFleet}. */
export interface FleetOptions {
  readonly brokerUrl: string;
  /** The load balancer's `http://host:port`. */
  readonly lb: string;
  readonly elapsed: () => number;
  /**
   * Public-key mode: the C2's current public key, read when a device is made (symmetric mode:
   * absent).
   */
  readonly c2PublicKey?: () => Promise<Uint8Array>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every device of the run, what they applied and the NewClient calls that registered them. */
export class RollFleet {
  /** The devices now on the broker, one per name (a re-flashed one replaces its predecessor). */
  readonly devices: ChaosDevice[] = [];
  /** Devices replaced by a re-flash: the secrecy scan looks for their keys too. */
  readonly retired: ChaosDevice[] = [];
  /** The devices' names, in the order they were added (the workload picks from it). */
  readonly names: string[] = [];
  /**
   * Public-key mode: devices that rotate their identity keys themselves (own-keys.ts), apart
   * from {@link names} so that the workload's calls on the C2's side (identity key rotations the
   * C2 draws, re-flashes, membership changes, resyncs) leave them alone.
   */
  readonly ownKeyNames: string[] = [];
  readonly applies: DeviceApply[] = [];
  readonly calls: ExtraCall[] = [];

  constructor(private readonly options: FleetOptions) {}

  /**
   * Connects a new device and registers it (NewClient), trying again while a call fails, at most
   * `attempts` times, each call recorded; `ownKey`: one of {@link ownKeyNames}.
   * @throws Error when no attempt succeeded
   */
  async add(name: string, attempts: number, ownKey = false): Promise<void> {
    await this.#register(
      name,
      attempts,
      (device) => this.devices.push(device),
      (attempt) => this.calls.push({ kind: 'new-client', client: name, ...attempt }),
    );
    (ownKey ? this.ownKeyNames : this.names).push(name);
  }

  /** Every device's name: {@link names}, then {@link ownKeyNames}. */
  get allNames(): string[] {
    return [...this.names, ...this.ownKeyNames];
  }

  /** The device of that name now on the broker. @throws RangeError when there is none */
  device(name: string): ChaosDevice {
    const device = this.devices.find((d) => d.name === name);
    if (device === undefined) throw new RangeError(`no device ${name}`);
    return device;
  }

  /** Public-key mode: the C2's public key of the moment (`undefined` in symmetric mode). */
  async c2PublicKey(): Promise<Uint8Array | undefined> {
    return this.options.c2PublicKey?.();
  }

  /**
   * Re-flashes a known device: it goes offline, and a new device of that name (the same broker
   * session, a new identity key, holding nothing) registers its key by NewClient, as after a
   * factory reset; the C2 must send it everything it should hold again (docs/api.md, NewClient).
   * Attempt `i` (from 0) goes straight to the API node `through(i)` (`http://host:port`), not
   * through the balancer, so that its record names the node that served it (`via`), and with the
   * roll's steps the release that node ran. Each attempt goes to `record` as a `reflash-client`
   * operation (the checker reads it as a resync: the keys it sends again are no retransmission).
   * @returns the API node that registered the new key
   * @throws Error when no attempt succeeded (the new device is kept: the C2 may hold its key)
   */
  async reflash(
    name: string,
    attempts: number,
    through: (attempt: number) => string,
    record: (call: Omit<Operation, 'id'>) => void,
  ): Promise<string | undefined> {
    const i = this.devices.findIndex((d) => d.name === name);
    const old = this.devices[i];
    if (old === undefined) throw new RangeError(`no device ${name} to re-flash`);
    // Offline first: two clients of one session would take it from each other.
    await old.close();
    await old.settle();
    this.retired.push(old);
    return this.#register(
      name,
      attempts,
      (device) => {
        this.devices[i] = device;
      },
      (attempt) => {
        record({ process: 7, kind: 'reflash-client', client: name, ...attempt });
      },
      through,
    );
  }

  /**
   * Makes a device (`made` keeps it, also when its registration fails: it is on the broker), then
   * registers its key by NewClient, each call recorded; attempt `i` goes to `through(i)` (by
   * default the balancer).
   */
  async #register(
    name: string,
    attempts: number,
    made: (device: ChaosDevice) => void,
    record: (attempt: Attempt) => void,
    through: (attempt: number) => string | undefined = () => undefined,
  ): Promise<string | undefined> {
    const { elapsed, lb } = this.options;
    const c2PublicKey = await this.options.c2PublicKey?.();
    const { device, key } = await ChaosDevice.create({
      name,
      brokerUrl: this.options.brokerUrl,
      elapsed,
      record: (a) => this.applies.push(a),
      ...(c2PublicKey === undefined ? {} : { c2PublicKey }),
    });
    made(device);
    try {
      for (let i = 1; ; i++) {
        const via = through(i - 1);
        const invokedAt = elapsed();
        const res = await httpJson(via ?? lb, 'POST', `/e4/client/${encodeURIComponent(name)}`, {
          body: { key: Buffer.from(key).toString('base64') },
          timeoutMs: 8000,
        }).catch((err: unknown) => (err as Error).message.slice(0, 200));
        const completedAt = elapsed();
        // 409: an earlier attempt that seemed lost did register it, with this very key.
        const at = { invokedAt, completedAt, ...(via === undefined ? {} : { via }) };
        if (typeof res !== 'string' && (res.status === 200 || res.status === 409)) {
          record({ ...at, outcome: 'ok' });
          return via;
        }
        const failed = failedCall(res);
        record({ ...at, ...failed });
        if (i >= attempts) throw new Error(`cannot register ${name}: ${failed.error}`);
        await sleep(300 * i);
      }
    } finally {
      key.fill(0);
    }
  }

  /** Waits until every device processed what it received so far. */
  async settle(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.settle()));
  }

  /** Disconnects every device. */
  async close(): Promise<void> {
    await Promise.all(this.devices.map((d) => d.close().catch(() => undefined)));
  }
}
