/**
 * TCP ports for the embedded services.
 *
 * The rule for `npm start`: a port that is taken is either a clear error or a free port that the
 * caller prints (the returned `fallbackFrom` says which port was wanted), never a stack trace.
 * `onTaken: 'fallback'` suits defaults (1883 is often held by a system Mosquitto); `'fail'` suits
 * a port the operator asked for explicitly.
 */
import { createServer, type Server } from 'node:net';
import { C2Error } from '../errors.ts';

/** What to do when the wanted port is taken: pick a free one, or throw. */
export type PortTakenPolicy = 'fallback' | 'fail';

/** Where to listen, and what to do when the port is taken. */
export interface PortRequest {
  /** Interface address, e.g. `127.0.0.1`. */
  readonly host: string;
  /** Wanted port; 0 asks the OS for any free port (no fallback is then reported). */
  readonly port: number;
  /** Default `'fallback'`. */
  readonly onTaken?: PortTakenPolicy;
  /** What listens there, for messages ("embedded MQTT broker"). */
  readonly what: string;
}

/** The port obtained for a {@link PortRequest}. */
export interface PortChoice {
  readonly port: number;
  /** Set when the wanted port was taken and `port` is a free one used instead. */
  readonly fallbackFrom?: number;
}

/** Listen errors that mean "this port is not usable by us" rather than "something is broken". */
const unusablePortCodes = new Set(['EADDRINUSE', 'EACCES']);

/**
 * True when nothing listens on `host:port` and we may bind it (an unprivileged process cannot bind
 * ports below 1024, which also reads as not free). The answer can be stale a moment later; prefer
 * {@link listenOrFallback} when you own the listening socket.
 * @throws C2Error `C2_CONFIG` when `host` is not a local address or the port is out of range
 */
export async function isPortFree(host: string, port: number): Promise<boolean> {
  const probe = createServer();
  try {
    await listen(probe, host, port);
  } catch (err) {
    if (unusablePortCodes.has(errorCode(err))) return false;
    throw listenError(`port probe`, host, port, err);
  }
  await closeServer(probe);
  return true;
}

/**
 * A port that was free on `host` a moment ago (the OS picks it).
 * @throws C2Error `C2_CONFIG` when `host` is not a local address
 */
export async function findFreePort(host: string): Promise<number> {
  const probe = createServer();
  try {
    await listen(probe, host, 0);
  } catch (err) {
    throw listenError('port probe', host, 0, err);
  }
  const port = boundPort(probe);
  await closeServer(probe);
  return port;
}

/**
 * Chooses the port for a service that binds it itself (a child process such as PostgreSQL): the
 * wanted port when free, otherwise a free one (`onTaken: 'fallback'`) or an error. The child can
 * still lose a race for the port; callers retry once on "address in use".
 * @throws C2Error `C2_CONFIG` when the port is taken and `onTaken` is `'fail'`, or `host` is
 *   not a local address
 */
export async function choosePort(request: PortRequest): Promise<PortChoice> {
  const { host, port, what } = request;
  if (port === 0) return { port: await findFreePort(host) };
  if (await isPortFree(host, port)) return { port };
  if ((request.onTaken ?? 'fallback') === 'fail') throw portTakenError(what, host, port);
  return { port: await findFreePort(host), fallbackFrom: port };
}

/**
 * Makes `server` listen on the wanted port, or on a free one when that is taken and the policy
 * is `'fallback'`. Binding directly (instead of probing first) leaves no race.
 * @throws C2Error `C2_CONFIG` when the port is taken and `onTaken` is `'fail'`, or listening
 *   fails for another reason (unknown host, port out of range)
 */
export async function listenOrFallback(server: Server, request: PortRequest): Promise<PortChoice> {
  const { host, port, what } = request;
  try {
    await listen(server, host, port);
    return { port: boundPort(server) };
  } catch (err) {
    if (port === 0 || !unusablePortCodes.has(errorCode(err))) {
      throw listenError(what, host, port, err);
    }
    if ((request.onTaken ?? 'fallback') === 'fail') throw portTakenError(what, host, port, err);
  }
  try {
    await listen(server, host, 0);
  } catch (err) {
    throw listenError(what, host, 0, err);
  }
  return { port: boundPort(server), fallbackFrom: port };
}

/** One line for the start-up banner: "port 1883 on 127.0.0.1 was taken; using 40311". */
export function describeFallback(host: string, choice: PortChoice): string | undefined {
  return choice.fallbackFrom === undefined
    ? undefined
    : `port ${choice.fallbackFrom} on ${host} was taken; using ${choice.port}`;
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    // exclusive: a port shared through the cluster module would look free but is not ours.
    server.listen({ host, port, exclusive: true });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) =>
    server.close(() => {
      resolve();
    }),
  );
}

function boundPort(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === 'string') {
    throw new C2Error('C2_INTERNAL', 'a TCP server reported no port after listening');
  }
  return address.port;
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? '';
}

function portTakenError(what: string, host: string, port: number, cause?: unknown): C2Error {
  return new C2Error(
    'C2_CONFIG',
    `${what}: port ${port} on ${host} is already in use (choose another port, or stop what ` +
      `listens there)`,
    { cause, details: { host, port } },
  );
}

function listenError(what: string, host: string, port: number, cause: unknown): C2Error {
  const reason = errorCode(cause) || (cause instanceof Error ? cause.message : String(cause));
  return new C2Error('C2_CONFIG', `${what}: cannot listen on ${host}:${port} (${reason})`, {
    cause,
    details: { host, port },
  });
}
