// One scopegate for several services (issue 19), over real gRPC against a directory of policies: each request
// is decided by the policy its context extension, destination principal or host chooses (in that order), a
// request no policy owns is a counted 403 policy_unknown, files come and go live, and one team's broken
// edit leaves its policy on its last good revision while another team's policy reloads under load, with no
// check failing.
import { unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { sendHttp } from '../support/http-front.js';
import { captureLog } from '../support/logs.js';
import { examplePolicyText, shipmentsPolicyText } from '../support/policies.js';
import { type Harness, type HttpLike, JSON_BODY, startHarness, transaction } from '../support/scopegate.js';

const INVENTORY_SA = 'spiffe://cluster.local/ns/inventory/sa/inventory';
const SHIPMENTS_SA = 'spiffe://cluster.local/ns/shipments/sa/shipments';

/** A third team's API, owning orders.example.com; `extra` goes at the top level (e.g. `match.default`). */
const ordersPolicy =
  (hosts: string, extra = '') =>
  (jwksUri: string) =>
    `version: 1
name: orders
match: { hosts: [${hosts}]${extra} }
authentication:
  issuers:
    - issuer: https://dev-issuer.scopegate.local/
      audiences: [https://gateway.example.com]
      jwks: { uri: "${jwksUri}" }
      algorithms: [RS256]
scopes:
  orders.read: [ORDER_READ]
routes:
  - { name: list_orders, method: GET, path: /api/orders, permissions: [ORDER_READ] }
`;

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function mesh(extra: Record<string, (jwksUri: string) => string> = {}): Promise<Harness> {
  h = await startHarness(undefined, {
    policies: { 'inventory.yaml': examplePolicyText, 'shipments.yaml': shipmentsPolicyText, ...extra },
  });
  return h;
}

/** A token any of the example policies accepts for reading (each decides by its own scopes and roles). */
const reader = (harness: Harness) =>
  harness.token({
    sub: 'svc-stock-report',
    client_id: 'stock-report',
    gty: 'client_credentials',
    scope: 'inventory.read shipments.read orders.read',
    roles: ['Inventory Data Reader', 'Shipment Viewer'],
  });

async function ask(harness: Harness, request: Omit<HttpLike, 'method' | 'path'> & Partial<HttpLike>) {
  const token = await reader(harness);
  const answer = await harness.send({ method: 'GET', path: '/api/shipments', token, ...request });
  return {
    status: answer.status,
    reason: answer.reason,
    // Allowed: what the upstream is told; denied: what the deny body says.
    policy: answer.status === 200 ? answer.headers.get('x-scopegate-policy') : answer.body?.policy,
    route: answer.status === 200 ? answer.headers.get('x-scopegate-route') : answer.body?.route,
  };
}

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

describe('choosing the policy for each request', () => {
  it('the context extension wins, then the destination principal, then the host; none is policy_unknown', async () => {
    const harness = await mesh();
    const shipments = { policy: 'shipments', route: 'list_shipments', status: 200, reason: 'allowed' };
    // By Envoy's context extension, whatever the host says.
    expect(
      await ask(harness, {
        contextExtensions: { scopegate_policy: 'shipments' },
        host: 'inventory.example.com',
      }),
    ).toEqual(shipments);
    // By the called workload, whatever the host says.
    expect(await ask(harness, { destinationPrincipal: SHIPMENTS_SA, host: 'inventory.example.com' })).toEqual(
      shipments,
    );
    // By host, any case, port ignored.
    expect(await ask(harness, { host: 'Shipments.Example.com:8443' })).toEqual(shipments);
    // An unknown principal falls through to the host: inventory has no route for /api/shipments.
    expect(
      await ask(harness, {
        destinationPrincipal: 'spiffe://cluster.local/ns/x/sa/y',
        host: 'inventory.example.com',
      }),
    ).toEqual({ policy: 'inventory', route: null, status: 403, reason: 'route_unknown' });
    expect(
      await ask(harness, { destinationPrincipal: INVENTORY_SA, path: '/api/inventory/transactions' }),
    ).toMatchObject({ policy: 'inventory', route: 'list_transactions', status: 200 });

    // A name no policy has is final: never a fall-through to the host's policy.
    const unknownName = await ask(harness, {
      contextExtensions: { scopegate_policy: 'orders' },
      host: 'shipments.example.com',
    });
    expect(unknownName).toEqual({ policy: null, route: null, status: 403, reason: 'policy_unknown' });
    expect(await ask(harness, { host: 'orders.example.com' })).toEqual(unknownName);
    expect(
      await harness.sample(
        'scopegate_decisions_total{decision="deny",reason="policy_unknown",route="",policy="",transport="grpc"}',
      ),
    ).toBe(2);
    expect(
      await harness.sample(
        'scopegate_decisions_total{decision="allow",reason="allowed",route="list_shipments",policy="shipments",transport="grpc"}',
      ),
    ).toBe(3);
  });

  it('a policy with match.default answers what no other policy owns, and only that', async () => {
    const harness = await mesh({ 'orders.yaml': ordersPolicy('orders.example.com', ', default: true') });
    expect(await ask(harness, { host: 'unknown.example.com', path: '/api/orders' })).toMatchObject({
      policy: 'orders',
      status: 200,
    });
    expect(await ask(harness, { host: 'shipments.example.com' })).toMatchObject({ policy: 'shipments' });
    // A context extension naming no policy is still final, default or not.
    expect(await ask(harness, { contextExtensions: { scopegate_policy: 'nope' } })).toMatchObject({
      reason: 'policy_unknown',
    });
  });
});

describe('files come and go live', () => {
  it('a file added owns its hosts at once; a file removed owns nothing, and its series go', async () => {
    const harness = await mesh();
    expect(await ask(harness, { host: 'orders.example.com', path: '/api/orders' })).toMatchObject({
      reason: 'policy_unknown',
    });
    await writeFile(
      join(harness.policyFile, 'orders.yaml'),
      ordersPolicy('orders.example.com')(harness.jwks.uri),
    );
    await until(
      async () => (await ask(harness, { host: 'orders.example.com', path: '/api/orders' })).status === 200,
      'orders',
    );
    expect(await harness.scrape()).toMatch(
      /scopegate_policy_revision_info\{policy="orders",revision="[0-9a-f]{12}"\} 1/,
    );

    await unlink(join(harness.policyFile, 'shipments.yaml'));
    await until(
      async () => (await ask(harness, { host: 'shipments.example.com' })).reason === 'policy_unknown',
      'removal',
    );
    expect(await harness.scrape()).not.toContain('policy="shipments"');
    expect(harness.running.policies().map((p) => p.name)).toEqual(['inventory', 'orders']);
    expect((await fetch(`http://${harness.running.adminAddress}/readyz`)).status).toBe(200);
  });
});

describe('a set served on the HTTP front door', () => {
  it('is chosen by host, until a policy only Envoy can name arrives: then every HTTP request is refused', async () => {
    const orders = ordersPolicy('orders.example.com');
    const captured = captureLog('warn');
    const refusals = () =>
      captured.lines.filter(
        (line) => line.msg === 'the HTTP front doors refuse every request of this policy set',
      );
    // Hosts only: the HTTP door can choose among these as the gRPC door does without a context extension.
    const harness = await startHarness(undefined, {
      policies: {
        'orders.yaml': orders,
        'billing.yaml': (uri) => billingAt(orders(uri), 'match: { hosts: [billing.example.com] }'),
      },
      flags: ['--http', '127.0.0.1:0'],
      log: captured.log,
    });
    h = harness;
    const token = await reader(harness);
    const overHttp = async () => {
      const reply = await sendHttp(harness.running.httpAddress!, {
        method: 'GET',
        target: '/api/orders',
        headers: [
          ['host', 'orders.example.com'],
          ['authorization', `Bearer ${token}`],
        ],
      });
      return {
        status: reply.status,
        reason: reply.headers.get('x-scopegate-meta-reason'),
        detail: reply.body?.detail,
      };
    };
    expect(await overHttp()).toMatchObject({ status: 200, reason: 'allowed' });
    expect(refusals()).toEqual([]);

    // `billing` now claims nothing: Envoy would name it on some route (a catch-all, say), which HTTP cannot say.
    await writeFile(join(harness.policyFile, 'billing.yaml'), billingAt(orders(harness.jwks.uri), ''));
    await until(async () => (await overHttp()).status === 403, 'the HTTP refusal');
    // (What the log line's detail says is in test/unit/check/choose.test.ts.)
    expect(await overHttp()).toEqual({ status: 403, reason: 'policy_unknown' });
    // Said once, when it started, with what to do.
    expect(refusals()).toHaveLength(1);
    expect(refusals()[0]?.detail).toMatch(/\(billing\).*give them match\.hosts/);
    // The gRPC door still chooses: by the name Envoy gives, else by host.
    expect(await ask(harness, { host: 'orders.example.com', path: '/api/orders' })).toMatchObject({
      status: 200,
    });
    expect(
      await ask(harness, { contextExtensions: { scopegate_policy: 'billing' }, path: '/api/orders' }),
    ).toMatchObject({ policy: 'billing', status: 200 });
  });
});

/** The orders policy renamed `billing`, with `match` as given (empty: it claims nothing). */
function billingAt(ordersText: string, match: string): string {
  return ordersText.replace(
    'name: orders\nmatch: { hosts: [orders.example.com] }',
    `name: billing\n${match}`,
  );
}

describe('one team breaks its file while another reloads', () => {
  it('the broken policy keeps its last good revision, the other swaps, and no check fails', async () => {
    const harness = await mesh();
    const token = await harness.syncToken('inventory.read inventory.write');
    const dispatch = await harness.token({
      sub: 'svc-dispatch',
      client_id: 'dispatch',
      gty: 'client_credentials',
      scope: 'shipments.write',
    });
    const inventoryAt = (location: string) =>
      harness.send({
        method: 'POST',
        path: '/api/inventory/transactions',
        token,
        headers: JSON_BODY,
        body: transaction(location),
        host: 'inventory.example.com',
      });
    const shipFrom = (origin: string) =>
      harness.send({
        method: 'POST',
        path: '/api/shipments',
        token: dispatch,
        headers: JSON_BODY,
        body: JSON.stringify({ origin }),
        contextExtensions: { scopegate_policy: 'shipments' },
      });
    const inventoryFile = join(harness.policyFile, 'inventory.yaml');
    const shipmentsFile = join(harness.policyFile, 'shipments.yaml');
    const inventoryRevision = harness.running.current().named('inventory')!.policy.revision;

    // Callers that never stop while the files change, bounded in time.
    const failures: string[] = [];
    let inventoryChecks = 0;
    let shipmentsChecks = 0;
    let stop = false;
    const caller = async () => {
      while (!stop) {
        try {
          const [inventory, shipments] = await Promise.all([inventoryAt('WH01'), shipFrom('WH01')]);
          inventoryChecks++;
          shipmentsChecks++;
          // inventory keeps its last good revision throughout: WH01 is granted in every version of it.
          if (inventory.status !== 200) failures.push(`inventory ${inventory.status} ${inventory.reason}`);
          const served = inventory.raw.dynamic_metadata?.fields?.policy_revision?.string_value;
          if (served !== inventoryRevision) failures.push(`inventory served revision ${served}`);
          if (shipments.status !== 200) failures.push(`shipments ${shipments.status} ${shipments.reason}`);
        } catch (err) {
          failures.push(`gRPC error: ${(err as Error).message}`);
        }
      }
    };
    const callers = Promise.all([caller(), caller(), caller()]);
    const deadline = setTimeout(() => {
      stop = true;
    }, 20_000);

    try {
      // inventory's team breaks its file; shipments' team grants WH02, then WH03, while it stays broken.
      await writeFile(inventoryFile, 'version: 1\nscopes: [\n');
      const good = shipmentsPolicyText(harness.jwks.uri);
      for (const location of ['WH02', 'WH03']) {
        await writeFile(
          shipmentsFile,
          good.replace('locations: [WH01, "EU-*"]', `locations: [WH01, ${location}, "EU-*"]`),
        );
        await until(async () => (await shipFrom(location)).status === 200, `shipments granting ${location}`);
      }
      expect(harness.running.readiness()).toEqual({
        problems: [],
        notes: [
          expect.stringMatching(
            /^policy file .*inventory\.yaml keeps revision [0-9a-f]{12}; its change was rejected: .*inventory\.yaml:3:/,
          ),
        ],
      });
      expect(await harness.sample('scopegate_policy_reloads_total{policy="inventory",result="error"}')).toBe(
        1,
      );
      expect(
        await harness.sample('scopegate_policy_reloads_total{policy="shipments",result="success"}'),
      ).toBe(3);
    } finally {
      stop = true;
      clearTimeout(deadline);
      await callers;
    }
    expect(failures).toEqual([]);
    expect(inventoryChecks).toBeGreaterThan(10);
    expect(shipmentsChecks).toBeGreaterThan(10);
  });
});
