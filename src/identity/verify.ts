// Verifies a bearer JWT against the policy's issuers (DESIGN.md security rule 5) and is the one place where
// jose's errors become reasons, by their stable `code`. The header and payload are decoded before the
// signature is checked only to pick the issuer config; nothing from them is trusted until jose agrees.
// Keys come only from the issuer's key store: embedded `jwk`/`jku`/`x5u`/`x5c` headers are never read.
import {
  decodeJwt,
  decodeProtectedHeader,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
  type KeyInput,
  type ProtectedHeaderParameters,
} from 'jose';
import { type Denial, deny, type Outcome, ok } from '../decision/types.js';
import type { CompiledIssuer } from '../policy/types.js';
import { errorCode, type KeySource } from './keys.js';

/** What verification reads from the compiled policy and the key registry. */
export interface VerifyContext {
  readonly maxTokenBytes: number;
  readonly issuerByName: ReadonlyMap<string, CompiledIssuer>;
  keysFor(issuer: CompiledIssuer): KeySource;
  /** Current time in ms (injectable so expiry is tested without sleeping). */
  now(): number;
}

export interface VerifiedToken {
  readonly issuer: CompiledIssuer;
  readonly payload: JWTPayload;
}

/** `typ` values an access token may carry (RFC 7519 §5.1, RFC 9068 §2.1), compared case-insensitively. */
const ACCEPTED_TYPES = new Set(['jwt', 'at+jwt', 'application/at+jwt']);
/** When no `kid` is given and several keys fit, try this many before giving up: bounded work per token. */
const MAX_CANDIDATE_KEYS = 8;

export async function verifyToken(token: string, context: VerifyContext): Promise<Outcome<VerifiedToken>> {
  // Cheap checks first, so an oversized or odd-shaped token costs no decoding or crypto.
  if (token.length > context.maxTokenBytes) {
    return deny('token_invalid', `the token is larger than ${context.maxTokenBytes} bytes`);
  }
  const segments = token.split('.').length;
  if (segments === 5) return deny('token_invalid', 'encrypted tokens (JWE) are not accepted');
  if (segments !== 3)
    return deny('token_invalid', 'the token is not a signed JWT (three dot-separated parts)');

  let header: ProtectedHeaderParameters;
  let claims: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    claims = decodeJwt(token);
  } catch (err) {
    return denialForJoseError(err);
  }

  if (
    header.typ !== undefined &&
    (typeof header.typ !== 'string' || !ACCEPTED_TYPES.has(header.typ.toLowerCase()))
  ) {
    return deny('token_invalid', 'the token\'s "typ" header must be JWT or at+jwt');
  }
  if (typeof claims.iss !== 'string' || claims.iss === '') {
    return deny('token_invalid', 'the token has no "iss" claim');
  }
  const issuer = context.issuerByName.get(claims.iss);
  if (issuer === undefined) {
    return deny('issuer_untrusted', `the issuer ${quote(claims.iss)} is not trusted by this policy`);
  }

  const keys = context.keysFor(issuer);
  if (!keys.hasKeys()) {
    // Keys may have been down at start; one attempt per cool-down lets a recovered IdP be noticed quickly.
    await keys.refreshOnDemand();
    if (!keys.hasKeys()) {
      return deny('keys_unavailable', `no signing keys could be loaded for issuer ${quote(issuer.issuer)}`);
    }
  }

  const now = context.now();
  const options: JWTVerifyOptions = {
    algorithms: [...issuer.algorithms],
    issuer: issuer.issuer,
    audience: [...issuer.audiences],
    clockTolerance: issuer.clockToleranceSeconds,
    requiredClaims: ['exp'],
    currentDate: new Date(now),
  };
  let payload: JWTPayload;
  try {
    payload = (await verifyWithKeys(token, keys.getKey, options)).payload;
  } catch (err) {
    return denialForJoseError(err, { issuer, kid: header.kid, alg: header.alg });
  }

  // jose checks `iat` only when maxTokenAge is set; a token issued in the future is not valid yet.
  if (typeof payload.iat === 'number' && payload.iat > now / 1000 + issuer.clockToleranceSeconds) {
    return deny('token_not_yet_valid', `the token was issued in the future (iat ${isoTime(payload.iat)})`);
  }
  return ok({ issuer, payload });
}

