/**
 * A child process for the proxy's `close()` test: one HTTP exchange with `Connection: close`
 * through a {@link TcpFaultProxy}, then the proxy and the server closed. Nothing else is left,
 * so the process must exit by itself. The test bounds the wait and kills it: a leaked handle of
 * the proxy also kept its event loop spinning (a core busy), so no timer of its own would fire.
 */
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TcpFaultProxy } from '../../faults/tcp-fault-proxy.ts';

const server = createServer((_req, res) => {
  res.setHeader('Connection', 'close');
  res.end('hello');
});
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const proxy = await TcpFaultProxy.start({
  name: 'http',
  targetHost: '127.0.0.1',
  targetPort: (server.address() as AddressInfo).port,
});
const body = await new Promise<string>((resolve, reject) => {
  const req = request(
    { host: '127.0.0.1', port: proxy.port, agent: false, headers: { connection: 'close' } },
    (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => {
        resolve(text);
      });
    },
  );
  req.on('error', reject);
  req.end();
});
// The server's FIN has ended the proxy's connection to it; close() must still let it go.
await proxy.close();
await new Promise<void>((resolve) => {
  server.close(() => {
    resolve();
  });
});
process.stdout.write(`${body}\n`);
