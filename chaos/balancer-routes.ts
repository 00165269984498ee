/**
 * The TCP fault proxies between the load balancer and each API node (gRPC, HTTP, health: the
 * balancer reaches a node only through them, so that `partition-node` cuts it off the balancer
 * too), made to follow the node's life. A proxy outlives its node: left listening in front of a
 * killed node, it accepted every connection the balancer made and closed it at once, so the
 * balancer, which fails over to another node only when a connect is refused, handed its callers
 * cut connections ("socket hang up") until its readiness probes took the node out, a few hundred
 * milliseconds later, and more on a loaded machine. Nothing in the real deployment does that: the
 * ports of a killed node refuse connections at once. That alone could put `api-crash` over its
 * availability budget (I9) in a short run.
 */
import type { TcpFaultProxy } from './faults/tcp-fault-proxy.ts';

/** The balancer's routes to every API node, by node name. */
export class BalancerRoutes {
  readonly #routes = new Map<string, TcpFaultProxy[]>();

  /** Registers one proxy of `node`'s route. */
  add(node: string, proxy: TcpFaultProxy): void {
    const list = this.#routes.get(node) ?? [];
    list.push(proxy);
    this.#routes.set(node, list);
  }

  /** `node` was killed: its routes refuse connections, as the node's own ports now do. */
  async down(node: string): Promise<void> {
    await Promise.all((this.#routes.get(node) ?? []).map((p) => p.listening(false)));
  }

  /**
   * `node` is about to start (again): its routes accept connections, so that the balancer's
   * probes find it once it is ready. A no-op for a node that is not an API node.
   * @throws Error when a route's port cannot be bound again ({@link TcpFaultProxy.listening})
   */
  async up(node: string): Promise<void> {
    await Promise.all((this.#routes.get(node) ?? []).map((p) => p.listening(true)));
  }
}