/** jose's verify; when several keys fit a token without `kid`, try each (bounded) until one verifies. */
async function verifyWithKeys(token: string, getKey: JWTVerifyGetKey, options: JWTVerifyOptions) {
  try {
    return await jwtVerify(token, getKey, options);
  } catch (err) {
    if (errorCode(err) !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS' || !isAsyncIterable(err)) throw err;
    let last: unknown = err;
    let tried = 0;
    for await (const key of err) {
      if (++tried > MAX_CANDIDATE_KEYS) break;
      try {
        return await jwtVerify(token, key as KeyInput, options);
      } catch (attempt) {
        // Only a wrong key means "try the next one"; claim failures are the same whichever key signed.
        if (errorCode(attempt) !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw attempt;
        last = attempt;
      }
    }
    throw last;
  }
}

interface ErrorContext {
  readonly issuer?: CompiledIssuer;
  readonly kid?: unknown;
  readonly alg?: unknown;
}

/** The one translation of jose (and key store) errors into reasons. Details never include the token. */
export function denialForJoseError(err: unknown, context: ErrorContext = {}): Denial {
  const code = errorCode(err);
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return deny(
        'token_expired',
        withTime('the token expired at', claimTime(err, 'exp'), 'the token has expired'),
      );
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return denialForClaim(err, context);
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return deny(
        'key_unknown',
        `no key published by the issuer matches the token${typeof context.kid === 'string' ? ` (kid ${quote(context.kid)})` : ''}`,
      );
    case 'ERR_SCOPEGATE_KEYS_UNAVAILABLE':
      return deny('keys_unavailable', "the issuer's signing keys are not loaded");
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
    case 'ERR_JWKS_MULTIPLE_MATCHING_KEYS':
      return deny('token_invalid', 'the token signature does not verify');
    case 'ERR_JOSE_ALG_NOT_ALLOWED': {
      const alg = typeof context.alg === 'string' ? ` ${quote(context.alg)}` : '';
      const allowed = context.issuer ? ` (allowed: ${context.issuer.algorithms.join(', ')})` : '';
      return deny('token_invalid', `the token's algorithm${alg} is not allowed for this issuer${allowed}`);
    }
    case 'ERR_JOSE_NOT_SUPPORTED':
      return deny('token_invalid', 'the token uses an unsupported algorithm, key or critical header');
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return deny('token_invalid', 'the token is malformed');
    default:
      // Anything else (a broken published key, a jose TypeError on odd input, …) fails closed.
      return deny('token_invalid', 'the token could not be verified');
  }
}

function denialForClaim(err: unknown, context: ErrorContext): Denial {
  const { claim, reason } = err as { claim?: unknown; reason?: unknown };
  switch (claim) {
    case 'nbf':
      return deny(
        'token_not_yet_valid',
        withTime('the token is not valid before', claimTime(err, 'nbf'), 'the token is not valid yet'),
      );
    case 'iat':
      return deny('token_not_yet_valid', 'the token was issued in the future');
    case 'aud': {
      const expected = context.issuer ? `: expected one of ${context.issuer.audiences.join(', ')}` : '';
      return deny('audience_mismatch', `the token was not issued for this audience${expected}`);
    }
    case 'iss':
      return deny('issuer_untrusted', 'the token issuer is not trusted by this policy');
    case 'exp':
      return deny(
        'token_invalid',
        reason === 'missing' ? 'the token has no "exp" claim' : '"exp" must be a number',
      );
    default:
      return deny(
        'token_invalid',
        typeof claim === 'string' ? `the token's ${quote(claim)} claim is invalid` : 'a claim is invalid',
      );
  }
}

/** A numeric time claim from the error's claims set (jose attaches it), if any. */
function claimTime(err: unknown, claim: 'exp' | 'nbf'): number | undefined {
  const value = (err as { payload?: Record<string, unknown> }).payload?.[claim];
  return typeof value === 'number' ? value : undefined;
}

function withTime(sentence: string, seconds: number | undefined, fallback: string): string {
  return seconds === undefined ? fallback : `${sentence} ${isoTime(seconds)}`;
}

function isoTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}

/** Client-supplied text shown in a detail: quoted, printable ASCII only, capped. */
function quote(value: string): string {
  const printable = value.replace(/[^\x20-\x7e]/g, '?');
  return JSON.stringify(printable.length > 120 ? `${printable.slice(0, 120)}…` : printable);
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
