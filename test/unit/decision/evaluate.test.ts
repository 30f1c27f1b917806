import { describe, expect, it } from 'vitest';
import {
  checkLocations,
  checkPeerLocations,
  checkPeerPermissions,
  checkPermissions,
  peerOf,
} from '../../../src/decision/evaluate.js';
import type { Principal } from '../../../src/vocabulary/index.js';
import { compile, EXAMPLE_ISSUER, examplePolicy, examplePolicyText } from '../../support/policies.js';

const policy = examplePolicy();
const route = (name: string) => {
  const found = policy.routes.find((r) => r.name === name);
  if (!found) throw new Error(`no route ${name}`);
  return found;
};
const syncAccount = (over: Partial<Principal> = {}): Principal => ({
  subject: 'svc-inventory-sync',
  client: 'inventory-sync',
  issuer: EXAMPLE_ISSUER,
  grantType: 'client_credentials',
  scopes: new Set(['inventory.read', 'inventory.write']),
  roles: new Set(),
  locations: [],
  ...over,
});

describe('permissions: the support thread, one cause at a time', () => {
  it('GET with only inventory.read is allowed', () => {
    const reader = syncAccount({ scopes: new Set(['inventory.read']) });
    expect(checkPermissions(policy, reader, route('list_transactions')).ok).toBe(true);
  });

  it('POST with only inventory.write is denied scope_missing, naming inventory.read', () => {
    const result = checkPermissions(
      policy,
      syncAccount({ scopes: new Set(['inventory.write']) }),
      route('create_transaction'),
    );
    expect(result).toMatchObject({
      ok: false,
      reason: 'scope_missing',
      missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
      missingBySource: [{ permission: 'INV_TRANSACTION_READ', source: 'scope' }],
    });
    if (!result.ok) expect(result.detail).toContain('request scope inventory.read');
  });

  it('POST with both scopes from the fully configured client is allowed', () => {
    expect(checkPermissions(policy, syncAccount(), route('create_transaction')).ok).toBe(true);
  });

  it('a scope in the token that the client was never granted is client_scope_not_allowed', () => {
    const report = syncAccount({ subject: 'svc-stock-report', client: 'stock-report' });
    expect(checkPermissions(policy, report, route('create_transaction'))).toMatchObject({
      ok: false,
      reason: 'client_scope_not_allowed',
      missing: { permissions: ['INV_TRANSACTION_CREATE'], scopes: ['inventory.write'] },
    });
  });

  it('a scope neither in the token nor allowed to the client is scope_missing (the token must ask first)', () => {
    const report = syncAccount({
      subject: 'svc-stock-report',
      client: 'stock-report',
      scopes: new Set(['inventory.read']),
    });
    expect(checkPermissions(policy, report, route('create_transaction'))).toMatchObject({
      reason: 'scope_missing',
      missing: { scopes: ['inventory.write'] },
    });
  });

  it('an authorization_code token for a client_credentials client is grant_type_not_allowed', () => {
    const result = checkPermissions(
      policy,
      syncAccount({ grantType: 'authorization_code' }),
      route('list_transactions'),
    );
    expect(result).toMatchObject({
      reason: 'grant_type_not_allowed',
      missing: { grantTypes: ['client_credentials'] },
    });
    if (!result.ok) expect(result.detail).toContain('authorization_code');
  });

  it('a token with no grant type claim is refused for a client that pins grant types', () => {
    const { grantType: _, ...noGrant } = syncAccount();
    expect(checkPermissions(policy, noGrant, route('list_transactions'))).toMatchObject({
      reason: 'grant_type_not_allowed',
    });
  });

  it('an account without Inventory Transaction Manager is role_missing, naming the role', () => {
    const newcomer = syncAccount({ subject: 'svc-new-integration' });
    const result = checkPermissions(policy, newcomer, route('create_transaction'));
    expect(result).toMatchObject({
      reason: 'role_missing',
      missing: { permissions: ['INV_TRANSACTION_CREATE'], roles: ['Inventory Transaction Manager'] },
      missingBySource: [{ permission: 'INV_TRANSACTION_CREATE', source: 'role' }],
    });
  });

  it('roles named in the token count alongside the subject roles', () => {
    const newcomer = syncAccount({
      subject: 'svc-new-integration',
      roles: new Set(['Inventory Transaction Manager']),
    });
    expect(checkPermissions(policy, newcomer, route('create_transaction')).ok).toBe(true);
  });

  it('an unlisted subject with no role claim is role_missing for every permission', () => {
    const stranger = syncAccount({ subject: 'svc-stranger' });
    expect(checkPermissions(policy, stranger, route('list_transactions'))).toMatchObject({
      reason: 'role_missing',
      missing: { roles: ['Inventory Data Reader'] },
    });
  });

  it('without a roles section, roles are not checked', () => {
    // No roles, and so no peers either (a peer's permissions come from its roles) nor routes that need one.
    const text = examplePolicyText()
      .replace(/^roles:\n(?: {2}.*\n)+/m, '')
      .replace(/^ {4}roles: \[.*\]\n/gm, '')
      .replace(/^peers:\n(?: {2}.*\n)+/m, '')
      .replace(/^ {4}identity: .*\n/gm, '');
    const noRoles = compile(text);
    expect(noRoles.roles).toBeUndefined();
    const stranger = syncAccount({ subject: 'svc-stranger' });
    expect(
      checkPermissions(noRoles, stranger, noRoles.routes.find((r) => r.name === 'create_transaction')!).ok,
    ).toBe(true);
  });

  it('a client the policy does not list is client_unknown, naming it, before any client rule is skipped', () => {
    const other = syncAccount({ client: 'unlisted-app', grantType: 'authorization_code' });
    const result = checkPermissions(policy, other, route('create_transaction'));
    expect(result).toMatchObject({
      ok: false,
      reason: 'client_unknown',
      missing: { client: 'unlisted-app' },
    });
    if (!result.ok) expect(result.detail).toContain(`client unlisted-app of issuer ${EXAMPLE_ISSUER}`);
  });

  it('a token that names no client is client_unknown too (missing.client is null)', () => {
    const { client: _, ...anonymous } = syncAccount();
    expect(checkPermissions(policy, anonymous, route('list_transactions'))).toMatchObject({
      ok: false,
      reason: 'client_unknown',
      missing: { client: null },
    });
  });

  it("a listed client of another issuer is not this issuer's client", () => {
    const elsewhere = syncAccount({ issuer: 'https://other-idp.example/' });
    expect(checkPermissions(policy, elsewhere, route('list_transactions'))).toMatchObject({
      reason: 'client_unknown',
    });
  });

  it('with unlistedClients: allow, an unlisted client keeps all its token scopes (no client rules apply)', () => {
    const lenient = compile(
      examplePolicyText().replace('  realm: inventory\n', '  realm: inventory\n  unlistedClients: allow\n'),
    );
    const other = syncAccount({ client: 'unlisted-app', grantType: 'authorization_code' });
    expect(checkPermissions(lenient, other, route('create_transaction')).ok).toBe(true);
    const { client: _, ...anonymous } = syncAccount();
    expect(checkPermissions(lenient, anonymous, route('create_transaction')).ok).toBe(true);
  });
});

