/**
 * The logging surface the embedded services need: any pino logger (or child) fits, and tests can
 * pass a silent one.
 */
import type { Logger } from 'pino';

/** The four pino levels the embedded services log at. */
export type EmbeddedLogger = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;
