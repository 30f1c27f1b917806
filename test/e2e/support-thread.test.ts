// The support thread replayed through a real Envoy, once per way Envoy asks scopegate: envoy/envoy.yaml (gRPC
// ext_authz) and envoy/envoy-http.yaml (HTTP ext_authz, `http_service`, to `serve --http`). Tokens from the dev
// issuer's token endpoint, scopegate deciding, the inventory upstream behind. Each cause must come back to the
// HTTP client with its own status, challenge and JSON body, and what reaches the upstream must be exactly what
// scopegate allowed: the same expectations for both doors, word for word.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { EnvoyVariant } from '../../src/dev/stack.js';
import { syncIdentity } from '../support/policies.js';
import { skipWithoutEnvoy, suiteName } from './envoy-required.js';
import { createdId, type HttpResult, type Stack, startStack, transaction } from './stack.js';

/** The two ways Envoy asks scopegate, and the `transport` label their Checks are counted under. */
const DOORS: ReadonlyArray<{ readonly variant: EnvoyVariant; readonly transport: 'grpc' | 'http' }> = [
  { variant: 'envoy.yaml', transport: 'grpc' },
  { variant: 'envoy-http.yaml', transport: 'http' },
];

/** The identity headers scopegate sets on an allow without a peer: all an upstream may see of x-scopegate-*. */
const IDENTITY_HEADERS = [
  'x-scopegate-client',
  'x-scopegate-issuer',
  'x-scopegate-policy',
  'x-scopegate-route',
  'x-scopegate-subject',
];

const TRANSACTIONS = '/api/inventory/transactions';
const BOTH = 'inventory.read inventory.write';

let stack: Stack;

const post = (
  token: string,
  body: unknown = transaction('WH01'),
  headers?: Record<string, string | string[]>,
) => stack.send({ method: 'POST', path: TRANSACTIONS, token, json: body, ...(headers && { headers }) });

/** The access log line Envoy wrote for this answer, matched by the request id scopegate put in its body. */
async function accessLogFor(answer: HttpResult): Promise<Record<string, unknown>> {
  const requestId = answer.json?.request_id;
  expect(requestId).toEqual(expect.any(String));
  return vi.waitFor(
    () => {
      const line = stack.envoy.accessLog().find((entry) => entry.request_id === requestId);
      if (line === undefined) throw new Error(`no access log line yet for ${requestId}`);
      return line;
    },
    { timeout: 5_000, interval: 50 },
  );
}

/** The stack this suite runs on: started before its tests, closed after. */
function runStack(variant: EnvoyVariant): void {
  beforeAll(async () => {
    stack = await startStack(variant);
  });
  afterAll(async () => stack?.close());
}

/** The decisions scopegate counted, by transport: which door the Checks came through. */
async function decisionsBy(transport: string): Promise<number> {
  const text = await stack.metrics.registry.metrics();
  let total = 0;
  for (const line of text.split('\n'))
    if (line.startsWith('scopegate_decisions_total{') && line.includes(`transport="${transport}"`))
      total += Number(line.slice(line.lastIndexOf(' ') + 1));
  return total;
}

