// Signing keys per issuer (DESIGN.md security rule 6): loaded from a JWKS file or URL, kept as last-good
// across failed refreshes, refreshed in the background and, single-flight, when a token names a key we do
// not have: a `kid` never seen before triggers a fetch within seconds (so an IdP's routine rotation never
// fails a request), while a per-kid memory of kids a fresh fetch did not have, and a least interval between
// token-triggered fetches, keep junk `kid`s from flooding the IdP.
// Every fetch is bounded in time (far below Envoy's 200 ms ext_authz timeout) and in size. The background
// refresh follows the JWKS response's `Cache-Control: max-age`, within bounds.
// Caches ask `publishes(ref)` on every hit, so a token whose key has left the JWKS is never served from them.
// Nothing here logs: outcomes go to the `onRefresh` observer and `lastError()`.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { createLocalJWKSet, exportJWK, type JWK, type JWTVerifyGetKey } from 'jose';
import { LRUCache } from 'lru-cache';
import type { CompiledIssuer } from '../policy/types.js';
import type { SigningKeyRef } from '../vocabulary/index.js';

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
}

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

/** Key types jose can verify JWS signatures with; `oct` (shared secrets) never belongs in a public JWKS. */
const SIGNING_KEY_TYPES = new Set(['RSA', 'EC', 'OKP']);
/** Private members: a JWKS that publishes them is broken, and such a key must not be used. */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

/** Why a key set could not be loaded; the message is safe to show (no URL, no key material). */
class KeyLoadError extends Error {}

/** Thrown from the key resolver when an issuer has no usable keys at all; verify maps it to keys_unavailable. */
export class KeysUnavailableError extends Error {
  readonly code = 'ERR_SCOPEGATE_KEYS_UNAVAILABLE';
  constructor(issuer: string) {
    super(`no usable signing keys are loaded for issuer ${issuer}`);
  }
}

/** What verification needs from a key store (KeyStore implements it; tests may too). */
export interface KeySource {
  /** True once a usable key set has been loaded (it is then kept even when refreshes fail). */
  hasKeys(): boolean;
  /** Refresh now unless one ran within the on-demand interval; waits at most the fetch timeout. Never throws. */
  refreshOnDemand(): Promise<void>;
  /** jose key resolver over the current set; on an unknown `kid` it refreshes on demand and retries once. */
  readonly getKey: JWTVerifyGetKey;
}

/** A loaded key set: jose's resolver over the usable keys. */
export interface LoadedKeys {
  readonly resolve: ReturnType<typeof createLocalJWKSet>;
  readonly keyCount: number;
  /** What the set publishes, one publicationId per key (and kid): answers `publishes(ref)` with two lookups. */
  readonly published: ReadonlySet<string>;
  /** `publishes(ref)` answers for this set, by ref. */
  readonly answers: WeakMap<SigningKeyRef, boolean>;
  /** Every `kid` the set publishes. */
  readonly kids: ReadonlySet<string>;
}

type JwksSource = CompiledIssuer['jwks'];

export class KeyStore implements KeySource {
  readonly issuer: string;
  private readonly source: JwksSource;
  private readonly options: Required<Omit<KeyStoreOptions, 'onRefresh'>> & Pick<KeyStoreOptions, 'onRefresh'>;
  private current: LoadedKeys | undefined;
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
  currentSet(): object | undefined {
    return this.current;
  }

  /** Number of usable keys in the current set (0 before any load succeeded). */
  keyCount(): number {
    return this.current?.keyCount ?? 0;
  }

