/** A dependency-free Redis liveness probe, for processes this repository starts. */
import { connect } from 'node:net';

/** Sends PING to a Redis server; resolves true on +PONG. Never rejects. */
export function pingRedis(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolvePing) => {
    const socket = connect({ host, port });
    let answer = '';
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolvePing(ok);
    };
    const timer = setTimeout(() => {
      done(false);
    }, timeoutMs);
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
      if (answer.includes('\r\n')) done(answer.startsWith('+PONG'));
    });
    socket.on('error', () => {
      done(false);
    });
  });
}
