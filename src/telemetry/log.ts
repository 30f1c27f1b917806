// Structured JSON logs (pino). Redaction is configured once here, so a token, key or body can't reach a log
// line by accident: callers log decisions and facts by field, and these paths are censored wherever they appear.
import { type Logger, pino } from 'pino';

export const REDACTED_PATHS = [
  'token',
  '*.token',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'body',
  '*.body',
  'key',
  '*.key',
  'jwk',
  '*.jwk',
];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export function createLogger(level: LogLevel = 'info', destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'scopegate' },
      formatters: { level: (label) => ({ level: label }) },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    // pino.destination writes synchronously only when asked; the default is async, so logging never blocks Check.
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
