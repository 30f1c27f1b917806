// The operational edges: gRPC health, /healthz, /readyz tracking key availability, keys_unavailable as a 503
// deny (never an allow, never a gRPC error), and Envoy's jwt_authn payload arriving as metadata over the wire.
import { afterEach, describe, expect, it } from 'vitest';
import { checkRequestFor } from '../../src/wire/check-request.js';
import { connectHealth } from '../support/grpc-client.js';
import { EXAMPLE_AUDIENCE, EXAMPLE_ISSUER, examplePolicyText } from '../support/policies.js';
import { type Harness, startHarness } from '../support/scopegate.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const readyz = async (harness: Harness) => {
  const response = await fetch(`http://${harness.running.adminAddress}/readyz`);
  return { status: response.status, body: (await response.json()) as { ready: boolean; problems: string[] } };
};

describe('health and readiness', () => {
  it('gRPC health is SERVING for "" and the Authorization service; /healthz and /readyz are 200', async () => {
    h = await startHarness();
    const health = connectHealth(h.running.grpcAddress);
    try {
      expect(await health.check('')).toBe('SERVING');
      expect(await health.check('envoy.service.auth.v3.Authorization')).toBe('SERVING');
    } finally {
      health.close();
    }
    expect((await fetch(`http://${h.running.adminAddress}/healthz`)).status).toBe(200);
    expect(await readyz(h)).toEqual({ status: 200, body: { ready: true, problems: [] } });
  });

  it('JWKS down at start: not ready and 503 keys_unavailable; JWKS back: ready and allowed within seconds, no restart', async () => {
    h = await startHarness(undefined, { jwksDown: true });
    const notReady = await readyz(h);
    expect(notReady.status).toBe(503);
    expect(notReady.body.problems.join('\n')).toContain(EXAMPLE_ISSUER);
    const request = {
      method: 'GET',
      path: '/api/inventory/transactions',
      token: await h.syncToken('inventory.read'),
    };
    const answer = await h.send(request);
    expect(answer.status).toBe(503);
    expect(answer.grpcCode).toBe(14);
    expect(answer.reason).toBe('keys_unavailable');
    expect(answer.headers.get('retry-after')).toBe('1');

    h.jwks.setAvailable(true);
    // With no keys at all, background retries back off from 1 s: the IdP is picked up within seconds.
    let ready = await readyz(h);
    for (let i = 0; i < 50 && ready.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ready = await readyz(h);
    }
    expect(ready).toEqual({ status: 200, body: { ready: true, problems: [] } });
    expect((await h.send(request)).status).toBe(200);
  });
});

describe("Envoy's jwt_authn in front (envoyJwtAuthn mode)", () => {
  // The example policy trusts Envoy's jwt_authn payload when present (and verifies bearer tokens otherwise).
  const withJwtAuthn = (uri: string) => {
    const text = examplePolicyText(uri);
    if (!text.includes('envoyJwtAuthn: { metadataKey: jwt_payload }'))
      throw new Error('example policy lost envoyJwtAuthn');
    return text;
  };

  const viaJwtAuthn = (payload: Record<string, unknown>, path = '/api/inventory/transactions') => {
    const request = checkRequestFor({ method: 'GET', path, headers: [] });
    const fields: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(payload)) {
      fields[key] = typeof value === 'number' ? { number_value: value } : { string_value: String(value) };
    }
    request.attributes!.metadata_context = {
      filter_metadata: {
        'envoy.filters.http.jwt_authn': { fields: { jwt_payload: { struct_value: { fields } } } },
      },
    } as never;
    return request;
  };

  it('decides on the payload Envoy verified, with no Authorization header', async () => {
    h = await startHarness(withJwtAuthn);
    const payload = {
      iss: EXAMPLE_ISSUER,
      aud: EXAMPLE_AUDIENCE,
      sub: 'svc-inventory-sync',
      client_id: 'inventory-sync',
      gty: 'client_credentials',
      scope: 'inventory.read',
      exp: Math.floor(Date.now() / 1000) + 60,
    };
    const allowed = await h.sendRaw(viaJwtAuthn(payload));
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('x-scopegate-subject')).toBe('svc-inventory-sync');
    const denied = await h.sendRaw(viaJwtAuthn({ ...payload, scope: 'inventory.write' }));
    expect(denied.reason).toBe('scope_missing');
  });

  it('the payload is held to the same rules as a token: exp required, listed iss, one of its audiences', async () => {
    h = await startHarness(withJwtAuthn);
    const payload = {
      iss: EXAMPLE_ISSUER,
      aud: EXAMPLE_AUDIENCE,
      sub: 'svc-inventory-sync',
      client_id: 'inventory-sync',
      gty: 'client_credentials',
      scope: 'inventory.read',
      exp: Math.floor(Date.now() / 1000) + 60,
    };
    const { exp: _, ...noExp } = payload;
    expect((await h.sendRaw(viaJwtAuthn(noExp))).reason).toBe('token_invalid');
    expect((await h.sendRaw(viaJwtAuthn({ ...payload, aud: 'https://other.example' }))).reason).toBe(
      'audience_mismatch',
    );
    expect((await h.sendRaw(viaJwtAuthn({ ...payload, iss: 'https://evil.example/' }))).reason).toBe(
      'issuer_untrusted',
    );
    expect((await h.sendRaw(viaJwtAuthn({ ...payload, exp: payload.exp - 3600 }))).reason).toBe(
      'token_expired',
    );
  });

  it('no payload and no token is still token_missing', async () => {
    h = await startHarness(withJwtAuthn);
    const answer = await h.sendRaw(
      checkRequestFor({ method: 'GET', path: '/api/inventory/transactions', headers: [] }),
    );
    expect(answer.reason).toBe('token_missing');
  });
});

describe('serve --deny-hints', () => {
  it('off by default: a 403 body names what is missing but carries no fix hints', async () => {
    h = await startHarness();
    const token = await h.syncToken('inventory.write');
    const answer = await h.send({ method: 'GET', path: '/api/inventory/transactions', token });
    expect(answer.body?.reason).toBe('scope_missing');
    expect(answer.body?.hints).toBeUndefined();
  });

  it('on (SCOPEGATE_DENY_HINTS=true): 403 bodies say what to change, 401s still do not', async () => {
    h = await startHarness(undefined, { env: { SCOPEGATE_DENY_HINTS: 'true' } });
    const token = await h.syncToken('inventory.write');
    const answer = await h.send({ method: 'GET', path: '/api/inventory/transactions', token });
    expect(answer.body?.hints).toEqual(['request scope inventory.read as well']);
    expect(answer.body?.error_description).toContain('to fix: request scope inventory.read as well');
    const anonymous = await h.send({ method: 'GET', path: '/api/inventory/transactions' });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body?.hints).toBeUndefined();
  });
});
