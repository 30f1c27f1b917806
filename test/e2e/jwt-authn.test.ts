// The same support-thread causes through envoy/envoy-jwt-authn.yaml: Envoy's jwt_authn verifies the token
// against the dev issuer's JWKS and strips it, scopegate decides on the claims Envoy passes as metadata, with
// the same example policy as behind envoy.yaml. Token problems are Envoy's own 401s in this setup.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_ISSUER } from '../support/policies.js';
import { skipWithoutEnvoy, suiteName } from './envoy-required.js';
import { createdId, type Stack, startStack, transaction } from './stack.js';

const TRANSACTIONS = '/api/inventory/transactions';
const BOTH = 'inventory.read inventory.write';

let stack: Stack;

const post = (token: string, location = 'WH01') =>
  stack.send({ method: 'POST', path: TRANSACTIONS, token, json: transaction(location) });

describe.skipIf(skipWithoutEnvoy)(
  suiteName('Envoy verifies, scopegate decides (envoy-jwt-authn.yaml)'),
  () => {
    beforeAll(async () => {
      stack = await startStack('envoy-jwt-authn.yaml');
    });
    afterAll(async () => stack?.close());

    it('GET with inventory.read is allowed; the upstream gets scopegate’s identity, not the token', async () => {
      const answer = await stack.send({
        path: TRANSACTIONS,
        token: await stack.clientToken('sync', 'inventory.read'),
      });
      expect(answer.status).toBe(200);
      expect(answer.json?.received_identity).toEqual({
        subject: 'svc-inventory-sync',
        client: 'inventory-sync',
        issuer: EXAMPLE_ISSUER,
        route: 'list_transactions',
        policy: 'inventory',
        peer: null,
      });
    });

    it('scopegate decided on Envoy’s verified claims: the token itself never reached it', async () => {
      // With forward: false jwt_authn removes the Authorization header, so an allow here can only come from the
      // jwt_payload metadata. The policy also trusts its JWKS, so this is the only way to tell the modes apart.
      const answer = await post(await stack.clientToken('sync', BOTH));
      expect(answer.status).toBe(201);
      const id = createdId(answer);
      expect(stack.upstream.transactions().find((t) => t.id === id)?.received_identity.subject).toBe(
        'svc-inventory-sync',
      );
    });

    it('POST with only inventory.write is 403 insufficient_scope naming inventory.read', async () => {
      const answer = await post(await stack.clientToken('sync', 'inventory.write'));
      expect(answer.status).toBe(403);
      expect(answer.headers['www-authenticate']).toContain('error="insufficient_scope"');
      expect(answer.headers['www-authenticate']).toContain('scope="inventory.read"');
      expect(answer.json).toMatchObject({
        reason: 'scope_missing',
        route: 'create_transaction',
        missing: { scopes: ['inventory.read'] },
      });
    });

    it('the stock-report client is client_scope_not_allowed naming inventory.write', async () => {
      const answer = await post(await stack.clientToken('stockReport', BOTH));
      expect(answer.status).toBe(403);
      expect(answer.json).toMatchObject({
        reason: 'client_scope_not_allowed',
        missing: { scopes: ['inventory.write'] },
      });
    });

    it('svc-new-integration is role_missing naming Inventory Transaction Manager', async () => {
      const answer = await post(await stack.clientToken('newIntegration', BOTH));
      expect(answer.status).toBe(403);
      expect(answer.json).toMatchObject({
        reason: 'role_missing',
        missing: { roles: ['Inventory Transaction Manager'] },
      });
    });

    it('WH03 is location_denied while WH01 passes', async () => {
      const token = await stack.clientToken('sync', BOTH);
      expect((await post(token, 'WH01')).status).toBe(201);
      const answer = await post(token, 'WH03');
      expect(answer.status).toBe(403);
      expect(answer.json).toMatchObject({ reason: 'location_denied', missing: { locations: ['WH03'] } });
    });

    it('an authorization_code token passes Envoy’s check but scopegate refuses the grant type', async () => {
      const token = await stack.mint({
        subject: 'svc-inventory-sync',
        client: 'inventory-sync',
        scope: BOTH,
        grantType: 'authorization_code',
        ttlSeconds: 300,
      });
      const answer = await post(token);
      expect(answer.status).toBe(403);
      expect(answer.json).toMatchObject({ reason: 'grant_type_not_allowed' });
    });

    it('an expired token is Envoy’s own 401, before scopegate is asked', async () => {
      const token = await stack.mint({
        subject: 'svc-inventory-sync',
        client: 'inventory-sync',
        scope: BOTH,
        grantType: 'client_credentials',
        ttlSeconds: -3600,
      });
      const answer = await post(token);
      expect(answer.status).toBe(401);
      expect(answer.headers['www-authenticate']).toMatch(/^Bearer realm=/);
      expect(answer.text).toMatch(/expired/i);
      expect(answer.json).toBeUndefined();
    });

    it('no token on /api/ is Envoy’s own 401 "Jwt is missing"', async () => {
      const answer = await stack.send({ path: TRANSACTIONS });
      expect(answer.status).toBe(401);
      expect(answer.text).toMatch(/Jwt is missing/);
    });

    it('a client-sent x-scopegate-subject still never reaches the upstream', async () => {
      const answer = await stack.send({
        path: TRANSACTIONS,
        token: await stack.clientToken('sync', 'inventory.read'),
        headers: { 'x-scopegate-subject': 'admin' },
      });
      expect(answer.status).toBe(200);
      expect(answer.json?.received_identity).toMatchObject({ subject: 'svc-inventory-sync' });
    });

    it('two Authorization headers are refused, not decided on the first one', async () => {
      const good = await stack.clientToken('sync', BOTH);
      const before = await stack.upstreamRequests();
      const answer = await stack.send({
        path: TRANSACTIONS,
        headers: { authorization: [`Bearer ${good}`, `Bearer ${good}`] },
      });
      // Envoy joins them into one value ("Bearer a,Bearer b"), which jwt_authn refuses as a malformed JWT.
      expect(answer.status).toBe(401);
      expect(answer.json?.received_identity).toBeUndefined();
      expect(await stack.upstreamRequests()).toBe(before);
    });

    it('a token in the access_token query parameter is not taken from the URL', async () => {
      const token = await stack.clientToken('sync', 'inventory.read');
      const answer = await stack.send({ path: `${TRANSACTIONS}?access_token=${token}` });
      expect(answer.status).toBe(401);
      expect(answer.json?.received_identity).toBeUndefined();
    });
  },
);
