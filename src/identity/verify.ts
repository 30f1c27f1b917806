// Verifies a bearer JWT against the policy's issuers (DESIGN.md security rule 5) and is the one place where
// jose's errors become reasons, by their stable `code`. The header and payload are decoded before the
// signature is checked only to pick the issuer config; nothing from them is trusted until jose agrees.
// Keys come only from the issuer's key store: embedded `jwk`/`jku`/`x5u`/`x5c` headers are never read.
// The header and payload are read here with the strict JSON reader, not jose's JSON.parse: a duplicate key
// (`"sub"` twice) would otherwise be decided on the last value while another reader of the same token takes
// the first, and `"exp":1e400` would parse as Infinity, a token that never expires.
import { type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions, jwtVerify, type KeyInput } from 'jose';
import type { CompiledIssuer } from '../policy/types.js';
import { parseStrictJson } from '../request/json.js';
import { type Denial, deny, type Outcome, ok } from '../vocabulary/index.js';
import { errorCode } from './errors.js';
import type { KeySource, OnKeyFetch } from './key-store.js';

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
  /** The token's protected header, as read strictly before verification. */
  readonly header: Readonly<Record<string, unknown>>;
  /** The key that verified the signature (what jose resolved), to tie caches to it. */
  readonly key: unknown;
}

/** `typ` values an access token may carry (RFC 7519 §5.1, RFC 9068 §2.1), compared case-insensitively. */
const ACCEPTED_TYPES = new Set(['jwt', 'at+jwt', 'application/at+jwt']);
/** When no `kid` is given and several keys fit, try this many before giving up: bounded work per token. */
const MAX_CANDIDATE_KEYS = 8;

