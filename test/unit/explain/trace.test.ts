// `explain` for every support-thread cause: the reason, the exact fix in the user's words, the text a person
// reads and the JSON a machine reads. Claims go through the real identity phase with a stand-in signature.
// And explain must give the reason the server gives (the last two blocks).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decide } from '../../../src/check/decide.js';
import {
  StandInSigner,
  unverifiedIdentity,
  unverifiedRequest,
  verifiedIdentity,
} from '../../../src/explain/identity.js';
import { renderTrace, traceJson } from '../../../src/explain/render.js';
import { type Trace, traceCheck } from '../../../src/explain/trace.js';
import { Authenticator, KeyRegistry } from '../../../src/identity/index.js';
import type { CompiledPolicy } from '../../../src/policy/types.js';
import { checkRequestFor } from '../../../src/wire/check-request.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import { compile, EXAMPLE_AUDIENCE, EXAMPLE_ISSUER, examplePolicyText } from '../../support/policies.js';
import { mintToken, newSigningKey, type SigningKey } from '../../support/tokens.js';
import { post, sync, THREAD, type ThreadCase } from './support-thread.js';

let signer: StandInSigner;
let key: SigningKey;
let jwks: JwksServer;
const registries: KeyRegistry[] = [];

beforeAll(async () => {
  signer = new StandInSigner();
  key = await newSigningKey('RS256');
  jwks = await startJwksServer([key.publicJwk]);
});
afterAll(async () => {
  for (const registry of registries) registry.close();
  await jwks?.close();
});

function policyFor(variant?: (text: string) => string): CompiledPolicy {
  const text = examplePolicyText();
  if (!variant) return compile(text);
  const changed = variant(text);
  expect(changed).not.toBe(text);
  return compile(changed);
}

async function explain(c: Pick<ThreadCase, 'claims' | 'request' | 'variant'>): Promise<Trace> {
  const policy = policyFor(c.variant);
  const prepared = await unverifiedRequest(policy, c.request, c.claims, signer);
  return traceCheck({ policy, ...prepared, credential: c.claims ? 'claims' : 'none', verified: false });
}

describe('explain names each support-thread cause and its fix', () => {
  for (const c of THREAD) {
    it(`${c.name}: ${c.reason}${c.hint ? ` — "${c.hint}"` : ''}`, async () => {
      const trace = await explain(c);
      expect(trace.reason).toBe(c.reason);
      expect(trace.decision).toBe(c.reason === 'allowed' ? 'allow' : 'deny');
      if (c.hint) {
        expect(trace.hints[0]).toBe(c.hint);
        expect(renderTrace(trace)).toContain(`fix         ${c.hint}`);
      }
    });
  }
});

