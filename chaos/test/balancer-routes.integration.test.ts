/**
 * The balancer's routes to an API node follow the node's life (chaos/balancer-routes.ts): once a
 * node is killed, a call through the load balancer goes to another node instead of being cut,
 * as it is in a deployment without the suite's proxies; and the route listens again on its own
 * port before the node restarts.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { LoadBalancer } from '../../bin/lb/index.ts';
import { httpJson } from '../../bin/test/support/http-json.ts';
import { BalancerRoutes } from '../balancer-routes.ts';
import { TcpFaultProxy } from '../faults/tcp-fault-proxy.ts';

/** An "API node": answers every request with its name. */
async function node(name: string, port = 0): Promise<Server> {
  const server = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ node: name }));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return server;
}

const portOf = (server: Server): number => (server.address() as AddressInfo).port;

/** Whether a TCP connect to `port` succeeds, or the error code. */
function connects(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      resolve(err.code ?? err.message);
    });
  });
}

void describe('BalancerRoutes', () => {
  void it('a killed node refuses through its route, so the balancer fails over at once', async () => {
    const a = await node('a');
    let b = await node('b');
    const bPort = portOf(b);
    const via = (name: string, target: number): Promise<TcpFaultProxy> =>
      TcpFaultProxy.start({ name, targetHost: '127.0.0.1', targetPort: target });
    const pa = await via('lb-a-http', portOf(a));
    const pb = await via('lb-b-http', bPort);
    const routes = new BalancerRoutes();
    routes.add('a', pa);
    routes.add('b', pb);
    const backend = (name: string, port: number) => ({
      name,
      host: '127.0.0.1',
      ports: { http: port },
      healthUrl: `http://127.0.0.1:${port}/readyz`,
    });
    // Probes far apart: only the balancer's own connects can take node b out during the test.
    const lb = await LoadBalancer.start({
      listeners: [{ name: 'http', host: '127.0.0.1', port: 0 }],
      backends: [backend('a', pa.port), backend('b', pb.port)],
      health: { intervalMs: 600_000 },
    });
    const base = `http://127.0.0.1:${lb.address('http').port}`;
    const routePort = pb.port;
    try {
      // Node b dies as a SIGKILL leaves it: its port closed, its connections gone.
      b.closeAllConnections();
      await new Promise((r) => b.close(r));
      await routes.down('b');
      // Round robin offers node b every other call: each must fail over to node a.
      const answers: string[] = [];
      for (let i = 0; i < 6; i++) {
        const res = await httpJson(base, 'GET', '/v1/anything', { timeoutMs: 5000 }).catch(
          (err: unknown) => ({ status: 0, json: { node: (err as Error).message } }),
        );
        answers.push(`${res.status} ${String(res.json['node'])}`);
      }
      assert.deepEqual(answers, Array(6).fill('200 a'));
      assert.equal(await connects(routePort), 'ECONNREFUSED');
      // Before it restarts, its route listens again, on the port the balancer knows.
      await routes.up('b');
      b = await node('b', bPort);
      assert.equal(await connects(routePort), 'connected');
    } finally {
      await lb.close(0);
      await Promise.all([pa.close(), pb.close()]);
      b.closeAllConnections();
      a.closeAllConnections();
      await Promise.all([new Promise((r) => a.close(r)), new Promise((r) => b.close(r))]);
    }
  });
});
