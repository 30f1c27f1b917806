// The support thread as explain/test inputs: each cause with its claims, request, the reason the server must
// give and the fix in the user's words (written out here, not computed by the code under test).
import type { HttpRequestSpec } from '../../../src/explain/identity.js';

export interface ThreadCase {
  readonly name: string;
  /** Absent: no token. */
  readonly claims?: Record<string, unknown>;
  readonly request: HttpRequestSpec;
  readonly reason: string;
  /** The first fix hint, exactly. */
  readonly hint?: string;
  /** A change to the example policy text this case needs. */
  readonly variant?: (policyText: string) => string;
}

const json: ReadonlyArray<readonly [string, string]> = [['content-type', 'application/json']];
export const post = (location = 'WH01'): HttpRequestSpec => ({
  method: 'POST',
  path: '/api/inventory/transactions',
  headers: json,
  body: JSON.stringify({ location, item: 'ITEM001', quantity: 10 }),
});
const list: HttpRequestSpec = { method: 'GET', path: '/api/inventory/transactions', headers: [] };
export const sync = (scope: string, more: Record<string, unknown> = {}) => ({
  sub: 'svc-inventory-sync',
  client_id: 'inventory-sync',
  gty: 'client_credentials',
  scope,
  ...more,
});

export const THREAD: readonly ThreadCase[] = [
  { name: 'GET with inventory.read', claims: sync('inventory.read'), request: list, reason: 'allowed' },
  {
    name: 'POST with only inventory.write',
    claims: sync('inventory.write'),
    request: post(),
    reason: 'scope_missing',
    hint: 'request scope inventory.read as well',
  },
  {
    name: 'the fixed token',
    claims: sync('inventory.read inventory.write'),
    request: post(),
    reason: 'allowed',
  },
  {
    name: 'stock-report client never granted inventory.write',
    claims: { ...sync('inventory.read inventory.write'), sub: 'svc-stock-report', client_id: 'stock-report' },
    request: post(),
    reason: 'client_scope_not_allowed',
    hint: 'allow client stock-report the scope inventory.write',
  },
  {
    name: 'inventory-sync client limited to inventory.read',
    claims: sync('inventory.read inventory.write'),
    request: post(),
    reason: 'client_scope_not_allowed',
    hint: 'allow client inventory-sync the scope inventory.write',
    variant: (text) => CLIENT_READ_ONLY(text),
  },
  {
    name: 'svc-new-integration without the manager role',
    claims: sync('inventory.read inventory.write', { sub: 'svc-new-integration' }),
    request: post(),
    reason: 'role_missing',
    hint: 'give svc-new-integration the role Inventory Transaction Manager',
  },
  {
    name: 'svc-inventory-sync without the manager role',
    claims: sync('inventory.read inventory.write'),
    request: post(),
    reason: 'role_missing',
    hint: 'give svc-inventory-sync the role Inventory Transaction Manager',
    variant: (text) => SYNC_WITHOUT_MANAGER(text),
  },
  {
    name: 'warehouse WH03',
    claims: sync('inventory.read inventory.write'),
    request: post('WH03'),
    reason: 'location_denied',
    hint: 'grant location WH03 to svc-inventory-sync',
  },
  {
    name: 'authorization_code grant',
    claims: sync('inventory.read inventory.write', { gty: 'authorization_code' }),
    request: post(),
    reason: 'grant_type_not_allowed',
    hint: 'get the token with the client_credentials grant',
  },
  {
    name: 'expired token',
    claims: sync('inventory.read inventory.write', { iat: 1699990000, exp: 1700000000 }),
    request: post(),
    reason: 'token_expired',
  },
  {
    name: 'another audience',
    claims: sync('inventory.read', { aud: 'https://other.example.com' }),
    request: list,
    reason: 'audience_mismatch',
  },
  {
    name: 'unknown route',
    claims: sync('inventory.read'),
    request: { method: 'DELETE', path: '/api/inventory/transactions/42', headers: [] },
    reason: 'route_unknown',
  },
  { name: 'no token', request: list, reason: 'token_missing' },
  {
    name: 'a body without content-type',
    claims: sync('inventory.read inventory.write'),
    request: { ...post(), headers: [] },
    reason: 'body_unreadable',
  },
  {
    name: 'a dot segment in the path',
    claims: sync('inventory.read'),
    request: { method: 'GET', path: '/api/inventory/../transactions', headers: [] },
    reason: 'request_malformed',
  },
];

/**
 * The example policy as the thread's variants need it: the inventory-sync client limited to inventory.read
 * only for the case that says so, and svc-inventory-sync without the manager role for the role hint.
 */
export const CLIENT_READ_ONLY = (text: string) =>
  text.replace(
    'inventory-sync: { scopes: [inventory.read, inventory.write]',
    'inventory-sync: { scopes: [inventory.read]',
  );
export const SYNC_WITHOUT_MANAGER = (text: string) =>
  text.replace(
    'roles: [Inventory Transaction Manager, Inventory Data Reader]',
    'roles: [Inventory Data Reader]',
  );
