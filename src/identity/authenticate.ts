// The identity phase: who is calling. Takes the bearer token (or the claims Envoy's jwt_authn filter already
// verified), checks it against the policy's issuers and returns a Principal or a closed-reason denial.
// One Authenticator per compiled policy revision; the key registry and the verified-token cache outlive
// revisions (a cached token is served under a new revision while its issuer's settings and key are the same;
// its principal is built per claims mapping). It also remembers which published key verified each principal,
// so the caches can stop serving a token the moment its key leaves the issuer's JWKS.
import { type CachedToken, principalFor, TokenCache, type TokenLookupStatus } from '../cache/tokens.js';
import type { CompiledIssuer, CompiledPolicy } from '../policy/types.js';
import type { RequestFacts } from '../request/types.js';
import type { Principal, SigningKeyRef } from '../vocabulary/index.js';
import { type Denial, deny, type Outcome } from '../vocabulary/index.js';
import { principalFromClaims } from './claims.js';
import { type BearerToken, type Credential, readCredential } from './credential.js';
import type { KeyRegistry } from './key-registry.js';
import { signingKeyRef } from './key-set.js';
import type { KeyStore, OnKeyFetch } from './key-store.js';
import { readCompactJwt, type VerifyContext, verifyToken } from './verify.js';

export interface AuthenticatorOptions {
  /** Clock in ms, used for token times and the cache. Default `Date.now`. */
  readonly now?: () => number;
  /** A cache to share across revisions (the server's one). Default: a new one for this Authenticator. */
  readonly tokenCache?: TokenCache;
  /** Entries in the default cache (default 10,000; 0 turns it off). */
  readonly tokenCacheSize?: number;
  readonly onCacheLookup?: (cache: 'token', result: 'hit' | 'miss') => void;
}

type Authenticated = Outcome<Principal>;

/**
 * What identifying one credential met, for a caller that asks (a Check's trace span), as lru-cache's
 * `status` does: no second code path, nothing allocated for it. `tokenCache` is set when the verified-token
 * cache was asked (a miss is a token verified now).
 */
export interface IdentifyStatus extends TokenLookupStatus {
  /** A JWKS fetch this credential's verification starts (an unknown `kid`): a child of the caller's span. */
  keyFetch?(issuer: string, source: 'uri' | 'file'): ReturnType<OnKeyFetch>;
}

/**
 * Principal → the key that verified its token, for every Authenticator: a cached token's principal is shared
 * by the revisions that map claims alike. Weak: a principal lives as long as a cache or a Check holds it.
 */
const signers = new WeakMap<Principal, SigningKeyRef>();

/** Expected outcomes are values; an exception is a bug, and a bug must deny, not allow. */
const INTERNAL_ERROR = Object.freeze(deny('internal_error', 'the caller could not be identified'));

export class Authenticator {
  private readonly now: () => number;
  private readonly cache: TokenCache;
  private readonly verifyContext: VerifyContext;
  private readonly stores: ReadonlyMap<CompiledIssuer, KeyStore>;

  constructor(
    private readonly policy: CompiledPolicy,
    keys: KeyRegistry,
    options: AuthenticatorOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.cache =
      options.tokenCache ??
      new TokenCache({
        maxEntries: options.tokenCacheSize,
        now: this.now,
        onLookup: options.onCacheLookup,
      });
    // Resolve stores now so the registry knows every issuer before start()/ready().
    const stores = new Map<CompiledIssuer, KeyStore>(
      policy.issuers.map((issuer) => [issuer, keys.storeFor(issuer)]),
    );
    this.stores = stores;
    this.verifyContext = {
      maxTokenBytes: policy.maxTokenBytes,
      issuerByName: policy.issuerByName,
      keysFor: (issuer) => stores.get(issuer) ?? keys.storeFor(issuer),
      now: this.now,
    };
  }

