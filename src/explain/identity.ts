// Who is calling, for `explain` and `test`: the same identity phase the server runs, fed three ways.
// - a token, verified: the real Authenticator over real key stores (JWKS file or URI);
// - a token with --no-verify, or a claims object: nothing can check a signature we do not have, so the claims
//   are re-signed with a throw-away key and then verified by the real `verifyToken` against that key. Every
//   other check the server makes (typ, iss, aud, exp, nbf, iat, algorithm pinning, claim shapes) still runs
//   on the real code; only "was it signed by the issuer" is taken on trust — and the trace says so, loudly.
// A policy that trusts only Envoy's jwt_authn gets the claims the way Envoy would hand them over: as
// jwt_authn metadata, read by the real Authenticator; through an HTTP door, which carries no such metadata,
// only the caller's token arrives, and the real Authenticator judges that.

import { randomUUID } from 'node:crypto';
import {
  generateKeyPair,
  type JWTPayload,
  type KeyObject,
  type ProtectedHeaderParameters,
  SignJWT,
} from 'jose';
import { Authenticator } from '../identity/authenticate.js';
import { extractBearer } from '../identity/bearer.js';
import { principalFromClaims } from '../identity/claims.js';
import { KeyRegistry, type KeySource } from '../identity/index.js';
import { readCompactJwt, type VerifyContext, verifyToken } from '../identity/verify.js';
import type { CompiledPolicy } from '../policy/types.js';
import { ALLOWED_ALGORITHMS } from '../policy/validate-authentication.js';
import { JWT_AUTHN_NAMESPACE } from '../request/facts.js';
import type { RequestFacts } from '../request/types.js';
import type { Principal, Transport } from '../vocabulary/index.js';
import { carriesEnvoyAttributes, deny, type Outcome } from '../vocabulary/index.js';
import { checkRequestFor, type HttpCall } from '../wire/check-request.js';
import type { CheckRequest, ProtoValue } from '../wire/types.js';

/** What the pipeline asks of an identity phase (the shape of `Snapshot.authenticator`). */
export interface IdentityPhase {
  authenticate(facts: RequestFacts): Outcome<Principal> | Promise<Outcome<Principal>>;
}

/** Algorithms a stand-in signature can be made with: every one a policy may pin (never none/HS*). */
const STAND_IN_ALGORITHMS: ReadonlySet<string> = new Set(ALLOWED_ALGORITHMS);

/** Lifetime given to claims that name no `exp`: a case should not fail because nobody wrote one. */
export const DEFAULT_CLAIMS_LIFETIME_SECONDS = 3600;

type SigningKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

/**
 * Throw-away key pairs, one per algorithm, made on first use and kept for this process only (never written
 * anywhere). One signer serves every case of a test run, so RSA key generation happens once.
 */
export class StandInSigner {
  private readonly pairs = new Map<string, Promise<{ privateKey: SigningKey; publicKey: SigningKey }>>();
  readonly kid = `stand-in-${randomUUID()}`;

  private pair(alg: string) {
    let pair = this.pairs.get(alg);
    if (pair === undefined) {
      pair = generateKeyPair(alg);
      this.pairs.set(alg, pair);
    }
    return pair;
  }

  async sign(header: ProtectedHeaderParameters & { alg: string }, payload: JWTPayload): Promise<string> {
    const { privateKey } = await this.pair(header.alg);
    const crit = Array.isArray(header.crit)
      ? Object.fromEntries(header.crit.map((name) => [name, true]))
      : undefined;
    return new SignJWT(payload).setProtectedHeader(header).sign(privateKey, crit ? { crit } : undefined);
  }

  /** The key source `verifyToken` reads: always loaded, holding the public half for the token's algorithm. */
  keySource(): KeySource {
    return {
      hasKeys: () => true,
      refreshOnDemand: async () => {},
      getKey: async (header): Promise<KeyObject | SigningKey> => {
        if (!STAND_IN_ALGORITHMS.has(header.alg))
          throw Object.assign(new Error('no key'), { code: 'ERR_JWKS_NO_MATCHING_KEY' });
        return (await this.pair(header.alg)).publicKey;
      },
    };
  }
}

