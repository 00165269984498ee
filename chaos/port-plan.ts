/**
 * What a chaos run listens on, in one place: chaos/environment.ts starts the services, proxies and
 * cluster from these constants, and `--ports LOW-HIGH` is checked against {@link portsNeeded},
 * counted from the same constants (it was a sum by hand, which a new proxy would have outgrown).
 */
import { BALANCER_ROUTE_LISTENERS, clusterPortCount } from '../bin/cluster.ts';

/**
 * The shared services (PostgreSQL, the queue Redis, Mosquitto), each with a TCP fault proxy in
 * front of it, and a proxy of every node's own in front of that.
 */
export const SHARED_SERVICES = ['postgres', 'redis', 'broker'] as const;

/** The Redlock quorum's Redis instances (each also behind a proxy of every node's own). */
export const REDLOCK_INSTANCES = 3;

/** The MQTT fault proxy between the workers and the broker's TCP proxy. */
const MQTT_PROXIES = 1;

/**
 * Ports a run of `apiNodes` and `workers` listens on: the shared services and their proxies, the
 * MQTT proxy, per node a proxy before each shared service and each Redlock Redis, per API node a
 * proxy before each listener the balancer reaches, and the cluster's own.
 */
export function portsNeeded(apiNodes: number, workers: number): number {
  const nodes = apiNodes + workers;
  return (
    2 * SHARED_SERVICES.length +
    MQTT_PROXIES +
    nodes * (SHARED_SERVICES.length + REDLOCK_INSTANCES) +
    apiNodes * BALANCER_ROUTE_LISTENERS.length +
    clusterPortCount(apiNodes, workers, REDLOCK_INSTANCES)
  );
}
