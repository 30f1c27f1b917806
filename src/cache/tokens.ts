// Verified-token cache: skips signature checks for a token seen recently. Keyed by a hash of the token (the
// token itself is never kept as a key) and by the policy revision, so a principal built under one policy's
// issuers and claim names is never served under another. Bounded by entry count; an entry never outlives
// the token's `exp`, and `exp` is checked again on every hit.
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { type Outcome, ok } from '../decision/types.js';
import type { Principal } from '../identity/types.js';

export interface TokenCacheOptions {
  /** Most entries kept. Default 10,000. */
  readonly maxEntries?: number;
  /** Clock in ms. Default `Date.now`. */
  readonly now?: () => number;
  /** Told about every lookup, for `scopegate_cache_lookups_total{cache="token"}`. */
  readonly onLookup?: (cache: 'token', result: 'hit' | 'miss') => void;
}

export const DEFAULT_TOKEN_CACHE_ENTRIES = 10_000;

export class TokenCache {
  private readonly entries: LRUCache<string, Principal>;
  private readonly now: () => number;
  private readonly onLookup: TokenCacheOptions['onLookup'];

  constructor(options: TokenCacheOptions = {}) {
    this.now = options.now ?? Date.now;
    this.onLookup = options.onLookup;
    this.entries = new LRUCache<string, Principal>({
      max: options.maxEntries ?? DEFAULT_TOKEN_CACHE_ENTRIES,
      // Same clock as the exp check, read on every lookup (no 1 ms resolution caching).
      perf: { now: this.now },
      ttlResolution: 0,
    });
  }

  /**
   * The principal verified earlier for this token under this policy revision, or undefined. An entry whose
   * token has reached `exp` is dropped and reported as a miss, so the full verification (with the issuer's
   * clock tolerance) decides: a cached answer is always the answer a fresh verification would give.
   */
  get(revision: string, token: string): Outcome<Principal> | undefined {
    const key = cacheKey(revision, token);
    let principal = this.entries.get(key);
    if (
      principal !== undefined &&
      (principal.expiresAt === undefined || principal.expiresAt * 1000 <= this.now())
    ) {
      this.entries.delete(key);
      principal = undefined;
    }
    this.onLookup?.('token', principal === undefined ? 'miss' : 'hit');
    return principal === undefined ? undefined : ok(principal);
  }

  /** Keeps a verified principal until its token's `exp` at the latest; one without `exp` is not cached. */
  set(revision: string, token: string, principal: Principal): void {
    if (principal.expiresAt === undefined) return;
    const ttl = Math.floor(principal.expiresAt * 1000 - this.now());
    if (!(ttl > 0)) return;
    this.entries.set(cacheKey(revision, token), principal, { ttl });
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}

function cacheKey(revision: string, token: string): string {
  return `${revision}:${createHash('sha256').update(token).digest('base64url')}`;
}