describe('locations: data-level grants', () => {
  const account = syncAccount();

  it('WH01 is allowed and WH03 is location_denied naming WH03', () => {
    expect(checkLocations(policy, account, ['WH01']).ok).toBe(true);
    expect(checkLocations(policy, account, ['WH03'])).toMatchObject({
      reason: 'location_denied',
      missing: { locations: ['WH03'] },
    });
  });

  it('a trailing-* grant covers its prefix only', () => {
    expect(checkLocations(policy, account, ['EU-WEST-1']).ok).toBe(true);
    expect(checkLocations(policy, account, ['EUROPE']).ok).toBe(false);
  });

  it('names only the refused locations among several', () => {
    expect(checkLocations(policy, account, ['WH01', 'WH03', 'WH02', 'WH09'])).toMatchObject({
      missing: { locations: ['WH03', 'WH09'] },
    });
  });

  it('a locations claim in the token grants too', () => {
    expect(checkLocations(policy, syncAccount({ locations: ['WH03'] }), ['WH03']).ok).toBe(true);
  });

  it('an unknown subject with no locations claim may touch no location', () => {
    expect(checkLocations(policy, syncAccount({ subject: 'svc-stranger' }), ['WH01']).ok).toBe(false);
  });

  it('a "*" grant covers every location', () => {
    expect(checkLocations(policy, syncAccount({ subject: 'svc-stock-report' }), ['WH77', 'EU-1']).ok).toBe(
      true,
    );
  });
});

describe('peers: the calling workload', () => {
  const ORDERS = 'spiffe://cluster.local/ns/orders/sa/orders-api';
  const REPORTS = 'spiffe://cluster.local/ns/reporting/sa/nightly';

  it('an exact entry, else the …/* entry of its path; nothing deeper, nothing beside', () => {
    expect(peerOf(policy, ORDERS)).toMatchObject({ ok: true, value: { id: ORDERS, entry: { id: ORDERS } } });
    expect(peerOf(policy, REPORTS)).toMatchObject({
      ok: true,
      value: { id: REPORTS, entry: { id: 'spiffe://cluster.local/ns/reporting/sa/*' } },
    });
    for (const stranger of [
      'spiffe://cluster.local/ns/reporting/sa/nightly/extra',
      'spiffe://cluster.local/ns/reporting',
      'spiffe://cluster.local/ns/orders/sa/orders-api-2',
      'spiffe://cluster.local.evil/ns/orders/sa/orders-api',
    ]) {
      expect(peerOf(policy, stranger), stranger).toMatchObject({
        ok: false,
        reason: 'peer_not_allowed',
        missing: { peer: stranger },
      });
    }
  });

  it("a peer's permissions come from its roles only, and a lack names the roles that would grant it", () => {
    const orders = peerOf(policy, ORDERS);
    const reports = peerOf(policy, REPORTS);
    if (!orders.ok || !reports.ok) throw new Error('example peers missing');
    expect(checkPeerPermissions(policy, orders.value, route('reserve_stock')).ok).toBe(true);
    expect(checkPeerPermissions(policy, reports.value, route('reserve_stock'))).toMatchObject({
      ok: false,
      reason: 'peer_not_allowed',
      missing: {
        permissions: ['INV_TRANSACTION_CREATE'],
        roles: ['Inventory Transaction Manager'],
        peer: REPORTS,
      },
      missingBySource: [{ permission: 'INV_TRANSACTION_CREATE', source: 'peer' }],
    });
  });

  it('every location must be granted to the peer: location_denied names it and the peer', () => {
    const orders = peerOf(policy, ORDERS);
    if (!orders.ok) throw new Error('example peer missing');
    expect(checkPeerLocations(orders.value, ['WH01', 'WH02']).ok).toBe(true);
    expect(checkPeerLocations(orders.value, ['WH01', 'WH03'])).toMatchObject({
      ok: false,
      reason: 'location_denied',
      missing: { locations: ['WH03'], peer: ORDERS },
    });
  });
});
