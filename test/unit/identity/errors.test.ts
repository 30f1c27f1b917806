// Errors are told apart by their stable code, never by their message; the key store's own errors carry one.
import { open } from 'node:fs/promises';
import { errors as jose } from 'jose';
import { describe, expect, it } from 'vitest';
import { errorCode, KeyLoadError, KeysUnavailableError } from '../../../src/identity/errors.js';

describe('errorCode', () => {
  it("reads jose's code", () => {
    expect(errorCode(new jose.JWKSNoMatchingKey())).toBe('ERR_JWKS_NO_MATCHING_KEY');
    expect(errorCode(new jose.JWSSignatureVerificationFailed())).toBe(
      'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
    );
  });

  it("reads Node's code", async () => {
    const failed = await open('/nonexistent/scopegate/jwks.json').catch((err: unknown) => err);
    expect(errorCode(failed)).toBe('ENOENT');
  });

  it.each([
    ['an error with no code', new Error('ERR_JWT_EXPIRED')],
    ['a numeric code', Object.assign(new Error('x'), { code: 42 })],
    ['a string thrown', 'ERR_JWT_EXPIRED'],
    ['null', null],
    ['undefined', undefined],
  ])('%s: no code', (_, err) => {
    expect(errorCode(err)).toBeUndefined();
  });
});

describe("the key store's errors", () => {
  it('no keys for an issuer has the code verify turns into keys_unavailable, and names the issuer', () => {
    const err = new KeysUnavailableError('https://idp.example.test/');
    expect(errorCode(err)).toBe('ERR_SCOPEGATE_KEYS_UNAVAILABLE');
    expect(err.message).toBe('no usable signing keys are loaded for issuer https://idp.example.test/');
  });

  it('a key set that could not be loaded is an Error of its own kind', () => {
    const err = new KeyLoadError('the key set is not valid JSON');
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(KeysUnavailableError);
    expect(errorCode(err)).toBeUndefined();
  });
});
