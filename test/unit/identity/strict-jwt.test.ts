// The token is read strictly before jose sees it (defects the hardening corpus found): a JWT whose header or
// payload says one thing to JSON.parse and another to a stricter reader, a token with several spellings, or
// a time claim of the wrong type, each gets a precise token_invalid. Genuine signatures throughout, from a
// key generated for this run and published by a real JWKS endpoint on 127.0.0.1.
import { webcrypto } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KeyRegistry } from '../../../src/identity/key-registry.js';
import {
  isCanonicalBase64url,
  readCompactJwt,
  type VerifyContext,
  verifyToken,
} from '../../../src/identity/verify.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import { b64url, newSigningKey, type SigningKey } from '../../support/tokens.js';
import { AUDIENCE, ISSUER, identityPolicy, issuerConfig, ManualClock } from './fixtures.js';

let rsa: SigningKey;
let server: JwksServer;
let clock: ManualClock;
let registry: KeyRegistry;

beforeAll(async () => {
  rsa = await newSigningKey('RS256');
  server = await startJwksServer([rsa.publicJwk]);
});
afterAll(() => server.close());
beforeEach(() => {
  clock = new ManualClock();
  registry?.close();
  registry = new KeyRegistry({ now: clock.now, fetchTimeoutMs: 2000 });
});

async function context(): Promise<VerifyContext> {
  const policy = identityPolicy([issuerConfig({ uri: server.uri })]);
  await registry.start(policy.issuers);
  return {
    maxTokenBytes: 8192,
    issuerByName: policy.issuerByName,
    keysFor: (issuer) => registry.storeFor(issuer),
    now: clock.now,
  };
}

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
  const result = await verifyToken(token, await context());
  return result.ok ? { reason: 'allowed', detail: '' } : { reason: result.reason, detail: result.detail };
}

describe('duplicate keys in a signed token', () => {
  it('the same header and payload without duplicates verify (the control)', async () => {
    expect(await verifyToken(await sign(header(), payload()), await context())).toMatchObject({ ok: true });
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
    const ctx = await context();
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