/** `onFetch`: told of a key fetch this verification starts (the Check's span), instead of the key store's. */
export async function verifyToken(
  token: string,
  context: VerifyContext,
  onFetch?: OnKeyFetch,
): Promise<Outcome<VerifiedToken>> {
  // Cheap checks first, so an oversized or odd-shaped token costs no decoding or crypto.
  if (token.length > context.maxTokenBytes) {
    return deny('token_invalid', `the token is larger than ${context.maxTokenBytes} bytes`);
  }
  const compact = readCompactJwt(token);
  if (!compact.ok) return compact;
  const { header, claims } = compact.value;

  if (
    header.typ !== undefined &&
    (typeof header.typ !== 'string' || !ACCEPTED_TYPES.has(header.typ.toLowerCase()))
  ) {
    return deny('token_invalid', 'the token\'s "typ" header must be JWT or at+jwt');
  }
  // Looking up a non-string kid could only miss (and cost a JWKS refresh); it is a broken token, not a new key.
  if (header.kid !== undefined && typeof header.kid !== 'string') {
    return deny('token_invalid', 'the token\'s "kid" header must be a string');
  }
  // RFC 7797 unencoded payloads have no place in a JWT; jose ignores `b64` unless it is critical, while
  // another reader of the same token may honour it, so the token would mean two things.
  if (Object.hasOwn(header, 'b64')) {
    return deny('token_invalid', 'the token\'s "b64" header is not allowed in a JWT');
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
    // Keys may have been down at start; one attempt per on-demand interval notices a recovered IdP quickly.
    await keys.refreshOnDemand(onFetch);
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
  let verified: { payload: JWTPayload; key: unknown };
  try {
    const getKey = (onFetch && keys.resolverFor?.(onFetch)) || keys.getKey;
    verified = await verifyWithKeys(token, getKey, options);
  } catch (err) {
    return denialForJoseError(err, { issuer, kid: header.kid, alg: header.alg });
  }

  const { payload, key } = verified;
  // jose checks `iat` only when maxTokenAge is set; a token issued in the future is not valid yet.
  if (typeof payload.iat === 'number' && payload.iat > now / 1000 + issuer.clockToleranceSeconds) {
    return deny('token_not_yet_valid', `the token was issued in the future (iat ${isoTime(payload.iat)})`);
  }
  return ok({ issuer, payload, header, key });
}

type JsonObject = Record<string, unknown>;

interface CompactJwt {
  readonly header: JsonObject;
  readonly claims: JsonObject;
}

/** Canonical unpadded base64url: what RFC 7515 §2 allows, and the only spelling a token has. */
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The header and claims of a compact JWS, read strictly: exactly three segments, each canonical base64url
 * (no padding, no stray bits: one token, one spelling, one cache entry), header and payload UTF-8 JSON
 * objects without duplicate keys, out-of-range numbers, lone surrogates or a byte order mark.
 */
export function readCompactJwt(token: string): Outcome<CompactJwt> {
  const segments = token.split('.');
  if (segments.length === 5) return deny('token_invalid', 'encrypted tokens (JWE) are not accepted');
  if (segments.length !== 3) {
    return deny('token_invalid', 'the token is not a signed JWT (three dot-separated parts)');
  }
  const [header, payload, signature] = segments as [string, string, string];
  if (!isCanonicalBase64url(header) || !isCanonicalBase64url(payload) || !isCanonicalBase64url(signature)) {
    return deny('token_invalid', 'the token is not canonical base64url (no padding, no other characters)');
  }
  const headerJson = readJsonSegment(header, 'header');
  if (!headerJson.ok) return headerJson;
  const claimsJson = readJsonSegment(payload, 'payload');
  if (!claimsJson.ok) return claimsJson;
  return ok({ header: headerJson.value, claims: claimsJson.value });
}

/**
 * Only the alphabet, a length a real encoding has (never 1 more than a multiple of 4), and zero bits left
 * over in the last character: then no other spelling decodes to the same bytes. (Node's decoder would skip
 * what it does not understand and ignore stray bits.)
 */
export function isCanonicalBase64url(segment: string): boolean {
  if (!BASE64URL.test(segment)) return false;
  const tail = segment.length % 4;
  if (tail === 0) return true;
  if (tail === 1) return false;
  const last = BASE64URL_ALPHABET.indexOf(segment[segment.length - 1]!);
  return (last & (tail === 2 ? 0b1111 : 0b11)) === 0;
}

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function readJsonSegment(segment: string, part: 'header' | 'payload'): Outcome<JsonObject> {
  if (segment === '') return deny('token_invalid', `the token's ${part} is empty`);
  let text: string;
  try {
    text = fatalUtf8.decode(Buffer.from(segment, 'base64url'));
  } catch {
    return deny('token_invalid', `the token's ${part} is not UTF-8`);
  }
  // The reader's problem names an offset only, never the text, so it is safe in a detail.
  const parsed = parseStrictJson(text);
  if (!parsed.ok) return deny('token_invalid', `the token's ${part} is not strict JSON: ${parsed.problem}`);
  const value = parsed.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return deny('token_invalid', `the token's ${part} is not a JSON object`);
  }
  return ok(value as JsonObject);
}

/**
 * jose's verify, with the key that verified; when several keys fit a token without `kid`, try each (bounded)
 * until one verifies.
 */
async function verifyWithKeys(
  token: string,
  getKey: JWTVerifyGetKey,
  options: JWTVerifyOptions,
): Promise<{ payload: JWTPayload; key: unknown }> {
  try {
    const { payload, key } = await jwtVerify(token, getKey, options);
    return { payload, key };
  } catch (err) {
    if (errorCode(err) !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS' || !isAsyncIterable(err)) throw err;
    let last: unknown = err;
    let tried = 0;
    for await (const key of err) {
      if (++tried > MAX_CANDIDATE_KEYS) break;
      try {
        return { payload: (await jwtVerify(token, key as KeyInput, options)).payload, key };
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

/** Time claims jose checks; one that is not a number is a broken token, not a clock problem. */
const TIME_CLAIMS: ReadonlySet<unknown> = new Set(['exp', 'nbf', 'iat']);

function denialForClaim(err: unknown, context: ErrorContext): Denial {
  const { claim, reason } = err as { claim?: unknown; reason?: unknown };
  if (reason === 'invalid' && TIME_CLAIMS.has(claim)) {
    return deny('token_invalid', `"${claim as string}" must be a number`);
  }
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
        reason === 'missing' ? 'the token has no "exp" claim' : 'the token\'s "exp" claim is invalid',
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
