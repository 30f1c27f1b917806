// One issuer's key store against a real JWKS endpoint: rotation, junk kids, outages, slow IdPs, the refresh
// period a response's Cache-Control sets, and whether the key a token was verified with is still published.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { KeyRegistry } from '../../../src/identity/key-registry.js';
import { KeyStore, type KeyStoreOptions } from '../../../src/identity/key-store.js';
import { verifyToken } from '../../../src/identity/verify.js';
import type { CompiledIssuer } from '../../../src/policy/types.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import { handBuiltToken, mintToken, newSigningKey, type SigningKey } from '../../support/tokens.js';
import { AUDIENCE, ISSUER, identityPolicy, issuerConfig, ManualClock } from './fixtures.js';

let current: SigningKey;
let next: SigningKey;
let rsa: SigningKey;
let server: JwksServer;

beforeAll(async () => {
  [current, next, rsa] = await Promise.all([
    newSigningKey('ES256'),
    newSigningKey('ES256'),
    newSigningKey('RS256'),
  ]);
  server = await startJwksServer();
});
afterAll(() => server.close());

let clock: ManualClock;
let registry: KeyRegistry;
let refreshes: Array<{ issuer: string; result: string }>;
const stores: KeyStore[] = [];

beforeEach(() => {
  clock = new ManualClock();
  refreshes = [];
  server.setKeys([current.publicJwk]);
  server.setAvailable(true);
  server.setDelay(0);
  server.setRawBody(undefined);
  server.setCacheControl(undefined);
  server.resetFetches();
});
afterEach(() => {
  registry?.close();
  for (const store of stores.splice(0)) store.close();
});

function newRegistry(options: KeyStoreOptions = {}): KeyRegistry {
  registry = new KeyRegistry({
    now: clock.now,
    fetchTimeoutMs: 2000,
    onRefresh: (issuer, result) => refreshes.push({ issuer, result }),
    ...options,
  });
  return registry;
}

/** A store of its own (not through a registry), closed after the test. */
function storeFor(options: KeyStoreOptions = {}): KeyStore {
  const store = new KeyStore(issuerConfig({ uri: server.uri }), { fetchTimeoutMs: 2_000, ...options });
  stores.push(store);
  return store;
}

/** Verifies through the registry, as the Authenticator does. */
function verifier(issuer: CompiledIssuer) {
  const policy = identityPolicy([issuer]);
  return (token: string) =>
    verifyToken(token, {
      maxTokenBytes: 8192,
      issuerByName: policy.issuerByName,
      keysFor: (i) => registry.storeFor(i),
      now: clock.now,
    });
}

const claims = () => ({ iss: ISSUER, aud: AUDIENCE, sub: 'svc-inventory-sync' });

describe('key rotation', () => {
  it('a token signed with a key that just appeared at the JWKS endpoint verifies after one refresh', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await newRegistry().start([issuer]);
    const verify = verifier(issuer);
    expect((await verify(await mintToken(current, claims(), { now: clock.seconds }))).ok).toBe(true);
    expect(server.fetches).toBe(1);

    server.setKeys([current.publicJwk, next.publicJwk]);
    expect((await verify(await mintToken(next, claims(), { now: clock.seconds }))).ok).toBe(true);
    expect(server.fetches).toBe(2);
    // The new set is kept: the next token with that key needs no fetch.
    expect((await verify(await mintToken(next, claims(), { now: clock.seconds }))).ok).toBe(true);
    expect(server.fetches).toBe(2);
  });

  it('the background refresh picks up new keys on its own, with no token asking', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await newRegistry({ refreshIntervalMs: 25 }).start([issuer]);
    const store = registry.storeFor(issuer);
    expect(store.keyCount()).toBe(1);
    server.setKeys([current.publicJwk, next.publicJwk]);
    await vi.waitFor(() => expect(store.keyCount()).toBe(2), { timeout: 2000, interval: 5 });
    store.close();
    const fetches = server.fetches;
    expect((await verifier(issuer)(await mintToken(next, claims(), { now: clock.seconds }))).ok).toBe(true);
    expect(server.fetches).toBe(fetches);
  });
});

