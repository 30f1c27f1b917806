// The one canonical form of a request path (DESIGN.md security rule 2). Routes are matched on it, so
// anything an upstream could read differently from us (encoded slashes, dot segments, `;` parameters,
// double encoding, control characters) is refused as `request_malformed` instead of being guessed at.
import { deny, type Outcome, ok } from '../vocabulary/index.js';

/** Longest path (without its query) we read, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 8 * 1024;

export interface CanonicalPath {
  /** Percent-decoded path, segments joined by `/`; never contains `//`, `.`/`..` segments or `%`. */
  readonly path: string;
  /** Everything after the first `?`, still encoded (query.ts parses it); '' when there is none. */
  readonly query: string;
}

export type Decoded =
  | { readonly ok: true; readonly value: string }
  | { readonly ok: false; readonly problem: string };

/**
 * Splits a raw request target (`:path`, query included) into its canonical path and raw query, or says
 * precisely why it is ambiguous. Never goes through the WHATWG URL parser with a base: `//host/x` would become a host.
 */
export function canonicalPath(raw: string, maxBytes = MAX_PATH_BYTES): Outcome<CanonicalPath> {
  const queryAt = raw.indexOf('?');
  const rawPath = queryAt === -1 ? raw : raw.slice(0, queryAt);
  const query = queryAt === -1 ? '' : raw.slice(queryAt + 1);

  if (rawPath.length > maxBytes || Buffer.byteLength(rawPath, 'utf8') > maxBytes) {
    return malformed(`path is longer than ${maxBytes} bytes`);
  }
  // A fragment is never sent by a conforming client; if it is, upstream and we may cut it differently.
  if (raw.includes('#')) return malformed('path contains a fragment (#)');
  if (rawPath === '') return malformed('path is empty');
  if (!rawPath.startsWith('/')) return malformed('path does not start with /');

  const rawProblem = findRawProblem(rawPath);
  if (rawProblem !== undefined) return malformed(rawProblem);

  const segments = rawPath.split('/');
  if (rawPath === '/') return ok({ path: '/', query });
  const decoded: string[] = [];
  // segments[0] is the empty string before the leading slash.
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i] ?? '';
    if (segment === '') {
      return malformed(
        i === segments.length - 1 ? 'path ends with a slash' : 'path contains an empty segment (//)',
      );
    }
    const result = percentDecode(segment);
    if (!result.ok) return malformed(`path ${result.problem}`);
    // Checked after decoding, so `%2e%2E` and `.%2e` are the dot segments they decode to.
    if (result.value === '.' || result.value === '..') return malformed('path contains a dot segment');
    if (hasControlCharacter(result.value)) return malformed('path contains a control character');
    decoded.push(result.value);
  }
  return ok({ path: '/' + decoded.join('/'), query });
}

/** Characters and escapes that make a raw path ambiguous, before any decoding. */
function findRawProblem(rawPath: string): string | undefined {
  for (let i = 0; i < rawPath.length; i++) {
    const code = rawPath.charCodeAt(i);
    if (code === 0x5c) return 'path contains a backslash';
    if (code === 0x3b) return 'path contains a ; path parameter';
    if (code === 0x20) return 'path contains a raw space';
    if (isControl(code)) return 'path contains a control character';
    if (code !== 0x25) continue;
    const byte = hexByte(rawPath, i + 1);
    if (byte === undefined) return 'path contains bad percent-encoding';
    const problem = encodedByteProblem(byte);
    if (problem !== undefined) return problem;
    i += 2;
  }
  return undefined;
}

/** Bytes that must not arrive percent-encoded in a path: each would decode into a different path. */
function encodedByteProblem(byte: number): string | undefined {
  switch (byte) {
    case 0x2f:
      return 'path contains an encoded slash (%2F)';
    case 0x5c:
      return 'path contains an encoded backslash (%5C)';
    case 0x25:
      return 'path contains an encoded percent sign (%25), a sign of double encoding';
    case 0x3b:
      return 'path contains an encoded ; (%3B)';
    case 0x3f:
      return 'path contains an encoded ? (%3F)';
    case 0x23:
      return 'path contains an encoded # (%23)';
    default:
      // Bytes 0x80-0x9F are UTF-8 continuation bytes here, not C1 controls: those are caught after decoding.
      return byte < 0x20 || byte === 0x7f ? 'path contains an encoded control character' : undefined;
  }
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Percent-decodes `text` (and `+` as a space when asked, for query strings). Fails on `%` not followed by
 * two hex digits and on bytes that are not valid UTF-8 (overlong `%C0%AF`, `%FF`, cut sequences).
 */
export function percentDecode(text: string, plusAsSpace = false): Decoded {
  if (!text.includes('%') && !(plusAsSpace && text.includes('+'))) return { ok: true, value: text };
  const source = plusAsSpace ? text.replaceAll('+', ' ') : text;
  const parts: Uint8Array[] = [];
  let runStart = 0;
  for (let i = 0; i < source.length; i++) {
    if (source.charCodeAt(i) !== 0x25) continue;
    const byte = hexByte(source, i + 1);
    if (byte === undefined) return { ok: false, problem: 'contains bad percent-encoding' };
    if (i > runStart) parts.push(Buffer.from(source.slice(runStart, i), 'utf8'));
    parts.push(Uint8Array.of(byte));
    i += 2;
    runStart = i + 1;
  }
  if (runStart < source.length) parts.push(Buffer.from(source.slice(runStart), 'utf8'));
  try {
    return { ok: true, value: fatalUtf8.decode(Buffer.concat(parts)) };
  } catch {
    return { ok: false, problem: 'contains percent-encoded bytes that are not valid UTF-8' };
  }
}

/** C0 controls, DEL and C1 controls: never meaningful in a path or a query, often a parser trick. */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (isControl(text.charCodeAt(i))) return true;
  }
  return false;
}

function isControl(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f);
}

function hexByte(text: string, at: number): number | undefined {
  const high = hexDigit(text.charCodeAt(at));
  const low = hexDigit(text.charCodeAt(at + 1));
  return high === undefined || low === undefined ? undefined : high * 16 + low;
}

function hexDigit(code: number): number | undefined {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x37;
  if (code >= 0x61 && code <= 0x66) return code - 0x57;
  return undefined;
}

function malformed(detail: string) {
  return deny('request_malformed', detail);
}
