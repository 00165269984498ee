/**
 * A network namespace joined to this host by a veth pair, for real link partitions in tests
 * (ha-notes §4.2): `cut()` takes the host's end of the link down, so packets are lost in both
 * directions and nothing is reset, as in a real partition; `heal()` brings it back. Needs root and
 * iproute2; {@link netnsUnavailable} says why not when they are missing. Every name and subnet is
 * random, so parallel tests do not collide; `close()` removes everything.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function ip(...args: string[]): Promise<void> {
  await run('ip', args, { timeout: 10_000 });
}

/** Why network namespaces cannot be made here, or undefined when they can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces are Linux only';
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const probe = `e4p-${randomBytes(3).toString('hex')}`;
  try {
    await ip('netns', 'add', probe);
    await ip('netns', 'del', probe);
    return undefined;
  } catch (err) {
    return `cannot create a network namespace (${err instanceof Error ? err.message : String(err)})`;
  }
}

/** A namespace and the link to it. */
export class NetnsLink {
  readonly #children = new Set<ChildProcess>();

  private constructor(
    /** The namespace's name (for `ip netns exec`). */
    readonly ns: string,
    /** The host's end of the veth pair. */
    readonly hostInterface: string,
    /** This host's address on the link. */
    readonly hostIp: string,
    /** The namespace's address on the link (what the host connects to). */
    readonly nsIp: string,
  ) {}

  /** Creates the namespace (loopback up) and a /30 link to it. */
  static async create(): Promise<NetnsLink> {
    const tag = randomBytes(3).toString('hex');
    const octet = randomInt(0, 256);
    const block = randomInt(0, 64) * 4;
    const link = new NetnsLink(
      `e4t-${tag}`,
      `e4h${tag}`,
      `10.231.${octet}.${block + 1}`,
      `10.231.${octet}.${block + 2}`,
    );
    const peer = `e4n${tag}`;
    try {
      await ip('netns', 'add', link.ns);
      await ip('link', 'add', link.hostInterface, 'type', 'veth', 'peer', 'name', peer);
      await ip('link', 'set', peer, 'netns', link.ns);
      await ip('addr', 'add', `${link.hostIp}/30`, 'dev', link.hostInterface);
      await ip('link', 'set', link.hostInterface, 'up');
      await ip('-n', link.ns, 'addr', 'add', `${link.nsIp}/30`, 'dev', peer);
      await ip('-n', link.ns, 'link', 'set', peer, 'up');
      await ip('-n', link.ns, 'link', 'set', 'lo', 'up');
    } catch (err) {
      await link.close();
      throw err;
    }
    return link;
  }

  /** Starts `command` inside the namespace; it is killed by `close()`. */
  spawn(command: string, args: readonly string[], cwd?: string): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns, command, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(cwd === undefined ? {} : { cwd }),
    });
    this.#children.add(child);
    child.on('exit', () => this.#children.delete(child));
    return child;
  }

  /** The partition: the link goes down, packets are dropped both ways, nothing is reset. */
  async cut(): Promise<void> {
    await ip('link', 'set', this.hostInterface, 'down');
  }

  /** The link comes back. */
  async heal(): Promise<void> {
    await ip('link', 'set', this.hostInterface, 'up');
  }

  /** Kills what runs inside and removes the link and the namespace; never throws. */
  async close(): Promise<void> {
    for (const child of this.#children) child.kill('SIGKILL');
    await ip('link', 'del', this.hostInterface).catch(() => undefined);
    await ip('netns', 'del', this.ns).catch(() => undefined);
  }
}
