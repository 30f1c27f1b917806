// Reads a CheckRequest's headers into one lower-case name → value map, whichever way Envoy sent them:
// the `headers` map (repeated headers already joined with `,`), or `header_map.headers[]` when the filter
// sets `encode_raw_headers: true` (one entry per header line, repeats not merged, values in `raw_value`).
import { type Denial, deny, type Outcome, ok } from '../vocabulary/index.js';
import type { HeaderValue, HttpRequestAttrs } from '../wire/types.js';

export interface HeaderLimits {
  /** Most header entries read (before repeats are joined). */
  readonly maxHeaders: number;
  /** Most bytes of names plus values in total. */
  readonly maxHeaderBytes: number;
}

export const DEFAULT_HEADER_LIMITS: HeaderLimits = Object.freeze({
  maxHeaders: 200,
  maxHeaderBytes: 64 * 1024,
});

/**
 * Headers by lower-case name. A name seen twice (raw mode, or a map with two spellings of one name) is
 * joined with `,` exactly as Envoy joins them in map mode, so `Authorization` sent twice reads the same
 * either way and the identity phase can refuse it.
 */
export function readHeaders(
  http: HttpRequestAttrs,
  limits: Partial<HeaderLimits> = DEFAULT_HEADER_LIMITS,
): Outcome<Map<string, string>> {
  const maxHeaders = limits.maxHeaders ?? DEFAULT_HEADER_LIMITS.maxHeaders;
  const maxHeaderBytes = limits.maxHeaderBytes ?? DEFAULT_HEADER_LIMITS.maxHeaderBytes;
  const mapEntries = Object.entries(http.headers ?? {});
  const rawEntries = http.header_map?.headers ?? [];
  // Envoy fills exactly one of the two; both at once is not something Envoy sends, so we do not pick one.
  if (mapEntries.length > 0 && rawEntries.length > 0) {
    return deny('request_malformed', 'headers arrived both as a map and as header_map');
  }
  const count = mapEntries.length + rawEntries.length;
  if (count > maxHeaders) return deny('request_malformed', `request has more than ${maxHeaders} headers`);

  const headers = new Map<string, string>();
  let bytes = 0;
  const add = (rawName: string, value: string): Denial | undefined => {
    if (rawName === '') return deny('request_malformed', 'a request header has no name');
    const name = rawName.toLowerCase();
    const seen = headers.get(name);
    headers.set(name, seen === undefined ? value : `${seen},${value}`);
    return undefined;
  };
  const tooBig = () => oversized(mapEntries, rawEntries, maxHeaderBytes);

  for (const [name, value] of mapEntries) {
    const text = typeof value === 'string' ? value : '';
    bytes += Buffer.byteLength(name, 'utf8') + Buffer.byteLength(text, 'utf8');
    if (bytes > maxHeaderBytes) return tooBig();
    const refused = add(name, text);
    if (refused) return refused;
  }
  for (const header of rawEntries) {
    const name = header.key ?? '';
    const raw = header.raw_value;
    const hasRaw = raw !== undefined && raw !== null && raw.length > 0;
    // Counted before decoding, so an oversized value is refused without being copied.
    bytes +=
      Buffer.byteLength(name, 'utf8') + (hasRaw ? raw.length : Buffer.byteLength(header.value ?? '', 'utf8'));
    if (bytes > maxHeaderBytes) return tooBig();
    const refused = add(name, hasRaw ? utf8OrReplacement(raw) : (header.value ?? ''));
    if (refused) return refused;
  }
  return ok(headers);
}

/**
 * Only the named headers (lower-case names) of a raw `header_map`, read as readHeaders reads them (repeats
 * joined with `,`, `raw_value` decoded), without decoding the others: a few names wanted of every request
 * (the trace context). Undefined beyond the number of headers readHeaders reads; the byte cap is not checked.
 */
export function pickRawHeaders(
  entries: readonly HeaderValue[],
  names: ReadonlySet<string>,
): ReadonlyMap<string, string> | undefined {
  if (entries.length > DEFAULT_HEADER_LIMITS.maxHeaders) return undefined;
  const picked = new Map<string, string>();
  for (const header of entries) {
    const name = header.key?.toLowerCase();
    if (name === undefined || !names.has(name)) continue;
    const raw = header.raw_value;
    const value =
      raw !== undefined && raw !== null && raw.length > 0 ? utf8OrReplacement(raw) : (header.value ?? '');
    const seen = picked.get(name);
    picked.set(name, seen === undefined ? value : `${seen},${value}`);
  }
  return picked;
}

/**
 * Headers over the cap. When a bearer token is what makes them too large (the rest fits), the token is the
 * malformed part: 401 token_invalid, as for any oversized token (RFC 6750 §3.1), not 400 for the request.
 */
function oversized(
  mapEntries: ReadonlyArray<[string, unknown]>,
  rawEntries: readonly HeaderValue[],
  maxHeaderBytes: number,
): Denial {
  let others = 0;
  let bearer = false;
  const count = (name: string, bytes: number, start: () => string) => {
    if (name.toLowerCase() === 'authorization' && /^bearer /i.test(start())) bearer = true;
    else others += Buffer.byteLength(name, 'utf8') + bytes;
  };
  for (const [name, value] of mapEntries) {
    const text = typeof value === 'string' ? value : '';
    count(name, Buffer.byteLength(text, 'utf8'), () => text.slice(0, 7));
  }
  for (const { key = '', value = '', raw_value: raw } of rawEntries) {
    const hasRaw = raw !== undefined && raw !== null && raw.length > 0;
    count(key, hasRaw ? raw.length : Buffer.byteLength(value, 'utf8'), () =>
      hasRaw ? Buffer.from(raw.subarray(0, 7)).toString('latin1') : value.slice(0, 7),
    );
  }
  if (bearer && others <= maxHeaderBytes) {
    return deny('token_invalid', `the bearer token makes the request headers exceed ${maxHeaderBytes} bytes`);
  }
  return deny('request_malformed', `request headers exceed ${maxHeaderBytes} bytes`);
}

/**
 * `raw_value` wins when present: it is what Envoy sets in raw mode. Bytes that are not UTF-8 become U+FFFD,
 * which is what the same header would look like had it arrived as a proto string in map mode.
 */
function utf8OrReplacement(raw: Uint8Array): string {
  return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('utf8');
}
