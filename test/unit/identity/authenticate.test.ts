// The identity phase end to end: header → token → keys from a real JWKS endpoint → Principal, plus Envoy's
// jwt_authn mode, the verified-token cache and the key each principal was verified with.
import { calculateJwkThumbprint } from 'jose';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { TokenCache } from '../../../src/cache/tokens.js';
import { Authenticator, type IdentifyStatus } from '../../../src/identity/authenticate.js';
import { readCredential } from '../../../src/identity/credential.js';
import { KeyRegistry } from '../../../src/identity/key-registry.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import { mintToken, newSigningKey, type SigningKey } from '../../support/tokens.js';
import {
  AUDIENCE,
  CLAIM_NAMES,
  ISSUER,
  identityPolicy,
  issuerConfig,
  ManualClock,
  requestFacts,
} from './fixtures.js';

let key: SigningKey;
let ec: SigningKey;
let server: JwksServer;

beforeAll(async () => {
  [key, ec] = await Promise.all([newSigningKey('RS256'), newSigningKey('ES256')]);
  server = await startJwksServer([key.publicJwk]);
});
afterAll(() => server.close());

let clock: ManualClock;
let registry: KeyRegistry;
let lookups: string[];

beforeEach(() => {
  clock = new ManualClock();
  lookups = [];
  server.setKeys([key.publicJwk]);
  registry = new KeyRegistry({ now: clock.now, fetchTimeoutMs: 2000 });
});
afterEach(() => registry.close());

async function authenticatorFor(extra: Parameters<typeof identityPolicy>[1] = {}, withIssuer = true) {
  const policy = identityPolicy(withIssuer ? [issuerConfig({ uri: server.uri })] : [], extra);
  const authenticator = new Authenticator(policy, registry, {
    now: clock.now,
    onCacheLookup: (_, result) => lookups.push(result),
  });
  await registry.start(policy.issuers);
  return authenticator;
}

const serviceAccount = (extra: Record<string, unknown> = {}) => ({
  iss: ISSUER,
  aud: AUDIENCE,
  sub: 'svc-inventory-sync',
  client_id: 'inventory-sync',
  gty: 'client_credentials',
  scope: 'inventory.read inventory.write',
  ...extra,
});

const bearer = (token: string) => requestFacts({ authorization: `Bearer ${token}` });

describe('Authenticator: bearer tokens', () => {
  it('the service account from the support thread is identified with its scopes, client and grant type', async () => {
    const authenticator = await authenticatorFor();
    const result = await authenticator.authenticate(
      bearer(await mintToken(key, serviceAccount(), { now: clock.seconds })),
    );
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value).toMatchObject({
      subject: 'svc-inventory-sync',
      client: 'inventory-sync',
      grantType: 'client_credentials',
      issuer: ISSUER,
    });
    expect([...result.value.scopes].sort()).toEqual(['inventory.read', 'inventory.write']);
  });

  it('scopes may come from an scp array', async () => {
    const authenticator = await authenticatorFor();
    const token = await mintToken(key, serviceAccount({ scope: undefined, scp: ['inventory.read'] }), {
      now: clock.seconds,
    });
    const result = await authenticator.authenticate(bearer(token));
    expect(result.ok && [...result.value.scopes]).toEqual(['inventory.read']);
  });

  it('no Authorization header is token_missing', async () => {
    const authenticator = await authenticatorFor();
    expect(await authenticator.authenticate(requestFacts())).toMatchObject({
      ok: false,
      reason: 'token_missing',
    });
  });

  it('a malformed header is request_malformed, whatever else the request carries', async () => {
    const authenticator = await authenticatorFor({ envoyJwtAuthn: { metadataKey: 'jwt_payload' } });
    const facts = requestFacts({
      authorization: 'Bearer a, Bearer b',
      jwtAuthn: { jwt_payload: serviceAccount({ exp: clock.seconds + 60 }) },
    });
    expect(await authenticator.authenticate(facts)).toMatchObject({ ok: false, reason: 'request_malformed' });
  });

  it('an expired token is token_expired', async () => {
    const authenticator = await authenticatorFor();
    const token = await mintToken(key, serviceAccount(), { now: clock.seconds - 3600 });
    expect(await authenticator.authenticate(bearer(token))).toMatchObject({
      ok: false,
      reason: 'token_expired',
    });
  });

  it('a verified token whose claims are the wrong shape is token_invalid', async () => {
    const authenticator = await authenticatorFor();
    const token = await mintToken(key, serviceAccount({ scope: 42 }), { now: clock.seconds });
    const result = await authenticator.authenticate(bearer(token));
    expect(result).toMatchObject({ ok: false, reason: 'token_invalid' });
    expect(!result.ok && result.detail).toContain('claim scope must be');
  });
});

