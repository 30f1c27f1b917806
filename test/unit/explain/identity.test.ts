// Who is calling, for `explain` and `test`: claims or a token whose signature is taken on trust ride in a
// token re-signed by a throw-away key, then go through the server's own verification (so every other check
// still runs), or, for a policy that trusts only Envoy's jwt_authn, arrive as the metadata Envoy would send.
import { decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULT_CLAIMS_LIFETIME_SECONDS,
  decodeClaims,
  StandInSigner,
  tokenForClaims,
  unverifiedIdentity,
  unverifiedRequest,
  verifiedIdentity,
} from '../../../src/explain/identity.js';
import type { CompiledPolicy } from '../../../src/policy/types.js';
import { readRequest } from '../../../src/request/facts.js';
import type { RequestFacts } from '../../../src/request/types.js';
import { checkRequestFor } from '../../../src/wire/check-request.js';
import type { CheckRequest } from '../../../src/wire/types.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import {
  compile,
  EXAMPLE_AUDIENCE,
  EXAMPLE_ISSUER,
  examplePolicy,
  JWT_AUTHN_ONLY_POLICY_TEXT,
  supportThreadClaims,
} from '../../support/policies.js';
import { handBuiltToken, mintToken, newSigningKey, type SigningKey } from '../../support/tokens.js';

const LIST = { method: 'GET', path: '/api/inventory/transactions', headers: [] as Array<[string, string]> };
const NOW = Date.UTC(2026, 5, 1);

/** Two issuers: a token's `iss` picks whose audience and algorithm a claims-only token gets. */
const twoIssuers = compile(`version: 1
authentication:
  issuers:
    - { issuer: "https://a.example/", audiences: [aud-a, aud-a2], algorithms: [ES256], jwks: { uri: "http://127.0.0.1:1/a" } }
    - { issuer: "https://b.example/", audiences: [aud-b], algorithms: [PS256, RS256], jwks: { uri: "http://127.0.0.1:1/b" } }
scopes:
  inventory.read: [INV_TRANSACTION_READ]
routes:
  - { name: list_transactions, method: GET, path: /api/inventory/transactions, permissions: [INV_TRANSACTION_READ] }
`);
const jwtAuthnOnly = compile(JWT_AUTHN_ONLY_POLICY_TEXT);

function factsOf(request: CheckRequest): RequestFacts {
  const read = readRequest(request);
  if (!read.ok) throw new Error(`${read.reason}: ${read.detail}`);
  return read.value;
}
const bearer = (token: string) => factsOf(checkRequestFor({ ...LIST, token }));

let signer: StandInSigner;
let key: SigningKey;
let jwks: JwksServer;
let policy: CompiledPolicy;
beforeAll(async () => {
  signer = new StandInSigner();
  key = await newSigningKey('RS256');
  jwks = await startJwksServer([key.publicJwk]);
  policy = examplePolicy(jwks.uri);
});
afterAll(async () => jwks?.close());

describe('tokenForClaims', () => {
  it('fills iss, aud and exp from the first issuer, signed with an algorithm it allows', async () => {
    const token = await tokenForClaims({ sub: 'svc-inventory-sync' }, policy, signer, NOW);
    expect(decodeJwt(token)).toEqual({
      iss: EXAMPLE_ISSUER,
      aud: EXAMPLE_AUDIENCE,
      exp: NOW / 1000 + DEFAULT_CLAIMS_LIFETIME_SECONDS,
      sub: 'svc-inventory-sync',
    });
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'RS256', typ: 'JWT', kid: signer.kid });
  });

  it('the claims named win; an iss naming another issuer takes that issuer’s audience and algorithm', async () => {
    const token = await tokenForClaims(
      { iss: 'https://b.example/', exp: 1, sub: 's' },
      twoIssuers,
      signer,
      NOW,
    );
    expect(decodeJwt(token)).toEqual({ iss: 'https://b.example/', aud: 'aud-b', exp: 1, sub: 's' });
    expect(decodeProtectedHeader(token).alg).toBe('PS256');
    const first = await tokenForClaims({ sub: 's' }, twoIssuers, signer, NOW);
    expect(decodeJwt(first)).toMatchObject({ iss: 'https://a.example/', aud: 'aud-a' });
    expect(decodeProtectedHeader(first).alg).toBe('ES256');
  });
});

