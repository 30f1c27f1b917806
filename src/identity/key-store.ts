// One issuer's signing keys (DESIGN.md security rule 6): kept as last-good across failed refreshes, refreshed
// in the background on the JWKS response's `Cache-Control: max-age` (within bounds) and, single-flight, when a
// token names a key we do not have. The on-demand rule: a `kid` never seen before triggers a fetch unless a
// token-triggered fetch started less than 5 s ago (so an IdP's routine rotation never fails a request); a
// `kid` that a fetch started after it was asked for did not find is not fetched for again for 60 s (a bounded
// memory), so junk `kid`s cannot flood the IdP.
// Nothing here logs: outcomes go to the `onRefresh` observer and `lastError()`.
import type { JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import type { CompiledIssuer } from '../policy/types.js';
import type { SigningKeyRef } from '../vocabulary/index.js';
import { errorCode, KeyLoadError, KeysUnavailableError } from './errors.js';
import { readJwks } from './jwks-fetch.js';
import { KeySet } from './key-set.js';

export interface KeyStoreOptions {
  /** Time one JWKS fetch may take, and the longest a Check waits for an on-demand refresh. Default 100 ms. */
  readonly fetchTimeoutMs?: number;
  /** Background refresh period when the JWKS response sets no `Cache-Control: max-age`. Default 5 minutes. */
  readonly refreshIntervalMs?: number;
  /**
   * Bounds for the period a `Cache-Control: max-age` sets: an IdP saying `no-cache` must not make us poll it
   * every second, nor one saying a year keep a removed key trusted that long. Default 60 s and 1 h.
   */
  readonly minRefreshIntervalMs?: number;
  readonly maxRefreshIntervalMs?: number;
  /**
   * While no key set has ever loaded, background retries start this soon and back off (doubling) up to the
   * refresh interval, so an IdP that was down at start-up is picked up in seconds, not minutes. Default 1 s.
   */
  readonly emptyRetryMs?: number;
  /** Least time between two fetches triggered by tokens (a new `kid`, or no keys yet). Default 5 s. */
  readonly onDemandIntervalMs?: number;
  /** How long a `kid` a token-triggered fetch did not find is not fetched for again. Default 60 s. */
  readonly unknownKidMs?: number;
  /** Largest JWKS document accepted. Default 256 KiB. */
  readonly maxJwksBytes?: number;
  /** Clock for the on-demand interval and the unknown-kid memory, in ms. Default `Date.now`. */
  readonly now?: () => number;
  /** Told about every refresh attempt, for `scopegate_jwks_refreshes_total`. */
  readonly onRefresh?: (issuer: string, result: 'success' | 'error') => void;
  /**
   * Told when a fetch (or file read) starts; the function it returns is told how it ended (a trace span). A
   * fetch a Check starts is told to that Check's own `onFetch` instead (KeySource).
   */
  readonly onFetch?: OnKeyFetch;
}

/** Told when a fetch starts; the function it returns is told how it ended. */
export type OnKeyFetch = (issuer: string, source: 'uri' | 'file') => (outcome: KeyFetchOutcome) => void;

/** How one fetch ended: the keys it loaded, or why not (a KeyLoadError's message: never the URL or keys). */
export type KeyFetchOutcome =
  | { readonly ok: true; readonly keys: number }
  | { readonly ok: false; readonly error: string };

const DEFAULTS = {
  fetchTimeoutMs: 100,
  refreshIntervalMs: 5 * 60_000,
  minRefreshIntervalMs: 60_000,
  // A removed key stays trusted (and its tokens cached) until the next refresh: keep that window short.
  maxRefreshIntervalMs: 3_600_000,
  emptyRetryMs: 1_000,
  onDemandIntervalMs: 5_000,
  unknownKidMs: 60_000,
  maxJwksBytes: 256 * 1024,
} as const;

/** What verification needs from a key store (KeyStore implements it; tests may too). */
export interface KeySource {
  /** True once a usable key set has been loaded (it is then kept even when refreshes fail). */
  hasKeys(): boolean;
  /**
   * Refresh now unless one ran within the on-demand interval; waits at most the fetch timeout. Never throws.
   * A fetch this call starts is told to `onFetch` (the waiting Check's span) rather than the store's.
   */
  refreshOnDemand(onFetch?: OnKeyFetch): Promise<void>;
  /** jose key resolver over the current set; on an unknown `kid` it refreshes on demand and retries once. */
  readonly getKey: JWTVerifyGetKey;
  /** getKey, with a fetch it starts told to `onFetch` (the waiting Check's span) rather than the store's. */
  resolverFor?(onFetch: OnKeyFetch): JWTVerifyGetKey;
}

export class KeyStore implements KeySource {
  readonly issuer: string;
  private readonly source: CompiledIssuer['jwks'];
  private readonly options: Required<Omit<KeyStoreOptions, 'onRefresh' | 'onFetch'>> &
    Pick<KeyStoreOptions, 'onRefresh' | 'onFetch'>;
  private current: KeySet | undefined;
  private inFlight: Promise<boolean> | undefined;
  private lastOnDemandAt = Number.NEGATIVE_INFINITY;
  private lastProblem: string | undefined;
  private started: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private emptyRetries = 0;
  private closed = false;
  /** Period of the background refresh, from the last successful fetch's `Cache-Control: max-age`. */
  private interval: number;

  constructor(issuer: Pick<CompiledIssuer, 'issuer' | 'jwks'>, options: KeyStoreOptions = {}) {
    this.issuer = issuer.issuer;
    this.source = issuer.jwks;
    this.options = {
      fetchTimeoutMs: options.fetchTimeoutMs ?? DEFAULTS.fetchTimeoutMs,
      refreshIntervalMs: options.refreshIntervalMs ?? DEFAULTS.refreshIntervalMs,
      minRefreshIntervalMs: options.minRefreshIntervalMs ?? DEFAULTS.minRefreshIntervalMs,
      maxRefreshIntervalMs: options.maxRefreshIntervalMs ?? DEFAULTS.maxRefreshIntervalMs,
      emptyRetryMs: options.emptyRetryMs ?? DEFAULTS.emptyRetryMs,
      onDemandIntervalMs: options.onDemandIntervalMs ?? DEFAULTS.onDemandIntervalMs,
      unknownKidMs: options.unknownKidMs ?? DEFAULTS.unknownKidMs,
      maxJwksBytes: options.maxJwksBytes ?? DEFAULTS.maxJwksBytes,
      now: options.now ?? Date.now,
      onRefresh: options.onRefresh,
      onFetch: options.onFetch,
    };
    this.interval = this.options.refreshIntervalMs;
    this.unknownKids = new LRUCache<string, true>({
      max: 4096,
      // Bounded in bytes too: a kid is as long as its token lets it be.
      maxSize: 1024 * 1024,
      sizeCalculation: (_, kid) => Math.max(1, kid.length),
      ttl: this.options.unknownKidMs,
      perf: { now: this.options.now },
      ttlResolution: 0,
    });
  }

  /** Kids a token-triggered fetch (started after the kid was asked for) did not find: not fetched for again. */
  private readonly unknownKids: LRUCache<string, true>;

  hasKeys(): boolean {
    return this.current !== undefined;
  }

  /** The key set in force, as an identity: every load replaces it (undefined before any load succeeded). */
  currentSet(): KeySet | undefined {
    return this.current;
  }

  /** Number of usable keys in the current set (0 before any load succeeded). */
  keyCount(): number {
    return this.current?.keyCount ?? 0;
  }

  /**
   * True when the current set still publishes the key a token was verified with (see SigningKeyRef). Asked
   * on every cache hit; each set remembers its answer per ref, and a new set starts with no answers.
   */
  publishes(ref: SigningKeyRef): boolean {
    const current = this.current;
    return current !== undefined && ref.issuer === this.issuer && current.publishes(ref);
  }

  /** The current background refresh period: the last `Cache-Control: max-age` (within bounds), or the default. */
  refreshIntervalMs(): number {
    return this.interval;
  }

  /** Why the last load failed, or undefined after a success. Safe to show: never includes the URL or keys. */
  lastError(): string | undefined {
    return this.lastProblem;
  }

  /** Loads the keys once and starts the background refresh. Never throws; see hasKeys()/lastError(). */
  start(): Promise<void> {
    if (this.started === undefined) {
      this.started = this.refresh().then(() => this.scheduleBackground());
    }
    return this.started;
  }

  /** Next background refresh: the regular interval once keys exist, a backing-off retry until then. */
  private scheduleBackground(): void {
    if (this.closed) return;
    const { emptyRetryMs } = this.options;
    const delay = this.hasKeys()
      ? this.interval
      : Math.min(this.interval, emptyRetryMs * 2 ** Math.min(this.emptyRetries++, 16));
    this.timer = setTimeout(() => void this.refresh().then(() => this.scheduleBackground()), delay);
    // A background refresh must never keep the process alive on its own.
    this.timer.unref();
  }

  /**
   * Fetches (or re-reads) the key set now; concurrent callers share one fetch, told to the `onFetch` of the
   * caller that started it. True when it succeeded.
   */
  refresh(onFetch = this.options.onFetch): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    this.inFlight ??= this.load(onFetch).finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  async refreshOnDemand(onFetch = this.options.onFetch): Promise<void> {
    await this.fetchOnDemand(onFetch);
  }

  /**
   * Joins a fetch in flight, or starts one unless another token-triggered fetch started within the on-demand
   * interval; waits for it at most the fetch timeout (the fetch may finish later and still be kept). Says
   * whether this call started the fetch it waited for.
   */
  private async fetchOnDemand(onFetch: OnKeyFetch | undefined): Promise<boolean> {
    let started = false;
    if (this.inFlight === undefined) {
      const now = this.options.now();
      if (now - this.lastOnDemandAt < this.options.onDemandIntervalMs) return false;
      this.lastOnDemandAt = now;
      void this.refresh(onFetch);
      started = true;
    }
    const pending = this.inFlight;
    if (pending === undefined) return started;
    await waitAtMost(pending, this.options.fetchTimeoutMs);
    return started;
  }

  readonly getKey: JWTVerifyGetKey = (header, token) => this.resolve(header, token, this.options.onFetch);

  resolverFor(onFetch: OnKeyFetch): JWTVerifyGetKey {
    return (header, token) => this.resolve(header, token, onFetch);
  }

  private async resolve(
    header: Parameters<JWTVerifyGetKey>[0],
    token: Parameters<JWTVerifyGetKey>[1],
    onFetch: OnKeyFetch | undefined,
  ): Promise<Awaited<ReturnType<JWTVerifyGetKey>>> {
    const before = this.current;
    if (before === undefined) throw new KeysUnavailableError(this.issuer);
    try {
      return await before.resolve(header, token);
    } catch (err) {
      if (errorCode(err) !== 'ERR_JWKS_NO_MATCHING_KEY') throw err;
      // Another Check may already have loaded a newer set; otherwise ask for one, unless this kid was looked
      // for by a fresh fetch a moment ago.
      const kid = typeof header.kid === 'string' ? header.kid : undefined;
      if (this.current === before && !(kid !== undefined && this.unknownKids.has(kid))) {
        const started = await this.fetchOnDemand(onFetch);
        const loaded = this.current;
        // Only a fetch that started after this kid was asked for proves the IdP does not publish it.
        if (
          started &&
          kid !== undefined &&
          loaded !== undefined &&
          loaded !== before &&
          !loaded.kids.has(kid)
        ) {
          this.unknownKids.set(kid, true);
        }
      }
      const after = this.current;
      if (after === undefined || after === before) throw err;
      return after.resolve(header, token);
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async load(onFetch: OnKeyFetch | undefined): Promise<boolean> {
    const fetched = onFetch?.(this.issuer, 'uri' in this.source ? 'uri' : 'file');
    let loaded: KeySet;
    let maxAge: number | undefined;
    try {
      const document = await readJwks(this.source, {
        timeoutMs: this.options.fetchTimeoutMs,
        maxBytes: this.options.maxJwksBytes,
      });
      maxAge = document.maxAgeSeconds;
      loaded = await KeySet.fromJwks(document.text);
    } catch (err) {
      this.lastProblem = err instanceof KeyLoadError ? err.message : 'the key set could not be loaded';
      this.options.onRefresh?.(this.issuer, 'error');
      fetched?.({ ok: false, error: this.lastProblem });
      return false;
    }
    fetched?.({ ok: true, keys: loaded.keyCount });
    if (this.closed) return false;
    this.current = loaded;
    this.lastProblem = undefined;
    const { refreshIntervalMs, minRefreshIntervalMs, maxRefreshIntervalMs } = this.options;
    this.interval =
      maxAge === undefined
        ? refreshIntervalMs
        : Math.min(maxRefreshIntervalMs, Math.max(minRefreshIntervalMs, maxAge * 1000));
    this.options.onRefresh?.(this.issuer, 'success');
    return true;
  }
}

function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    promise.then(
      () => {
        clearTimeout(timer);
        resolve();
      },
      () => {
        clearTimeout(timer);
        resolve();
      },
    );
  });
}