describe('junk kids cannot flood the IdP, and a new key works on first sight', () => {
  const junk = () =>
    handBuiltToken(
      { alg: 'ES256', kid: `junk-${Math.random().toString(36).slice(2)}` },
      { ...claims(), exp: clock.seconds + 300 },
      'c2ln',
    );

  it('1,000 tokens with random kids cause at most one fetch per on-demand interval (5 s)', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await newRegistry().start([issuer]);
    const verify = verifier(issuer);
    expect(server.fetches).toBe(1);

    // 500 at once share one fetch (single flight)…
    const burst = await Promise.all(Array.from({ length: 500 }, () => verify(junk())));
    expect(burst.every((r) => !r.ok && r.reason === 'key_unknown')).toBe(true);
    expect(server.fetches).toBe(2);
    // …and 500 more within the interval fetch nothing.
    for (let i = 0; i < 500; i++) expect(await verify(junk())).toMatchObject({ reason: 'key_unknown' });
    expect(server.fetches).toBe(2);

    clock.advance(5_000);
    expect(await verify(junk())).toMatchObject({ reason: 'key_unknown' });
    expect(server.fetches).toBe(3);
  });

  it("a key the IdP published a moment ago verifies on first sight, right after junk kids' fetches", async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await newRegistry().start([issuer]);
    const verify = verifier(issuer);
    expect(await verify(junk())).toMatchObject({ reason: 'key_unknown' });
    expect(server.fetches).toBe(2);

    // The IdP rotates: it publishes the next key and signs with it 5 s after the junk kid's fetch.
    clock.advance(5_000);
    server.setKeys([current.publicJwk, next.publicJwk]);
    expect((await verify(await mintToken(next, claims(), { now: clock.seconds }))).ok).toBe(true);
    expect(server.fetches).toBe(3);
  });

  it('one junk kid sent again and again is fetched for once per minute, and does not use up the interval', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await newRegistry().start([issuer]);
    const verify = verifier(issuer);
    const sameJunk = handBuiltToken(
      { alg: 'ES256', kid: 'junk-forever' },
      { ...claims(), exp: clock.seconds + 900 },
      'c2ln',
    );
    expect(await verify(sameJunk)).toMatchObject({ reason: 'key_unknown' });
    expect(server.fetches).toBe(2);
    for (let second = 0; second < 55; second += 5) {
      clock.advance(5_000);
      expect(await verify(sameJunk)).toMatchObject({ reason: 'key_unknown' });
    }
    expect(server.fetches).toBe(2);
    // The interval was never used meanwhile: a kid seen for the first time fetches at once.
    server.setKeys([current.publicJwk, next.publicJwk]);
    expect((await verify(await mintToken(next, claims(), { now: clock.seconds }))).ok).toBe(true);
    expect(server.fetches).toBe(3);
    // A minute after it was found missing, the junk kid is looked for again (the IdP may have added it).
    clock.advance(60_000);
    expect(await verify(sameJunk)).toMatchObject({ reason: 'key_unknown' });
    expect(server.fetches).toBe(4);
  });
});

