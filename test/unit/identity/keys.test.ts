// Key stores against a real JWKS endpoint: rotation, junk kids, outages, slow IdPs and reloads.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { KeyRegistry, type KeyStoreOptions, keysFromJwks } from '../../../src/identity/keys.js';
import { verifyToken } from '../../../src/identity/verify.js';
import type { CompiledIssuer } from '../../../src/policy/types.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import { handBuiltToken, mintToken, newSigningKey, type SigningKey } from '../../support/tokens.js';
import { AUDIENCE, ISSUER, identityPolicy, issuerConfig, ManualClock } from './fixtures.js';

let current: SigningKey;
let next: SigningKey;
let server: JwksServer;

beforeAll(async () => {
  [current, next] = await Promise.all([newSigningKey('ES256'), newSigningKey('ES256')]);
  server = await startJwksServer();
});
afterAll(() => server.close());

let clock: ManualClock;
let registry: KeyRegistry;
let refreshes: Array<{ issuer: string; result: string }>;

beforeEach(() => {
  clock = new ManualClock();
  refreshes = [];
  server.setKeys([current.publicJwk]);
  server.setAvailable(true);
  server.setDelay(0);
  server.setRawBody(undefined);
  server.resetFetches();
});
afterEach(() => registry?.close());

function newRegistry(options: KeyStoreOptions = {}): KeyRegistry {
  registry = new KeyRegistry({
    now: clock.now,
    fetchTimeoutMs: 2000,
    onRefresh: (issuer, result) => refreshes.push({ issuer, result }),
    ...options,
  });
  return registry;
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

describe('key sources and the registry', () => {
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

  it('a reload with unchanged issuers reuses the stores and fetches nothing', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await newRegistry().start([issuer]);
    const store = registry.storeFor(issuer);
    const reloaded = { ...issuer, audiences: [...issuer.audiences] };
    await registry.start([reloaded]);
    expect(registry.storeFor(reloaded)).toBe(store);
    expect(server.fetches).toBe(1);
  });

  it('a reload that moves the JWKS gets a new store; the old one is dropped from readiness', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await newRegistry().start([issuer]);
    const moved = issuerConfig({ file: join(dir, 'absent.json') });
    await registry.start([moved]);
    expect(registry.storeFor(moved)).not.toBe(registry.storeFor(issuer));
    registry.retainOnly([moved]);
    expect(registry.ready()).toBe(false);
    expect(registry.problems()).toHaveLength(1);
  });

  it('a JWKS keeps only public signing keys: enc, symmetric and private keys are skipped', () => {
    const loaded = keysFromJwks(
      JSON.stringify({
        keys: [
          current.publicJwk,
          { ...next.publicJwk, use: 'enc' },
          { kty: 'oct', k: 'c2VjcmV0', kid: 'shared' },
          { ...next.publicJwk, d: 'private-part' },
          { kty: 'unknown', kid: 'odd' },
          'not a key',
        ],
      }),
    );
    expect(loaded.keyCount).toBe(1);
  });

  it('keys jose would refuse (key_ops without verify, a non-boolean ext) are not usable here either', () => {
    const loaded = keysFromJwks(
      JSON.stringify({
        keys: [
          { ...current.publicJwk, key_ops: ['verify'] },
          { ...next.publicJwk, kid: 'signing-only', key_ops: ['sign'] },
          { ...next.publicJwk, kid: 'odd-ext', ext: 'yes' },
          { ...next.publicJwk, kid: 'twice', key_ops: ['verify', 'verify'] },
        ],
      }),
    );
    expect(loaded.keyCount).toBe(1);
  });

  it('a set with no usable keys is refused', () => {
    expect(() => keysFromJwks(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }))).toThrow(
      /no usable/,
    );
  });
});
