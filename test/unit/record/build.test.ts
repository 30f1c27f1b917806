// A record from what a Check read and decided (src/record/build.ts): the inputs as read, the outcome, and
// what it keeps out (the token, query values, other headers, the body).
import { describe, expect, it } from 'vitest';
import { recordOf } from '../../../src/record/build.js';
import { readRequest } from '../../../src/request/facts.js';
import { ok } from '../../../src/vocabulary/index.js';
import { checkRequestFor } from '../../../src/wire/check-request.js';
import { compile, examplePolicyText } from '../../support/policies.js';

const policy = compile(examplePolicyText('https://idp.example.com/jwks'));
const context = { time: new Date('2026-12-05T10:00:00Z'), requestId: 'req-1', sampledAt: 1, policy };
const request = checkRequestFor({
  method: 'POST',
  path: '/api/inventory/transactions?location=WH09&secret=hush',
  token: 'header.payload.signature',
  headers: [
    ['content-type', 'application/json'],
    ['x-other', 'private'],
  ],
  body: '{"location":"WH01","item":"ITEM001"}',
  host: 'Inventory.Example.com:8443',
  contextExtensions: { scopegate_policy: 'x'.repeat(2000) },
  peer: 'spiffe://cluster.local/ns/orders/sa/orders-api',
});
const facts = (() => {
  const read = readRequest(request);
  if (!read.ok) throw new Error(read.detail);
  return read.value;
})();
const principal = {
  subject: 'svc-inventory-sync',
  client: 'inventory-sync',
  issuer: 'https://dev-issuer.scopegate.local/',
  grantType: 'client_credentials',
  scopes: new Set(['inventory.write']),
  roles: new Set<string>(),
  locations: [],
};

describe('recordOf', () => {
  it('keeps the inputs as read and the outcome, never the token, query values, other headers or the body', () => {
    const decision = {
      reason: 'scope_missing' as const,
      detail: 'd',
      policy: 'inventory',
      revision: policy.revision,
      route: 'create_transaction',
      missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
    };
    const record = recordOf(
      request,
      {
        decision,
        label: 'deny',
        facts,
        gathered: {
          identity: ok(principal),
          locations: { source: { body: 'location', steps: [] }, found: ok(['WH01']) },
        },
      },
      { ...context, traceId: '0af7651916cd43dd8448eb211c80319c', transport: 'forward_auth' },
    );
    expect(record).toMatchObject({
      type: 'scopegate.decision',
      v: 1,
      time: '2026-12-05T10:00:00.000Z',
      request_id: 'req-1',
      trace_id: '0af7651916cd43dd8448eb211c80319c',
      transport: 'forward_auth',
      policy: 'inventory',
      method: 'POST',
      path: '/api/inventory/transactions',
      token: { subject: 'svc-inventory-sync', scopes: ['inventory.write'], grant_type: 'client_credentials' },
      // Identified for the record although this token route did not need it.
      peer: 'spiffe://cluster.local/ns/orders/sa/orders-api',
      locations: { source: 'body:location', found: ['WH01'] },
      decision: 'deny',
      reason: 'scope_missing',
      dry_run: false,
      sampled_at: 1,
    });
    expect(record.token).toHaveProperty('basis');
    expect(record.policy_keys).toEqual({ extension: 'x'.repeat(1024), host: 'inventory.example.com' });
    const text = JSON.stringify(record);
    for (const secret of ['header.payload.signature', 'hush', 'WH09', 'private', 'ITEM001']) {
      expect(text).not.toContain(secret);
    }
  });

  it('a request no policy owned is read for the record (method, path, peer), with no token', () => {
    const record = recordOf(
      request,
      { decision: { reason: 'policy_unknown', detail: 'no policy', revision: '' }, label: 'deny' },
      { ...context, policy: undefined },
    );
    expect(record).toMatchObject({ method: 'POST', path: '/api/inventory/transactions', revision: '' });
    expect(record).not.toHaveProperty('token');
    expect(record).not.toHaveProperty('policy');
    // No door given (a caller that does not know it): none recorded, as in records written before doors were.
    expect(record).not.toHaveProperty('transport');
  });

  it('a request that cannot be read is recorded with why, and no method or path', () => {
    const broken = checkRequestFor({ method: 'GET', path: '/a/../b', headers: [] });
    const record = recordOf(
      broken,
      { decision: { reason: 'request_malformed', detail: 'dots', revision: 'r' }, label: 'deny' },
      context,
    );
    expect(record.request).toMatchObject({ reason: 'request_malformed' });
    expect(record).not.toHaveProperty('method');
  });

  it('a token refusal keeps its reason and the basis of every issuer; a dry-run deny says so', () => {
    const record = recordOf(
      request,
      {
        decision: { reason: 'token_expired', detail: 'expired', revision: 'r', dryRun: true },
        label: 'dry_run_deny',
        facts,
        gathered: { identity: { ok: false, reason: 'token_expired', detail: 'expired' } },
      },
      context,
    );
    expect(record.token).toMatchObject({ reason: 'token_expired', detail: 'expired' });
    expect([record.decision, record.dry_run]).toEqual(['dry_run_deny', true]);
  });
});