describe('the trace shows why, step by step', () => {
  it('POST with only inventory.write: INV_TRANSACTION_READ fails by scope, not by role', async () => {
    const trace = await explain({ claims: sync('inventory.write'), request: post() });
    expect(trace.route).toMatchObject({ matched: true, name: 'create_transaction' });
    expect(trace.scopes).toEqual({
      token: ['inventory.write'],
      client: { id: 'inventory-sync', listed: true, allowed: ['inventory.read', 'inventory.write'] },
      effective: ['inventory.write'],
    });
    const read = trace.permissions?.find((p) => p.permission === 'INV_TRANSACTION_READ');
    expect(read?.byScope).toEqual({
      ok: false,
      scopes: [{ scope: 'inventory.read', inToken: false, clientAllows: true, effective: false }],
    });
    expect(read?.byRole).toEqual({
      checked: true,
      ok: true,
      roles: [{ role: 'Inventory Data Reader', held: true, from: ['subject'] }],
    });
    const text = renderTrace(trace);
    expect(text).toContain('route       ✓ create_transaction (POST /api/inventory/transactions)');
    expect(text).toContain('by scope ✗  inventory.read ✗ (not in the token)');
    expect(text).toContain('decision    DENY scope_missing (HTTP 403)');
  });

  it('roles are told apart: from the token claim vs from the policy subject entry', async () => {
    const trace = await explain({
      claims: sync('inventory.read inventory.write', {
        sub: 'svc-new-integration',
        roles: ['Inventory Transaction Manager'],
      }),
      request: post(),
    });
    expect(trace.reason).toBe('allowed');
    expect(trace.roles).toEqual({
      checked: true,
      token: ['Inventory Transaction Manager'],
      subject: ['Inventory Data Reader'],
    });
    const create = trace.permissions?.find((p) => p.permission === 'INV_TRANSACTION_CREATE');
    expect(create?.byRole.roles).toEqual([
      { role: 'Inventory Transaction Manager', held: true, from: ['token'] },
    ]);
  });

  it('a client refused a token scope shows it as in the token but not usable', async () => {
    const trace = await explain({
      claims: {
        ...sync('inventory.read inventory.write'),
        sub: 'svc-stock-report',
        client_id: 'stock-report',
      },
      request: post(),
    });
    const create = trace.permissions?.find((p) => p.permission === 'INV_TRANSACTION_CREATE');
    expect(create?.byScope.scopes).toEqual([
      { scope: 'inventory.write', inToken: true, clientAllows: false, effective: false },
    ]);
    expect(renderTrace(trace)).toContain('inventory.write ✗ (in the token, but the client may not use it)');
  });

  it('WH03: locations found vs granted, and the grant to add', async () => {
    const trace = await explain({ claims: sync('inventory.read inventory.write'), request: post('WH03') });
    expect(trace.locations).toEqual({
      source: 'body field location',
      found: ['WH03'],
      grantedToSubject: ['WH01', 'WH02', 'EU-*'],
      grantedByToken: [],
      results: [{ location: 'WH03', ok: false }],
    });
    expect(renderTrace(trace)).toContain('locations   from body field location: WH03 ✗');
  });

  it('what else would refuse it: a stock-report write needs the client scope and a role too', async () => {
    const trace = await explain({
      claims: { ...sync('inventory.read'), sub: 'svc-stock-report', client_id: 'stock-report' },
      request: post('WH03'),
    });
    expect(trace.reason).toBe('scope_missing');
    expect(trace.hints).toEqual([
      'request scope inventory.write as well',
      'allow client stock-report the scope inventory.write',
    ]);
    expect(trace.alsoNeeded).toEqual(['give svc-stock-report the role Inventory Transaction Manager']);
  });

  it('a token failure still shows the request and route, and no authorization tables', async () => {
    const trace = await explain({ claims: sync('inventory.read', { exp: 1700000000 }), request: post() });
    expect(trace.reason).toBe('token_expired');
    expect(trace.status).toBe(401);
    expect(trace.identity).toMatchObject({ ok: false, reason: 'token_expired' });
    expect(trace.route).toMatchObject({ matched: true, name: 'create_transaction' });
    expect(trace.permissions).toBeUndefined();
  });

  it('a malformed request stops at the request phase', async () => {
    const trace = await explain({
      claims: sync('inventory.read'),
      request: { method: 'GET', path: '/api/inventory/%2Ftransactions', headers: [] },
    });
    expect(trace.request.ok).toBe(false);
    expect(trace.identity).toBeUndefined();
    expect(trace.reason).toBe('request_malformed');
    expect(trace.status).toBe(400);
  });
});

