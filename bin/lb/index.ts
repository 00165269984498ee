/** The layer-4 load balancer of local clusters (`npm run cluster`, cluster tests). */
export {
  LoadBalancer,
  type LbBackend,
  type LbBackendStatus,
  type LbEvent,
  type LbListener,
  type LoadBalancerOptions,
} from './load-balancer.ts';
export {
  DEFAULT_HEALTH_CHECK,
  HealthChecker,
  probeReadiness,
  type HealthChange,
  type HealthCheckOptions,
  type HealthState,
  type HealthTarget,
} from './health-checker.ts';
export { TcpProxy, type ProxyStats, type ProxyTarget, type TcpProxyOptions } from './tcp-proxy.ts';
