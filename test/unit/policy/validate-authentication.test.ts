// The `authentication` section: issuers, their key sets and algorithms, bounds on numbers, and a way to
// authenticate at all. Each expected line here was counted by hand from the YAML.
import { describe, expect, test } from 'vitest';
import { parsePolicy } from '../../../src/policy/index.js';
import { LIST_ROUTE, policy, problemsOf } from './fixtures.js';

describe('authentication', () => {
  test('alg none is refused', () => {
    const text = policy('', LIST_ROUTE).replace('algorithms: [RS256]', 'algorithms: [none]');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:7:20: authentication.issuers[0].algorithms[0]: algorithm "none" is never allowed: unsigned tokens prove nothing',
    ]);
  });

  test('HS256 is refused: a shared-secret algorithm cannot be checked with a public key', () => {
    const text = policy('', LIST_ROUTE).replace('algorithms: [RS256]', 'algorithms: [RS256, HS256]');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:7:27: authentication.issuers[0].algorithms[1]: algorithm "HS256" is not allowed: HMAC (HS*) needs a shared secret, and verifying it with a public key lets anyone forge tokens',
    ]);
  });

  test('an algorithm in the wrong case suggests the right spelling', () => {
    const text = policy('', LIST_ROUTE).replace('algorithms: [RS256]', 'algorithms: [rs256]');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:7:20: authentication.issuers[0].algorithms[0]: unknown algorithm "rs256"; did you mean "RS256"?',
    ]);
  });

  test('an issuer needs exactly one of jwks uri or file', () => {
    const both = policy('', LIST_ROUTE).replace(
      'jwks: { uri: https://idp.example.com/jwks.json }',
      'jwks: { uri: https://idp.example.com/jwks.json, file: ./jwks.json }',
    );
    expect(problemsOf(both)).toEqual([
      'policy.yaml:6:55: authentication.issuers[0].jwks.file: jwks must have exactly one of "uri" or "file", not both',
    ]);
    const neither = policy('', LIST_ROUTE).replace(
      'jwks: { uri: https://idp.example.com/jwks.json }',
      'jwks: {}',
    );
    expect(problemsOf(neither)).toEqual([
      'policy.yaml:6:13: authentication.issuers[0].jwks: jwks needs exactly one of "uri" (an http(s) URL) or "file" (a JWKS file)',
    ]);
  });

  test('a jwks uri must be an http(s) URL', () => {
    const text = policy('', LIST_ROUTE).replace('https://idp.example.com/jwks.json', 'file:///etc/jwks.json');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:6:20: authentication.issuers[0].jwks.uri: jwks uri must be an http(s) URL, got "file:///etc/jwks.json"',
    ]);
  });

  test('clockToleranceSeconds is bounded to 0..300', () => {
    const text = policy('', LIST_ROUTE).replace(
      'algorithms: [RS256]',
      'algorithms: [RS256]\n      clockToleranceSeconds: 3600',
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:8:30: authentication.issuers[0].clockToleranceSeconds: expected a whole number from 0 to 300, got 3600',
    ]);
  });

  test('maxTokenBytes is bounded to 1024..65536', () => {
    const text = policy('', LIST_ROUTE).replace(
      'authentication:\n',
      'authentication:\n  maxTokenBytes: 100\n',
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:3:18: authentication.maxTokenBytes: expected a whole number from 1024 to 65536, got 100',
    ]);
  });

  test('the same issuer twice is refused at the second', () => {
    const issuer = `    - issuer: https://idp.example.com/
      audiences: [https://gateway.example.com]
      jwks: { uri: https://idp.example.com/jwks.json }
      algorithms: [RS256]
`;
    const text = policy('', LIST_ROUTE).replace(issuer, issuer + issuer);
    expect(problemsOf(text)).toEqual([
      'policy.yaml:8:15: authentication.issuers[1].issuer: duplicate issuer "https://idp.example.com/" (first at line 4)',
    ]);
  });

  test('without an issuer or envoyJwtAuthn nobody could authenticate', () => {
    const text = `version: 1
authentication:
  realm: inventory
scopes:
  inventory.read: [INV_TRANSACTION_READ]
routes: []
`;
    expect(problemsOf(text)).toEqual([
      'policy.yaml:3:3: authentication: no way to authenticate callers: list at least one issuer, or set envoyJwtAuthn',
    ]);
  });

  test('envoyJwtAuthn alone is a way to authenticate', () => {
    const text = `version: 1
authentication:
  envoyJwtAuthn: { metadataKey: jwt_payload }
scopes:
  inventory.read: [INV_TRANSACTION_READ]
routes: []
`;
    expect(parsePolicy(text, 'policy.yaml').ok).toBe(true);
  });

  test('unlistedClients is deny or allow', () => {
    const text = policy('', LIST_ROUTE).replace(
      'authentication:\n',
      'authentication:\n  unlistedClients: permit\n',
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:3:20: authentication.unlistedClients: unknown choice "permit"; expected one of deny, allow',
    ]);
  });
});
