/**
 * Free loopback ports for processes started later: the local cluster's nodes and Redlock
 * instances, the chaos suite's services, and tests that start a node or a server as a process.
 *
 * A port is chosen before the process that will listen on it exists, and is free again in
 * between (at start, and while a service is down during a restart). A port of the kernel's
 * ephemeral range can be taken in that window by any outgoing connection of the machine or any
 * listener on port 0, and the service then fails to start with EADDRINUSE (a chaos run's node
 * did). So ports are drawn from below that range, which the kernel never hands out on its own;
 * only another process drawing the same way can collide, and the random draw makes that rare.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

/** Where the draw happens: the ports just below the kernel's ephemeral range. */
export interface DrawRange {
  readonly low: number;
  readonly high: number;
}

/** The lowest port drawn: above the registered ports services commonly use (5432, 6379, 8888). */
const LOWEST_DRAWN_PORT = 10_000;
/** How many ports below the ephemeral range are drawn from, at most. */
const DRAW_SPAN = 12_000;
/** Fewer ports than this below the ephemeral range: leave the choice to the kernel. */
const SMALLEST_RANGE = 1_000;
/** Draws per port before leaving the choice to the kernel. */
const DRAWS_PER_PORT = 50;
const EPHEMERAL_RANGE_FILE = '/proc/sys/net/ipv4/ip_local_port_range';

/**
 * The range to draw from, given the first port of the kernel's ephemeral range (Linux: the first
 * number of `ip_local_port_range`); `undefined` when too few ports lie below it.
 */
export function drawRangeBelow(ephemeralLow: number): DrawRange | undefined {
  const high = Math.min(ephemeralLow - 1, 65_535);
  const low = Math.max(LOWEST_DRAWN_PORT, high - DRAW_SPAN + 1);
  return high - low + 1 >= SMALLEST_RANGE ? { low, high } : undefined;
}

/**
 * The warning for fixed ports `low`..`high` that reach into the ephemeral range starting at
 * `ephemeralFrom` (see the head of this file), or `undefined` when they stay below it.
 */
export function ephemeralOverlapWarning(
  low: number,
  high: number,
  ephemeralFrom: number | undefined,
): string | undefined {
  if (ephemeralFrom === undefined || high < ephemeralFrom) return undefined;
  return `ports ${low}-${high} reach into the kernel's ephemeral range (from ${ephemeralFrom}, ${EPHEMERAL_RANGE_FILE}): any outgoing connection may take one while its node restarts (EADDRINUSE); a --base-port below ${Math.max(1, ephemeralFrom - (high - low) - 1)} avoids it`;
}

/** The first port of this machine's ephemeral range (Linux), or `undefined` where unknown. */
export function ephemeralLow(): number | undefined {
  try {
    const first = Number(readFileSync(EPHEMERAL_RANGE_FILE, 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(first) && first > 0 ? first : undefined;
  } catch {
    return undefined;
  }
}

let machineRange: DrawRange | undefined | null = null;

/** This machine's draw range, read once; `undefined` when the kernel should choose. */
function drawRange(): DrawRange | undefined {
  if (machineRange === null) {
    const low = ephemeralLow();
    machineRange = low === undefined ? undefined : drawRangeBelow(low);
  }
  return machineRange;
}

/** Listens on `port` of `host` alone (no shared bind); resolves the server, or `undefined` if taken. */
function tryListen(host: string, port: number): Promise<Server | undefined> {
  return new Promise((resolveListen, reject) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => {
      // Taken, or a port this user may not bind: draw another.
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolveListen(undefined);
      else reject(err);
    });
    server.listen({ port, host, exclusive: true }, () => {
      resolveListen(server);
    });
  });
}

/** Binds a free port of `host`: drawn from `range`, or the kernel's choice without one. */
async function bindFree(
  host: string,
  range: DrawRange | undefined,
  taken: ReadonlySet<number>,
): Promise<Server> {
  if (range !== undefined) {
    for (let draw = 0; draw < DRAWS_PER_PORT; draw++) {
      const port = range.low + Math.floor(Math.random() * (range.high - range.low + 1));
      if (taken.has(port)) continue;
      const server = await tryListen(host, port);
      if (server !== undefined) return server;
    }
  }
  const server = await tryListen(host, 0);
  if (server === undefined) throw new Error(`no free port on ${host}`);
  return server;
}

function portOf(server: Server): number {
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

function closeAll(servers: readonly Server[]): Promise<void> {
  return Promise.all(
    servers.map(
      (s) =>
        new Promise<void>((resolveClose) => {
          s.close(() => {
            resolveClose();
          });
        }),
    ),
  ).then(() => undefined);
}

/** Free ports, still bound by the caller until `release()`. */
export interface HeldPorts {
  readonly ports: number[];
  /** Unbinds them, so that the services they were chosen for can listen there. */
  readonly release: () => Promise<void>;
}

/**
 * `count` distinct free ports on `host`, each still held when this resolves: nothing else of this
 * process that listens meanwhile (the chaos suite's proxies) can be given one of them. Picked one
 * at a time and closed at once, the kernel may hand a port out again, and two services of a plan
 * then collide (a chaos run's load balancer got the port of a Redlock Redis).
 *
 * @param range where to draw from; by default the ports below this machine's ephemeral range.
 */
export async function holdFreePorts(
  host: string,
  count: number,
  range: DrawRange | undefined = drawRange(),
): Promise<HeldPorts> {
  const servers: Server[] = [];
  const ports = new Set<number>();
  const release = (): Promise<void> => closeAll(servers);
  try {
    for (let i = 0; i < count; i++) {
      const server = await bindFree(host, range, ports);
      servers.push(server);
      ports.add(portOf(server));
    }
  } catch (err) {
    await release();
    throw err;
  }
  return { ports: [...ports], release };
}

/** `count` distinct free ports on `host`, each held until all are chosen (see {@link holdFreePorts}). */
export async function freePorts(host: string, count: number): Promise<number[]> {
  const held = await holdFreePorts(host, count);
  await held.release();
  return held.ports;
}

/** A free port on `host`, for a process to listen on soon (see the head of this file). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await freePorts(host, 1);
  if (port === undefined) throw new Error(`no free port on ${host}`);
  return port;
}

/** True when `port` can be bound on `host` now. */
export async function portIsFree(host: string, port: number): Promise<boolean> {
  const server = await tryListen(host, port);
  if (server === undefined) return false;
  await closeAll([server]);
  return true;
}
