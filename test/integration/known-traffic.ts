// A known mix of traffic for metrics assertions: every cause from the support thread, the edge denials,
// repeated tokens (cache hits), a rotated key while the IdP is down (a JWKS refresh error), a broken policy
// reload and a good one. Each request checks its own answer, so the counts the tests expect are known to
// come from the traffic intended. Shared by the metrics contract test and the dashboard test.

import { writeFileSync } from 'node:fs';
import { expect } from 'vitest';
import { EXAMPLE_AUDIENCE, EXAMPLE_ISSUER, examplePolicyText } from '../support/policies.js';
import { type Harness, type HttpLike, JSON_BODY, transaction } from '../support/scopegate.js';
import { mintToken, newSigningKey } from '../support/tokens.js';

const list = (token?: string): HttpLike => ({
  method: 'GET',
  path: '/api/inventory/transactions',
  ...(token !== undefined && { token }),
});
export const post = (token: string, location = 'WH01'): HttpLike => ({
  method: 'POST',
  path: '/api/inventory/transactions',
  token,
  headers: JSON_BODY,
  body: transaction(location),
});

async function expectReason(h: Harness, request: HttpLike, reason: string, times = 1): Promise<void> {
  for (let i = 0; i < times; i++) {
    const answer = await h.send(request);
    expect(answer.reason, `${request.method} ${request.path}`).toBe(reason);
  }
}

/** Sends the mix; returns the policy revisions before and after the good reload. */
export async function sendKnownTraffic(h: Harness): Promise<{ firstRevision: string; lastRevision: string }> {
  const firstRevision = h.running.policies()[0]!.revision;
  const readToken = await h.syncToken('inventory.read');
  const fullToken = await h.syncToken('inventory.read inventory.write');

  // Allowed: the thread's GET, and the POST once both scopes are requested (tokens repeat: cache hits).
  await expectReason(h, list(readToken), 'allowed', 3);
  await expectReason(h, post(fullToken), 'allowed', 2);
  await expectReason(
    h,
    { method: 'GET', path: '/api/inventory/transactions/42', token: fullToken },
    'allowed',
  );

  // The thread's causes, each with its own reason.
  await expectReason(h, post(await h.syncToken('inventory.write')), 'scope_missing', 2);
  const newIntegration = await h.token({
    sub: 'svc-new-integration',
    client_id: 'new-integration',
    gty: 'client_credentials',
    scope: 'inventory.read inventory.write',
  });
  await expectReason(h, post(newIntegration), 'role_missing');
  const stockReport = await h.token({
    sub: 'svc-stock-report',
    client_id: 'stock-report',
    gty: 'client_credentials',
    scope: 'inventory.read inventory.write',
  });
  await expectReason(h, post(stockReport), 'client_scope_not_allowed');
  await expectReason(h, post(fullToken, 'WH03'), 'location_denied');

  // Denials before any route is known: no token, a path that is not canonical, a method no route has.
  await expectReason(h, list(), 'token_missing', 2);
  await expectReason(
    h,
    { method: 'GET', path: '/api/inventory/transactions/%2e%2e/admin', token: readToken },
    'request_malformed',
  );
  await expectReason(
    h,
    { method: 'DELETE', path: '/api/inventory/transactions/42', token: fullToken },
    'route_unknown',
  );

  // The IdP rotated its key while its JWKS endpoint is down: one on-demand refresh, which fails.
  h.jwks.setAvailable(false);
  const rotated = await newSigningKey('RS256');
  const rotatedToken = await mintToken(rotated, {
    iss: EXAMPLE_ISSUER,
    aud: EXAMPLE_AUDIENCE,
    sub: 'svc-inventory-sync',
    client_id: 'inventory-sync',
    gty: 'client_credentials',
    scope: 'inventory.read',
  });
  await expectReason(h, list(rotatedToken), 'key_unknown');
  h.jwks.setAvailable(true);

  // A broken policy is refused (counted as an error); the fix granting WH03 is served without a restart.
  const good = examplePolicyText(h.jwks.uri);
  writeFileSync(h.policyFile, `${good}\nroutes: [oops\n`);
  expect(await h.running.reload()).toBe(false);
  const granted = good.replace('locations: [WH01, WH02, "EU-*"]', 'locations: [WH01, WH02, WH03, "EU-*"]');
  expect(granted).not.toBe(good);
  writeFileSync(h.policyFile, granted);
  expect(await h.running.reload()).toBe(true);
  await expectReason(h, post(fullToken, 'WH03'), 'allowed');

  return { firstRevision, lastRevision: h.running.policies()[0]!.revision };
}
