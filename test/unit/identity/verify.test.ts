// JWT verification against a real JWKS endpoint on 127.0.0.1, with keys generated for this run; and the
// strict reading of the token before jose sees it (duplicate keys, one spelling per token, header parameters
// jose would pass over, time claims of the wrong type).
import { webcrypto } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { exportSPKI, importJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KeyRegistry } from '../../../src/identity/key-registry.js';
import {
  isCanonicalBase64url,
  readCompactJwt,
  type VerifyContext,
  verifyToken,
} from '../../../src/identity/verify.js';
import type { CompiledIssuer } from '../../../src/policy/types.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import { b64url, handBuiltToken, mintToken, newSigningKey, type SigningKey } from '../../support/tokens.js';
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

// The token is read strictly before jose sees it (defects the hardening corpus found): a JWT whose header or
// payload says one thing to JSON.parse and another to a stricter reader, a token with several spellings, or
// a time claim of the wrong type, each gets a precise token_invalid. Signed by hand with the RSA key, so the
// header and payload texts are exactly what each case needs.

const strictContext = () => contextFor([issuerConfig({ uri: server.uri })]);

const header = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({ alg: 'RS256', typ: 'JWT', kid: rsa.kid, ...extra });
const payload = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    iss: ISSUER,
    aud: AUDIENCE,
    sub: 'svc-inventory-sync',
    scope: 'inventory.read',
    iat: clock.seconds,
    exp: clock.seconds + 300,
    ...extra,
  });

/** Signs exactly these header and payload texts (JSON.stringify could not write a duplicate key). */
async function sign(headerText: string, payloadText: string): Promise<string> {
  const input = `${b64url(headerText)}.${b64url(payloadText)}`;
  const signature = await webcrypto.subtle.sign(
    { name: 'RSASSA-PKCS1-v1_5' },
    rsa.privateKey as webcrypto.CryptoKey,
    Buffer.from(input),
  );
  return `${input}.${b64url(new Uint8Array(signature))}`;
}

async function reasonFor(token: string) {
  const result = await verifyToken(token, await strictContext());
  return result.ok ? { reason: 'allowed', detail: '' } : { reason: result.reason, detail: result.detail };
}

describe('duplicate keys in a signed token', () => {
  it('the same header and payload without duplicates verify (the control)', async () => {
    expect(await verifyToken(await sign(header(), payload()), await strictContext())).toMatchObject({
      ok: true,
    });
  });

  it('sub twice in the payload is token_invalid, whichever value JSON.parse would keep', async () => {
    const text = payload().replace('{', '{"sub":"svc-stock-report",');
    const { reason, detail } = await reasonFor(await sign(header(), text));
    expect(reason).toBe('token_invalid');
    expect(detail).toContain('duplicate key "sub"');
    expect(detail).not.toContain('svc-stock-report');
  });

  it('alg twice in the header (none, then RS256) is token_invalid', async () => {
    const text = header().replace('{', '{"alg":"none",');
    expect((await reasonFor(await sign(text, payload()))).reason).toBe('token_invalid');
  });

  it('a duplicate inside a nested claim object is token_invalid', async () => {
    const text = payload().replace(/}$/, ',"realm_access":{"roles":["a"],"roles":["b"]}}');
    expect((await reasonFor(await sign(header(), text))).reason).toBe('token_invalid');
  });

  it('"exp":1e400 (Infinity to JSON.parse: never expires) is token_invalid', async () => {
    const text = payload().replace(/"exp":\d+/, '"exp":1e400');
    expect((await reasonFor(await sign(header(), text))).reason).toBe('token_invalid');
  });

  it('a payload starting with a byte order mark is token_invalid', async () => {
    expect((await reasonFor(await sign(header(), `\ufeff${payload()}`))).reason).toBe('token_invalid');
  });
});

