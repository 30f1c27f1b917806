// explain must give the reason the server gives. For every support-thread case, a real token is signed with a
// fresh key published by a real JWKS endpoint, and the server's pipeline (`check` with the real Authenticator)
// decides it; explain then decides the same input three ways — verifying the token (--token), decoding it
// without the signature (--no-verify) and from the bare claims (--claims, and `scopegate test`) — and each
// must name the same reason and the same missing items.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide } from '../../../src/check/decide.js';
import {
  StandInSigner,
  unverifiedIdentity,
  unverifiedRequest,
  verifiedIdentity,
} from '../../../src/explain/identity.js';
import { traceCheck } from '../../../src/explain/trace.js';
import { Authenticator, KeyRegistry } from '../../../src/identity/index.js';
import type { CompiledPolicy } from '../../../src/policy/types.js';
import { checkRequestFor } from '../../../src/wire/check-request.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import { compile, EXAMPLE_AUDIENCE, EXAMPLE_ISSUER, examplePolicyText } from '../../support/policies.js';
import { mintToken, newSigningKey, type SigningKey } from '../../support/tokens.js';
import { THREAD } from './support-thread.js';

let key: SigningKey;
let jwks: JwksServer;
let signer: StandInSigner;
const registries: KeyRegistry[] = [];

beforeAll(async () => {
  key = await newSigningKey('RS256');
  jwks = await startJwksServer([key.publicJwk]);
  signer = new StandInSigner();
});
afterAll(async () => {
  for (const registry of registries) registry.close();
  await jwks?.close();
});

async function serverDecision(policy: CompiledPolicy, request: ReturnType<typeof checkRequestFor>) {
  const keys = new KeyRegistry({ fetchTimeoutMs: 2000 });
  registries.push(keys);
  await keys.start(policy.issuers);
  const { decision } = await decide(request, { policy, authenticator: new Authenticator(policy, keys) });
  return decision;
}

describe('explain decides exactly as the server does', () => {
  for (const c of THREAD) {
    it(`${c.name}: the server says ${c.reason}, and so does explain (--token, --no-verify, --claims)`, async () => {
      const text = examplePolicyText(jwks.uri);
      const policy = compile(c.variant ? c.variant(text) : text);
      const token = c.claims
        ? await mintToken(key, { iss: EXAMPLE_ISSUER, aud: EXAMPLE_AUDIENCE, ...c.claims })
        : undefined;
      const request = checkRequestFor({ ...c.request, ...(token !== undefined && { token }) });

      const server = await serverDecision(policy, request);
      expect(server.reason).toBe(c.reason);

      const { identity, keys } = await verifiedIdentity(policy);
      registries.push(keys);
      const verified = await traceCheck({ policy, request, identity, credential: 'token', verified: true });
      const decoded = await traceCheck({
        policy,
        request,
        identity: unverifiedIdentity(policy, signer),
        credential: 'token',
        verified: false,
      });
      const fromClaims = await traceCheck({
        policy,
        ...(await unverifiedRequest(policy, c.request, c.claims, signer)),
        credential: c.claims ? 'claims' : 'none',
        verified: false,
      });
      for (const trace of [verified, decoded, fromClaims]) {
        expect(trace.reason).toBe(server.reason);
        expect(trace.missing).toEqual(server.missing);
      }
      expect(verified.detail).toBe(server.detail);
      expect(decoded.detail).toBe(server.detail);
    });
  }
});

describe('what --no-verify cannot see, and says', () => {
  it('a token signed by a key the issuer never published: the server refuses it, --no-verify does not', async () => {
    const policy = compile(examplePolicyText(jwks.uri));
    const stranger = await newSigningKey('RS256');
    const forged = await mintToken(stranger, {
      iss: EXAMPLE_ISSUER,
      aud: EXAMPLE_AUDIENCE,
      ...THREAD[0]!.claims,
    });
    const request = checkRequestFor({ ...THREAD[0]!.request, token: forged });
    expect((await serverDecision(policy, request)).reason).toBe('key_unknown');
    const decoded = await traceCheck({
      policy,
      request,
      identity: unverifiedIdentity(policy, signer),
      credential: 'token',
      verified: false,
    });
    expect(decoded).toMatchObject({ reason: 'allowed', verified: false });
  });

  it('an unsigned alg:none token is refused even by --no-verify, as by the server', async () => {
    const policy = compile(examplePolicyText(jwks.uri));
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const payload = { iss: EXAMPLE_ISSUER, aud: EXAMPLE_AUDIENCE, exp: Math.floor(Date.now() / 1000) + 60 };
    const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...payload, sub: 'svc-inventory-sync' })}.`;
    const request = checkRequestFor({
      method: 'GET',
      path: '/api/inventory/transactions',
      headers: [],
      token: unsigned,
    });
    const server = await serverDecision(policy, request);
    const decoded = await traceCheck({
      policy,
      request,
      identity: unverifiedIdentity(policy, signer),
      credential: 'token',
      verified: false,
    });
    expect(server.reason).toBe('token_invalid');
    expect(decoded.reason).toBe(server.reason);
  });

  it('keys that cannot be loaded: keys_unavailable, the reason why, and the --no-verify way out', async () => {
    const down = await startJwksServer([key.publicJwk]);
    down.setAvailable(false);
    try {
      const policy = compile(examplePolicyText(down.uri));
      const token = await mintToken(key, {
        iss: EXAMPLE_ISSUER,
        aud: EXAMPLE_AUDIENCE,
        ...THREAD[0]!.claims,
      });
      const request = checkRequestFor({ ...THREAD[0]!.request, token });
      const { identity, keys } = await verifiedIdentity(policy);
      registries.push(keys);
      const trace = await traceCheck({
        policy,
        request,
        identity,
        credential: 'token',
        verified: true,
        keyProblems: () => keys.problems(policy.issuers),
      });
      expect(trace.reason).toBe('keys_unavailable');
      expect(trace.identity).toMatchObject({
        ok: false,
        keyProblems: [expect.stringContaining('the JWKS endpoint answered HTTP 503')],
      });
      expect(trace.hints).toContain(
        'to explain the rest without checking the signature, rerun with --no-verify',
      );
    } finally {
      await down.close();
    }
  });
});
