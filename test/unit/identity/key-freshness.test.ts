// How fresh the key store keeps its keys: the JWKS response's Cache-Control sets the background refresh
// (within bounds), and the caches can ask whether the key a token was verified with is still published.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Authenticator } from '../../../src/identity/authenticate.js';
import { jwkThumbprint, KeyRegistry, KeyStore, maxAgeOf } from '../../../src/identity/keys.js';
import { mintToken, newSigningKey, type SigningKey } from '../../support/tokens.js';
import { AUDIENCE, ISSUER, identityPolicy, issuerConfig, requestFacts } from './fixtures.js';

/** A JWKS endpoint that answers with the Cache-Control header the test sets. */
let server: Server;
let uri: string;
let keys: JWK[] = [];
let cacheControl: string | undefined;
let available = true;
let fetches = 0;

let rsa: SigningKey;
let ec: SigningKey;

beforeAll(async () => {
  [rsa, ec] = await Promise.all([newSigningKey('RS256'), newSigningKey('ES256')]);
  server = createServer((_, res) => {
    fetches += 1;
    if (!available) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, {
      'content-type': 'application/json',
      ...(cacheControl !== undefined && { 'cache-control': cacheControl }),
    });
    res.end(JSON.stringify({ keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  uri = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const stores: KeyStore[] = [];
afterEach(() => {
  for (const store of stores.splice(0)) store.close();
  keys = [rsa.publicJwk];
  cacheControl = undefined;
  available = true;
});

function storeFor(options: ConstructorParameters<typeof KeyStore>[1] = {}): KeyStore {
  const store = new KeyStore(issuerConfig({ uri }), { fetchTimeoutMs: 2_000, ...options });
  stores.push(store);
  return store;
}

describe('Cache-Control on the JWKS response', () => {
  it.each([
    ['max-age=600', 600],
    ['public, max-age="120", must-revalidate', 120],
    ['MAX-AGE=5', 5],
    ['no-cache', 0],
    ['no-store, max-age=600', 0],
    ['max-age=soon', undefined],
    ['s-maxage=100', undefined],
    ['max-age=99999999999', undefined],
  ])('%s → %s seconds', (header, seconds) => {
    expect(maxAgeOf(header)).toBe(seconds);
  });

  it('no header: undefined (the configured interval applies)', () => {
    expect(maxAgeOf(null)).toBeUndefined();
  });

  it.each([
    ['max-age=3600', 3_600_000],
    ['max-age=5', 60_000],
    ['no-cache', 60_000],
    [`max-age=${30 * 86_400}`, 3_600_000],
    ['max-age=7200', 3_600_000],
    [undefined, 5 * 60_000],
  ])('"%s" sets the background refresh to %d ms (clamped to 60 s … 1 h)', async (header, interval) => {
    keys = [rsa.publicJwk];
    cacheControl = header;
    const store = storeFor();
    await store.start();
    expect(store.hasKeys()).toBe(true);
    expect(store.refreshIntervalMs()).toBe(interval);
  });

  it('a failed refresh keeps the last interval, as it keeps the last keys', async () => {
    keys = [rsa.publicJwk];
    cacheControl = 'max-age=3600';
    const store = storeFor();
    await store.start();
    available = false;
    expect(await store.refresh()).toBe(false);
    expect(store.refreshIntervalMs()).toBe(3_600_000);
    expect(store.keyCount()).toBe(1);
  });

  it('the background refresh really runs on the max-age schedule', async () => {
    keys = [rsa.publicJwk];
    cacheControl = 'max-age=1';
    // Bounds lowered so the test need not wait a minute; the default floor is 60 s.
    const store = storeFor({ minRefreshIntervalMs: 0 });
    const before = fetches;
    await store.start();
    expect(fetches).toBe(before + 1);
    keys = [rsa.publicJwk, ec.publicJwk];
    await vi.waitFor(() => expect(store.keyCount()).toBe(2), { timeout: 4_000, interval: 20 });
    expect(fetches).toBeGreaterThanOrEqual(before + 2);
  });
});

describe('is the key a token was verified with still published?', () => {
  it('the thumbprint is RFC 7638, as jose computes it', async () => {
    for (const key of [rsa, ec]) {
      expect(jwkThumbprint(key.publicJwk)).toBe(await calculateJwkThumbprint(key.publicJwk));
    }
  });

  it('yes while the JWKS publishes it; no once a refresh drops it', async () => {
    keys = [rsa.publicJwk, ec.publicJwk];
    const store = storeFor();
    await store.start();
    const ref = { issuer: ISSUER, thumbprint: jwkThumbprint(rsa.publicJwk), kid: rsa.kid, alg: 'RS256' };
    expect(store.publishes(ref)).toBe(true);

    keys = [ec.publicJwk];
    expect(await store.refresh()).toBe(true);
    expect(store.publishes(ref)).toBe(false);
  });

  it('no when the same key material is republished under another kid (the token names the old one)', async () => {
    keys = [{ ...rsa.publicJwk, kid: 'renamed' }];
    const store = storeFor();
    await store.start();
    const thumbprint = jwkThumbprint(rsa.publicJwk);
    expect(store.publishes({ issuer: ISSUER, thumbprint, kid: rsa.kid, alg: 'RS256' })).toBe(false);
    // A token that named no kid is verified by whichever published copy matches: still yes.
    expect(store.publishes({ issuer: ISSUER, thumbprint, alg: 'RS256' })).toBe(true);
  });

  it('no when the key is now restricted to another algorithm, or the ref is for another issuer', async () => {
    keys = [{ ...rsa.publicJwk, alg: 'PS256' }];
    const store = storeFor();
    await store.start();
    const thumbprint = jwkThumbprint(rsa.publicJwk);
    expect(store.publishes({ issuer: ISSUER, thumbprint, kid: rsa.kid, alg: 'RS256' })).toBe(false);
    expect(store.publishes({ issuer: ISSUER, thumbprint, kid: rsa.kid, alg: 'PS256' })).toBe(true);
    expect(store.publishes({ issuer: 'https://other/', thumbprint, kid: rsa.kid, alg: 'PS256' })).toBe(false);
  });

  it('the Authenticator ties each principal to the key that verified its token', async () => {
    keys = [rsa.publicJwk, ec.publicJwk];
    const registry = new KeyRegistry({ fetchTimeoutMs: 2_000 });
    try {
      const policy = identityPolicy([issuerConfig({ uri })]);
      const authenticator = new Authenticator(policy, registry);
      await registry.start(policy.issuers);
      const token = await mintToken(ec, { iss: ISSUER, aud: AUDIENCE, sub: 'svc-inventory-sync' });
      const result = await authenticator.authenticate(requestFacts({ authorization: `Bearer ${token}` }));
      expect(result.ok).toBe(true);
      if (!result.ok) return;
      const ref = authenticator.signingKeyOf(result.value);
      expect(ref).toEqual({
        issuer: ISSUER,
        thumbprint: await calculateJwkThumbprint(ec.publicJwk),
        kid: ec.kid,
        alg: 'ES256',
      });
      expect(ref && authenticator.isPublished(ref)).toBe(true);
    } finally {
      registry.close();
    }
  });

  it('a token without kid, with several candidate keys, is tied to the one that verified it', async () => {
    const second = await newSigningKey('RS256');
    keys = [second.publicJwk, rsa.publicJwk].map(({ kid: _, ...jwk }) => jwk);
    const registry = new KeyRegistry({ fetchTimeoutMs: 2_000 });
    try {
      const policy = identityPolicy([issuerConfig({ uri })]);
      const authenticator = new Authenticator(policy, registry);
      await registry.start(policy.issuers);
      const token = await mintToken(
        rsa,
        { iss: ISSUER, aud: AUDIENCE, sub: 'svc-inventory-sync' },
        { header: { kid: undefined } },
      );
      const result = await authenticator.authenticate(requestFacts({ authorization: `Bearer ${token}` }));
      expect(result.ok).toBe(true);
      if (!result.ok) return;
      expect(authenticator.signingKeyOf(result.value)).toEqual({
        issuer: ISSUER,
        thumbprint: jwkThumbprint(rsa.publicJwk),
        alg: 'RS256',
      });
    } finally {
      registry.close();
    }
  });
});