  /**
   * The published key that verified the token this principal came from; undefined for principals from
   * Envoy's jwt_authn payload (no key of ours vouches for them), so nothing built on them is cached.
   */
  signingKeyOf(principal: Principal): SigningKeyRef | undefined {
    return signers.get(principal);
  }

  /** Does the issuer's current key set still publish this key? Cheap: two set lookups. */
  readonly isPublished = (ref: SigningKeyRef): boolean => {
    const issuer = this.policy.issuerByName.get(ref.issuer);
    const store = issuer === undefined ? undefined : this.stores.get(issuer);
    return store?.publishes(ref) ?? false;
  };

  /** Who the request's credential names: readCredential, then identify. */
  authenticate(
    facts: Pick<RequestFacts, 'headers' | 'query' | 'jwtAuthnPayloads'>,
  ): Authenticated | Promise<Authenticated> {
    const credential = readCredential(facts, this.policy);
    return credential.ok ? this.identify(credential.value) : credential;
  }

  /**
   * Who the credential names. Synchronous when the answer needs no signature check (a cached token, Envoy's
   * claims, a refusal); never throws or rejects: a bug denies, it does not allow.
   */
  identify(credential: Credential, status?: IdentifyStatus): Authenticated | Promise<Authenticated> {
    try {
      const identified = this.identifyNow(credential, status);
      return identified instanceof Promise ? identified.catch(() => INTERNAL_ERROR) : identified;
    } catch {
      return INTERNAL_ERROR;
    }
  }

  private identifyNow(
    credential: Credential,
    status?: IdentifyStatus,
  ): Authenticated | Promise<Authenticated> {
    switch (credential.kind) {
      case 'envoy':
        return this.fromEnvoyPayload(credential.payload);
      case 'none':
        return deny('token_missing', 'send an access token in the Authorization header as "Bearer <token>"');
      case 'bearer':
        if (this.policy.issuers.length === 0) {
          // Only Envoy's jwt_authn may vouch for tokens here, and it sent no verified claims for this one.
          return deny('token_invalid', "the token was not verified by Envoy's jwt_authn filter");
        }
        return this.fromToken(credential, status);
    }
  }

  /**
   * Is a cached token still what a fresh verification would give under this revision? Its issuer is listed
   * with the same settings, and either its key is still published (verified) or the issuer's key set is
   * the one that verified it (expired).
   */
  private readonly isCurrent = (entry: CachedToken): boolean => {
    const issuer = this.policy.issuerByName.get(entry.issuer);
    if (issuer === undefined || issuer.basis !== entry.basis) return false;
    const store = this.stores.get(issuer);
    if (store === undefined) return false;
    return entry.kind === 'expired' ? store.currentSet() === entry.keySet : store.publishes(entry.signedBy);
  };

  private fromToken(bearer: BearerToken, status?: IdentifyStatus): Authenticated | Promise<Authenticated> {
    const { token } = bearer;
    // The cache holds tokens of any size a revision allowed; this one's cap decides first.
    if (token.length > this.policy.maxTokenBytes) return this.verify(bearer, status);
    const cached = this.cache.get(bearer.hash, this.isCurrent, status);
    if (cached === undefined) return this.verify(bearer, status);
    if (cached.kind === 'expired') return cached.expired;
    return principalFor(cached, this.policy.claimsKey, () =>
      this.principalFrom(cached.claims, cached.issuer, cached.signedBy),
    );
  }

  private principalFrom(claims: Readonly<Record<string, unknown>>, issuer: string, signedBy?: SigningKeyRef) {
    const principal = principalFromClaims(claims, this.policy.claims, issuer);
    if (principal.ok && signedBy !== undefined) signers.set(principal.value, signedBy);
    return principal;
  }

