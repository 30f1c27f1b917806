// Structured JSON logs (pino). Redaction is configured once here, so a token, key or body can't reach a log
// line by accident: callers log decisions and facts by field, and these paths are censored wherever they appear.
import { type Logger, pino } from 'pino';
import type { LogLevel } from '../config/settings.js';
import type { Decision, DecisionLabel } from '../vocabulary/index.js';

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

/**
 * One line per deny (and dry-run deny) at info; allows only at debug, so busy gateways log what matters. The
 * detail says what the caller was not told (a 401 names no audience; this line does).
 */
export function logDecision(
  log: Logger,
  decision: Decision,
  label: DecisionLabel,
  requestId: string,
  seconds: number,
  /** The Check's trace span, when tracing is on: its ids join the line to the trace. */
  span?: { readonly traceId: string; readonly spanId: string },
): void {
  const allowed = label === 'allow';
  if (allowed ? !log.isLevelEnabled('debug') : !log.isLevelEnabled('info')) return;
  const entry = {
    request_id: requestId,
    decision: label,
    reason: decision.reason,
    policy: decision.policy,
    route: decision.route,
    subject: decision.subject,
    client: decision.client,
    issuer: decision.issuer,
    peer: decision.peer,
    missing: decision.missing,
    detail: decision.detail,
    policy_revision: decision.revision,
    duration_ms: Math.round(seconds * 1e6) / 1e3,
    trace_id: span?.traceId,
    span_id: span?.spanId,
  };
  if (allowed) log.debug(entry, 'decision');
  else log.info(entry, 'decision');
}