describe('one token, one spelling', () => {
  it('= padding after a genuine signature is token_invalid', async () => {
    const token = await sign(header(), payload());
    expect((await reasonFor(`${token}=`)).reason).toBe('token_invalid');
    expect((await reasonFor(`${token}==`)).reason).toBe('token_invalid');
  });

  it('unused low bits set in the last signature character are token_invalid', async () => {
    const token = await sign(header(), payload());
    // 256 signature bytes end in a character carrying 2 data bits; its 4 low bits must be zero.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(token.at(-1) ?? 'A');
    expect(last & 0x0f).toBe(0);
    const respelled = token.slice(0, -1) + alphabet[last | 0x01];
    expect(Buffer.from(respelled.split('.')[2] ?? '', 'base64url')).toEqual(
      Buffer.from(token.split('.')[2] ?? '', 'base64url'),
    );
    expect((await reasonFor(respelled)).reason).toBe('token_invalid');
  });

  it('readCompactJwt names the problem without quoting the token', () => {
    const token = `${b64url(header())}.${b64url(payload())}.c2lnbmF0dXJl`;
    expect(readCompactJwt(token)).toMatchObject({ ok: true });
    for (const odd of [`${token}=`, token.replace('.', '+.'), token.replace('.', '/.'), `~${token}`]) {
      const result = readCompactJwt(odd);
      expect(result).toMatchObject({ ok: false, reason: 'token_invalid' });
      expect(!result.ok && result.detail).toContain('base64url');
    }
  });

  it('readCompactJwt refuses a header or payload that is not a JSON object', () => {
    for (const [h, p] of [
      ['[]', payload()],
      [header(), 'null'],
      [header(), '"text"'],
      ['', payload()],
    ] as const) {
      expect(readCompactJwt(`${b64url(h)}.${b64url(p)}.`)).toMatchObject({
        ok: false,
        reason: 'token_invalid',
      });
    }
  });
});

describe('header parameters jose would pass over', () => {
  it('a kid that is not a string is token_invalid, with no JWKS refresh', async () => {
    const ctx = await strictContext();
    const before = server.fetches;
    for (const kid of [42, { $ne: null }, ['a']]) {
      const result = await verifyToken(await sign(header({ kid }), payload()), ctx);
      expect(result).toMatchObject({ ok: false, reason: 'token_invalid' });
    }
    expect(server.fetches).toBe(before);
  });

  it('b64 without crit (ignored by jose, honoured by RFC 7797 readers) is token_invalid', async () => {
    const { reason, detail } = await reasonFor(await sign(header({ b64: false }), payload()));
    expect(reason).toBe('token_invalid');
    expect(detail).toContain('b64');
  });
});

describe('time claims of the wrong type are broken tokens, not clock problems', () => {
  for (const claim of ['nbf', 'iat', 'exp'] as const) {
    it(`${claim} as a string is token_invalid, saying it must be a number`, async () => {
      const { reason, detail } = await reasonFor(
        await sign(header(), payload({ [claim]: String(clock.seconds) })),
      );
      expect(reason).toBe('token_invalid');
      expect(detail).toContain(`"${claim}" must be a number`);
    });
  }

  it('nbf in the future (a number) is still token_not_yet_valid', async () => {
    const { reason } = await reasonFor(await sign(header(), payload({ nbf: clock.seconds + 600 })));
    expect(reason).toBe('token_not_yet_valid');
  });
});

describe('isCanonicalBase64url', () => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  it('accepts exactly the strings that survive a decode/encode round trip', () => {
    const segment = fc.string({ unit: fc.constantFrom(...alphabet, '=', '+', '/', ' '), maxLength: 40 });
    fc.assert(
      fc.property(segment, (text) => {
        const roundTrip =
          /^[A-Za-z0-9_-]*$/.test(text) && Buffer.from(text, 'base64url').toString('base64url') === text;
        expect(isCanonicalBase64url(text)).toBe(roundTrip);
      }),
      { numRuns: 20_000 },
    );
  });

  it('refuses stray bits in the last character and impossible lengths', () => {
    expect(isCanonicalBase64url('QQ')).toBe(true); // "A"
    expect(isCanonicalBase64url('QR')).toBe(false); // same byte, stray bits
    expect(isCanonicalBase64url('QUI')).toBe(true); // "AB"
    expect(isCanonicalBase64url('QUJ')).toBe(false);
    expect(isCanonicalBase64url('QUJDR')).toBe(false); // 5 characters: no encoding is that long
  });
});