describe('Authenticator: the verified-token cache', () => {
  it('verifies a token once, then serves it from the cache', async () => {
    const authenticator = await authenticatorFor();
    const token = await mintToken(key, serviceAccount(), { now: clock.seconds });
    const first = await authenticator.authenticate(bearer(token));
    const second = await authenticator.authenticate(bearer(token));
    expect(lookups).toEqual(['miss', 'hit']);
    expect(second).toEqual(first);
  });

  it('tells a Check that asks (its span) whether its token was verified now or came from the cache', async () => {
    const authenticator = await authenticatorFor();
    const token = await mintToken(key, serviceAccount(), { now: clock.seconds });
    const credential = readCredential(bearer(token), identityPolicy([issuerConfig({ uri: server.uri })]));
    if (!credential.ok) throw new Error('no credential');
    const first: IdentifyStatus = {};
    await authenticator.identify(credential.value, first);
    const again: IdentifyStatus = {};
    authenticator.identify(credential.value, again);
    expect([first.tokenCache, again.tokenCache]).toEqual(['miss', 'hit']);
    // No token, so no cache was asked: nothing said.
    const none: IdentifyStatus = {};
    authenticator.identify({ kind: 'none' }, none);
    expect(none).toEqual({});
  });

  it('a JWKS fetch a token with a new kid starts is told to the Check that waits for it', async () => {
    const authenticator = await authenticatorFor();
    const rotated = await newSigningKey('RS256');
    server.setKeys([key.publicJwk, rotated.publicJwk]);
    const token = await mintToken(rotated, serviceAccount(), { now: clock.seconds });
    const fetched: unknown[] = [];
    const status: IdentifyStatus = {
      keyFetch: (issuer, source) => (outcome) => fetched.push({ issuer, source, outcome }),
    };
    const credential = readCredential(bearer(token), identityPolicy([issuerConfig({ uri: server.uri })]));
    if (!credential.ok) throw new Error('no credential');
    expect(await authenticator.identify(credential.value, status)).toMatchObject({ ok: true });
    expect(fetched).toEqual([{ issuer: ISSUER, source: 'uri', outcome: { ok: true, keys: 2 } }]);
  });

  it('never serves a cached principal after the token expires', async () => {
    const authenticator = await authenticatorFor();
    const token = await mintToken(key, serviceAccount(), { now: clock.seconds, lifetime: 60 });
    expect((await authenticator.authenticate(bearer(token))).ok).toBe(true);
    clock.advance(120_000);
    expect(await authenticator.authenticate(bearer(token))).toMatchObject({
      ok: false,
      reason: 'token_expired',
    });
  });

  it('does not cache failures other than expiry', async () => {
    const authenticator = await authenticatorFor();
    const token = await mintToken(key, serviceAccount({ aud: 'https://other.example' }), {
      now: clock.seconds,
    });
    await authenticator.authenticate(bearer(token));
    await authenticator.authenticate(bearer(token));
    // A forged signature on an expired token is token_invalid: checked every time, never remembered.
    const forged = await mintToken(await newSigningKey('RS256', key.kid), serviceAccount(), {
      now: clock.seconds - 3600,
    });
    expect(await authenticator.authenticate(bearer(forged))).toMatchObject({ reason: 'token_invalid' });
    expect(await authenticator.authenticate(bearer(forged))).toMatchObject({ reason: 'token_invalid' });
    expect(lookups).toEqual(['miss', 'miss', 'miss', 'miss']);
  });

  it('remembers a genuine expired token while the key set that verified it is in force', async () => {
    const authenticator = await authenticatorFor();
    const token = await mintToken(key, serviceAccount(), { now: clock.seconds - 3600 });
    const first = await authenticator.authenticate(bearer(token));
    expect(first).toMatchObject({ ok: false, reason: 'token_expired' });
    expect(await authenticator.authenticate(bearer(token))).toEqual(first);
    expect(lookups).toEqual(['miss', 'hit']);
    // A refreshed key set (here with a second key added) means one fresh verification, then hits again.
    server.setKeys([key.publicJwk, (await newSigningKey('RS256')).publicJwk]);
    try {
      expect(await registry.storeFor(issuerConfig({ uri: server.uri })).refresh()).toBe(true);
      expect(await authenticator.authenticate(bearer(token))).toEqual(first);
      expect(await authenticator.authenticate(bearer(token))).toEqual(first);
      expect(lookups).toEqual(['miss', 'hit', 'miss', 'hit']);
    } finally {
      server.setKeys([key.publicJwk]);
    }
  });

  it('after a policy reload, a shared cache does not serve principals built under the old claim names', async () => {
    const tokenCache = new TokenCache({ now: clock.now });
    const issuer = issuerConfig({ uri: server.uri });
    const before = identityPolicy([issuer], { revision: 'rev-1' });
    const after = identityPolicy([issuer], {
      revision: 'rev-2',
      claims: { ...CLAIM_NAMES, scopes: ['scp'] },
    });
    await registry.start([issuer]);
    const token = await mintToken(key, serviceAccount({ scp: ['inventory.read'] }), { now: clock.seconds });

    const old = await new Authenticator(before, registry, { now: clock.now, tokenCache }).authenticate(
      bearer(token),
    );
    expect(old.ok && [...old.value.scopes].sort()).toEqual(['inventory.read', 'inventory.write']);
    const reloaded = await new Authenticator(after, registry, { now: clock.now, tokenCache }).authenticate(
      bearer(token),
    );
    expect(reloaded.ok && [...reloaded.value.scopes]).toEqual(['inventory.read']);
  });

  it('outlives a policy reload: the next revision serves the token without verifying it again', async () => {
    const tokenCache = new TokenCache({ now: clock.now, onLookup: (_, result) => lookups.push(result) });
    const issuer = issuerConfig({ uri: server.uri });
    await registry.start([issuer]);
    const token = await mintToken(key, serviceAccount(), { now: clock.seconds });
    const first = await new Authenticator(identityPolicy([issuer], { revision: 'rev-1' }), registry, {
      now: clock.now,
      tokenCache,
    }).authenticate(bearer(token));
    expect(first.ok).toBe(true);
    // The next revision's authenticator answers from the cache synchronously: no signature check, no promise.
    const next = new Authenticator(identityPolicy([issuer], { revision: 'rev-2' }), registry, {
      now: clock.now,
      tokenCache,
    }).authenticate(bearer(token));
    expect(next).not.toBeInstanceOf(Promise);
    expect(next).toMatchObject({ ok: true, value: { subject: 'svc-inventory-sync' } });
    expect(lookups).toEqual(['miss', 'hit']);
  });

  it('is not served once the issuer settings it was verified under change (another audience, algorithm or key source)', async () => {
    const tokenCache = new TokenCache({ now: clock.now });
    const issuer = issuerConfig({ uri: server.uri });
    await registry.start([issuer]);
    const token = await mintToken(key, serviceAccount(), { now: clock.seconds });
    await new Authenticator(identityPolicy([issuer]), registry, { now: clock.now, tokenCache }).authenticate(
      bearer(token),
    );
    const otherAudience = issuerConfig({ uri: server.uri }, { audiences: ['https://elsewhere.example'] });
    await registry.start([otherAudience]);
    const result = new Authenticator(identityPolicy([otherAudience]), registry, {
      now: clock.now,
      tokenCache,
    }).authenticate(bearer(token));
    // A fresh verification decides: the token's audience is no longer accepted.
    expect(result).toBeInstanceOf(Promise);
    expect(await result).toMatchObject({ ok: false, reason: 'audience_mismatch' });
  });

  it("a token over the new revision's size cap is refused, even when a looser revision cached it", async () => {
    const tokenCache = new TokenCache({ now: clock.now });
    const issuer = issuerConfig({ uri: server.uri });
    await registry.start([issuer]);
    const token = await mintToken(key, serviceAccount({ pad: 'x'.repeat(1200) }), { now: clock.seconds });
    const loose = identityPolicy([issuer], { maxTokenBytes: 8192 });
    expect(
      (await new Authenticator(loose, registry, { now: clock.now, tokenCache }).authenticate(bearer(token)))
        .ok,
    ).toBe(true);
    const strict = identityPolicy([issuer], { maxTokenBytes: 1024 });
    expect(
      await new Authenticator(strict, registry, { now: clock.now, tokenCache }).authenticate(bearer(token)),
    ).toMatchObject({
      ok: false,
      reason: 'token_invalid',
    });
  });
});