describe('--json: one object with stable field names', () => {
  it('has the decision, reason, status, verified flag, sections and hints', async () => {
    const trace = await explain({ claims: sync('inventory.write'), request: post() });
    const parsed = JSON.parse(traceJson(trace)) as Record<string, unknown>;
    expect(Object.keys(parsed)).toEqual(
      expect.arrayContaining([
        'policy',
        'credential',
        'verified',
        'warnings',
        'decision',
        'reason',
        'status',
        'detail',
        'missing',
        'request',
        'identity',
        'route',
        'scopes',
        'grantType',
        'roles',
        'permissions',
        'locations',
        'hints',
        'alsoNeeded',
      ]),
    );
    expect(parsed).toMatchObject({
      credential: 'claims',
      verified: false,
      decision: 'deny',
      reason: 'scope_missing',
      status: 403,
      missing: { scopes: ['inventory.read'], permissions: ['INV_TRANSACTION_READ'] },
      grantType: { token: 'client_credentials', allowed: ['client_credentials'], ok: true },
      hints: ['request scope inventory.read as well'],
    });
  });
});

describe('dry-run routes: the rules deny, the request goes through', () => {
  it('is reported as dry_run_deny with status 200', async () => {
    const text = examplePolicyText().replace(
      '    location: { body: location }\n',
      '    location: { body: location }\n    mode: dry_run\n',
    );
    const policy = compile(text);
    const prepared = await unverifiedRequest(policy, post(), sync('inventory.write'), signer);
    const trace = await traceCheck({ policy, ...prepared, credential: 'claims', verified: false });
    expect(trace).toMatchObject({ decision: 'dry_run_deny', reason: 'scope_missing', status: 200 });
    expect(renderTrace(trace)).toContain('DRY RUN: would deny scope_missing');
  });
});

// Explain must give the reason the server gives. For every support-thread case, a real token is signed with a
// fresh key published by a real JWKS endpoint, and the server's pipeline (`check` with the real Authenticator)
// decides it; explain then decides the same input three ways — verifying the token (--token), decoding it
// without the signature (--no-verify) and from the bare claims (--claims, and `scopegate test`) — and each
// must name the same reason and the same missing items.
async function serverDecision(policy: CompiledPolicy, request: ReturnType<typeof checkRequestFor>) {
  const keys = new KeyRegistry({ fetchTimeoutMs: 2000 });
  registries.push(keys);
  await keys.start(policy.issuers);
  const { decision } = await decide(request, { policy, authenticator: new Authenticator(policy, keys) });
  return decision;
}

/** explain --no-verify: the token as sent, its signature taken on trust. */
const noVerifyTrace = (policy: CompiledPolicy, request: ReturnType<typeof checkRequestFor>) =>
  traceCheck({
    policy,
    request,
    identity: unverifiedIdentity(policy, signer),
    credential: 'token',
    verified: false,
  });

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
      const decoded = await noVerifyTrace(policy, request);
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

describe('explain at an HTTP door decides as that door does', () => {
  it('a peer route: the door carries no peer, whatever the request says, and the trace says why', async () => {
    const policy = compile(examplePolicyText());
    const request = checkRequestFor({
      method: 'GET',
      path: '/api/inventory/reports/stock',
      headers: [],
      peer: 'spiffe://cluster.local/ns/reporting/sa/reports',
    });
    const identity = unverifiedIdentity(policy, signer);
    const authenticator = new Authenticator(policy, new KeyRegistry());
    const server = await decide(request, { policy, authenticator }, undefined, { transport: 'http' });
    const trace = await traceCheck({
      door: 'http',
      policy,
      request,
      identity,
      credential: 'none',
      verified: false,
    });
    expect(server.decision.reason).toBe('peer_missing');
    expect(trace).toMatchObject({
      door: 'http',
      reason: server.decision.reason,
      detail: server.decision.detail,
      peer: { ok: false, reason: 'peer_missing', detail: server.decision.detail },
    });
    // The gRPC door carries the same peer, and lets it in.
    expect(
      await traceCheck({ policy, request, identity, credential: 'none', verified: false }),
    ).toMatchObject({
      door: 'grpc',
      decision: 'allow',
    });
  });
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
    const decoded = await noVerifyTrace(policy, request);
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
    const decoded = await noVerifyTrace(policy, request);
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
