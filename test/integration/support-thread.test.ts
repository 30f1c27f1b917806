// The support thread, cause by cause, over real gRPC against a real HTTP JWKS endpoint: each cause gets its
// own reason, status, challenge and body — and the counters an SRE would read.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheusText } from '../support/prometheus.js';
import { type Harness, JSON_BODY, startHarness, transaction } from '../support/scopegate.js';

let h: Harness;
beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h?.close());

const post = (token: string, location = 'WH01') => ({
  method: 'POST',
  path: '/api/inventory/transactions',
  token,
  headers: JSON_BODY,
  body: transaction(location),
});

describe('the support thread, one cause at a time', () => {
  it('GET with inventory.read is allowed and the upstream learns who called', async () => {
    const answer = await h.send({
      method: 'GET',
      path: '/api/inventory/transactions',
      token: await h.syncToken('inventory.read'),
    });
    expect(answer.status).toBe(200);
    expect(answer.grpcCode).toBe(0);
    expect(answer.headers.get('x-scopegate-subject')).toBe('svc-inventory-sync');
    expect(answer.headers.get('x-scopegate-client')).toBe('inventory-sync');
    expect(answer.headers.get('x-scopegate-route')).toBe('list_transactions');
  });

  it('POST with only inventory.write is 403 insufficient_scope naming inventory.read (not 401 invalid_token)', async () => {
    const answer = await h.send(post(await h.syncToken('inventory.write')));
    expect(answer.status).toBe(403);
    expect(answer.grpcCode).toBe(7);
    expect(answer.headers.get('www-authenticate')).toBe(
      'Bearer realm="inventory", error="insufficient_scope", ' +
        'error_description="The access token lacks a scope this request needs.", scope="inventory.read"',
    );
    expect(answer.body).toMatchObject({
      error: 'insufficient_scope',
      reason: 'scope_missing',
      route: 'create_transaction',
      missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
    });
    expect(answer.body?.request_id).toEqual(expect.any(String));
  });

  it('the fix: POST with inventory.read and inventory.write to WH01 is allowed', async () => {
    const answer = await h.send(post(await h.syncToken('inventory.read inventory.write')));
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-scopegate-route')).toBe('create_transaction');
  });

  it('scopes the client application was never granted are client_scope_not_allowed', async () => {
    const token = await h.token({
      sub: 'svc-stock-report',
      client_id: 'stock-report',
      gty: 'client_credentials',
      scope: 'inventory.read inventory.write',
    });
    const answer = await h.send(post(token));
    expect(answer.status).toBe(403);
    expect(answer.headers.get('www-authenticate')).toContain('scope="inventory.write"');
    expect(answer.body).toMatchObject({
      reason: 'client_scope_not_allowed',
      missing: { scopes: ['inventory.write'] },
    });
  });

  it('a service account without Inventory Transaction Manager is role_missing naming the role', async () => {
    const token = await h.syncToken('inventory.read inventory.write', { sub: 'svc-new-integration' });
    const answer = await h.send(post(token));
    expect(answer.status).toBe(403);
    expect(answer.headers.has('www-authenticate')).toBe(false);
    expect(answer.body).toMatchObject({
      error: 'access_denied',
      reason: 'role_missing',
      missing: { roles: ['Inventory Transaction Manager'], permissions: ['INV_TRANSACTION_CREATE'] },
    });
  });

  it('warehouse WH01 is allowed but WH03 is location_denied naming WH03', async () => {
    const token = await h.syncToken('inventory.read inventory.write');
    expect((await h.send(post(token, 'WH01'))).status).toBe(200);
    const answer = await h.send(post(token, 'WH03'));
    expect(answer.status).toBe(403);
    expect(answer.body).toMatchObject({ reason: 'location_denied', missing: { locations: ['WH03'] } });
  });

  it('a location in the path is checked too', async () => {
    const token = await h.syncToken('inventory.read');
    expect((await h.send({ method: 'GET', path: '/api/inventory/locations/WH02/items', token })).status).toBe(
      200,
    );
    expect((await h.send({ method: 'GET', path: '/api/inventory/locations/WH07/items', token })).reason).toBe(
      'location_denied',
    );
  });

  it('an authorization_code token where the client needs client_credentials is grant_type_not_allowed', async () => {
    const answer = await h.send(
      post(await h.syncToken('inventory.read inventory.write', { gty: 'authorization_code' })),
    );
    expect(answer.status).toBe(403);
    expect(answer.body).toMatchObject({
      reason: 'grant_type_not_allowed',
      missing: { grantTypes: ['client_credentials'] },
    });
  });

  it('an expired token is 401 invalid_token (token_expired)', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await h.syncToken('inventory.read inventory.write', { iat: now - 7200, exp: now - 3600 });
    const answer = await h.send(post(token));
    expect(answer.status).toBe(401);
    expect(answer.grpcCode).toBe(16);
    expect(answer.headers.get('www-authenticate')).toMatch(
      /^Bearer realm="inventory", error="invalid_token"/,
    );
    expect(answer.body).toMatchObject({ error: 'invalid_token', reason: 'token_expired', route: null });
  });

  it('a token for another audience is 401 audience_mismatch', async () => {
    const answer = await h.send(
      post(await h.syncToken('inventory.read', { aud: 'https://other.example.com' })),
    );
    expect(answer.status).toBe(401);
    expect(answer.reason).toBe('audience_mismatch');
  });

  it('no token is 401 with a bare Bearer challenge', async () => {
    const answer = await h.send({ method: 'GET', path: '/api/inventory/transactions' });
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toBe('Bearer realm="inventory"');
    expect(answer.reason).toBe('token_missing');
  });

  it('a path no route knows is route_unknown', async () => {
    const answer = await h.send({
      method: 'DELETE',
      path: '/api/inventory/transactions/42',
      token: await h.syncToken('inventory.read'),
    });
    expect(answer.status).toBe(403);
    expect(answer.reason).toBe('route_unknown');
  });
});

describe('SRE view: every decision is counted by reason and route', () => {
  it('the scrape counts what was just decided, and only policy names appear as labels', async () => {
    const before = parsePrometheusText(await h.scrape());
    const token = await h.syncToken('inventory.write');
    for (let i = 0; i < 3; i++) await h.send(post(token));
    await h.send({ method: 'GET', path: '/api/inventory/transactions/%2e%2e/secret-path-label' });
    const after = parsePrometheusText(await h.scrape());
    const delta = (name: string, labels: Record<string, string>) =>
      after.value(name, labels) - before.value(name, labels);
    expect(
      delta('scopegate_decisions_total', {
        decision: 'deny',
        reason: 'scope_missing',
        route: 'create_transaction',
      }),
    ).toBe(3);
    expect(
      delta('scopegate_missing_permissions_total', {
        route: 'create_transaction',
        permission: 'INV_TRANSACTION_READ',
        source: 'scope',
      }),
    ).toBe(3);
    expect(
      delta('scopegate_decisions_total', { decision: 'deny', reason: 'request_malformed', route: '' }),
    ).toBe(1);
    expect(
      after.value('scopegate_check_duration_seconds_count', { decision: 'deny' }),
    ).toBeGreaterThanOrEqual(4);
    expect(
      after.value('scopegate_policy_revision_info', {
        policy: 'inventory',
        revision: h.running.policies()[0]!.revision,
      }),
    ).toBe(1);
    // Nothing the client sent becomes a label value.
    expect(after.text).not.toContain('secret-path-label');
  });
});