describe('StandInSigner', () => {
  it('verifies its own signatures, and has no key for an algorithm no policy may pin', async () => {
    const source = signer.keySource();
    expect(source.hasKeys()).toBe(true);
    for (const alg of ['ES256', 'RS256', 'EdDSA']) {
      const token = await signer.sign({ alg, kid: signer.kid }, { sub: 's' });
      expect((await jwtVerify(token, source.getKey)).payload, alg).toEqual({ sub: 's' });
    }
    const symmetric = handBuiltToken({ alg: 'HS256' }, { sub: 's' }, 'c2ln');
    await expect(jwtVerify(symmetric, source.getKey)).rejects.toMatchObject({
      code: 'ERR_JWKS_NO_MATCHING_KEY',
    });
  });
});

describe('unverifiedIdentity (--no-verify)', () => {
  it('takes the signature on trust: a token from a key nobody published names its caller', async () => {
    const stranger = await newSigningKey('RS256');
    const forged = await mintToken(stranger, supportThreadClaims('inventory.read'));
    const who = await unverifiedIdentity(policy, signer).authenticate(bearer(forged));
    expect(who).toMatchObject({
      ok: true,
      value: { subject: 'svc-inventory-sync', client: 'inventory-sync', issuer: EXAMPLE_ISSUER },
    });
  });

  it('every other check still runs: expiry, audience, issuer, the header’s typ', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[Promise<string>, string]> = [
      [mintToken(key, supportThreadClaims(), { now: now - 7200, lifetime: 60 }), 'token_expired'],
      [mintToken(key, { ...supportThreadClaims(), aud: 'https://elsewhere.example' }), 'audience_mismatch'],
      [mintToken(key, { ...supportThreadClaims(), iss: 'https://idp.evil.example/' }), 'issuer_untrusted'],
      [mintToken(key, supportThreadClaims(), { header: { typ: 'id+jwt' } }), 'token_invalid'],
    ];
    for (const [token, reason] of cases)
      expect(
        await unverifiedIdentity(policy, signer).authenticate(bearer(await token)),
        reason,
      ).toMatchObject({
        ok: false,
        reason,
      });
  });

  it('no token is token_missing; two are request_malformed; a token over the size cap is refused as sent', async () => {
    const identity = unverifiedIdentity(policy, signer);
    expect(await identity.authenticate(factsOf(checkRequestFor(LIST)))).toMatchObject({
      reason: 'token_missing',
    });
    const twice = factsOf(
      checkRequestFor({
        ...LIST,
        headers: [
          ['authorization', 'Bearer a.b.c'],
          ['authorization', 'Bearer d.e.f'],
        ],
      }),
    );
    expect(await identity.authenticate(twice)).toMatchObject({ reason: 'request_malformed' });
    const big = await mintToken(key, { ...supportThreadClaims(), pad: 'x'.repeat(policy.maxTokenBytes) });
    expect(await identity.authenticate(bearer(big))).toMatchObject({ ok: false, reason: 'token_invalid' });
  });

  it('a token it cannot re-sign faithfully (alg none, HS256, not a JWT) is refused as the server refuses it', async () => {
    const claims = { ...supportThreadClaims(), exp: Math.floor(Date.now() / 1000) + 60 };
    for (const token of [
      handBuiltToken({ alg: 'none', typ: 'JWT' }, claims),
      handBuiltToken({ alg: 'HS256', typ: 'JWT' }, claims, 'c2ln'),
      'not-a-jwt',
    ])
      expect(await unverifiedIdentity(policy, signer).authenticate(bearer(token)), token).toMatchObject({
        ok: false,
        reason: 'token_invalid',
      });
  });
});

