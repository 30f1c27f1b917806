// The one table every decision is derived from: HTTP status, gRPC status, RFC 6750 challenge, the body's
// `error`, the metric label (the key itself), the sentence a caller reads, and how the reason behaves (does it
// let the request through, may dry-run mode waive it, is it scopegate failing rather than the caller). Adding
// a reason is one line here plus its tests; nothing else in the code branches on reason names.

/** google.rpc.Code values used in CheckResponse.status. */
export const GrpcCode = { OK: 0, PERMISSION_DENIED: 7, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

/**
 * `challenge` is the RFC 6750 error code put in `WWW-Authenticate`; `bare` means a challenge with no error
 * code (RFC 6750 §3.1: the request carried no credentials); null means no `WWW-Authenticate` at all.
 */
export type Challenge = 'bare' | 'invalid_request' | 'invalid_token' | 'insufficient_scope' | null;

export interface ReasonSpec {
  readonly http: number;
  readonly grpc: (typeof GrpcCode)[keyof typeof GrpcCode];
  readonly challenge: Challenge;
  /** The JSON body's `error` field (OAuth-style code). */
  readonly error: string | null;
  /** One sentence for the caller; decisions add the specifics. */
  readonly summary: string;
  /** The request reaches the upstream (only `allowed`). */
  readonly allows?: true;
  /**
   * Enforced even under `mode: dry_run`: an ambiguous request must never reach the upstream, nor one
   * scopegate failed on.
   */
  readonly alwaysEnforced?: true;
  /** scopegate, not the caller, is failing (503): never tied to a route, and alerted on from the first one. */
  readonly failClosed?: true;
}

const unauthorized = {
  http: 401,
  grpc: GrpcCode.UNAUTHENTICATED,
  challenge: 'invalid_token',
  error: 'invalid_token',
} as const;
const forbidden = {
  http: 403,
  grpc: GrpcCode.PERMISSION_DENIED,
  challenge: null,
  error: 'access_denied',
} as const;
const insufficientScope = {
  http: 403,
  grpc: GrpcCode.PERMISSION_DENIED,
  challenge: 'insufficient_scope',
  error: 'insufficient_scope',
} as const;
const unavailable = {
  http: 503,
  grpc: GrpcCode.UNAVAILABLE,
  challenge: null,
  error: 'temporarily_unavailable',
  failClosed: true,
} as const;

export const REASONS = {
  allowed: {
    http: 200,
    grpc: GrpcCode.OK,
    challenge: null,
    error: null,
    summary: 'The request is allowed.',
    allows: true,
  },
  token_missing: {
    http: 401,
    grpc: GrpcCode.UNAUTHENTICATED,
    challenge: 'bare',
    error: 'unauthorized',
    summary: 'No bearer token was sent.',
  },
  request_malformed: {
    http: 400,
    grpc: GrpcCode.PERMISSION_DENIED,
    challenge: 'invalid_request',
    error: 'invalid_request',
    summary: 'The request is malformed or ambiguous.',
    alwaysEnforced: true,
  },
  token_invalid: { ...unauthorized, summary: 'The access token is not valid.' },
  key_unknown: {
    ...unauthorized,
    summary: 'The access token is signed with a key the issuer does not publish.',
  },
  token_expired: { ...unauthorized, summary: 'The access token has expired.' },
  token_not_yet_valid: { ...unauthorized, summary: 'The access token is not valid yet.' },
  issuer_untrusted: {
    ...unauthorized,
    summary: 'The access token comes from an issuer that is not trusted.',
  },
  audience_mismatch: { ...unauthorized, summary: 'The access token was not issued for this audience.' },
  scope_missing: { ...insufficientScope, summary: 'The access token lacks a scope this request needs.' },
  client_scope_not_allowed: {
    ...insufficientScope,
    summary: 'The OAuth2 client is not allowed a scope this request needs.',
  },
  client_unknown: {
    ...forbidden,
    summary: 'The token comes from an OAuth2 client this policy does not list.',
  },
  grant_type_not_allowed: {
    ...forbidden,
    summary: 'The token was obtained with a grant type this client may not use.',
  },
  role_missing: { ...forbidden, summary: 'The caller lacks a role this request needs.' },
  peer_missing: {
    ...forbidden,
    summary: "This request needs the calling workload's identity (mTLS), and it came without one.",
  },
  peer_not_allowed: { ...forbidden, summary: 'The calling workload may not do this.' },
  location_denied: { ...forbidden, summary: 'The caller may not access this location.' },
  location_missing: { ...forbidden, summary: 'The request names no location, and this route needs one.' },
  body_unreadable: { ...forbidden, summary: 'The request body could not be read to find its location.' },
  route_unknown: { ...forbidden, summary: 'No route in the policy matches this method and path.' },
  // No policy, so no `mode: dry_run` that could waive it.
  policy_unknown: {
    ...forbidden,
    summary: 'No policy owns this request (its service or host).',
    alwaysEnforced: true,
  },
  keys_unavailable: { ...unavailable, summary: "The issuer's signing keys are unavailable; retry later." },
  internal_error: {
    ...unavailable,
    summary: 'An internal error occurred; retry later.',
    alwaysEnforced: true,
  },
} as const satisfies Record<string, ReasonSpec>;

export type Reason = keyof typeof REASONS;
export type DenyReason = Exclude<Reason, 'allowed'>;
export const REASON_CODES = Object.keys(REASONS) as Reason[];

export function isReason(value: string): value is Reason {
  return Object.hasOwn(REASONS, value);
}

/** The table read as specs, for questions about any reason (`specOf(reason).failClosed`). */
export function specOf(reason: Reason): ReasonSpec {
  return REASONS[reason];
}

/** The deny reasons whose spec has a property set, in table order (e.g. every `failClosed` reason). */
export function reasonsWhere(property: 'alwaysEnforced' | 'failClosed'): DenyReason[] {
  return REASON_CODES.filter((reason): reason is DenyReason => specOf(reason)[property] === true);
}