describe('outages', () => {
  it('JWKS down at start: keys_unavailable (never an allow), then verifies once it is back', async () => {
    server.setAvailable(false);
    const issuer = issuerConfig({ uri: server.uri });
    await newRegistry({ onDemandIntervalMs: 30_000 }).start([issuer]);
    expect(registry.ready()).toBe(false);
    expect(registry.problems([issuer])[0]).toContain('HTTP 503');
    expect(refreshes).toEqual([{ issuer: ISSUER, result: 'error' }]);

    const verify = verifier(issuer);
    const token = await mintToken(current, claims(), { now: clock.seconds });
    expect(await verify(token)).toMatchObject({ ok: false, reason: 'keys_unavailable' });

    server.setAvailable(true);
    // Still within the on-demand interval of the last attempt: no new fetch yet.
    const fetches = server.fetches;
    expect(await verify(token)).toMatchObject({ ok: false, reason: 'keys_unavailable' });
    expect(server.fetches).toBe(fetches);

    clock.advance(30_000);
    expect((await verify(token)).ok).toBe(true);
    expect(registry.ready()).toBe(true);
    expect(registry.problems()).toEqual([]);
    expect(refreshes.at(-1)).toEqual({ issuer: ISSUER, result: 'success' });
  });

  it('JWKS down later: the last good keys keep verifying', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await newRegistry().start([issuer]);
    server.setAvailable(false);
    const store = registry.storeFor(issuer);
    expect(await store.refresh()).toBe(false);
    expect(refreshes.map((r) => r.result)).toEqual(['success', 'error']);
    expect(store.lastError()).toContain('HTTP 503');
    expect(registry.ready()).toBe(true);
    expect((await verifier(issuer)(await mintToken(current, claims(), { now: clock.seconds }))).ok).toBe(
      true,
    );
  });

  it.each([
    ['a document over 256 KiB', JSON.stringify({ keys: [], pad: 'x'.repeat(300 * 1024) }), 'larger than'],
    ['invalid JSON', '{"keys": [', 'not valid JSON'],
    ['a document with no keys array', '{"issuer":"x"}', 'not a JWKS'],
    [
      'only encryption keys',
      () => JSON.stringify({ keys: [{ ...next.publicJwk, use: 'enc' }] }),
      'no usable',
    ],
  ])('a refresh that returns %s keeps the last good set', async (_, body, problem) => {
    const issuer = issuerConfig({ uri: server.uri });
    await newRegistry().start([issuer]);
    server.setRawBody(typeof body === 'function' ? body() : body);
    const store = registry.storeFor(issuer);
    expect(await store.refresh()).toBe(false);
    expect(store.lastError()).toContain(problem);
    expect((await verifier(issuer)(await mintToken(current, claims(), { now: clock.seconds }))).ok).toBe(
      true,
    );
  });

  it('a slow JWKS endpoint makes a Check wait at most the fetch timeout', async () => {
    server.setDelay(1500);
    const issuer = issuerConfig({ uri: server.uri });
    let started = performance.now();
    await newRegistry({ fetchTimeoutMs: 100 }).start([issuer]);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(registry.problems([issuer])[0]).toContain('longer than 100 ms');

    const token = await mintToken(current, claims(), { now: clock.seconds });
    clock.advance(60_000);
    started = performance.now();
    expect(await verifier(issuer)(token)).toMatchObject({ ok: false, reason: 'keys_unavailable' });
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('a slow refresh for an unknown kid is waited for at most the fetch timeout', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await newRegistry({ fetchTimeoutMs: 100 }).start([issuer]);
    server.setDelay(1500);
    const started = performance.now();
    const result = await verifier(issuer)(await mintToken(next, claims(), { now: clock.seconds }));
    expect(result).toMatchObject({ ok: false, reason: 'key_unknown' });
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('key sources', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scopegate-keys-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('loads keys from a JWKS file', async () => {
    const file = join(dir, 'jwks.json');
    await writeFile(file, JSON.stringify({ keys: [current.publicJwk] }));
    const issuer = issuerConfig({ file });
    await newRegistry().start([issuer]);
    expect(registry.ready()).toBe(true);
    expect((await verifier(issuer)(await mintToken(current, claims(), { now: clock.seconds }))).ok).toBe(
      true,
    );
  });

  it('a missing JWKS file leaves the issuer without keys: keys_unavailable', async () => {
    const issuer = issuerConfig({ file: join(dir, 'absent.json') });
    await newRegistry().start([issuer]);
    expect(registry.problems([issuer])[0]).toContain('could not be read');
    const result = await verifier(issuer)(await mintToken(current, claims(), { now: clock.seconds }));
    expect(result).toMatchObject({ ok: false, reason: 'keys_unavailable' });
  });
});

describe("the JWKS response's Cache-Control sets the background refresh", () => {
  it.each([
    ['max-age=3600', 3_600_000],
    ['max-age=5', 60_000],
    ['no-cache', 60_000],
    [`max-age=${30 * 86_400}`, 3_600_000],
    ['max-age=7200', 3_600_000],
    [undefined, 5 * 60_000],
  ])('"%s" sets the background refresh to %d ms (clamped to 60 s … 1 h)', async (header, interval) => {
    server.setKeys([rsa.publicJwk]);
    server.setCacheControl(header);
    const store = storeFor();
    await store.start();
    expect(store.hasKeys()).toBe(true);
    expect(store.refreshIntervalMs()).toBe(interval);
  });

  it('a failed refresh keeps the last interval, as it keeps the last keys', async () => {
    server.setKeys([rsa.publicJwk]);
    server.setCacheControl('max-age=3600');
    const store = storeFor();
    await store.start();
    server.setAvailable(false);
    expect(await store.refresh()).toBe(false);
    expect(store.refreshIntervalMs()).toBe(3_600_000);
    expect(store.keyCount()).toBe(1);
  });

  it('the background refresh really runs on the max-age schedule', async () => {
    server.setKeys([rsa.publicJwk]);
    server.setCacheControl('max-age=1');
    // Bounds lowered so the test need not wait a minute; the default floor is 60 s.
    const store = storeFor({ minRefreshIntervalMs: 0 });
    const before = server.fetches;
    await store.start();
    expect(server.fetches).toBe(before + 1);
    server.setKeys([rsa.publicJwk, next.publicJwk]);
    await vi.waitFor(() => expect(store.keyCount()).toBe(2), { timeout: 4_000, interval: 20 });
    expect(server.fetches).toBeGreaterThanOrEqual(before + 2);
  });
});

describe('is the key a token was verified with still published?', () => {
  it('yes while the JWKS publishes it; no once a refresh drops it', async () => {
    server.setKeys([rsa.publicJwk, next.publicJwk]);
    const store = storeFor();
    await store.start();
    const ref = {
      issuer: ISSUER,
      thumbprint: await calculateJwkThumbprint(rsa.publicJwk),
      kid: rsa.kid,
      alg: 'RS256',
    };
    expect(store.publishes(ref)).toBe(true);

    server.setKeys([next.publicJwk]);
    expect(await store.refresh()).toBe(true);
    expect(store.publishes(ref)).toBe(false);
  });

  it('no when the same key material is republished under another kid (the token names the old one)', async () => {
    server.setKeys([{ ...rsa.publicJwk, kid: 'renamed' }]);
    const store = storeFor();
    await store.start();
    const thumbprint = await calculateJwkThumbprint(rsa.publicJwk);
    expect(store.publishes({ issuer: ISSUER, thumbprint, kid: rsa.kid, alg: 'RS256' })).toBe(false);
    // A token that named no kid is verified by whichever published copy matches: still yes.
    expect(store.publishes({ issuer: ISSUER, thumbprint, alg: 'RS256' })).toBe(true);
  });

  it('no when the key is now restricted to another algorithm, or the ref is for another issuer', async () => {
    server.setKeys([{ ...rsa.publicJwk, alg: 'PS256' }]);
    const store = storeFor();
    await store.start();
    const thumbprint = await calculateJwkThumbprint(rsa.publicJwk);
    expect(store.publishes({ issuer: ISSUER, thumbprint, kid: rsa.kid, alg: 'RS256' })).toBe(false);
    expect(store.publishes({ issuer: ISSUER, thumbprint, kid: rsa.kid, alg: 'PS256' })).toBe(true);
    expect(store.publishes({ issuer: 'https://other/', thumbprint, kid: rsa.kid, alg: 'PS256' })).toBe(false);
  });
});

describe('every fetch is told to onFetch (a trace span), with its result and nothing secret', () => {
  it('a fetch that loads keys reports how many; one that fails reports the safe message, never the URL', async () => {
    const fetches: Array<{ issuer: string; source: string; outcome?: unknown }> = [];
    const store = storeFor({
      onFetch: (issuer, source) => {
        const fetch: (typeof fetches)[number] = { issuer, source };
        fetches.push(fetch);
        return (outcome) => {
          fetch.outcome = outcome;
        };
      },
    });
    server.setKeys([current.publicJwk, next.publicJwk]);
    await store.start();
    server.setAvailable(false);
    expect(await store.refresh()).toBe(false);
    expect(fetches).toEqual([
      { issuer: ISSUER, source: 'uri', outcome: { ok: true, keys: 2 } },
      { issuer: ISSUER, source: 'uri', outcome: { ok: false, error: store.lastError() } },
    ]);
    expect(JSON.stringify(fetches)).not.toContain(server.uri);
  });
});

describe('a fetch a Check starts is told to that Check (its span), not to the store', () => {
  const recorder = () => {
    const told: string[] = [];
    const onFetch = (who: string) => () => {
      told.push(who);
      return () => {};
    };
    return { told, onFetch };
  };

  it('an unknown kid: the fetch it starts goes to the resolver’s onFetch; the start-up and background ones to the store’s', async () => {
    const { told, onFetch } = recorder();
    const store = storeFor({ onFetch: onFetch('store'), now: clock.now });
    await store.start();
    server.setKeys([current.publicJwk, next.publicJwk]);
    const token = await mintToken(next, { iss: ISSUER, aud: AUDIENCE, sub: 's' }, { now: clock.seconds });
    const [header] = token.split('.');
    const protectedHeader = JSON.parse(Buffer.from(header!, 'base64url').toString());
    await store.resolverFor(onFetch('check'))(protectedHeader, { payload: '', signature: '' });
    expect(await store.refresh()).toBe(true);
    expect(told).toEqual(['store', 'check', 'store']);
  });

  it('refreshOnDemand (keys down at start) tells the caller’s onFetch; a Check joining it starts nothing', async () => {
    const { told, onFetch } = recorder();
    const store = storeFor({ onFetch: onFetch('store'), now: clock.now });
    await Promise.all([store.refreshOnDemand(onFetch('first')), store.refreshOnDemand(onFetch('joined'))]);
    expect(told).toEqual(['first']);
  });
});
