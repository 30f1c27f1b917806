// What the caller presents, read once per Check: a bearer token, the claims Envoy's jwt_authn filter verified,
// or nothing. Refusing those is not this module's job (token_missing, token_invalid for a token too large or
// with no issuer to verify it are authenticate.ts's and verify.ts's); an ambiguous presentation is, and it is
// request_malformed whatever else the request carries.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BearerToken, readCredential } from '../../../src/identity/credential.js';
import { requestFacts } from './fixtures.js';

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzdmMifQ.c2lnbmF0dXJl';
const OTHER = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJvdGhlciJ9.c2lnbmF0dXJl';
const PAYLOAD = { iss: 'https://idp.example.test/', sub: 'svc-inventory-sync' };

/** A policy that verifies tokens itself, and one that takes Envoy's jwt_authn claims under jwt_payload. */
const OWN = {};
const ENVOY = { envoyJwtAuthn: { metadataKey: 'jwt_payload' } };

describe('readCredential: a bearer token', () => {
  it('"Bearer <token>" is a bearer credential carrying exactly that token', () => {
    const result = readCredential(requestFacts({ authorization: `Bearer ${TOKEN}` }), OWN);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value).toBeInstanceOf(BearerToken);
    expect(result.value).toMatchObject({ kind: 'bearer', token: TOKEN });
  });

  it("in Envoy's mode with no claims for this request, the token is handed on (identify verifies or refuses it)", () => {
    // Whether the policy lists issuers to verify it with is not read here: with none, the refusal ("not
    // verified by Envoy's jwt_authn filter", token_invalid) is identify's.
    const result = readCredential(requestFacts({ authorization: `Bearer ${TOKEN}` }), ENVOY);
    expect(result).toMatchObject({ ok: true, value: { kind: 'bearer', token: TOKEN } });
  });
});

describe('readCredential: nothing presented', () => {
  it('no Authorization header and no Envoy claims is the "none" credential (token_missing, once identified)', () => {
    expect(readCredential(requestFacts(), OWN)).toEqual({ ok: true, value: { kind: 'none' } });
    expect(readCredential(requestFacts(), ENVOY)).toEqual({ ok: true, value: { kind: 'none' } });
  });

  it('"none" is one frozen value, not an allocation per Check', () => {
    const first = readCredential(requestFacts(), OWN);
    const second = readCredential(requestFacts(), ENVOY);
    expect(first.ok && second.ok && first.value === second.value).toBe(true);
    expect(first.ok && Object.isFrozen(first.value)).toBe(true);
  });
});

describe("readCredential: Envoy's jwt_authn claims", () => {
  it("the payload under the policy's metadataKey is the credential, the very object Envoy sent", () => {
    const result = readCredential(requestFacts({ jwtAuthn: { jwt_payload: PAYLOAD } }), ENVOY);
    expect(result).toEqual({ ok: true, value: { kind: 'envoy', payload: PAYLOAD } });
    expect(result.ok && result.value.kind === 'envoy' && result.value.payload).toBe(PAYLOAD);
  });

  it("Envoy's claims win over a bearer token sent alongside", () => {
    const facts = requestFacts({ authorization: `Bearer ${TOKEN}`, jwtAuthn: { jwt_payload: PAYLOAD } });
    expect(readCredential(facts, ENVOY)).toEqual({ ok: true, value: { kind: 'envoy', payload: PAYLOAD } });
  });

  it("a payload that is not an object is still Envoy's credential: judging it is identify's job", () => {
    for (const payload of [null, 'eyJ...', 42]) {
      const result = readCredential(requestFacts({ jwtAuthn: { jwt_payload: payload } }), ENVOY);
      expect(result).toEqual({ ok: true, value: { kind: 'envoy', payload } });
    }
  });

  it('a payload under another key is ignored: the bearer token, or nothing', () => {
    const elsewhere = { other_key: PAYLOAD };
    expect(readCredential(requestFacts({ jwtAuthn: elsewhere }), ENVOY)).toEqual({
      ok: true,
      value: { kind: 'none' },
    });
    const withToken = requestFacts({ authorization: `Bearer ${TOKEN}`, jwtAuthn: elsewhere });
    expect(readCredential(withToken, ENVOY)).toMatchObject({
      ok: true,
      value: { kind: 'bearer', token: TOKEN },
    });
  });

  it('a policy without envoyJwtAuthn never takes claims from metadata, whatever the key', () => {
    const facts = requestFacts({ jwtAuthn: { jwt_payload: PAYLOAD } });
    expect(readCredential(facts, OWN)).toEqual({ ok: true, value: { kind: 'none' } });
    const withToken = requestFacts({ authorization: `Bearer ${TOKEN}`, jwtAuthn: { jwt_payload: PAYLOAD } });
    expect(readCredential(withToken, OWN)).toMatchObject({
      ok: true,
      value: { kind: 'bearer', token: TOKEN },
    });
  });
});

describe('readCredential: an ambiguous presentation is request_malformed, even when Envoy vouches', () => {
  it.each([
    [
      'two Authorization values',
      { authorization: `Bearer ${TOKEN}, Bearer ${OTHER}` },
      'two Authorization values',
    ],
    ['Basic credentials', { authorization: 'Basic c3ZjOnNlY3JldA==' }, 'must be exactly "Bearer <token>"'],
    ['an empty Authorization header', { authorization: '' }, 'it is empty'],
    ['a token in the URL', { query: { access_token: [TOKEN] } }, 'access_token query parameter'],
  ])('%s', (_, request, detail) => {
    for (const policy of [OWN, ENVOY]) {
      for (const jwtAuthn of [undefined, { jwt_payload: PAYLOAD }]) {
        const result = readCredential(requestFacts({ ...request, ...(jwtAuthn && { jwtAuthn }) }), policy);
        expect(result).toMatchObject({ ok: false, reason: 'request_malformed' });
        expect(!result.ok && result.detail).toContain(detail);
        expect(!result.ok && result.detail).not.toContain(TOKEN);
        expect(!result.ok && result.detail).not.toContain('c3ZjOnNlY3JldA');
      }
    }
  });
});

describe('BearerToken: the hash both caches key on', () => {
  const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('base64url');

  it('is the base64url SHA-256 of the token, never the token itself', () => {
    const bearer = new BearerToken(TOKEN);
    expect(bearer.hash).toBe(sha256(TOKEN));
    expect(bearer.hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(bearer.hash).not.toContain(TOKEN);
  });

  it('is the same on every read, and for the same token read again in another Check', () => {
    const bearer = new BearerToken(TOKEN);
    expect(bearer.hash).toBe(bearer.hash);
    const again = readCredential(requestFacts({ authorization: `bearer ${TOKEN}` }), OWN);
    expect(again.ok && again.value.kind === 'bearer' && again.value.hash).toBe(bearer.hash);
  });

  it('differs for tokens that differ in one character', () => {
    expect(new BearerToken(TOKEN).hash).not.toBe(new BearerToken(OTHER).hash);
    expect(new BearerToken(TOKEN).hash).not.toBe(new BearerToken(`${TOKEN.slice(0, -1)}m`).hash);
  });
});
