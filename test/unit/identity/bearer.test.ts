import { describe, expect, it } from 'vitest';
import { extractBearer } from '../../../src/identity/bearer.js';
import { requestFacts } from './fixtures.js';

const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzdmMifQ.c2lnbmF0dXJl';

describe('extractBearer: exactly one "Bearer <token>" (security rule 3)', () => {
  it('takes the token from "Bearer <token>"', () => {
    expect(extractBearer(requestFacts({ authorization: `Bearer ${TOKEN}` }))).toEqual({
      ok: true,
      value: TOKEN,
    });
  });

  it('accepts the scheme in any case ("bearer", "BEARER")', () => {
    expect(extractBearer(requestFacts({ authorization: `bearer ${TOKEN}` }))).toEqual({
      ok: true,
      value: TOKEN,
    });
    expect(extractBearer(requestFacts({ authorization: `BEARER ${TOKEN}` }))).toEqual({
      ok: true,
      value: TOKEN,
    });
  });

  it('accepts token68 padding and the URL-unsafe base64 characters', () => {
    expect(extractBearer(requestFacts({ authorization: 'Bearer abc+/def~-._==' }))).toEqual({
      ok: true,
      value: 'abc+/def~-._==',
    });
  });

  it('no Authorization header is not an error here (the caller turns it into token_missing)', () => {
    expect(extractBearer(requestFacts())).toEqual({ ok: true, value: undefined });
  });

  it('two Authorization headers (Envoy joins them with ",") are request_malformed', () => {
    const result = extractBearer(requestFacts({ authorization: `Bearer ${TOKEN}, Bearer other` }));
    expect(result).toMatchObject({ ok: false, reason: 'request_malformed' });
    expect(!result.ok && result.detail).toContain('two Authorization values');
  });

  it.each([
    ['two spaces after the scheme', `Bearer  ${TOKEN}`],
    ['a tab instead of a space', `Bearer\t${TOKEN}`],
    ['a trailing space', `Bearer ${TOKEN} `],
    ['a leading space', ` Bearer ${TOKEN}`],
    ['Basic credentials', 'Basic c3ZjOnNlY3JldA=='],
    ['an empty value', ''],
    ['the scheme with no token', 'Bearer'],
    ['the scheme and a space with no token', 'Bearer '],
    ['a token with characters outside token68', 'Bearer abc"def'],
    ['padding in the middle of the token', 'Bearer ab=cd'],
    ['no scheme at all', TOKEN],
  ])('%s is request_malformed', (_, authorization) => {
    expect(extractBearer(requestFacts({ authorization }))).toMatchObject({
      ok: false,
      reason: 'request_malformed',
    });
  });

  it('never repeats the credential in the detail', () => {
    const result = extractBearer(requestFacts({ authorization: 'Basic c3ZjOnNlY3JldA==' }));
    expect(result.ok).toBe(false);
    expect(!result.ok && result.detail).not.toContain('c3ZjOnNlY3JldA');
    expect(!result.ok && result.detail).toContain('"Basic"');
  });

  it('an access_token query parameter is request_malformed: tokens in URLs leak into logs', () => {
    const result = extractBearer(requestFacts({ query: { access_token: [TOKEN] } }));
    expect(result).toMatchObject({ ok: false, reason: 'request_malformed' });
    expect(!result.ok && result.detail).toContain('send it in the Authorization header');
    expect(!result.ok && result.detail).not.toContain(TOKEN);
  });

  it('a token in both the header and the query is request_malformed', () => {
    const facts = requestFacts({ authorization: `Bearer ${TOKEN}`, query: { access_token: [TOKEN] } });
    expect(extractBearer(facts)).toMatchObject({ ok: false, reason: 'request_malformed' });
  });
});
