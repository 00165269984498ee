/**
 * The simulated fleet of an upgrade practice: devices built on `e4/` (the chaos suite's
 * {@link ChaosDevice}, which applies every command it receives and records each key version it
 * applies), each registered with NewClient through the load balancer. Their identity keys are
 * zeroed once registered and never recorded.
 */
import { httpJson } from '../../bin/test/support/http-json.ts';
import { ChaosDevice } from '../../chaos/chaos-device.ts';
import type { DeviceApply } from '../../chaos/history.ts';
import type { ExtraCall } from './roll-history.ts';

/** Options of {@link RollFleet}. */
export interface FleetOptions {
  readonly brokerUrl: string;
  /** The load balancer's `http://host:port`. */
  readonly lb: string;
  readonly elapsed: () => number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every device of the run, what they applied and the NewClient calls that registered them. */
export class RollFleet {
  readonly devices: ChaosDevice[] = [];
  /** The devices' names, in the order they were added (the workload picks from it). */
  readonly names: string[] = [];
  readonly applies: DeviceApply[] = [];
  readonly calls: ExtraCall[] = [];

  constructor(private readonly options: FleetOptions) {}

  /**
   * Connects a new device and registers it (NewClient), trying again while a call fails, at most
   * `attempts` times, each call recorded. @throws Error when no attempt succeeded
   */
  async add(name: string, attempts: number): Promise<void> {
    const { elapsed, lb } = this.options;
    const { device, key } = await ChaosDevice.create({
      name,
      brokerUrl: this.options.brokerUrl,
      elapsed,
      record: (a) => this.applies.push(a),
    });
    this.devices.push(device);
    try {
      for (let i = 1; ; i++) {
        const invokedAt = elapsed();
        const call = { kind: 'new-client' as const, client: name, invokedAt };
        const res = await httpJson(lb, 'POST', `/e4/client/${encodeURIComponent(name)}`, {
          body: { key: Buffer.from(key).toString('base64') },
          timeoutMs: 8000,
        }).catch((err: unknown) => (err as Error).message.slice(0, 200));
        const completedAt = elapsed();
        // 409: an earlier attempt that seemed lost did register it, with this very key.
        if (typeof res !== 'string' && (res.status === 200 || res.status === 409)) {
          this.calls.push({ ...call, completedAt, outcome: 'ok' });
          this.names.push(name);
          return;
        }
        const error =
          typeof res === 'string'
            ? res
            : `HTTP ${res.status}${typeof res.json['code'] === 'string' ? ` ${res.json['code']}` : ''}`;
        const outcome = typeof res === 'string' || res.status >= 500 ? 'unknown' : 'fail';
        this.calls.push({ ...call, completedAt, outcome, error });
        if (i >= attempts) throw new Error(`cannot register ${name}: ${error}`);
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