/**
 * A token for a claims object: `iss`, `aud` and `exp` default to the policy's first issuer, its first
 * audience and an hour from now, so a case only writes the claims it is about.
 */
export async function tokenForClaims(
  claims: Readonly<Record<string, unknown>>,
  policy: CompiledPolicy,
  signer: StandInSigner,
  nowMs: number,
): Promise<string> {
  const named = typeof claims.iss === 'string' ? policy.issuerByName.get(claims.iss) : undefined;
  const issuer = named ?? policy.issuers[0];
  const defaults: JWTPayload = {
    ...(issuer && { iss: issuer.issuer }),
    ...(issuer?.audiences[0] !== undefined && { aud: issuer.audiences[0] }),
    exp: Math.floor(nowMs / 1000) + DEFAULT_CLAIMS_LIFETIME_SECONDS,
  };
  const alg = issuer?.algorithms.find((a) => STAND_IN_ALGORITHMS.has(a)) ?? 'ES256';
  return signer.sign({ alg, typ: 'JWT', kid: signer.kid }, { ...defaults, ...claims } as JWTPayload);
}

/**
 * The token with its signature replaced by the stand-in's, everything else as sent. A token that cannot be
 * re-signed faithfully (undecodable, or an algorithm no honest issuer uses) is returned as it is: the
 * server refuses those before it ever looks at a key, and so will `verifyToken`.
 */
async function restamp(token: string, signer: StandInSigner): Promise<string> {
  // The server's own strict reader: a token it refuses (duplicate keys, bad base64url, …) is passed on as it
  // is, so `verifyToken` refuses it here exactly as the server would.
  const compact = readCompactJwt(token);
  if (!compact.ok) return token;
  const header = compact.value.header as ProtectedHeaderParameters;
  const payload = compact.value.claims as JWTPayload;
  if (typeof header.alg !== 'string' || !STAND_IN_ALGORITHMS.has(header.alg)) return token;
  try {
    return await signer.sign({ ...header, alg: header.alg }, payload);
  } catch {
    return token;
  }
}

/**
 * The identity phase with the signature taken on trust (see the file header). The order of refusals is
 * the Authenticator's: bearer shape, no token, then `verifyToken` and `principalFromClaims`.
 */
export function unverifiedIdentity(
  policy: CompiledPolicy,
  signer: StandInSigner,
  now: () => number = Date.now,
): IdentityPhase {
  const sized: VerifyContext = {
    maxTokenBytes: policy.maxTokenBytes,
    issuerByName: policy.issuerByName,
    keysFor: () => signer.keySource(),
    now,
  };
  // The size cap is checked on the token as sent; the re-signed one may differ in length by a few bytes.
  const restamped: VerifyContext = { ...sized, maxTokenBytes: Number.MAX_SAFE_INTEGER };
  return {
    async authenticate(facts) {
      const bearer = extractBearer(facts);
      if (!bearer.ok) return bearer;
      if (bearer.value === undefined) {
        return deny('token_missing', 'send an access token in the Authorization header as "Bearer <token>"');
      }
      const sent = bearer.value;
      const verified =
        sent.length > policy.maxTokenBytes
          ? await verifyToken(sent, sized)
          : await verifyToken(await restamp(sent, signer), restamped);
      if (!verified.ok) return verified;
      return principalFromClaims(verified.value.payload, policy.claims, verified.value.issuer.issuer);
    },
  };
}

/** An HTTP request as explain and test take it (the CheckRequest is built the way Envoy builds it). */
export type HttpRequestSpec = Omit<HttpCall, 'token'>;

/**
 * The CheckRequest and identity phase for a caller given by claims (no signature), or by no claims at all
 * (then any Authorization header the request names is read, signature unchecked). With issuers, the claims
 * ride in a stand-in bearer token; a policy that trusts only Envoy's jwt_authn gets them as its metadata
 * when the door carries it (gRPC), else a bearer token only Envoy's jwt_authn could have vouched for.
 */
