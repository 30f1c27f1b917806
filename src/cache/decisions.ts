// Decision cache: the whole answer for a request seen recently, so a repeated Check costs a hash and a map
// lookup. A decision is a pure function of the verified token, the route, the locations the request names and
// the policy revision, so exactly those make the key (the token by its hash, never itself; the locations in
// the order found, as the deny names them in that order). The pipeline only caches decisions that depend on
// nothing else: a verified bearer token, a matched route, readable locations. Like the token cache, an entry
// never outlives the token's `exp` and is dropped as soon as the key that signed the token leaves the JWKS.
// Bounded by entry count; 0 turns it off.
import { hash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { Decision, SigningKeyRef } from '../vocabulary/index.js';

/** Is this key still published by its issuer? (KeyStore.publishes, through the Authenticator.) */
export type KeyStillPublished = (ref: SigningKeyRef) => boolean;

export interface DecisionCacheOptions {
  /** Most entries kept; 0 disables the cache. Default 10,000. */
  readonly maxEntries?: number;
  /** Clock in ms. Default `Date.now`. */
  readonly now?: () => number;
  /** Told about every lookup, for `scopegate_cache_lookups_total{cache="decision"}`. */
  readonly onLookup?: (cache: 'decision', result: 'hit' | 'miss') => void;
}

export const DEFAULT_DECISION_CACHE_ENTRIES = 10_000;

/** What a lookup found, written for a caller that asks (a Check's trace span), as lru-cache's `status` does. */
export interface DecisionLookupStatus {
  decisionCache?: 'hit' | 'miss';
}

/** Average bytes budgeted per entry; the cache holds at most `maxEntries` × this many bytes in all. */
const DEFAULT_ENTRY_BUDGET_BYTES = 1_600;

/** Approximate bytes an entry holds: its strings dominate (key, detail, missing names, route, subject). */
function entrySize(entry: Entry, key: string): number {
  const { decision } = entry;
  return 256 + key.length + 2 * (decision.detail.length + JSON.stringify(decision.missing ?? null).length);
}

/** Key parts (all but the token) kept as they are up to this length, hashed beyond it. */
const MAX_PLAIN_KEY_PARTS = 160;

/** Everything a cacheable decision depends on. */
export interface DecisionInputs {
  /** The policy's name and revision: one cache serves every policy of a set. */
  readonly policy: string;
  readonly revision: string;
  /** The bearer token's SHA-256 (BearerToken.hash): never the token itself. */
  readonly tokenHash: string;
  /** The calling workload's SPIFFE ID when the route needs one too (token_and_peer), else ''. */
  readonly peer?: string;
  readonly method: string;
  readonly route: string;
  /** Distinct locations in the order the request names them (validated codes, never `*`). */
  readonly locations: readonly string[];
}

/** What the cached decision rests on besides its key: the token's lifetime and the key that signed it. */
export interface DecisionBasis {
  /** The token's `exp`, in seconds since the epoch. */
  readonly expiresAt: number;
  readonly signedBy: SigningKeyRef;
}

interface Entry extends DecisionBasis {
  readonly decision: Decision;
}

export class DecisionCache {
  private readonly entries: LRUCache<string, Entry> | undefined;
  private readonly now: () => number;
  private readonly onLookup: DecisionCacheOptions['onLookup'];

  constructor(options: DecisionCacheOptions = {}) {
    this.now = options.now ?? Date.now;
    this.onLookup = options.onLookup;
    const max = options.maxEntries ?? DEFAULT_DECISION_CACHE_ENTRIES;
    // Bounded by bytes as well as entries: a deny that names many long locations is large, and any holder of a
    // valid token could otherwise fill memory with them (about 1 KiB per typical entry → 16 MiB by default).
    this.entries =
      max > 0
        ? new LRUCache<string, Entry>({
            max,
            maxSize: max * DEFAULT_ENTRY_BUDGET_BYTES,
            sizeCalculation: entrySize,
            perf: { now: this.now },
            ttlResolution: 0,
          })
        : undefined;
  }

  /** False when sized 0: callers then skip even building a key. */
  get enabled(): boolean {
    return this.entries !== undefined;
  }

  /**
   * The cache key: the token's SHA-256 (worked out once per Check, for the token cache too), then the other
   * parts, each prefixed with its length (which keeps them apart whatever they contain). Parts longer than a
   * short key (many locations) are hashed as well, so every key stays small. (Hashing reads the parts as
   * UTF-8, so it relies on them being well-formed text: route names and the revision come from the policy,
   * methods and locations are validated codes.)
   */
  static keyFor(inputs: DecisionInputs): string {
    const { policy, revision, tokenHash, method, route, locations, peer = '' } = inputs;
    let rest = `${policy.length}:${policy}${revision.length}:${revision}${peer.length}:${peer}${method.length}:${method}${route.length}:${route}`;
    for (const location of locations) rest += `${location.length}:${location}`;
    if (rest.length > MAX_PLAIN_KEY_PARTS) rest = `#${hash('sha256', rest, 'base64url')}`;
    return `${tokenHash}${rest}`;
  }

  /**
   * The decision stored under this key, unless its token has reached `exp` or its signing key is no longer
   * published (then the entry is dropped and it is a miss: a fresh check decides).
   */
  get(key: string, stillPublished: KeyStillPublished, status?: DecisionLookupStatus): Decision | undefined {
    if (this.entries === undefined) return undefined;
    let entry = this.entries.get(key);
    if (entry !== undefined && (entry.expiresAt * 1000 <= this.now() || !stillPublished(entry.signedBy))) {
      this.entries.delete(key);
      entry = undefined;
    }
    const result = entry === undefined ? 'miss' : 'hit';
    this.onLookup?.('decision', result);
    if (status !== undefined) status.decisionCache = result;
    return entry?.decision;
  }

  /**
   * Keeps a decision until its token's `exp` at the latest; returns the decision as kept (with room for its
   * answer), or the one given when it is not kept.
   */
  set(key: string, decision: Decision, basis: DecisionBasis): Decision {
    const ttl = Math.floor(basis.expiresAt * 1000 - this.now());
    if (this.entries === undefined || !(ttl > 0)) return decision;
    // Frozen: one object answers many requests, so nothing downstream may change it for the others; it
    // carries room for its answer, which is then built once for all of them (src/response/kept.ts).
    const kept = Object.freeze({ ...decision, kept: {} });
    this.entries.set(key, { decision: kept, ...basis }, { ttl });
    return kept;
  }

  get size(): number {
    return this.entries?.size ?? 0;
  }

  clear(): void {
    this.entries?.clear();
  }
}