  private async verify(bearer: BearerToken, status?: IdentifyStatus): Promise<Authenticated> {
    const { token } = bearer;
    const keySetsBefore = this.currentKeySets();
    const verified = await verifyToken(token, this.verifyContext, status?.keyFetch?.bind(status));
    if (!verified.ok) {
      // jose checks `exp` only after the signature: this token is genuine and will stay expired.
      if (verified.reason === 'token_expired') this.rememberExpired(bearer, verified, keySetsBefore);
      return verified;
    }
    const { issuer, payload, header, key } = verified.value;
    const signedBy = await signingKeyRef(issuer.issuer, key, header);
    const expiresAt = payload.exp;
    // Cached only when the key is known: a token no key can be checked for must be verified every time.
    if (signedBy === undefined || typeof expiresAt !== 'number' || !this.cache.enabled) {
      return this.principalFrom(payload, issuer.issuer, signedBy);
    }
    const entry = this.cache.setVerified(bearer.hash, {
      issuer: issuer.issuer,
      basis: issuer.basis,
      claims: payload,
      signedBy,
      expiresAt,
    });
    return principalFor(entry, this.policy.claimsKey, () =>
      this.principalFrom(payload, issuer.issuer, signedBy),
    );
  }

  /** Each issuer's key set now, to tell afterwards whether a verification ran under one set throughout. */
  private currentKeySets(): ReadonlyMap<CompiledIssuer, object | undefined> {
    return new Map([...this.stores].map(([issuer, store]) => [issuer, store.currentSet()]));
  }

  private rememberExpired(
    bearer: BearerToken,
    expired: Denial,
    keySetsBefore: ReadonlyMap<CompiledIssuer, object | undefined>,
  ): void {
    const read = readCompactJwt(bearer.token);
    const iss = read.ok ? read.value.claims.iss : undefined;
    const issuer = typeof iss === 'string' ? this.policy.issuerByName.get(iss) : undefined;
    if (issuer === undefined) return;
    const keySet = this.stores.get(issuer)?.currentSet();
    // A refresh that landed during the verification: which set verified it is unknown, so nothing is kept.
    if (keySet === undefined || keySetsBefore.get(issuer) !== keySet) return;
    this.cache.setExpired(bearer.hash, { issuer: issuer.issuer, basis: issuer.basis, expired, keySet });
  }

  /**
   * Claims Envoy already verified (the signature, and whatever its own config checks). Envoy's jwt_authn
   * does not require `exp` and skips the audience check when none is configured, so the same rules as for a
   * verified token apply here: `exp` required and honoured, and when the policy lists issuers, a listed
   * `iss` and one of its audiences. The two configs can drift; this keeps scopegate's rules in force.
   */
  private fromEnvoyPayload(payload: unknown): Authenticated {
    if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
      return deny('token_invalid', "Envoy's jwt_authn payload is not a claims object");
    }
    const claims = payload as Record<string, unknown>;
    let issuer: CompiledIssuer | undefined;
    if (claims.iss !== undefined && typeof claims.iss !== 'string') {
      return deny('token_invalid', 'the "iss" claim must be a string');
    }
    if (this.policy.issuers.length > 0) {
      issuer = typeof claims.iss === 'string' ? this.policy.issuerByName.get(claims.iss) : undefined;
      if (issuer === undefined)
        return deny('issuer_untrusted', 'the token issuer is not trusted by this policy');
      const audiences =
        typeof claims.aud === 'string' ? [claims.aud] : Array.isArray(claims.aud) ? claims.aud : [];
      if (!audiences.some((aud) => typeof aud === 'string' && issuer?.audiences.includes(aud))) {
        return deny('audience_mismatch', 'the token was not issued for this audience');
      }
    }
    if (typeof claims.exp !== 'number' || !Number.isFinite(claims.exp)) {
      return deny('token_invalid', 'the "exp" claim is required and must be a number');
    }
    const tolerance = issuer?.clockToleranceSeconds ?? 0;
    if (claims.exp + tolerance <= this.now() / 1000) {
      return deny('token_expired', 'the token has expired');
    }
    return principalFromClaims(
      claims,
      this.policy.claims,
      issuer?.issuer ?? (claims.iss as string | undefined),
    );
  }
}
