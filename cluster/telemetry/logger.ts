/**
 * The pino logger of a node: JSON lines, node id on every line, the trace and span ids of the
 * active span (so a line leads to its trace), key fields redacted. docs/observability.md lists
 * the fields for SIEM ingestion.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { logTraceFields } from './tracing.ts';

/**
 * Paths redacted wherever they appear: key material must never reach logs (DESIGN R8), even when
 * a whole object is logged by mistake.
 */
export const REDACTED_PATHS = [
  'key',
  'keys',
  '*.key',
  'privateKey',
  '*.privateKey',
  'secret',
  '*.secret',
  'password',
  '*.password',
  'passphrase',
  '*.passphrase',
  'sealed',
  '*.sealed',
  'clear',
  '*.clear',
  'commandKey',
  '*.commandKey',
  'payload',
  '*.payload',
  'binaryData',
  '*.binaryData',
  'protectedBinaryData',
  '*.protectedBinaryData',
  'authorization',
  '*.authorization',
  'headers.authorization',
];

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  readonly level: LevelWithSilent;
  readonly nodeId: string;
  /** Where lines go (default stdout); tests capture them. */
  readonly destination?: NodeJS.WritableStream;
}

/** Creates the process logger. */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: { node: options.nodeId },
      // trace_id / span_id of the active span; nothing when there is none.
      mixin: logTraceFields,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    ...(options.destination === undefined ? [] : [options.destination]),
  );
}