export async function unverifiedRequest(
  policy: CompiledPolicy,
  http: HttpRequestSpec,
  claims: Readonly<Record<string, unknown>> | undefined,
  signer: StandInSigner,
  now: () => number = Date.now,
  door: Transport = 'grpc',
): Promise<{ request: CheckRequest; identity: IdentityPhase }> {
  if (claims === undefined) {
    return { request: checkRequestFor(http), identity: unverifiedIdentity(policy, signer, now) };
  }
  if (policy.issuers.length === 0 && policy.envoyJwtAuthn !== undefined) {
    if (!carriesEnvoyAttributes(door)) {
      const token = await tokenForClaims(claims, policy, signer, now());
      return { request: checkRequestFor({ ...http, token }), identity: envoyOnlyIdentity(policy, now) };
    }
    const withExp = { exp: Math.floor(now() / 1000) + DEFAULT_CLAIMS_LIFETIME_SECONDS, ...claims };
    return {
      request: withJwtAuthnClaims(checkRequestFor(http), policy.envoyJwtAuthn.metadataKey, withExp),
      identity: envoyOnlyIdentity(policy, now),
    };
  }
  const token = await tokenForClaims(claims, policy, signer, now());
  return { request: checkRequestFor({ ...http, token }), identity: unverifiedIdentity(policy, signer, now) };
}

/**
 * The server's own identity phase for a policy that verifies no token itself: it reads jwt_authn's metadata,
 * and refuses a bearer token, without a key.
 */
export function envoyOnlyIdentity(policy: CompiledPolicy, now: () => number): IdentityPhase {
  return new Authenticator(policy, new KeyRegistry(), { now });
}

/** The server's own identity phase over real key stores. Close the registry when done. */
export async function verifiedIdentity(
  policy: CompiledPolicy,
  options: { fetchTimeoutMs?: number; now?: () => number } = {},
): Promise<{ identity: IdentityPhase; keys: KeyRegistry }> {
  const keys = new KeyRegistry({
    fetchTimeoutMs: options.fetchTimeoutMs ?? 2000,
    ...(options.now && { now: options.now }),
  });
  await keys.start(policy.issuers);
  const authenticator = new Authenticator(policy, keys, { ...(options.now && { now: options.now }) });
  return { identity: authenticator, keys };
}

/**
 * For a policy that verifies no tokens itself (only Envoy's jwt_authn): the CheckRequest Envoy would send
 * after its jwt_authn filter accepted a token with these claims.
 */
function withJwtAuthnClaims(
  request: CheckRequest,
  metadataKey: string,
  claims: Readonly<Record<string, unknown>>,
): CheckRequest {
  return {
    ...request,
    attributes: {
      ...request.attributes,
      metadata_context: {
        filter_metadata: {
          [JWT_AUTHN_NAMESPACE]: { fields: { [metadataKey]: protoValue(claims) } },
        },
      },
    },
  };
}

/** Plain JSON as a google.protobuf.Value, as Envoy encodes the jwt_authn payload. */
function protoValue(value: unknown): ProtoValue {
  if (value === null || value === undefined) return { null_value: 'NULL_VALUE' };
  if (typeof value === 'number') return { number_value: value };
  if (typeof value === 'string') return { string_value: value };
  if (typeof value === 'boolean') return { bool_value: value };
  if (Array.isArray(value)) return { list_value: { values: value.map(protoValue) } };
  const fields: Record<string, ProtoValue> = {};
  for (const [key, item] of Object.entries(value as Record<string, unknown>)) fields[key] = protoValue(item);
  return { struct_value: { fields } };
}

/** The claims a token carries, read without any check (for --no-verify on a jwt_authn-only policy). */
export function decodeClaims(token: string): Record<string, unknown> | undefined {
  const compact = readCompactJwt(token);
  return compact.ok ? (compact.value.claims as Record<string, unknown>) : undefined;
}
