// Verified-token cache: skips signature checks for a token seen recently. Keyed by a hash of the token (the
// token itself is never kept as a key) and by the policy revision, so a principal built under one policy's
// issuers and claim names is never served under another. Bounded by entry count (0 turns it off); an entry
// never outlives the token's `exp`, `exp` is checked again on every hit, and so is the signing key: a token
// whose key has left the issuer's JWKS is verified afresh (and refused), never served from here.
// It also remembers tokens that verified but had expired: an expired token stays expired, so a client that
// keeps sending its old token costs a lookup instead of a signature check each time. Such an entry holds
// only while the issuer's key set is the one that verified it (a refresh means one fresh verification).
import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Principal, SigningKeyRef } from '../vocabulary/index.js';
import { type Denial, type Outcome, ok } from '../vocabulary/index.js';

export interface TokenCacheOptions {
  /** Most entries kept; 0 disables the cache. Default 10,000. */
  readonly maxEntries?: number;
  /** Clock in ms. Default `Date.now`. */
  readonly now?: () => number;
  /** Told about every lookup, for `scopegate_cache_lookups_total{cache="token"}`. */
  readonly onLookup?: (cache: 'token', result: 'hit' | 'miss') => void;
}

export const DEFAULT_TOKEN_CACHE_ENTRIES = 10_000;

/** How long an expired token is remembered at most (bounds what a clock stepped back could mislead). */
const EXPIRED_ENTRY_TTL_MS = 5 * 60_000;

interface VerifiedEntry {
  readonly principal: Principal;
  /** The key that verified the token; undefined only for entries stored without one (tests). */
  readonly signedBy?: SigningKeyRef;
}

/** A token whose signature verified but which had expired, and the key set that verified it. */
interface ExpiredEntry {
  readonly expired: Denial;
  readonly issuer: string;
  readonly keySet: object;
}

type Entry = VerifiedEntry | ExpiredEntry;

/** Is this key still published by its issuer? (KeyStore.publishes, through the Authenticator.) */
export type KeyStillPublished = (ref: SigningKeyRef) => boolean;

/** The issuer's key set in force (KeyStore.currentSet, through the Authenticator). */
export type CurrentKeySet = (issuer: string) => object | undefined;

export class TokenCache {
  /** Undefined when the cache is off (size 0): lru-cache needs a bound, and "no cache" is the honest one. */
  private readonly entries: LRUCache<string, Entry> | undefined;
  private readonly now: () => number;
  private readonly onLookup: TokenCacheOptions['onLookup'];

  constructor(options: TokenCacheOptions = {}) {
    this.now = options.now ?? Date.now;
    this.onLookup = options.onLookup;
    const max = options.maxEntries ?? DEFAULT_TOKEN_CACHE_ENTRIES;
    this.entries =
      max > 0
        ? new LRUCache<string, Entry>({
            max,
            // Same clock as the exp check, read on every lookup (no 1 ms resolution caching).
            perf: { now: this.now },
            ttlResolution: 0,
          })
        : undefined;
  }

  /**
   * The principal verified earlier for this token under this policy revision, or undefined. An entry whose
   * token has reached `exp`, or whose signing key `stillPublished` denies, is dropped and reported as a
   * miss, so the full verification (with the issuer's clock tolerance and current keys) decides: a cached
   * answer is always the answer a fresh verification would give.
   */
  get(
    revision: string,
    token: string,
    stillPublished?: KeyStillPublished,
    currentKeySet?: CurrentKeySet,
  ): Outcome<Principal> | undefined {
    if (this.entries === undefined) return undefined;
    const key = this.keyFor(revision, token);
    let entry = this.entries.get(key);
    if (entry !== undefined && !isCurrent(entry, this.now(), stillPublished, currentKeySet)) {
      this.entries.delete(key);
      entry = undefined;
    }
    this.onLookup?.('token', entry === undefined ? 'miss' : 'hit');
    if (entry === undefined) return undefined;
    return 'expired' in entry ? entry.expired : ok(entry.principal);
  }

  /**
   * Remembers that this token verified under `keySet` but had expired (`token_expired`): served as long as
   * `currentKeySet(issuer)` is still that set, for a few minutes at most.
   */
  setExpired(
    revision: string,
    token: string,
    expired: Denial,
    basis: { issuer: string; keySet: object },
  ): void {
    if (this.entries === undefined) return;
    this.entries.set(this.keyFor(revision, token), { expired, ...basis }, { ttl: EXPIRED_ENTRY_TTL_MS });
  }

  /**
   * Keeps a verified principal until its token's `exp` at the latest, with the key that verified it. One
   * without `exp` is not cached.
   */
  set(revision: string, token: string, principal: Principal, signedBy?: SigningKeyRef): void {
    if (this.entries === undefined || principal.expiresAt === undefined) return;
    const ttl = Math.floor(principal.expiresAt * 1000 - this.now());
    if (!(ttl > 0)) return;
    this.entries.set(this.keyFor(revision, token), signedBy ? { principal, signedBy } : { principal }, {
      ttl,
    });
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }

  /** The key last worked out: a miss stores its token right after looking it up, so it is hashed once. */
  private last: { readonly revision: string; readonly token: string; readonly key: string } | undefined;

  private keyFor(revision: string, token: string): string {
    const last = this.last;
    if (last !== undefined && last.token === token && last.revision === revision) return last.key;
    const key = `${revision}:${tokenHash(token)}`;
    this.last = { revision, token, key };
    return key;
  }

  clear(): void {
    this.entries?.clear();
  }
}

function isCurrent(
  entry: Entry,
  nowMs: number,
  stillPublished: KeyStillPublished | undefined,
  currentKeySet: CurrentKeySet | undefined,
): boolean {
  if ('expired' in entry) return currentKeySet?.(entry.issuer) === entry.keySet;
  const { expiresAt } = entry.principal;
  if (expiresAt === undefined || expiresAt * 1000 <= nowMs) return false;
  return entry.signedBy === undefined || stillPublished === undefined || stillPublished(entry.signedBy);
}

/** SHA-256 of the token, base64url: what the caches key on instead of the token itself. */
export function tokenHash(token: string): string {
  return hash('sha256', token, 'base64url');
}
