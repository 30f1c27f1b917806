// JWT verification against a real JWKS endpoint on 127.0.0.1, with keys generated for this run.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportSPKI, importJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KeyRegistry } from '../../../src/identity/key-registry.js';
import { type VerifyContext, verifyToken } from '../../../src/identity/verify.js';
import type { CompiledIssuer } from '../../../src/policy/types.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import { handBuiltToken, mintToken, newSigningKey, type SigningKey } from '../../support/tokens.js';
import { AUDIENCE, ISSUER, identityPolicy, issuerConfig, ManualClock } from './fixtures.js';

let rsa: SigningKey;
let ec: SigningKey;
let server: JwksServer;

beforeAll(async () => {
  [rsa, ec] = await Promise.all([newSigningKey('RS256'), newSigningKey('ES256')]);
  server = await startJwksServer([rsa.publicJwk, ec.publicJwk]);
});
afterAll(() => server.close());

let clock: ManualClock;
let registry: KeyRegistry;

/** A verify context over the given issuers, keys loaded, sharing the test's manual clock. */
async function contextFor(issuers: CompiledIssuer[], maxTokenBytes = 8192): Promise<VerifyContext> {
  const policy = identityPolicy(issuers, { maxTokenBytes });
  await registry.start(policy.issuers);
  return {
    maxTokenBytes,
    issuerByName: policy.issuerByName,
    keysFor: (issuer) => registry.storeFor(issuer),
    now: clock.now,
  };
}

const claims = (extra: Record<string, unknown> = {}) => ({
  iss: ISSUER,
  aud: AUDIENCE,
  sub: 'svc-inventory-sync',
  scope: 'inventory.read',
  ...extra,
});

beforeEach(() => {
  clock = new ManualClock();
  registry?.close();
  registry = new KeyRegistry({ now: clock.now, fetchTimeoutMs: 2000 });
  server.setKeys([rsa.publicJwk, ec.publicJwk]);
  server.setAvailable(true);
});

describe('verifyToken: tokens the issuer really signed', () => {
  it('accepts an RS256 token and returns its claims and issuer', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const result = await verifyToken(await mintToken(rsa, claims(), { now: clock.seconds }), context);
    expect(result.ok).toBe(true);
    expect(result.ok && result.value.payload.sub).toBe('svc-inventory-sync');
    expect(result.ok && result.value.issuer.issuer).toBe(ISSUER);
  });

  it('accepts an ES256 token', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const result = await verifyToken(await mintToken(ec, claims(), { now: clock.seconds }), context);
    expect(result.ok).toBe(true);
  });

  it('accepts a token whose aud list contains the configured audience', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = await mintToken(rsa, claims({ aud: ['https://other.example', AUDIENCE] }), {
      now: clock.seconds,
    });
    expect((await verifyToken(token, context)).ok).toBe(true);
  });

  it.each(['JWT', 'at+jwt', 'application/at+jwt', 'AT+JWT'])('accepts typ %s', async (typ) => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = await mintToken(rsa, claims(), { now: clock.seconds, header: { typ } });
    expect((await verifyToken(token, context)).ok).toBe(true);
  });

  it('accepts a token that expired within the clock tolerance', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri }, { clockToleranceSeconds: 30 })]);
    const token = await mintToken(rsa, claims({ exp: clock.seconds - 10 }), { now: clock.seconds - 300 });
    expect((await verifyToken(token, context)).ok).toBe(true);
  });
});

