// The request phase: turns the CheckRequest Envoy sends into RequestFacts, the plain data every later
// phase reads. Everything is capped before it is parsed, and anything ambiguous (two methods, a path
// that could mean two paths, too many headers) is `request_malformed` here, before identity is looked at.
import { randomUUID } from 'node:crypto';
import { deny, type Outcome, ok } from '../vocabulary/index.js';
import type { CheckRequest, HttpRequestAttrs } from '../wire/types.js';
import { DEFAULT_HEADER_LIMITS, type HeaderLimits, readHeaders } from './headers.js';
import { canonicalPath, MAX_PATH_BYTES } from './path.js';
import { DEFAULT_QUERY_LIMITS, parseQuery, type QueryLimits } from './query.js';
import { valueToJson } from './struct.js';
import type { PeerFacts, RequestBody, RequestFacts } from './types.js';

export interface RequestLimits extends HeaderLimits {
  readonly maxPathBytes: number;
  readonly maxQueryBytes: number;
  readonly maxQueryParameters: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = Object.freeze({
  ...DEFAULT_HEADER_LIMITS,
  maxPathBytes: MAX_PATH_BYTES,
  maxQueryBytes: DEFAULT_QUERY_LIMITS.maxBytes,
  maxQueryParameters: DEFAULT_QUERY_LIMITS.maxParameters,
});

/** Where Envoy's jwt_authn filter puts the payloads it verified (`payload_in_metadata`). */
export const JWT_AUTHN_NAMESPACE = 'envoy.filters.http.jwt_authn';
/** Envoy sets this on a body it cut at `max_request_bytes` (`allow_partial_message: true`). */
export const PARTIAL_BODY_HEADER = 'x-envoy-auth-partial-body';

const METHOD = /^[A-Z]{1,16}$/;
const MAX_REQUEST_ID_LENGTH = 128;

export function readRequest(check: CheckRequest, limits?: Partial<RequestLimits>): Outcome<RequestFacts> {
  const capped: RequestLimits = limits ? { ...DEFAULT_REQUEST_LIMITS, ...limits } : DEFAULT_REQUEST_LIMITS;
  const http = check?.attributes?.request?.http;
  if (http === undefined || http === null) {
    return deny('request_malformed', 'the check request carries no HTTP request attributes');
  }

  const headers = readHeaders(http, capped);
  if (!headers.ok) return headers;

  const method = readMethod(http, headers.value);
  if (!method.ok) return method;

  const target = onlyOne(http.path, headers.value.get(':path'), 'path');
  if (!target.ok) return target;
  const split = canonicalPath(target.value, capped.maxPathBytes);
  if (!split.ok) return split;
  const query = parseQuery(split.value.query, {
    maxBytes: capped.maxQueryBytes,
    maxParameters: capped.maxQueryParameters,
  } satisfies QueryLimits);
  if (!query.ok) return query;

  const jwtAuthnPayloads = readJwtAuthnPayloads(check);
  if (!jwtAuthnPayloads.ok) return jwtAuthnPayloads;
  const body = readBody(http, headers.value);
  if (!body.ok) return body;

  return ok({
    requestId: readRequestId(http, headers.value),
    method: method.value,
    path: split.value.path,
    query: query.value,
    headers: headers.value,
    body: body.value,
    contextExtensions: copyStrings(check.attributes?.context_extensions),
    jwtAuthnPayloads: jwtAuthnPayloads.value,
    peer: readPeer(check),
  });
}

/** The peer as Envoy describes the connection: only `attributes.source`, never a header. */
function readPeer(check: CheckRequest): PeerFacts {
  const source = check.attributes?.source;
  const principal = source?.principal;
  const certificate = source?.certificate;
  return {
    ...(typeof principal === 'string' && principal !== '' && { principal }),
    ...(typeof certificate === 'string' && certificate !== '' && { certificate }),
  };
}

/** `http.method`, or `:method` in raw-header mode; when both are present they must agree. */
function readMethod(http: HttpRequestAttrs, headers: ReadonlyMap<string, string>): Outcome<string> {
  const given = onlyOne(http.method, headers.get(':method'), 'method');
  if (!given.ok) return given;
  // Methods are case-sensitive (RFC 9110 §9.1): `post` is not POST, though some upstreams treat it as one,
  // so it is refused rather than decided as POST or as an unknown route.
  if (!METHOD.test(given.value)) {
    return deny('request_malformed', 'the HTTP method is not a token of 1-16 upper-case letters');
  }
  return ok(given.value);
}

/**
 * Envoy sends the method and path both as attributes and as pseudo-headers. Either alone is fine; two
 * different values mean something rewrote one of them, and we would not know which the upstream sees.
 */
function onlyOne(attribute: string | undefined, header: string | undefined, what: string): Outcome<string> {
  const fromAttribute = attribute ?? '';
  const fromHeader = header ?? '';
  if (fromAttribute !== '' && fromHeader !== '' && fromAttribute !== fromHeader) {
    return deny('request_malformed', `the request's ${what} attribute and :${what} header disagree`);
  }
  const value = fromAttribute !== '' ? fromAttribute : fromHeader;
  if (value === '') return deny('request_malformed', `the request has no ${what}`);
  return ok(value);
}

/** Logged and echoed in deny bodies, so only a short run of harmless characters survives. */
function readRequestId(http: HttpRequestAttrs, headers: ReadonlyMap<string, string>): string {
  for (const candidate of [headers.get('x-request-id'), http.id]) {
    const clean = sanitizeRequestId(candidate);
    if (clean !== '') return clean;
  }
  return randomUUID();
}

/**
 * Best-effort request id for a CheckRequest the request phase refused, so even a malformed request's deny
 * body and log line can be matched with Envoy's access log.
 */
export function requestIdOf(check: CheckRequest): string {
  const http = check.attributes?.request?.http;
  const header =
    http?.headers && Object.hasOwn(http.headers, 'x-request-id') ? http.headers['x-request-id'] : undefined;
  return sanitizeRequestId(header) || sanitizeRequestId(http?.id) || randomUUID();
}

export function sanitizeRequestId(value: string | undefined): string {
  if (typeof value !== 'string') return '';
  // Cut before cleaning too, so a 60 KiB header costs no more than a short one.
  return value
    .slice(0, MAX_REQUEST_ID_LENGTH * 8)
    .replace(/[^A-Za-z0-9._:-]/g, '')
    .slice(0, MAX_REQUEST_ID_LENGTH);
}

/**
 * The body, from `body` or (`pack_as_bytes: true`) `raw_body`, as sent: it is decoded only when a route reads
 * a location from it, after the caller is authenticated (security rule 10). Envoy fills exactly one; both at
 * once would leave us deciding on one while the upstream may receive the other, so that is refused, as
 * headers sent both as a map and as header_map are.
 */
function readBody(http: HttpRequestAttrs, headers: ReadonlyMap<string, string>): Outcome<RequestBody> {
  // Envoy strips a client-sent copy of this header; any value other than exactly `false` is read as cut.
  const flag = headers.get(PARTIAL_BODY_HEADER);
  const partial = flag !== undefined && flag.trim().toLowerCase() !== 'false';
  const body = nonEmpty(http.body);
  const raw = nonEmpty(http.raw_body);
  if (body !== undefined && raw !== undefined) {
    return deny('request_malformed', 'the body arrived both as body and as raw_body');
  }
  if (body !== undefined && typeof body !== 'string') return ok({ partial, content: body, envoyText: true });
  const content = body ?? raw;
  return ok(content === undefined ? { partial } : { partial, content });
}

/** proto3 sends "" (or no bytes) for an unset field: that is no body. */
function nonEmpty(value: string | Uint8Array | undefined | null): string | Uint8Array | undefined {
  return value === undefined || value === null || value.length === 0 ? undefined : value;
}

function readJwtAuthnPayloads(check: CheckRequest): Outcome<ReadonlyMap<string, unknown>> {
  const payloads = new Map<string, unknown>();
  const metadata = check.attributes?.metadata_context?.filter_metadata?.[JWT_AUTHN_NAMESPACE];
  if (metadata === undefined || metadata === null) return ok(payloads);
  for (const [key, value] of Object.entries(metadata.fields ?? {})) {
    const converted = valueToJson(value);
    if (!converted.ok) return deny('request_malformed', `Envoy's jwt_authn metadata: ${converted.problem}`);
    payloads.set(key, converted.value);
  }
  return ok(payloads);
}

function copyStrings(source: Record<string, string> | undefined): Readonly<Record<string, string>> {
  const copy: Record<string, string> = Object.create(null);
  for (const [key, value] of Object.entries(source ?? {})) {
    if (typeof value === 'string') copy[key] = value;
  }
  return Object.freeze(copy);
}