describe('Authenticator: the key that verified each principal', () => {
  it('the Authenticator ties each principal to the key that verified its token', async () => {
    server.setKeys([key.publicJwk, ec.publicJwk]);
    const authenticator = await authenticatorFor();
    const token = await mintToken(ec, serviceAccount(), { now: clock.seconds });
    const result = await authenticator.authenticate(bearer(token));
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
  });

  it('a token without kid, with several candidate keys, is tied to the one that verified it', async () => {
    const second = await newSigningKey('RS256');
    server.setKeys([second.publicJwk, key.publicJwk].map(({ kid: _, ...jwk }) => jwk));
    const authenticator = await authenticatorFor();
    const token = await mintToken(key, serviceAccount(), { now: clock.seconds, header: { kid: undefined } });
    const result = await authenticator.authenticate(bearer(token));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(authenticator.signingKeyOf(result.value)).toEqual({
      issuer: ISSUER,
      thumbprint: await calculateJwkThumbprint(key.publicJwk),
      alg: 'RS256',
    });
  });
});

describe("Authenticator: Envoy's jwt_authn already verified the token", () => {
  const envoyMode = { envoyJwtAuthn: { metadataKey: 'jwt_payload' } };

  it('builds the principal from the verified payload; no Authorization header is needed', async () => {
    const authenticator = await authenticatorFor(envoyMode);
    const facts = requestFacts({ jwtAuthn: { jwt_payload: serviceAccount({ exp: clock.seconds + 60 }) } });
    const result = await authenticator.authenticate(facts);
    expect(result.ok && result.value.subject).toBe('svc-inventory-sync');
    expect(result.ok && result.value.issuer).toBe(ISSUER);
  });

  it('works with no issuers configured at all (Envoy is the only verifier)', async () => {
    const authenticator = await authenticatorFor(envoyMode, false);
    const facts = requestFacts({
      jwtAuthn: {
        jwt_payload: serviceAccount({ iss: 'https://anywhere.example/', exp: clock.seconds + 60 }),
      },
    });
    expect((await authenticator.authenticate(facts)).ok).toBe(true);
  });

  it('an expired payload is still token_expired', async () => {
    const authenticator = await authenticatorFor(envoyMode);
    const facts = requestFacts({ jwtAuthn: { jwt_payload: serviceAccount({ exp: clock.seconds - 120 }) } });
    expect(await authenticator.authenticate(facts)).toMatchObject({ ok: false, reason: 'token_expired' });
  });

  it('a payload from an issuer the policy does not list is issuer_untrusted', async () => {
    const authenticator = await authenticatorFor(envoyMode);
    const facts = requestFacts({
      jwtAuthn: {
        jwt_payload: serviceAccount({ iss: 'https://other-idp.example/', exp: clock.seconds + 60 }),
      },
    });
    expect(await authenticator.authenticate(facts)).toMatchObject({ ok: false, reason: 'issuer_untrusted' });
  });

  it('a payload that is not an object is token_invalid', async () => {
    const authenticator = await authenticatorFor(envoyMode);
    const facts = requestFacts({ jwtAuthn: { jwt_payload: 'eyJ...' } });
    expect(await authenticator.authenticate(facts)).toMatchObject({ ok: false, reason: 'token_invalid' });
  });

  it('the payload under another key is ignored: with no token that is token_missing', async () => {
    const authenticator = await authenticatorFor(envoyMode);
    const facts = requestFacts({ jwtAuthn: { other_key: serviceAccount({ exp: clock.seconds + 60 }) } });
    expect(await authenticator.authenticate(facts)).toMatchObject({ ok: false, reason: 'token_missing' });
  });

  it('no payload but a bearer token: verified by scopegate when the policy lists issuers', async () => {
    const authenticator = await authenticatorFor(envoyMode);
    const token = await mintToken(key, serviceAccount(), { now: clock.seconds });
    expect((await authenticator.authenticate(bearer(token))).ok).toBe(true);
  });

  // Every identity check of this path, one by one (each would let an allow through alone if removed).
  const payloadOutcome = async (payload: Record<string, unknown>, withIssuer = true) => {
    const authenticator = await authenticatorFor(envoyMode, withIssuer);
    return authenticator.authenticate(requestFacts({ jwtAuthn: { jwt_payload: payload } }));
  };

  it('a payload for another audience is audience_mismatch (Envoy skips the check when none is configured)', async () => {
    expect(
      await payloadOutcome(serviceAccount({ aud: 'https://elsewhere.example', exp: clock.seconds + 60 })),
    ).toMatchObject({
      ok: false,
      reason: 'audience_mismatch',
    });
    expect(await payloadOutcome(serviceAccount({ aud: undefined, exp: clock.seconds + 60 }))).toMatchObject({
      reason: 'audience_mismatch',
    });
    // One listed audience among several is enough.
    const several = serviceAccount({ aud: ['https://elsewhere.example', AUDIENCE], exp: clock.seconds + 60 });
    expect((await payloadOutcome(several)).ok).toBe(true);
  });

  it('a payload without exp, or with exp that is not a number, is token_invalid (Envoy does not require exp)', async () => {
    expect(await payloadOutcome(serviceAccount())).toMatchObject({ reason: 'token_invalid' });
    expect(await payloadOutcome(serviceAccount({ exp: 'tomorrow' }))).toMatchObject({
      reason: 'token_invalid',
    });
  });

  it("exp is honoured with the issuer's clock tolerance (30 s), not beyond", async () => {
    expect((await payloadOutcome(serviceAccount({ exp: clock.seconds - 20 }))).ok).toBe(true);
    expect(await payloadOutcome(serviceAccount({ exp: clock.seconds - 31 }))).toMatchObject({
      reason: 'token_expired',
    });
  });

  it('an iss that is not a string is token_invalid, with or without listed issuers', async () => {
    for (const withIssuer of [true, false]) {
      expect(
        await payloadOutcome(serviceAccount({ iss: 42, exp: clock.seconds + 60 }), withIssuer),
      ).toMatchObject({
        reason: 'token_invalid',
      });
    }
  });

  it('identity claims are exact or refused here too: a spoiled sub, client or iss is token_invalid', async () => {
    const spoiled = [
      { sub: 'svc-inventory-sync ' },
      { client_id: 'stock-report\u0000' },
      { gty: '\tclient_credentials' },
      { roles: ['Inventory Data Reader\u0085'] },
    ];
    for (const claims of spoiled) {
      expect(await payloadOutcome(serviceAccount({ ...claims, exp: clock.seconds + 60 }))).toMatchObject({
        reason: 'token_invalid',
      });
    }
    // With no issuers listed, the payload's own iss is the issuer: it must be exact as well.
    const iss = serviceAccount({ iss: 'https://anywhere.example/\r\n', exp: clock.seconds + 60 });
    expect(await payloadOutcome(iss, false)).toMatchObject({ reason: 'token_invalid' });
  });

  it("with no issuers listed, the payload's iss is the principal's issuer (subjects and clients are looked up within it)", async () => {
    const result = await payloadOutcome(
      serviceAccount({ iss: 'https://anywhere.example/', exp: clock.seconds + 60 }),
      false,
    );
    expect(result.ok && result.value.issuer).toBe('https://anywhere.example/');
  });

  it('no payload and no issuers to verify the bearer token with: token_invalid', async () => {
    const authenticator = await authenticatorFor(envoyMode, false);
    const token = await mintToken(key, serviceAccount(), { now: clock.seconds });
    expect(await authenticator.authenticate(bearer(token))).toMatchObject({
      ok: false,
      reason: 'token_invalid',
    });
  });
});