describe('verifyToken: each problem is its own reason', () => {
  it('an expired token is token_expired, saying when it expired', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const exp = clock.seconds - 3600;
    const token = await mintToken(rsa, claims({ exp }), { now: exp - 300 });
    const result = await verifyToken(token, context);
    expect(result).toMatchObject({ ok: false, reason: 'token_expired' });
    expect(!result.ok && result.detail).toContain(new Date(exp * 1000).toISOString());
  });

  it('a token whose nbf is in the future (beyond tolerance) is token_not_yet_valid', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = await mintToken(rsa, claims({ nbf: clock.seconds + 600 }), { now: clock.seconds });
    expect(await verifyToken(token, context)).toMatchObject({ ok: false, reason: 'token_not_yet_valid' });
  });

  it('a token issued in the future (iat beyond tolerance) is token_not_yet_valid', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = await mintToken(rsa, claims({ iat: clock.seconds + 600, exp: clock.seconds + 900 }));
    expect(await verifyToken(token, context)).toMatchObject({ ok: false, reason: 'token_not_yet_valid' });
  });

  it('a token for another audience is audience_mismatch, naming the expected audience', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = await mintToken(rsa, claims({ aud: 'https://someone-else.example' }), {
      now: clock.seconds,
    });
    const result = await verifyToken(token, context);
    expect(result).toMatchObject({ ok: false, reason: 'audience_mismatch' });
    expect(!result.ok && result.detail).toContain(AUDIENCE);
  });

  it('a token with no aud is audience_mismatch', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = await mintToken(rsa, claims({ aud: undefined }), { now: clock.seconds });
    expect(await verifyToken(token, context)).toMatchObject({ ok: false, reason: 'audience_mismatch' });
  });

  it('a token from an unknown issuer is issuer_untrusted, naming it, and fetches no keys', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const before = server.fetches;
    const token = await mintToken(rsa, claims({ iss: 'https://evil.example/' }), { now: clock.seconds });
    const result = await verifyToken(token, context);
    expect(result).toMatchObject({ ok: false, reason: 'issuer_untrusted' });
    expect(!result.ok && result.detail).toContain('https://evil.example/');
    expect(server.fetches).toBe(before);
  });

  it('the issuer must match exactly (no trailing-slash leniency)', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = await mintToken(rsa, claims({ iss: ISSUER.slice(0, -1) }), { now: clock.seconds });
    expect(await verifyToken(token, context)).toMatchObject({ ok: false, reason: 'issuer_untrusted' });
  });

  it('a token without iss is token_invalid', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = await mintToken(rsa, claims({ iss: undefined }), { now: clock.seconds });
    expect(await verifyToken(token, context)).toMatchObject({ ok: false, reason: 'token_invalid' });
  });

  it('a token without exp is token_invalid', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = await mintToken(rsa, claims(), { now: clock.seconds, omitExp: true });
    const result = await verifyToken(token, context);
    expect(result).toMatchObject({ ok: false, reason: 'token_invalid' });
    expect(!result.ok && result.detail).toContain('exp');
  });

  it('a token signed with an unknown kid is key_unknown after exactly one refresh', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const stranger = await newSigningKey('RS256');
    const before = server.fetches;
    const result = await verifyToken(await mintToken(stranger, claims(), { now: clock.seconds }), context);
    expect(result).toMatchObject({ ok: false, reason: 'key_unknown' });
    expect(!result.ok && result.detail).toContain(stranger.kid);
    expect(server.fetches).toBe(before + 1);
  });
});

