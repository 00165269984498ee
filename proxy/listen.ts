/** Opening a server's port, with errors that name the setting and say what is wrong. */
import type { Server } from 'node:net';
import { ProxyError, ProxyErrorCode } from './errors.ts';

/**
 * Listens on `host:port` (port 0: a free port).
 * @param setting - the configuration the address comes from (`listen`, `health`), for messages
 * @throws ProxyError `PROXY_LISTEN` (port in use, no permission); `PROXY_CONFIG` (a host that is
 *   not an address of this machine)
 */
export async function listenOn(
  server: Server,
  host: string,
  port: number,
  setting: string,
): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    throw listenError(err, host, port, setting);
  }
}

function listenError(err: unknown, host: string, port: number, setting: string): ProxyError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const at = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  switch (code) {
    case 'EADDRINUSE':
      return new ProxyError(
        ProxyErrorCode.Listen,
        `${setting}.port: ${at} is already in use by another process (another proxy with this configuration?); stop it or choose another ${setting}.port`,
        { cause: err },
      );
    case 'EACCES':
    case 'EPERM':
      return new ProxyError(
        ProxyErrorCode.Listen,
        `${setting}.port: no permission to listen on ${at} (${code}; ports below 1024 need privileges)`,
        { cause: err },
      );
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ProxyError(
        ProxyErrorCode.Config,
        `${setting}.host: '${host}' is not an address of this machine (${code})`,
        { cause: err },
      );
    default:
      return new ProxyError(
        ProxyErrorCode.Listen,
        `${setting}: cannot listen on ${at}: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
  }
}
