// A loaded JWKS: which keys are usable for verifying tokens, and the published-key index the caches ask on
// every hit, which must agree with the ref built from the key jose resolved when the token was verified.
import { calculateJwkThumbprint, type JWK, jwtVerify } from 'jose';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { KeySet, signingKeyRef } from '../../../src/identity/key-set.js';
import { mintToken, newSigningKey, type SigningKey, type TestAlgorithm } from '../../support/tokens.js';
import { AUDIENCE, ISSUER } from './fixtures.js';

// jose's thumbprint, watched: a resolved key's thumbprint is on the Check path and must be taken once per key.
vi.mock('jose', async (importOriginal) => {
  const jose = await importOriginal<typeof import('jose')>();
  return { ...jose, calculateJwkThumbprint: vi.fn(jose.calculateJwkThumbprint) };
});

/** The RSA key of RFC 7638 §3.1 (from RFC 7517 appendix A.1), and the thumbprint the RFC gives for it. */
const RFC_7638_KEY = {
  kty: 'RSA',
  n: '0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw',
  e: 'AQAB',
  alg: 'RS256',
  kid: '2011-04-29',
} as const;
const RFC_7638_THUMBPRINT = 'NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs';

const ALGORITHMS: TestAlgorithm[] = ['RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
const keys = new Map<TestAlgorithm, SigningKey>();
let current: SigningKey;
let next: SigningKey;

beforeAll(async () => {
  for (const alg of ALGORITHMS) keys.set(alg, await newSigningKey(alg));
  [current, next] = await Promise.all([newSigningKey('ES256'), newSigningKey('ES256')]);
});

const jwks = (...list: unknown[]) => JSON.stringify({ keys: list });

/** Verifies a fresh token with the set, as verify does, and names the key jose resolved for it. */
async function refOfVerifiedToken(set: KeySet, key: SigningKey, header: { kid?: string } = {}) {
  const token = await mintToken(key, { iss: ISSUER, aud: AUDIENCE }, { header });
  const verified = await jwtVerify(token, set.resolve);
  return signingKeyRef(ISSUER, verified.key, verified.protectedHeader);
}

describe('RFC 7638 thumbprints', () => {
  it("the set indexes RFC 7638 §3.1's key under the thumbprint the RFC gives", async () => {
    const set = await KeySet.fromJwks(jwks(RFC_7638_KEY));
    const ref = { issuer: ISSUER, thumbprint: RFC_7638_THUMBPRINT, kid: RFC_7638_KEY.kid, alg: 'RS256' };
    expect(set.publishes(ref)).toBe(true);
    expect(set.publishes({ ...ref, thumbprint: RFC_7638_THUMBPRINT.replace('N', 'M') })).toBe(false);
  });

  it("the key jose resolves for RFC 7638 §3.1's key gets the thumbprint the RFC gives", async () => {
    const set = await KeySet.fromJwks(jwks(RFC_7638_KEY));
    const key = await set.resolve({ alg: 'RS256', kid: RFC_7638_KEY.kid });
    expect(await signingKeyRef(ISSUER, key, { alg: 'RS256', kid: RFC_7638_KEY.kid })).toEqual({
      issuer: ISSUER,
      thumbprint: RFC_7638_THUMBPRINT,
      kid: RFC_7638_KEY.kid,
      alg: 'RS256',
    });
  });
});

describe('the published index and a verified token agree on the key', () => {
  const strip = (jwk: JWK, ...members: Array<'kid' | 'alg'>) =>
    Object.fromEntries(Object.entries(jwk).filter(([name]) => !members.includes(name as 'kid' | 'alg')));

  it.each(ALGORITHMS)('%s: published with kid and alg, the token naming its kid', async (alg) => {
    const key = keys.get(alg) as SigningKey;
    const set = await KeySet.fromJwks(jwks(key.publicJwk));
    const ref = await refOfVerifiedToken(set, key);
    expect(ref).toEqual({
      issuer: ISSUER,
      thumbprint: await calculateJwkThumbprint(key.publicJwk),
      kid: key.kid,
      alg,
    });
    expect(ref && set.publishes(ref)).toBe(true);
  });

  it.each(ALGORITHMS)('%s: the token names no kid', async (alg) => {
    const key = keys.get(alg) as SigningKey;
    const set = await KeySet.fromJwks(jwks(key.publicJwk));
    const ref = await refOfVerifiedToken(set, key, { kid: undefined });
    expect(ref).toEqual({ issuer: ISSUER, thumbprint: await calculateJwkThumbprint(key.publicJwk), alg });
    expect(ref && set.publishes(ref)).toBe(true);
  });

  it.each(ALGORITHMS)('%s: the key is published without kid, and without alg', async (alg) => {
    const key = keys.get(alg) as SigningKey;
    for (const published of [strip(key.publicJwk, 'kid'), strip(key.publicJwk, 'kid', 'alg')]) {
      const set = await KeySet.fromJwks(jwks(published));
      const ref = await refOfVerifiedToken(set, key, { kid: undefined });
      expect(ref && set.publishes(ref)).toBe(true);
    }
    const set = await KeySet.fromJwks(jwks(strip(key.publicJwk, 'alg')));
    const ref = await refOfVerifiedToken(set, key);
    expect(ref?.kid).toBe(key.kid);
    expect(ref && set.publishes(ref)).toBe(true);
  });

  it('another key under the same kid is not the key that verified the token', async () => {
    const set = await KeySet.fromJwks(jwks(current.publicJwk));
    const ref = await refOfVerifiedToken(set, current);
    const rekeyed = await KeySet.fromJwks(jwks({ ...next.publicJwk, kid: current.kid }));
    expect(ref && rekeyed.publishes(ref)).toBe(false);
  });

  it("a resolved key's thumbprint is taken once, however many tokens it verifies", async () => {
    const key = keys.get('ES384') as SigningKey;
    const set = await KeySet.fromJwks(jwks(key.publicJwk));
    const resolved = await set.resolve({ alg: 'ES384', kid: key.kid });
    const calls = () => vi.mocked(calculateJwkThumbprint).mock.calls.filter(([k]) => k === resolved).length;
    const before = calls();
    const refs = await Promise.all(
      Array.from({ length: 5 }, () => signingKeyRef(ISSUER, resolved, { alg: 'ES384', kid: key.kid })),
    );
    expect(calls() - before).toBeLessThanOrEqual(1);
    expect(new Set(refs.map((ref) => ref?.thumbprint)).size).toBe(1);
    await signingKeyRef(ISSUER, resolved, { alg: 'ES384' });
    expect(calls()).toBe(before + 1);
  });
});

describe('a ref only for what can be named', () => {
  it.each([
    ['no alg', {}],
    ['an alg that is not a string', { alg: 7 }],
    ['a kid that is not a string', { alg: 'ES256', kid: 42 }],
  ])('a header with %s: no ref (nothing built on the token is cached)', async (_, header) => {
    const set = await KeySet.fromJwks(jwks(current.publicJwk));
    const key = await set.resolve({ alg: 'ES256', kid: current.kid });
    expect(await signingKeyRef(ISSUER, key, header)).toBeUndefined();
  });

  it.each([
    ['a shared secret', new Uint8Array(32)],
    ['something that is not a key', { kty: 7 }],
    ['no key at all', undefined],
  ])('a resolved key that is %s: no ref', async (_, key) => {
    expect(await signingKeyRef(ISSUER, key, { alg: 'ES256' })).toBeUndefined();
  });
});

describe('which keys of a JWKS are usable', () => {
  it('a JWKS keeps only public signing keys: enc, symmetric and private keys are skipped', async () => {
    const loaded = await KeySet.fromJwks(
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

  it('keys jose would refuse (key_ops without verify, a non-boolean ext) are not usable here either', async () => {
    const loaded = await KeySet.fromJwks(
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

  it('a set with no usable keys is refused', async () => {
    await expect(KeySet.fromJwks(JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }))).rejects.toThrow(
      /no usable/,
    );
  });

  it.each(['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'])(
    'an RSA key publishing the private member "%s" is refused',
    async (member) => {
      const rsa = (keys.get('RS256') as SigningKey).publicJwk;
      await expect(KeySet.fromJwks(jwks({ ...rsa, [member]: 'AQAB' }))).rejects.toThrow(/no usable/);
    },
  );

  it.each(['ES256', 'EdDSA'] as const)('a %s key publishing its private "d" is refused', async (alg) => {
    const { publicJwk } = keys.get(alg) as SigningKey;
    await expect(KeySet.fromJwks(jwks({ ...publicJwk, d: publicJwk.x }))).rejects.toThrow(/no usable/);
  });

  it('an oct key is refused even when it says it is for signing', async () => {
    const oct = { kty: 'oct', k: 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0', alg: 'HS256', use: 'sig', kid: 'h' };
    await expect(KeySet.fromJwks(jwks(oct))).rejects.toThrow('the key set has no usable signing keys');
    const set = await KeySet.fromJwks(jwks(oct, current.publicJwk));
    expect(set.keyCount).toBe(1);
    expect([...set.kids]).toEqual([current.kid]);
  });

  it.each([
    ['a kid that is not a string', { kid: 7 }],
    ['an alg that is not a string', { alg: ['ES256'] }],
    ['a use other than sig', { use: 'enc' }],
    ['key_ops that are not a list', { key_ops: 'verify' }],
  ])('a key with %s is not usable', async (_, change) => {
    await expect(KeySet.fromJwks(jwks({ ...current.publicJwk, ...change }))).rejects.toThrow(/no usable/);
  });

  it('a malformed key beside good ones does not stop the set loading; the good ones are published', async () => {
    const { n: _, ...noModulus } = (keys.get('RS256') as SigningKey).publicJwk;
    const set = await KeySet.fromJwks(jwks({ ...noModulus, kid: 'broken' }, current.publicJwk));
    // Counted as before (its type and members pass the usable-key rules); it can verify nothing.
    expect(set.keyCount).toBe(2);
    const ref = await refOfVerifiedToken(set, current);
    expect(ref && set.publishes(ref)).toBe(true);
  });

  it('the kids the set publishes', async () => {
    const { kid: _, ...anonymous } = next.publicJwk;
    const set = await KeySet.fromJwks(jwks(current.publicJwk, anonymous));
    expect([...set.kids]).toEqual([current.kid]);
  });

  it.each([
    ['invalid JSON', '{"keys": [', 'the key set is not valid JSON'],
    ['null', 'null', 'not a JWKS'],
    ['an array', '[]', 'not a JWKS'],
    ['a document with no keys array', '{"issuer":"x"}', 'not a JWKS'],
    ['keys that is not an array', '{"keys":{"kty":"EC"}}', 'not a JWKS'],
    ['an empty keys array', '{"keys":[]}', 'no usable signing keys'],
  ])('%s is refused with a message safe to show', async (_, text, message) => {
    await expect(KeySet.fromJwks(text)).rejects.toThrow(message);
  });
});