describe('unverifiedRequest', () => {
  it('no claims: the request as given, its Authorization header read with the signature unchecked', async () => {
    const stranger = await newSigningKey('ES256');
    const token = await mintToken(stranger, supportThreadClaims('inventory.read'));
    const http = { ...LIST, headers: [['authorization', `Bearer ${token}`]] as Array<[string, string]> };
    const { request, identity } = await unverifiedRequest(policy, http, undefined, signer);
    expect(request.attributes?.request?.http?.headers?.authorization).toBe(`Bearer ${token}`);
    expect(await identity.authenticate(factsOf(request))).toMatchObject({
      ok: true,
      value: { subject: 'svc-inventory-sync' },
    });
  });

  it('claims, with issuers: a stand-in bearer token carrying them, judged by the clock given', async () => {
    const { request, identity } = await unverifiedRequest(
      policy,
      LIST,
      { sub: 'svc-stock-report' },
      signer,
      () => NOW,
    );
    const sent = request.attributes?.request?.http?.headers?.authorization ?? '';
    expect(decodeJwt(sent.slice('Bearer '.length))).toEqual({
      iss: EXAMPLE_ISSUER,
      aud: EXAMPLE_AUDIENCE,
      exp: NOW / 1000 + DEFAULT_CLAIMS_LIFETIME_SECONDS,
      sub: 'svc-stock-report',
    });
    expect(await identity.authenticate(factsOf(request))).toMatchObject({
      ok: true,
      value: { subject: 'svc-stock-report' },
    });
    const lapsed = await unverifiedRequest(
      policy,
      LIST,
      { sub: 's', exp: NOW / 1000 - 3600 },
      signer,
      () => NOW,
    );
    expect(await lapsed.identity.authenticate(factsOf(lapsed.request))).toMatchObject({
      ok: false,
      reason: 'token_expired',
    });
  });

  it('claims, for a policy that trusts only jwt_authn: Envoy’s metadata, with no token at all', async () => {
    const now = Date.now();
    const claims = {
      iss: 'https://idp.example/',
      sub: 'svc',
      scope: 'inventory.read',
      locations: ['WH01'],
      n: null,
    };
    const { request } = await unverifiedRequest(jwtAuthnOnly, LIST, claims, signer, () => now);
    expect(request.attributes?.request?.http?.headers).not.toHaveProperty('authorization');
    const facts = factsOf(request);
    expect(facts.jwtAuthnPayloads.get('jwt_payload')).toEqual({
      exp: Math.floor(now / 1000) + DEFAULT_CLAIMS_LIFETIME_SECONDS,
      ...claims,
    });
  });

  it('claims, for a jwt_authn-only policy at an HTTP door: only the token arrives, and nothing vouches for it', async () => {
    const claims = { iss: 'https://idp.example/', sub: 'svc', scope: 'inventory.read' };
    const { request, identity } = await unverifiedRequest(
      jwtAuthnOnly,
      LIST,
      claims,
      signer,
      Date.now,
      'http',
    );
    const facts = factsOf(request);
    expect(facts.jwtAuthnPayloads.size).toBe(0);
    expect(facts.headers.get('authorization')).toMatch(/^Bearer /);
    expect(await identity.authenticate(facts)).toEqual({
      ok: false,
      reason: 'token_invalid',
      detail: "the token was not verified by Envoy's jwt_authn filter",
    });
  });
});

describe('verifiedIdentity', () => {
  it('is the server’s identity phase over real key stores: the issuer’s token passes, a stranger’s does not', async () => {
    const { identity, keys } = await verifiedIdentity(policy);
    try {
      const genuine = await mintToken(key, supportThreadClaims('inventory.read'));
      expect(await identity.authenticate(bearer(genuine))).toMatchObject({
        ok: true,
        value: { subject: 'svc-inventory-sync' },
      });
      const stranger = await mintToken(await newSigningKey('RS256'), supportThreadClaims('inventory.read'));
      expect(await identity.authenticate(bearer(stranger))).toMatchObject({ ok: false });
    } finally {
      keys.close();
    }
  });
});

describe('decodeClaims', () => {
  it('reads a token’s claims without any check, and nothing from what is not a JWT', async () => {
    const token = await mintToken(await newSigningKey('ES256'), { sub: 'anyone', scope: 'x' });
    expect(decodeClaims(token)).toMatchObject({ sub: 'anyone', scope: 'x' });
    expect(decodeClaims('not-a-jwt')).toBeUndefined();
    expect(decodeClaims(`${token.split('.')[0]}.e30x.`)).toBeUndefined();
  });
});
