/** Telemetry set-up shared by every process. */
export { createLogger, REDACTED_PATHS, type LoggerOptions } from './logger.ts';
