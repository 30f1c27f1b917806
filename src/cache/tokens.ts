// Verified-token cache: skips signature checks for a token seen recently. It keeps what the signature check
// established (the verified claims, the issuer settings they were checked under, the key that verified them)
// by the token's SHA-256 (the token itself is never kept), so it outlives policy reloads: a policy edit does
// not make every token pay a signature check again. The principal is built from the claims per claims
// mapping (a reload may map claims differently) and kept with the entry. Whoever asks says whether an entry
// is still current (its key still published, its issuer settings unchanged); an entry never outlives the
// token's `exp`. It also remembers tokens that verified but had expired: an expired token stays expired, so
// a client that keeps sending its old token costs a lookup instead of a signature check each time. Bounded
// by entry count (0 turns it off).
import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Denial, Outcome, Principal, SigningKeyRef } from '../vocabulary/index.js';

export interface TokenCacheOptions {
  /** Most entries kept; 0 disables the cache. Default 10,000. */
  readonly maxEntries?: number;
  /** Clock in ms. Default `Date.now`. */
  readonly now?: () => number;
  /** Told about every lookup, for `scopegate_cache_lookups_total{cache="token"}`. */
  readonly onLookup?: (cache: 'token', result: 'hit' | 'miss') => void;
}

export const DEFAULT_TOKEN_CACHE_ENTRIES = 10_000;

/** What a lookup found, written for a caller that asks (a Check's trace span), as lru-cache's `status` does. */
export interface TokenLookupStatus {
  tokenCache?: 'hit' | 'miss';
}

/** How long an expired token is remembered at most (bounds what a clock stepped back could mislead). */
const EXPIRED_ENTRY_TTL_MS = 5 * 60_000;
/** Claims mappings a verified entry keeps a principal for (policies rarely differ in them). */
const MAX_PRINCIPALS_PER_ENTRY = 8;

/** What a verification established, whichever kind: the issuer and the settings it was checked under. */
interface Verification {
  readonly issuer: string;
  /** CompiledIssuer.basis: the issuer settings the token was checked under; another basis re-verifies. */
  readonly basis: string;
}

/** A token whose signature verified and whose claims held. */
export interface VerifiedToken extends Verification {
  readonly kind: 'verified';
  readonly claims: Readonly<Record<string, unknown>>;
  readonly signedBy: SigningKeyRef;
  /** `exp`, in seconds since the epoch. */
  readonly expiresAt: number;
  /** The principal built from the claims, by claims mapping (CompiledPolicy.claimsKey). */
  readonly principals: Map<string, Outcome<Principal>>;
}

/** A token whose signature verified but which had expired, and the key set that verified it. */
export interface ExpiredToken extends Verification {
  readonly kind: 'expired';
  readonly expired: Denial;
  readonly keySet: object;
}

export type CachedToken = VerifiedToken | ExpiredToken;

export class TokenCache {
  /** Undefined when the cache is off (size 0): lru-cache needs a bound, and "no cache" is the honest one. */
  private readonly entries: LRUCache<string, CachedToken> | undefined;
  private readonly now: () => number;
  private readonly onLookup: TokenCacheOptions['onLookup'];

  constructor(options: TokenCacheOptions = {}) {
    this.now = options.now ?? Date.now;
    this.onLookup = options.onLookup;
    const max = options.maxEntries ?? DEFAULT_TOKEN_CACHE_ENTRIES;
    this.entries =
      max > 0
        ? new LRUCache<string, CachedToken>({
            max,
            // Same clock as the exp check, read on every lookup (no 1 ms resolution caching).
            perf: { now: this.now },
            ttlResolution: 0,
          })
        : undefined;
  }

  get enabled(): boolean {
    return this.entries !== undefined;
  }

  /**
   * The entry for this token (by its hash), if it is current: a verified one before its `exp` and as
   * `isCurrent` judges it (key still published, same issuer settings), an expired one as `isCurrent` judges
   * it (same key set). One that is not is dropped and reported as a miss, so a full verification decides: a
   * cached answer is always the answer a fresh verification would give.
   */
  get(
    tokenHash: string,
    isCurrent: (entry: CachedToken) => boolean,
    status?: TokenLookupStatus,
  ): CachedToken | undefined {
    if (this.entries === undefined) return undefined;
    let entry = this.entries.get(tokenHash);
    if (
      entry !== undefined &&
      ((entry.kind === 'verified' && entry.expiresAt * 1000 <= this.now()) || !isCurrent(entry))
    ) {
      this.entries.delete(tokenHash);
      entry = undefined;
    }
    const result = entry === undefined ? 'miss' : 'hit';
    this.onLookup?.('token', result);
    if (status !== undefined) status.tokenCache = result;
    return entry;
  }

  /** Keeps a verified token until its `exp` at the latest. */
  setVerified(tokenHash: string, verified: Omit<VerifiedToken, 'kind' | 'principals'>): VerifiedToken {
    const entry: VerifiedToken = { kind: 'verified', ...verified, principals: new Map() };
    const ttl = Math.floor(verified.expiresAt * 1000 - this.now());
    if (this.entries !== undefined && ttl > 0) this.entries.set(tokenHash, entry, { ttl });
    return entry;
  }

  /** Remembers that this token verified under `keySet` but had expired: for a few minutes at most. */
  setExpired(tokenHash: string, expired: Omit<ExpiredToken, 'kind'>): void {
    this.entries?.set(tokenHash, { kind: 'expired', ...expired }, { ttl: EXPIRED_ENTRY_TTL_MS });
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }

  clear(): void {
    this.entries?.clear();
  }
}

/** The principal a verified token gives under one claims mapping, built once per mapping and kept. */
export function principalFor(
  entry: VerifiedToken,
  claimsKey: string,
  build: () => Outcome<Principal>,
): Outcome<Principal> {
  let principal = entry.principals.get(claimsKey);
  if (principal === undefined) {
    if (entry.principals.size >= MAX_PRINCIPALS_PER_ENTRY) entry.principals.clear();
    principal = build();
    entry.principals.set(claimsKey, principal);
  }
  return principal;
}

/** SHA-256 of the token, base64url: what the caches key on instead of the token itself. */
export function tokenHash(token: string): string {
  return hash('sha256', token, 'base64url');
}