  /**
   * True when the current set still publishes the key a token was verified with (see SigningKeyRef). Asked
   * on every cache hit, so each set remembers its answer per ref (a ref is shared by every answer its token
   * got; a new set starts with no answers).
   */
  publishes(ref: SigningKeyRef): boolean {
    const current = this.current;
    if (current === undefined || ref.issuer !== this.issuer) return false;
    let answer = current.answers.get(ref);
    if (answer === undefined) {
      const { published } = current;
      answer =
        published.has(publicationId(ref.thumbprint, ref.kid, ref.alg)) ||
        published.has(publicationId(ref.thumbprint, ref.kid, undefined));
      current.answers.set(ref, answer);
    }
    return answer;
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

  /** Fetches (or re-reads) the key set now; concurrent callers share one fetch. True when it succeeded. */
  refresh(): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    this.inFlight ??= this.load().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  async refreshOnDemand(): Promise<void> {
    await this.fetchOnDemand();
  }

  /**
   * Joins a fetch in flight, or starts one unless another token-triggered fetch started within the on-demand
   * interval; waits for it at most the fetch timeout (the fetch may finish later and still be kept). Says
   * whether this call started the fetch it waited for.
   */
  private async fetchOnDemand(): Promise<boolean> {
    let started = false;
    if (this.inFlight === undefined) {
      const now = this.options.now();
      if (now - this.lastOnDemandAt < this.options.onDemandIntervalMs) return false;
      this.lastOnDemandAt = now;
      void this.refresh();
      started = true;
    }
    const pending = this.inFlight;
    if (pending === undefined) return started;
    await waitAtMost(pending, this.options.fetchTimeoutMs);
    return started;
  }

  readonly getKey: JWTVerifyGetKey = async (header, token) => {
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
        const started = await this.fetchOnDemand();
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
  };

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async load(): Promise<boolean> {
    let loaded: LoadedKeys;
    let maxAge: number | undefined;
    try {
      let text: string;
      if ('uri' in this.source) {
        const fetched = await fetchBounded(
          this.source.uri,
          this.options.fetchTimeoutMs,
          this.options.maxJwksBytes,
        );
        text = fetched.text;
        maxAge = fetched.maxAgeSeconds;
      } else {
        text = await readBounded(this.source.file, this.options.maxJwksBytes);
      }
      loaded = keysFromJwks(text);
    } catch (err) {
      this.lastProblem = err instanceof KeyLoadError ? err.message : 'the key set could not be loaded';
      this.options.onRefresh?.(this.issuer, 'error');
      return false;
    }
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

/**
 * Hands out one KeyStore per distinct issuer configuration (issuer name + key source), so a policy reload
 * that keeps its issuers reuses the loaded keys instead of refetching them.
 */
export class KeyRegistry {
  private readonly stores = new Map<string, KeyStore>();
  private started = false;

  constructor(private readonly options: KeyStoreOptions = {}) {}

  storeFor(issuer: Pick<CompiledIssuer, 'issuer' | 'jwks'>): KeyStore {
    const id = storeId(issuer);
    let store = this.stores.get(id);
    if (store === undefined) {
      store = new KeyStore(issuer, this.options);
      this.stores.set(id, store);
      if (this.started) void store.start();
    }
    return store;
  }

  /** After a policy reload: closes and forgets the stores no current issuer uses, so readiness tracks the policy. */
  retainOnly(issuers: ReadonlyArray<Pick<CompiledIssuer, 'issuer' | 'jwks'>>): void {
    const keep = new Set(issuers.map(storeId));
    for (const [id, store] of this.stores) {
      if (!keep.has(id)) {
        store.close();
        this.stores.delete(id);
      }
    }
  }

  /**
   * Initial loads of every store (and of any added later). Given a policy's issuers, first makes the
   * registry hold exactly their stores (as after a reload). Never throws; waits at most one fetch timeout.
   */
  async start(issuers?: ReadonlyArray<Pick<CompiledIssuer, 'issuer' | 'jwks'>>): Promise<void> {
    if (issuers !== undefined) {
      for (const issuer of issuers) this.storeFor(issuer);
      this.retainOnly(issuers);
    }
    this.started = true;
    await Promise.all([...this.stores.values()].map((store) => store.start()));
  }

  /** Every issuer has a usable key set (for /readyz). */
  ready(): boolean {
    return [...this.stores.values()].every((store) => store.hasKeys());
  }

  /**
   * Why the given issuers (default: every store) cannot verify tokens yet, one sentence each; empty when
   * ready. Safe to show: names issuers, never URLs or keys.
   */
  problems(issuers?: ReadonlyArray<Pick<CompiledIssuer, 'issuer' | 'jwks'>>): string[] {
    const stores =
      issuers === undefined ? [...this.stores.values()] : issuers.map((i) => this.stores.get(storeId(i)));
    const problems: string[] = [];
    stores.forEach((store, index) => {
      if (store === undefined) {
        problems.push(`issuer ${issuers?.[index]?.issuer}: key store not started`);
      } else if (!store.hasKeys()) {
        problems.push(
          `issuer ${store.issuer}: no usable signing keys (${store.lastError() ?? 'still loading'})`,
        );
      }
    });
    return problems;
  }

  /** Per-issuer state for readiness output: never includes key material or the JWKS URL. */
  status(): Array<{ issuer: string; keys: number; error?: string }> {
    return [...this.stores.values()].map((store) => {
      const error = store.lastError();
      return { issuer: store.issuer, keys: store.keyCount(), ...(error !== undefined && { error }) };
    });
  }

  close(): void {
    for (const store of this.stores.values()) store.close();
    this.stores.clear();
    this.started = false;
  }
}

function storeId(issuer: Pick<CompiledIssuer, 'issuer' | 'jwks'>): string {
  const source = 'uri' in issuer.jwks ? `uri ${issuer.jwks.uri}` : `file ${issuer.jwks.file}`;
  return `${issuer.issuer}\n${source}`;
}

/** A JWKS document's usable signing keys; throws (with a safe message) when there are none. */
export function keysFromJwks(text: string): LoadedKeys {
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch {
    throw new KeyLoadError('the key set is not valid JSON');
  }
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (typeof document !== 'object' || document === null || !Array.isArray(keys)) {
    throw new KeyLoadError('the key set is not a JWKS (no "keys" array)');
  }
  const usable = keys.filter(isUsableSigningKey);
  if (usable.length === 0) throw new KeyLoadError('the key set has no usable signing keys');
  const published = new Set<string>();
  for (const jwk of usable) {
    const thumbprint = jwkThumbprint(jwk);
    // Indexed with and without its kid, so a token that named none still finds it.
    for (const kid of jwk.kid === undefined ? [undefined] : [jwk.kid, undefined]) {
      published.add(publicationId(thumbprint, kid, jwk.alg));
    }
  }
  return {
    resolve: createLocalJWKSet({ keys: usable }),
    keyCount: usable.length,
    published,
    answers: new WeakMap(),
    kids: new Set(usable.flatMap((jwk) => (jwk.kid === undefined ? [] : [jwk.kid]))),
  };
}

/** One entry of LoadedKeys.published; `undefined` kid = "any kid", `undefined` alg = "the key allows any". */
function publicationId(thumbprint: string, kid: string | undefined, alg: string | undefined): string {
  return JSON.stringify([thumbprint, kid ?? null, alg ?? null]);
}

/** Members RFC 7638 hashes, per key type, in the lexicographic order it requires. */
const THUMBPRINT_MEMBERS: Record<string, readonly string[]> = {
  RSA: ['e', 'kty', 'n'],
  EC: ['crv', 'kty', 'x', 'y'],
  OKP: ['crv', 'kty', 'x'],
};

/** RFC 7638 JWK thumbprint (SHA-256, base64url): the key material, whatever `kid` it is published under. */
export function jwkThumbprint(jwk: JWK): string {
  const members = THUMBPRINT_MEMBERS[jwk.kty ?? ''] ?? ['kty'];
  const canonical = JSON.stringify(
    Object.fromEntries(members.map((name) => [name, (jwk as Record<string, unknown>)[name]])),
  );
  return createHash('sha256').update(canonical).digest('base64url');
}

const thumbprints = new WeakMap<object, Promise<string | undefined>>();

/** Thumbprint of a key jose resolved (memoised per key object: jose reuses them). Undefined if not exportable. */
function thumbprintOfKey(key: unknown): Promise<string | undefined> {
  if (typeof key !== 'object' || key === null || key instanceof Uint8Array) return Promise.resolve(undefined);
  let thumbprint = thumbprints.get(key);
  if (thumbprint === undefined) {
    thumbprint = exportJWK(key as Parameters<typeof exportJWK>[0]).then(jwkThumbprint, () => undefined);
    thumbprints.set(key, thumbprint);
  }
  return thumbprint;
}

/**
 * Names the key that verified a token (jose's resolved key, with the token's own `kid` and `alg`) as a
 * SigningKeyRef; undefined when it cannot tell, and then nothing built on the token is cached.
 */
export async function signingKeyRef(
  issuer: string,
  key: unknown,
  header: { readonly kid?: unknown; readonly alg?: unknown },
): Promise<SigningKeyRef | undefined> {
  const { kid, alg } = header;
  if (typeof alg !== 'string' || (kid !== undefined && typeof kid !== 'string')) return undefined;
  const thumbprint = await thumbprintOfKey(key);
  if (thumbprint === undefined) return undefined;
  return { issuer, thumbprint, alg, ...(kid !== undefined && { kid }) };
}

function isUsableSigningKey(key: unknown): key is JWK {
  if (typeof key !== 'object' || key === null || Array.isArray(key)) return false;
  const jwk = key as Record<string, unknown>;
  if (typeof jwk.kty !== 'string' || !SIGNING_KEY_TYPES.has(jwk.kty)) return false;
  if (jwk.use !== undefined && jwk.use !== 'sig') return false;
  if (jwk.kid !== undefined && typeof jwk.kid !== 'string') return false;
  if (jwk.alg !== undefined && typeof jwk.alg !== 'string') return false;
  // jose refuses these too; the published set must be exactly what jose will verify with, or a cached answer
  // could outlive a key the IdP withdrew by marking it non-verifying.
  if (jwk.ext !== undefined && typeof jwk.ext !== 'boolean') return false;
  if (jwk.key_ops !== undefined) {
    const ops = jwk.key_ops;
    if (!Array.isArray(ops) || !ops.includes('verify') || new Set(ops).size !== ops.length) return false;
    if (!ops.every((op) => typeof op === 'string')) return false;
  }
  return !PRIVATE_MEMBERS.some((member) => Object.hasOwn(jwk, member));
}

/**
 * GET a JWKS over HTTP(S) within a time and size budget, with the response's `max-age`. Messages never
 * include the URL (it may hold credentials).
 */
async function fetchBounded(
  uri: string,
  timeoutMs: number,
  maxBytes: number,
): Promise<{ text: string; maxAgeSeconds?: number }> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new KeyLoadError('the JWKS URI is not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new KeyLoadError('the JWKS URI must be http(s)');
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    // Redirects are refused: a key source that moves is a configuration change, not something to follow.
    const response = await fetch(url, {
      signal,
      redirect: 'error',
      headers: { accept: 'application/jwk-set+json, application/json' },
    });
    if (!response.ok) {
      await response.body?.cancel();
      throw new KeyLoadError(`the JWKS endpoint answered HTTP ${response.status}`);
    }
    const declared = Number(response.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > maxBytes) {
      await response.body?.cancel();
      throw tooLarge(maxBytes);
    }
    const text = await readCapped(response.body, maxBytes);
    const maxAgeSeconds = maxAgeOf(response.headers.get('cache-control'));
    return maxAgeSeconds === undefined ? { text } : { text, maxAgeSeconds };
  } catch (err) {
    if (signal.aborted) throw new KeyLoadError(`the JWKS fetch took longer than ${timeoutMs} ms`);
    if (err instanceof KeyLoadError) throw err;
    throw new KeyLoadError('the JWKS endpoint could not be reached');
  }
}

/**
 * Seconds a `Cache-Control` header lets the response be reused: `max-age`, 0 for `no-cache`/`no-store`,
 * undefined when it says neither (or is malformed). The caller clamps it.
 */
export function maxAgeOf(cacheControl: string | null): number | undefined {
  if (cacheControl === null) return undefined;
  let maxAge: number | undefined;
  // Bounded: a header is client-of-ours input too; 1 KiB holds any honest Cache-Control.
  for (const directive of cacheControl.slice(0, 1024).split(',')) {
    const equals = directive.indexOf('=');
    const name = (equals === -1 ? directive : directive.slice(0, equals)).trim().toLowerCase();
    if (name === 'no-cache' || name === 'no-store') return 0;
    if (name !== 'max-age' || maxAge !== undefined || equals === -1) continue;
    const value = /^\s*"?(\d{1,10})"?\s*$/.exec(directive.slice(equals + 1));
    if (value) maxAge = Number(value[1]);
  }
  return maxAge;
}

async function readCapped(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<string> {
  if (body === null) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      // Leaving the loop early cancels the stream, so the rest is never downloaded.
      throw tooLarge(maxBytes);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readBounded(path: string, maxBytes: number): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, 'r');
    const buffer = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await handle.read(buffer, 0, maxBytes + 1, 0);
    if (bytesRead > maxBytes) throw tooLarge(maxBytes);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } catch (err) {
    if (err instanceof KeyLoadError) throw err;
    const code = errorCode(err);
    throw new KeyLoadError(`the JWKS file could not be read${code ? ` (${code})` : ''}`);
  } finally {
    await handle?.close();
  }
}

function tooLarge(maxBytes: number): Error {
  return new KeyLoadError(`the key set is larger than ${maxBytes} bytes`);
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

export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
}