describe('verifyToken: forged and odd tokens never verify', () => {
  it('alg "none" (hand-built, no signature) is token_invalid', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = handBuiltToken(
      { alg: 'none', typ: 'JWT' },
      claims({ iat: clock.seconds, exp: clock.seconds + 300 }),
    );
    expect(await verifyToken(token, context)).toMatchObject({ ok: false, reason: 'token_invalid' });
  });

  it('HS256 signed with the RSA public key bytes (algorithm confusion) is token_invalid', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const publicKey = await importJWK(rsa.publicJwk, 'RS256', { extractable: true });
    if (publicKey instanceof Uint8Array) throw new Error('an RSA JWK imports as a key, not bytes');
    const pem = await exportSPKI(publicKey);
    for (const secret of [pem, JSON.stringify(rsa.publicJwk)]) {
      const token = await new SignJWT(claims({ exp: clock.seconds + 300 }))
        .setProtectedHeader({ alg: 'HS256', kid: rsa.kid, typ: 'JWT' })
        .sign(new TextEncoder().encode(secret));
      const result = await verifyToken(token, context);
      expect(result).toMatchObject({ ok: false, reason: 'token_invalid' });
      expect(!result.ok && result.detail).toContain('HS256');
    }
  });

  it('an algorithm the issuer does not allow is token_invalid even when the key exists', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri }, { algorithms: ['ES256'] })]);
    const result = await verifyToken(await mintToken(rsa, claims(), { now: clock.seconds }), context);
    expect(result).toMatchObject({ ok: false, reason: 'token_invalid' });
    expect(!result.ok && result.detail).toContain('allowed: ES256');
  });

  it('a token signed by another key that claims the same kid is token_invalid', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const impostor = await newSigningKey('RS256', rsa.kid);
    const result = await verifyToken(await mintToken(impostor, claims(), { now: clock.seconds }), context);
    expect(result).toMatchObject({ ok: false, reason: 'token_invalid' });
  });

  it('a key embedded in the token header (jwk) is never used', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const attacker = await newSigningKey('RS256', rsa.kid);
    const token = await mintToken(attacker, claims(), {
      now: clock.seconds,
      header: { jwk: attacker.publicJwk },
    });
    expect(await verifyToken(token, context)).toMatchObject({ ok: false, reason: 'token_invalid' });
    const ownKid = await mintToken(attacker, claims(), {
      now: clock.seconds,
      header: { kid: 'attacker', jwk: attacker.publicJwk, jku: 'http://127.0.0.1:1/jwks' },
    });
    expect(await verifyToken(ownKid, context)).toMatchObject({ ok: false, reason: 'key_unknown' });
  });

  it('an unknown critical header is token_invalid', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = await mintToken(rsa, claims(), {
      now: clock.seconds,
      header: { crit: ['urn:example:must-understand'], 'urn:example:must-understand': true },
      crit: { 'urn:example:must-understand': true },
    });
    expect(await verifyToken(token, context)).toMatchObject({ ok: false, reason: 'token_invalid' });
  });

  it.each(['dpop+jwt', 'JOSE', 'secevent+jwt'])('typ %s is token_invalid', async (typ) => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const token = await mintToken(rsa, claims(), { now: clock.seconds, header: { typ } });
    const result = await verifyToken(token, context);
    expect(result).toMatchObject({ ok: false, reason: 'token_invalid' });
    expect(!result.ok && result.detail).toContain('typ');
  });

  it('an encrypted token (JWE, five parts) is token_invalid', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const result = await verifyToken('eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d', context);
    expect(result).toMatchObject({ ok: false, reason: 'token_invalid' });
    expect(!result.ok && result.detail).toContain('encrypted tokens');
  });

  it.each([
    ['two parts', 'abc.def'],
    ['garbage parts', 'a.b.c'],
    ['a header that is not JSON', `${Buffer.from('nope').toString('base64url')}.e30.sig`],
  ])('%s is token_invalid', async (_, token) => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    expect(await verifyToken(token, context)).toMatchObject({ ok: false, reason: 'token_invalid' });
  });

  it('a 100 KB token is token_invalid before any decoding or key lookup', async () => {
    const policy = identityPolicy([issuerConfig({ uri: server.uri })]);
    let keyLookups = 0;
    const context: VerifyContext = {
      maxTokenBytes: 8192,
      issuerByName: policy.issuerByName,
      keysFor: (issuer) => {
        keyLookups += 1;
        return registry.storeFor(issuer);
      },
      now: clock.now,
    };
    const huge = await mintToken(rsa, claims({ padding: 'x'.repeat(100 * 1024) }), { now: clock.seconds });
    const before = server.fetches;
    const result = await verifyToken(huge, context);
    expect(result).toMatchObject({ ok: false, reason: 'token_invalid' });
    expect(!result.ok && result.detail).toContain('8192 bytes');
    expect(keyLookups).toBe(0);
    expect(server.fetches).toBe(before);
  });

  it('no detail ever contains the token', async () => {
    const context = await contextFor([issuerConfig({ uri: server.uri })]);
    const tokens = [
      await mintToken(rsa, claims({ aud: 'x' }), { now: clock.seconds }),
      await mintToken(rsa, claims({ exp: clock.seconds - 999 }), { now: clock.seconds - 2000 }),
      await mintToken(await newSigningKey('RS256'), claims(), { now: clock.seconds }),
    ];
    for (const token of tokens) {
      const result = await verifyToken(token, context);
      expect(result.ok).toBe(false);
      for (const part of token.split('.')) expect(!result.ok && result.detail).not.toContain(part);
    }
  });
});

describe('verifyToken: a key set with several candidate keys', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scopegate-jwks-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('a token without kid verifies against whichever published key signed it (JWKS from a file)', async () => {
    const [first, second] = await Promise.all([newSigningKey('RS256'), newSigningKey('RS256')]);
    const file = join(dir, 'two-keys.json');
    const withoutKid = (key: SigningKey) => ({ ...key.publicJwk, kid: undefined });
    await writeFile(file, JSON.stringify({ keys: [withoutKid(first), withoutKid(second)] }));
    const context = await contextFor([issuerConfig({ file })]);
    const mint = (key: SigningKey) =>
      new SignJWT(claims({ iat: clock.seconds, exp: clock.seconds + 300 }))
        .setProtectedHeader({ alg: 'RS256' })
        .sign(key.privateKey);
    expect((await verifyToken(await mint(second), context)).ok).toBe(true);
    expect((await verifyToken(await mint(first), context)).ok).toBe(true);
    const outsider = await newSigningKey('RS256');
    expect(await verifyToken(await mint(outsider), context)).toMatchObject({
      ok: false,
      reason: 'token_invalid',
    });
  });
});
