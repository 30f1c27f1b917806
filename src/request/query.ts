// Parses a request's query string into name → values, with the same strict percent-decoding as the path:
// a query is where a bearer token or a location may come from, so a value we cannot read unambiguously is
// refused rather than guessed at.
import { deny, type Outcome, ok } from '../vocabulary/index.js';
import { hasControlCharacter, percentDecode } from './path.js';

export interface QueryLimits {
  /** Most `name=value` pairs read; more is refused, not truncated (a truncated query could hide a value). */
  readonly maxParameters: number;
  /** Longest raw query string, in UTF-8 bytes (room for an 8 KiB token plus a few short parameters). */
  readonly maxBytes: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = Object.freeze({ maxParameters: 100, maxBytes: 16 * 1024 });

/**
 * `a=b&c=d&a=e` → `{a: [b, e], c: [d]}`. `+` is a space; a name without `=` has the value ''; empty pieces
 * (`a=1&&b=2`) are skipped. Repeated names keep every value in order, so callers can refuse duplicates.
 */
export function parseQuery(
  raw: string,
  limits: Partial<QueryLimits> = {},
): Outcome<ReadonlyMap<string, readonly string[]>> {
  const { maxParameters, maxBytes } = { ...DEFAULT_QUERY_LIMITS, ...limits };
  const query = new Map<string, string[]>();
  if (raw === '') return ok(query);
  if (raw.length > maxBytes || Buffer.byteLength(raw, 'utf8') > maxBytes) {
    return deny('request_malformed', `query string is longer than ${maxBytes} bytes`);
  }
  const pieces = raw.split('&').filter((piece) => piece !== '');
  if (pieces.length > maxParameters) {
    return deny('request_malformed', `query string has more than ${maxParameters} parameters`);
  }
  for (const piece of pieces) {
    const equals = piece.indexOf('=');
    const name = percentDecode(equals === -1 ? piece : piece.slice(0, equals), true);
    const value = percentDecode(equals === -1 ? '' : piece.slice(equals + 1), true);
    if (!name.ok) return deny('request_malformed', `query string ${name.problem}`);
    if (!value.ok) return deny('request_malformed', `query string ${value.problem}`);
    if (hasControlCharacter(name.value) || hasControlCharacter(value.value)) {
      return deny('request_malformed', 'query string contains a control character');
    }
    const values = query.get(name.value);
    if (values === undefined) query.set(name.value, [value.value]);
    else values.push(value.value);
  }
  return ok(query);
}
