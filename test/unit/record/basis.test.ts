// What a token's outcome rests on (src/record/basis.ts): the same under the same token settings, different
// when the claims mapping, the size cap, Envoy's metadata key or the issuer's settings change. A verified
// caller's basis is its own issuer's; a refusal's is every issuer's.
import { describe, expect, it } from 'vitest';
import { tokenBasis } from '../../../src/record/basis.js';
import { compile, examplePolicyText } from '../../support/policies.js';

const base = examplePolicyText('https://idp.example.com/jwks');
const ISSUER = 'https://dev-issuer.scopegate.local/';
const policy = compile(base);
const edited = (from: string, to: string) => compile(base.replace(from, to));
describe('tokenBasis', () => {
  it('is the same for the same settings, whatever else changes', () => {
    expect(tokenBasis(policy, ISSUER)).toBe(tokenBasis(compile(base), ISSUER));
    expect(tokenBasis(policy, ISSUER)).toBe(tokenBasis(edited('WH01, WH02, "EU-*"', 'WH03'), ISSUER));
    expect(tokenBasis(policy)).toBe(tokenBasis(edited('realm: inventory', 'realm: other'), undefined));
  });

  it('changes with the claims mapping, the token cap, the jwt_authn key and the issuer', () => {
    const before = tokenBasis(policy, ISSUER);
    expect(tokenBasis(edited('roles: [roles]', 'roles: [groups]'), ISSUER)).not.toBe(before);
    expect(
      tokenBasis(edited('realm: inventory', 'realm: inventory\n  maxTokenBytes: 4096'), ISSUER),
    ).not.toBe(before);
    expect(tokenBasis(edited('metadataKey: jwt_payload', 'metadataKey: other'), ISSUER)).not.toBe(before);
    expect(tokenBasis(edited('clockToleranceSeconds: 30', 'clockToleranceSeconds: 5'), ISSUER)).not.toBe(
      before,
    );
  });

  it("another issuer's arrival leaves a verified caller's basis alone, but not a refusal's", () => {
    const issuer = (name: string) =>
      `    - { issuer: ${name}, audiences: [x], jwks: { uri: ${name}jwks }, algorithms: [RS256] }\n`;
    const minimal = (issuers: string) =>
      compile(
        `version: 1\nauthentication:\n  issuers:\n${issuers}scopes: { read: [P] }\n` +
          'routes:\n  - { name: r, method: GET, path: /r, permissions: [P] }\n',
      );
    const one = minimal(issuer('https://a.example.com/'));
    const two = minimal(issuer('https://a.example.com/') + issuer('https://b.example.com/'));
    expect(tokenBasis(two, 'https://a.example.com/')).toBe(tokenBasis(one, 'https://a.example.com/'));
    expect(tokenBasis(two)).not.toBe(tokenBasis(one));
    // A caller of an issuer the policy does not list rests on every issuer, like a refusal.
    expect(tokenBasis(one, 'https://unknown/')).toBe(tokenBasis(one));
  });
});