for (const { variant, transport } of DOORS) {
  describe.skipIf(skipWithoutEnvoy)(suiteName(`the support thread through Envoy (envoy/${variant})`), () => {
    runStack(variant);

    it(`every Check comes through scopegate's ${transport} door, none through the other`, async () => {
      const answer = await stack.send({
        path: TRANSACTIONS,
        token: await stack.clientToken('sync', 'inventory.read'),
      });
      expect(answer.status).toBe(200);
      expect(await decisionsBy(transport)).toBeGreaterThan(0);
      expect(await decisionsBy(transport === 'grpc' ? 'http' : 'grpc')).toBe(0);
    });

    it('GET with inventory.read is allowed and the upstream learns who called', async () => {
      const answer = await stack.send({
        path: TRANSACTIONS,
        token: await stack.clientToken('sync', 'inventory.read'),
      });
      expect(answer.status).toBe(200);
      expect(answer.json?.received_identity).toEqual(syncIdentity('list_transactions'));
    });

    it('POST with only inventory.write is 403 insufficient_scope naming inventory.read, not 401 invalid_token', async () => {
      const before = stack.upstream.transactions().length;
      const answer = await post(await stack.clientToken('sync', 'inventory.write'));
      expect(answer.status).toBe(403);
      expect(answer.headers['www-authenticate']).toBe(
        'Bearer realm="inventory", error="insufficient_scope", ' +
          'error_description="The access token lacks a scope this request needs.", scope="inventory.read"',
      );
      expect(answer.headers['content-type']).toMatch(/^application\/json/);
      expect(answer.json).toMatchObject({
        error: 'insufficient_scope',
        reason: 'scope_missing',
        route: 'create_transaction',
        missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
      });
      expect(stack.upstream.transactions()).toHaveLength(before);
    });

    it('the fix: both scopes, POST to WH01 is created upstream as the service account', async () => {
      const answer = await post(await stack.clientToken('sync', BOTH));
      expect(answer.status).toBe(201);
      const created = createdId(answer);
      const recorded = stack.upstream.transactions().find((t) => t.id === created);
      expect(recorded?.body).toEqual(transaction('WH01'));
      expect(recorded?.received_identity).toEqual(syncIdentity('create_transaction'));
    });

    it('a client that sends its own x-scopegate-subject: admin never gets it through', async () => {
      const token = await stack.clientToken('sync', BOTH);
      const spoof = {
        'x-scopegate-subject': 'admin',
        'x-scopegate-route': 'anything',
        'x-scopegate-policy': 'admin',
      };
      const created = await post(token, transaction('WH02'), spoof);
      expect(created.status).toBe(201);
      const id = createdId(created);
      expect(stack.upstream.transactions().find((t) => t.id === id)?.received_identity).toEqual(
        syncIdentity('create_transaction'),
      );
      const read = await stack.send({ path: TRANSACTIONS, token, headers: spoof });
      expect(read.json?.received_identity).toMatchObject({
        subject: 'svc-inventory-sync',
        route: 'list_transactions',
      });
      // The client-only header scopegate does not set is removed too.
      const only = await stack.send({
        path: TRANSACTIONS,
        token,
        headers: { 'x-scopegate-client': 'admin-console' },
      });
      expect(only.json?.received_identity).toMatchObject({ client: 'inventory-sync' });
    });

    it('a client’s own x-scopegate-* headers of any name or spelling never reach the upstream', async () => {
      const token = await stack.clientToken('sync', BOTH);
      const spoof = {
        // scopegate sets no peer here (no mTLS): only removal keeps this one from the upstream.
        'x-scopegate-peer': 'spiffe://cluster.local/ns/admin/sa/admin',
        'x-scopegate-meta-decision': 'allow',
        'x-scopegate-anything': 'yes',
        x_scopegate_subject: 'admin',
      };
      const read = await stack.send({ path: TRANSACTIONS, token, headers: spoof });
      expect(read.status).toBe(200);
      expect(read.json?.received_identity).toMatchObject({ subject: 'svc-inventory-sync', peer: null });
      expect(read.json?.received_scopegate_headers).toEqual(IDENTITY_HEADERS);
      const created = await post(token, transaction('WH01'), spoof);
      expect(created.status).toBe(201);
      expect(created.json?.received_scopegate_headers).toEqual(IDENTITY_HEADERS);
    });

    it('the client is told the reason of a deny, never scopegate’s metadata or identity headers', async () => {
      const denied = await post(await stack.clientToken('sync', 'inventory.write'));
      expect(denied.status).toBe(403);
      expect(denied.headers['x-scopegate-reason']).toBe('scope_missing');
      const scopegateHeaders = (answer: HttpResult) =>
        Object.keys(answer.headers).filter((name) => name.startsWith('x-scopegate-'));
      expect(scopegateHeaders(denied)).toEqual(['x-scopegate-reason']);
      const allowed = await stack.send({
        path: TRANSACTIONS,
        token: await stack.clientToken('sync', 'inventory.read'),
      });
      expect(allowed.status).toBe(200);
      expect(scopegateHeaders(allowed)).toEqual([]);
    });

    it('scopes the IdP gave the stock-report client but the policy does not are client_scope_not_allowed', async () => {
      const answer = await post(await stack.clientToken('stockReport', BOTH));
      expect(answer.status).toBe(403);
      expect(answer.headers['www-authenticate']).toContain('error="insufficient_scope"');
      expect(answer.headers['www-authenticate']).toContain('scope="inventory.write"');
      expect(answer.json).toMatchObject({
        reason: 'client_scope_not_allowed',
        missing: { scopes: ['inventory.write'] },
      });
    });

    it('svc-new-integration without Inventory Transaction Manager is role_missing naming the role', async () => {
      const answer = await post(await stack.clientToken('newIntegration', BOTH));
      expect(answer.status).toBe(403);
      expect(answer.headers['www-authenticate']).toBeUndefined();
      expect(answer.json).toMatchObject({
        error: 'access_denied',
        reason: 'role_missing',
        missing: { roles: ['Inventory Transaction Manager'] },
      });
    });

    it('warehouse WH03 is location_denied naming WH03, and nothing is stored', async () => {
      const before = stack.upstream.transactions().length;
      const answer = await post(await stack.clientToken('sync', BOTH), transaction('WH03'));
      expect(answer.status).toBe(403);
      expect(answer.json).toMatchObject({ reason: 'location_denied', missing: { locations: ['WH03'] } });
      expect(stack.upstream.transactions()).toHaveLength(before);
    });

    it('an authorization_code token is grant_type_not_allowed', async () => {
      const token = await stack.mint({
        subject: 'svc-inventory-sync',
        client: 'inventory-sync',
        scope: BOTH,
        grantType: 'authorization_code',
        ttlSeconds: 300,
      });
      const answer = await post(token);
      expect(answer.status).toBe(403);
      expect(answer.json).toMatchObject({
        reason: 'grant_type_not_allowed',
        missing: { grantTypes: ['client_credentials'] },
      });
    });

    it('an expired token is 401 invalid_token (token_expired) naming no route', async () => {
      const token = await stack.mint({
        subject: 'svc-inventory-sync',
        client: 'inventory-sync',
        scope: BOTH,
        grantType: 'client_credentials',
        ttlSeconds: -3600,
      });
      const answer = await post(token);
      expect(answer.status).toBe(401);
      expect(answer.headers['www-authenticate']).toMatch(/^Bearer realm="inventory", error="invalid_token"/);
      expect(answer.json).toMatchObject({ error: 'invalid_token', reason: 'token_expired', route: null });
    });

    it('no token is 401 with a bare Bearer challenge', async () => {
      const answer = await stack.send({ path: TRANSACTIONS });
      expect(answer.status).toBe(401);
      expect(answer.headers['www-authenticate']).toBe('Bearer realm="inventory"');
      expect(answer.json).toMatchObject({ reason: 'token_missing' });
    });

    it('the access log line carries the decision and the reason', async () => {
      const denied = await post(await stack.clientToken('sync', 'inventory.write'));
      expect(await accessLogFor(denied)).toMatchObject({
        method: 'POST',
        path: TRANSACTIONS,
        status: 403,
        decision: 'deny',
        reason: 'scope_missing',
        route: 'create_transaction',
        subject: 'svc-inventory-sync',
      });
      const token = await stack.clientToken('sync', 'inventory.read');
      const before = stack.envoy.accessLog().length;
      expect((await stack.send({ path: TRANSACTIONS, token })).status).toBe(200);
      const allowed = await vi.waitFor(() => {
        const line = stack.envoy
          .accessLog()
          .slice(before)
          .find((entry) => entry.status === 200);
        if (line === undefined) throw new Error('no access log line yet for the allowed GET');
        return line;
      });
      expect(allowed).toMatchObject({
        path: TRANSACTIONS,
        decision: 'allow',
        reason: 'allowed',
        route: 'list_transactions',
      });
    });

    it('a token sent in the query string is refused and never written to the access log', async () => {
      const token = await stack.clientToken('sync', 'inventory.read');
      const answer = await stack.send({ path: `${TRANSACTIONS}?access_token=${token}` });
      expect(answer.status).toBe(400);
      expect(answer.json).toMatchObject({ reason: 'request_malformed' });
      const logged = await accessLogFor(answer);
      expect(logged.path).toBe(TRANSACTIONS);
      expect(JSON.stringify(stack.envoy.accessLog())).not.toContain(token.split('.')[2]);
    });
  });

  describe.skipIf(skipWithoutEnvoy)(
    suiteName(`what reaches the upstream through Envoy (envoy/${variant})`),
    () => {
      runStack(variant);

      it('a body naming WH99 is refused while WH01 passes', async () => {
        const token = await stack.clientToken('sync', BOTH);
        expect((await post(token, transaction('WH01'))).status).toBe(201);
        const refused = await post(token, transaction('WH99'));
        expect(refused.status).toBe(403);
        expect(refused.json).toMatchObject({ reason: 'location_denied', missing: { locations: ['WH99'] } });
        expect(stack.upstream.transactions().map((t) => t.body.location)).not.toContain('WH99');
      });

      it('a body over Envoy’s 64 KiB buffer is refused, not allowed without its location', async () => {
        const before = await stack.upstreamRequests();
        // The location comes first, so a cut body would still "show" WH01: only the partial flag tells.
        const big = transaction('WH01', { note: 'x'.repeat(70 * 1024) });
        const answer = await post(await stack.clientToken('sync', BOTH), big);
        expect(answer.status).toBe(403);
        expect(answer.json).toMatchObject({ reason: 'body_unreadable' });
        expect(await stack.upstreamRequests()).toBe(before);
      });

      it('a body cut at 64 KiB is refused even where its start is a whole JSON object: Envoy says it was cut', async () => {
        const before = await stack.upstreamRequests();
        // Whitespace after the object: what scopegate is sent parses, so only x-envoy-auth-partial-body tells.
        const padded = JSON.stringify(transaction('WH01')) + ' '.repeat(70 * 1024);
        const answer = await stack.send({
          method: 'POST',
          path: TRANSACTIONS,
          token: await stack.clientToken('sync', BOTH),
          headers: { 'content-type': 'application/json' },
          body: padded,
        });
        expect(answer.status).toBe(403);
        expect(answer.json).toMatchObject({ reason: 'body_unreadable' });
        expect(await stack.upstreamRequests()).toBe(before);
      });

      it('a duplicate location key is refused rather than checked as one warehouse and stored as another', async () => {
        const answer = await stack.send({
          method: 'POST',
          path: TRANSACTIONS,
          token: await stack.clientToken('sync', BOTH),
          headers: { 'content-type': 'application/json' },
          body: '{"location":"WH01","item":"ITEM001","quantity":1,"location":"WH99"}',
        });
        expect(answer.status).toBe(403);
        expect(answer.json).toMatchObject({ reason: 'body_unreadable' });
      });

      it('two Authorization headers are refused as request_malformed', async () => {
        const token = await stack.clientToken('sync', BOTH);
        const before = await stack.upstreamRequests();
        const answer = await stack.send({
          path: TRANSACTIONS,
          headers: { authorization: [`Bearer ${token}`, `Bearer ${token}`] },
        });
        expect(answer.status).toBe(400);
        expect(answer.headers['www-authenticate']).toContain('error="invalid_request"');
        expect(answer.json).toMatchObject({ reason: 'request_malformed' });
        expect(await stack.upstreamRequests()).toBe(before);
      });

      it.each([
        ['GET', '/api/inventory//transactions'],
        ['GET', '/api/inventory/transactions/..%2F..%2Fadmin'],
        ['POST', '/api/inventory//transactions'],
        ['GET', '/api/inventory/transactions/%2e%2e/%2e%2e/admin'],
      ])('%s %s never reaches the upstream as an allowed request', async (method, path) => {
        const token = await stack.clientToken('sync', BOTH);
        const before = await stack.upstreamRequests();
        const stored = stack.upstream.transactions().length;
        const answer = await stack.send({
          method,
          path,
          token,
          ...(method === 'POST' && { json: transaction('WH01') }),
        });
        expect(answer.status).toBe(400);
        expect(answer.json).toMatchObject({ reason: 'request_malformed' });
        expect(answer.json).not.toHaveProperty('received_identity');
        expect(await stack.upstreamRequests()).toBe(before);
        expect(stack.upstream.transactions()).toHaveLength(stored);
        const logged = await accessLogFor(answer);
        expect(logged).toMatchObject({ path, decision: 'deny', reason: 'request_malformed' });
      });

      it('the upstream counter the checks above rely on does move for an allowed request', async () => {
        const before = await stack.upstreamRequests();
        const answer = await stack.send({
          path: TRANSACTIONS,
          token: await stack.clientToken('sync', 'inventory.read'),
        });
        expect(answer.status).toBe(200);
        expect(await stack.upstreamRequests()).toBe(before + 1);
      });
    },
  );

  describe.skipIf(skipWithoutEnvoy)(
    suiteName(`scopegate down: Envoy fails closed (envoy/${variant})`),
    () => {
      runStack(variant);

      it('with scopegate stopped, a request that was allowed a moment ago gets 403/503, never 200', async () => {
        const token = await stack.clientToken('sync', BOTH);
        expect((await post(token)).status).toBe(201);
        const stored = stack.upstream.transactions().length;
        await stack.scopegate.stop();
        for (let i = 0; i < 3; i++) {
          const answer = await post(token);
          expect([403, 503]).toContain(answer.status);
          const read = await stack.send({ path: TRANSACTIONS, token });
          expect([403, 503]).toContain(read.status);
        }
        expect(stack.upstream.transactions()).toHaveLength(stored);
      });
    },
  );
}
