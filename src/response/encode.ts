// Decision → CheckResponse. Everything the caller sees (HTTP status, WWW-Authenticate, JSON body, gRPC
// status) is read from the REASONS table; this file only lays it out in Envoy's message shapes.

import { fixHints } from '../decision/hints.js';
import type { Decision } from '../vocabulary/index.js';
import { decisionLabel, GrpcCode, identityTextProblem, REASONS } from '../vocabulary/index.js';
import type { CheckResponse, HeaderValueOption, ProtoStruct } from '../wire/types.js';

/** Identity headers scopegate sets for the upstream; any client-sent `x-scopegate-*` is stripped. */
export const IDENTITY_HEADER_PREFIX = 'x-scopegate-';

export interface ResponseContext {
  readonly requestId: string;
  readonly realm: string;
  /** Lower-case names of the request's headers, to strip client-sent `x-scopegate-*`. */
  readonly requestHeaderNames: Iterable<string>;
  /**
   * Add what to change ("request scope inventory.read as well") to 403 deny bodies: `hints` and the end of
   * `error_description`. Off by default: it names policy internals (roles, clients, subjects) to the caller.
   * Never for 401/400, whose caller is not authenticated.
   */
  readonly hints?: boolean;
}

// Envoy < 1.37 reads only the deprecated `append` BoolValue; newer Envoy also reads append_action.
function overwrite(key: string, value: string): HeaderValueOption {
  return { header: { key, value }, append: { value: false }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' };
}

/**
 * An identity header, byte for byte: a proto string is its UTF-8 bytes on the wire, and Envoy's ext_authz
 * copies `value` as it is (it ignores `raw_value` in an OK response: an e2e test through Envoy holds this).
 * The identity phase refused every value a header cannot carry verbatim, so one arriving here anyway is a
 * bug, and a bug must deny (the caller turns the throw into internal_error).
 */
function identityHeader(key: string, value: string): HeaderValueOption {
  if (identityTextProblem(value) !== undefined)
    throw new Error(`${key} would not reach the upstream verbatim`);
  return overwrite(key, value);
}

/** A header of an answer as the upstream (or client) receives it: `raw_value`'s bytes win over `value`. */
export function headerValueText(header: {
  readonly value?: string;
  readonly raw_value?: Uint8Array;
}): string {
  const raw = header.raw_value;
  return raw !== undefined && raw.length > 0 ? Buffer.from(raw).toString('utf8') : (header.value ?? '');
}

/** RFC 6750 §3: quoted values may not contain `"` or `\`, and only printable ASCII. */
function quotable(text: string): string {
  return text.replace(/[^\x20-\x7e]|["\\]/g, '?');
}

/**
 * Client-sent identity headers, in either spelling: Envoy forwards `x_scopegate_subject` by default, and
 * CGI-style upstreams (WSGI, PHP, Rack) read it exactly like `x-scopegate-subject`.
 */
export function isIdentityHeader(name: string): boolean {
  return name.replaceAll('_', '-').startsWith(IDENTITY_HEADER_PREFIX);
}

export function wwwAuthenticate(decision: Decision, realm: string): string | undefined {
  const spec = REASONS[decision.reason];
  if (spec.challenge === null) return undefined;
  const params = [`realm="${quotable(realm)}"`];
  if (spec.challenge !== 'bare') {
    params.push(`error="${spec.challenge}"`, `error_description="${quotable(spec.summary)}"`);
    const scopes = decision.missing?.scopes;
    if (spec.challenge === 'insufficient_scope' && scopes && scopes.length > 0) {
      params.push(`scope="${quotable(scopes.join(' '))}"`);
    }
  }
  return `Bearer ${params.join(', ')}`;
}

function stringStruct(entries: Record<string, string | undefined>): ProtoStruct {
  const fields: NonNullable<ProtoStruct['fields']> = {};
  for (const [key, value] of Object.entries(entries)) {
    if (value !== undefined) fields[key] = { string_value: value.toWellFormed() };
  }
  return { fields };
}

/** What Envoy's access log can read under `envoy.filters.http.ext_authz`. */
function metadataOf(decision: Decision): ProtoStruct {
  return stringStruct({
    decision: decisionLabel(decision),
    reason: decision.reason,
    policy: decision.policy,
    route: decision.route,
    subject: decision.subject,
    issuer: decision.issuer,
    peer: decision.peer,
    policy_revision: decision.revision,
  });
}

/**
 * The deny body. Only a 403 (an authenticated caller) hears the specifics; 401, 400 and 503 answers give the
 * reason code and its generic sentence, never the policy's algorithms, audiences, field names or route
 * (security rule 10). The decision's detail stays in the log line and in `explain`.
 */
export function denyBody(decision: Decision, requestId: string, withHints = false): string {
  const spec = REASONS[decision.reason];
  const authenticated = spec.http === 403;
  const description = authenticated ? decision.detail || spec.summary : spec.summary;
  const hints =
    withHints && authenticated
      ? fixHints(decision.reason, decision.missing, {
          subject: decision.subject,
          client: decision.client,
          issuer: decision.issuer,
        })
      : [];
  return JSON.stringify({
    error: spec.error,
    error_description: hints.length > 0 ? `${description}; to fix: ${hints.join('; ')}` : description,
    reason: decision.reason,
    policy: authenticated ? (decision.policy ?? null) : null,
    route: authenticated ? (decision.route ?? null) : null,
    // Names are only names within their issuer, so a 403 says whose subject and client it judged.
    ...(authenticated && decision.issuer !== undefined && { issuer: decision.issuer }),
    request_id: requestId,
    ...(authenticated && decision.missing ? { missing: decision.missing } : {}),
    ...(hints.length > 0 && { hints }),
  });
}

export function toCheckResponse(decision: Decision, context: ResponseContext): CheckResponse {
  const spec = REASONS[decision.reason];
  const dynamic_metadata = metadataOf(decision);
  // A dry-run deny goes through like an allow; its would-be reason travels in the dynamic metadata.
  if (decision.reason === 'allowed' || decision.dryRun) {
    const set: Array<[string, string | undefined]> = [
      ['x-scopegate-subject', decision.subject],
      ['x-scopegate-client', decision.client],
      ['x-scopegate-issuer', decision.issuer],
      ['x-scopegate-route', decision.route],
      ['x-scopegate-policy', decision.policy],
      ['x-scopegate-peer', decision.peer],
    ];
    const headers = set.flatMap(([key, value]) => (value === undefined ? [] : [identityHeader(key, value)]));
    const setNames = new Set(headers.map((h) => h.header.key));
    // Envoy applies removals after additions, so only strip what we did not just set.
    const headers_to_remove = [...context.requestHeaderNames].filter(
      (name) => isIdentityHeader(name) && !setNames.has(name),
    );
    return { status: { code: GrpcCode.OK }, ok_response: { headers, headers_to_remove }, dynamic_metadata };
  }

  const headers = [
    overwrite('content-type', 'application/json'),
    overwrite('cache-control', 'no-store'),
    overwrite('x-scopegate-reason', decision.reason),
  ];
  const challenge = wwwAuthenticate(decision, context.realm);
  if (challenge) headers.push(overwrite('www-authenticate', challenge));
  if (spec.http === 503) headers.push(overwrite('retry-after', '1'));
  return {
    status: { code: spec.grpc, message: decision.reason },
    denied_response: {
      status: { code: spec.http },
      headers,
      body: denyBody(decision, context.requestId, context.hints === true),
    },
    dynamic_metadata,
  };
}
