// What a policy change means (src/policy/diff.ts): each kind of edit to the example policy is named by its
// meaning, once, with the right kind; an edit that changes nothing it means (a comment, key order) is no change.
import { describe, expect, it } from 'vitest';
import { CHANGE_KINDS, countByKind, diffPolicy, diffPolicySets } from '../../../src/policy/diff.js';
import { compile, examplePolicyText } from '../../support/policies.js';

const base = examplePolicyText();
const before = compile(base);
/** The example policy with one text edit; the edit must apply. */
function edited(from: string | RegExp, to: string) {
  const text = base.replace(from, to);
  expect(text).not.toBe(base);
  return compile(text);
}

describe('diffPolicy', () => {
  it('finds nothing between a policy and itself, or a copy with comments and blank lines added', () => {
    expect(diffPolicy(before, before)).toEqual([]);
    expect(diffPolicy(before, compile(`# a comment\n\n${base}\n# more\n`))).toEqual([]);
  });

  it('names a location granted to a subject (the support thread: grant WH03)', () => {
    const after = edited('locations: [WH01, WH02, "EU-*"]', 'locations: [WH01, WH02, WH03, "EU-*"]');
    expect(diffPolicy(before, after)).toEqual([
      {
        kind: 'locations',
        policy: 'inventory',
        what: 'subject svc-inventory-sync (https://dev-issuer.scopegate.local/)',
        added: ['WH03'],
        says: 'subject svc-inventory-sync (https://dev-issuer.scopegate.local/): locations granted WH03',
      },
    ]);
  });

  it('names a permission a route no longer requires, and one it now requires', () => {
    const fewer = edited(
      'permissions: [INV_TRANSACTION_CREATE, INV_TRANSACTION_READ]',
      'permissions: [INV_TRANSACTION_CREATE]',
    );
    const [change] = diffPolicy(before, fewer);
    expect(change).toMatchObject({
      kind: 'route_permissions',
      what: 'route create_transaction',
      removed: ['INV_TRANSACTION_READ'],
    });
    expect(diffPolicy(fewer, before)[0]).toMatchObject({ added: ['INV_TRANSACTION_READ'] });
    expect(change!.says).toBe('route create_transaction: no longer requires INV_TRANSACTION_READ');
  });

  it('names routes added, removed, moved and changed (method, path, location source, identity, mode)', () => {
    const added = edited(
      'routes:\n',
      'routes:\n  - { name: ping, method: GET, path: /ping, permissions: [INV_TRANSACTION_READ] }\n',
    );
    expect(diffPolicy(before, added).map((c) => c.kind)).toEqual(['route_added']);
    expect(diffPolicy(added, before).map((c) => [c.kind, c.what])).toEqual([['route_removed', 'route ping']]);

    const changed = edited(
      /path: \/api\/inventory\/stock\n {4}permissions: \[INV_TRANSACTION_READ\]\n {4}location: \{ query: location \}/,
      'path: /api/inventory/stock/all\n    permissions: [INV_TRANSACTION_READ]\n    location: { header: x-location }\n    mode: dry_run\n    identity: token_and_peer',
    );
    expect(diffPolicy(before, changed).map((c) => c.says)).toEqual([
      'route list_stock: GET /api/inventory/stock → GET /api/inventory/stock/all',
      'route list_stock location: query parameter location → header x-location',
      'route list_stock identity: token → token_and_peer',
      'route list_stock: enforce → dry_run',
    ]);
    expect(diffPolicy(before, changed).find((c) => c.what === 'route list_stock')?.kind).toBe(
      'route_changed',
    );
    expect(diffPolicy(before, changed).filter((c) => c.kind === 'mode')).toHaveLength(1);
  });

  it('says when the order of routes changes (the first match wins)', () => {
    const list =
      '  - name: list_transactions\n    method: GET\n    path: /api/inventory/transactions\n    permissions: [INV_TRANSACTION_READ]\n';
    const moved = compile(
      base.replace(list, '').replace(/(\n {2}- name: stock_report)/, `\n${list.trimEnd()}$1`),
    );
    const order = diffPolicy(before, moved);
    expect(order.map((c) => c.kind)).toEqual(['route_changed']);
    expect(order[0]!.what).toBe('route order');
  });

  it('names the grants of scopes, roles, clients, subjects and peers that changed', () => {
    const kinds = (after: ReturnType<typeof compile>) =>
      diffPolicy(before, after).map((c) => [c.kind, c.says]);
    expect(
      kinds(
        edited('inventory.read: [INV_TRANSACTION_READ]', 'inventory.read: [INV_TRANSACTION_READ, INV_X]'),
      ),
    ).toEqual([['scope_grants', 'scope inventory.read: now grants INV_X']]);
    expect(
      kinds(
        edited(
          'Inventory Data Reader: [INV_TRANSACTION_READ]',
          'Inventory Data Reader: [INV_TRANSACTION_CREATE]',
        ),
      ),
    ).toEqual([
      [
        'role_grants',
        'role Inventory Data Reader: now grants INV_TRANSACTION_CREATE; no longer grants INV_TRANSACTION_READ',
      ],
    ]);
    expect(
      kinds(
        edited(
          'stock-report: { scopes: [inventory.read], grantTypes: [client_credentials] }',
          'stock-report: { scopes: [inventory.read, inventory.write] }',
        ),
      ),
    ).toEqual([
      [
        'client_grants',
        'client stock-report (https://dev-issuer.scopegate.local/): may now use scope inventory.write',
      ],
      [
        'client_grants',
        'client stock-report (https://dev-issuer.scopegate.local/): grant types client_credentials → any',
      ],
    ]);
    expect(
      kinds(
        edited(
          '    roles: [Inventory Data Reader]\n    locations: [WH01]',
          '    roles: [Inventory Transaction Manager]\n    locations: [WH01]',
        ),
      ),
    ).toEqual([
      [
        'subject_grants',
        'subject svc-new-integration (https://dev-issuer.scopegate.local/): now has role Inventory Transaction Manager; no longer has role Inventory Data Reader',
      ],
    ]);
    expect(
      kinds(
        edited(
          '    roles: [Inventory Transaction Manager]\n    locations: [WH01, WH02]',
          '    roles: [Inventory Transaction Manager]\n    locations: [WH01]',
        ),
      ),
    ).toEqual([['locations', 'peer spiffe://cluster.local/ns/orders/sa/orders-api: locations revoked WH02']]);
  });

  it('names mode, authentication and ownership changes', () => {
    const says = (after: ReturnType<typeof compile>) =>
      diffPolicy(before, after).map((c) => `${c.kind}: ${c.says}`);
    expect(says(edited('name: inventory\n', 'name: inventory\nmode: dry_run\n'))).toContain(
      'mode: route create_transaction: enforce → dry_run',
    );
    expect(
      says(
        edited('audiences: [https://gateway.example.com]', 'audiences: [https://gateway.example.com, other]'),
      ),
    ).toEqual(['authentication: issuer https://dev-issuer.scopegate.local/ audiences: added other']);
    expect(says(edited('hosts: [inventory.example.com, ', 'hosts: ['))).toEqual([
      'ownership: match hosts: no longer owns inventory.example.com',
    ]);
  });

  it('every kind it uses is in the closed list (the metric label)', () => {
    const after = edited(
      'routes:\n',
      'routes:\n  - { name: ping, method: GET, path: /ping, permissions: [INV_TRANSACTION_READ] }\n',
    );
    for (const change of [...diffPolicy(before, after), ...diffPolicy(after, before)]) {
      expect(CHANGE_KINDS).toContain(change.kind);
    }
  });
});

describe('diffPolicySets and countByKind', () => {
  it('pairs policies by name: added and removed policies are changes of their own', () => {
    const other = compile(
      base
        .replace('name: inventory', 'name: shipments')
        .replace(/hosts: \[[^\]]*\]/, 'hosts: [s.example.com]')
        .replace(/destinationPrincipals: \[[^\]]*\]/, 'destinationPrincipals: []'),
    );
    const changes = diffPolicySets([before, other], [before]);
    expect(changes.map((c) => [c.kind, c.policy])).toEqual([['policy_removed', 'shipments']]);
    expect(diffPolicySets([before], [before, other]).map((c) => c.kind)).toEqual(['policy_added']);
  });

  it('pairs one policy with one whatever their names (as serve --policy FILE serves any file)', () => {
    const renamed = compile(base.replace('name: inventory', 'name: candidate'));
    expect(diffPolicySets([before], [renamed]).map((c) => c.says)).toEqual([
      'policy name: inventory → candidate',
    ]);
  });

  it('counts changes by kind', () => {
    const after = edited('locations: [WH01, WH02, "EU-*"]', 'locations: [WH03]');
    expect(countByKind(diffPolicy(before, after))).toEqual({ locations: 1 });
  });
});
