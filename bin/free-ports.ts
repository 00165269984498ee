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
  /**
   * The user's range (`npm run chaos -- --ports`): every port comes from it, and a full range is
   * an error rather than a port the kernel picks elsewhere.
   */
  readonly only?: boolean;
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

/**
 * Makes `server` listen on `port` of `host` alone (no shared bind); resolves it, or `undefined`
 * if the port is taken (the server may then listen again).
 */
function tryListen(
  host: string,
  port: number,
  server: Server = createServer(),
): Promise<Server | undefined> {
  return new Promise((resolveListen, reject) => {
    // Both listeners go once either fires: a server that tries port after port must not keep
    // the listeners of the ports it failed on.
    const onListening = (): void => {
      server.off('error', onError);
      resolveListen(server);
    };
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      // Taken, or a port this user may not bind: draw another.
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES') resolveListen(undefined);
      else reject(err);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port, host, exclusive: true });
  });
}

/** The ports of a user's range, every one once, from a random point on (wrapping round). */
function* everyPortOf(range: DrawRange): Generator<number> {
  const size = range.high - range.low + 1;
  const start = Math.floor(Math.random() * size);
  for (let i = 0; i < size; i++) yield range.low + ((start + i) % size);
}

/** Ports drawn at random from `range`. */
function* drawsFrom(range: DrawRange): Generator<number> {
  for (let draw = 0; draw < DRAWS_PER_PORT; draw++)
    yield range.low + Math.floor(Math.random() * (range.high - range.low + 1));
}

/**
 * Makes `server` listen on a free port of `host`: drawn from `range`; the kernel's choice without
 * one, or when the draws found none, unless the range is the user's (`only`).
 * @throws Error naming the range when a user's range has no free port left
 */
async function bindFree(
  host: string,
  range: DrawRange | undefined,
  taken: ReadonlySet<number>,
  server?: Server,
): Promise<Server> {
  if (range !== undefined) {
    for (const port of range.only === true ? everyPortOf(range) : drawsFrom(range)) {
      if (taken.has(port)) continue;
      const bound = await tryListen(host, port, server);
      if (bound !== undefined) return bound;
    }
    if (range.only === true)
      throw new Error(`no free port on ${host} in ${range.low}-${range.high} (every one is taken)`);
  }
  const bound = await tryListen(host, 0, server);
  if (bound === undefined) throw new Error(`no free port on ${host}`);
  return bound;
}

/**
 * Makes `server` (a proxy of the chaos suite) listen on `host`: on a free port of `range`, or
 * where the kernel chooses without one (a listener binds at once: no window to lose the port in).
 * @throws Error naming the range when it has no free port left
 */
export async function listenOnFreePort(
  server: Server,
  host: string,
  range: DrawRange | undefined,
): Promise<void> {
  await bindFree(host, range, new Set(), server);
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
export async function freePorts(host: string, count: number, range?: DrawRange): Promise<number[]> {
  const held = await holdFreePorts(host, count, range);
  await held.release();
  return held.ports;
}

/**
 * A free port on `host`, for a process to listen on soon (see the head of this file).
 * @param range where to draw from; by default the ports below this machine's ephemeral range.
 */
export async function freePort(host = '127.0.0.1', range?: DrawRange): Promise<number> {
  const [port] = await freePorts(host, 1, range);
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
