// One Envoy in front of two APIs, one scopegate serving the example policy set (issue 19): each virtual host
// of envoy/envoy-policy-set.yaml names its policy with the context extension `scopegate_policy`, so the same
// token and path are judged by inventory's policy on inventory's host and by shipments' on shipments'. A host
// no policy owns is a 403 policy_unknown, and nothing reaches an upstream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { skipWithoutEnvoy, suiteName } from './envoy-required.js';
import { type Stack, startStack } from './stack.js';

const INVENTORY = 'inventory.example.com';
const SHIPMENTS = 'shipments.example.com';

describe.skipIf(skipWithoutEnvoy)(
  suiteName('a policy set through Envoy (envoy/envoy-policy-set.yaml)'),
  () => {
    let stack: Stack;
    let dispatch: string;
    beforeAll(async () => {
      stack = await startStack('envoy-policy-set.yaml');
      // The shipments team's service account (examples/mesh/shipments.yaml), signed by the dev issuer.
      dispatch = await stack.mint({
        subject: 'svc-dispatch',
        client: 'dispatch',
        scope: 'shipments.read shipments.write',
        grantType: 'client_credentials',
        ttlSeconds: 300,
      });
    });
    afterAll(async () => stack?.close());

    it('inventory’s virtual host is judged by the inventory policy, and the upstream is told so', async () => {
      const token = await stack.clientToken('sync', 'inventory.read');
      const answer = await stack.send({
        path: '/api/inventory/transactions',
        token,
        headers: { host: INVENTORY },
      });
      expect(answer.status).toBe(200);
      expect(answer.json?.received_identity).toMatchObject({
        subject: 'svc-inventory-sync',
        route: 'list_transactions',
        policy: 'inventory',
      });
    });

    it('shipments’ virtual host is judged by the shipments policy: its own scopes, roles and locations', async () => {
      const allowed = await stack.send({
        method: 'POST',
        path: '/api/shipments',
        token: dispatch,
        headers: { host: SHIPMENTS },
        json: { origin: 'WH01' },
      });
      expect(allowed.status).toBe(200);
      expect(allowed.json).toEqual({ service: 'shipments' });
      const elsewhere = await stack.send({
        method: 'POST',
        path: '/api/shipments',
        token: dispatch,
        headers: { host: SHIPMENTS },
        json: { origin: 'WH02' },
      });
      expect(elsewhere.status).toBe(403);
      expect(elsewhere.json).toMatchObject({
        reason: 'location_denied',
        policy: 'shipments',
        route: 'create_shipment',
        missing: { locations: ['WH02'] },
      });
    });

    it('one token, two hosts, two policies: inventory’s token lacks shipments’ scope there', async () => {
      const token = await stack.clientToken('stockReport', 'inventory.read');
      const answer = await stack.send({ path: '/api/shipments', token, headers: { host: SHIPMENTS } });
      expect(answer.status).toBe(403);
      expect(answer.headers['www-authenticate']).toContain('scope="shipments.read"');
      expect(answer.json).toMatchObject({
        reason: 'scope_missing',
        policy: 'shipments',
        route: 'list_shipments',
      });
      // Shipments' path on inventory's host: inventory's policy has no such route.
      const wrongHost = await stack.send({ path: '/api/shipments', token, headers: { host: INVENTORY } });
      expect(wrongHost.status).toBe(403);
      expect(wrongHost.json).toMatchObject({ reason: 'route_unknown', policy: 'inventory' });
    });

    it('a host no policy owns is 403 policy_unknown, counted, and reaches no upstream', async () => {
      const token = await stack.clientToken('sync', 'inventory.read');
      const before = await stack.upstreamRequests();
      const answer = await stack.send({
        path: '/api/inventory/transactions',
        token,
        headers: { host: 'orders.example.com' },
      });
      expect(answer.status).toBe(403);
      expect(answer.headers['x-scopegate-reason']).toBe('policy_unknown');
      expect(answer.json).toMatchObject({ reason: 'policy_unknown', policy: null, route: null });
      expect(await stack.upstreamRequests()).toBe(before);
      const text = await stack.metrics.registry.metrics();
      expect(text).toMatch(
        /scopegate_decisions_total\{decision="deny",reason="policy_unknown",route="",policy="",transport="grpc"\} [1-9]/,
      );
    });
  },
);
