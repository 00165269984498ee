/** Telemetry set-up shared by every process. */
export { createLogger, REDACTED_PATHS, type LoggerOptions } from './logger.ts';
export { HealthServer, type HealthServerOptions, type ReadinessResult } from './health-server.ts';
