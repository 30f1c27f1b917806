// Which policy a request gets (issue 19): context extension, then destination principal, then host, then the
// explicit default; otherwise policy_unknown. Never a fall-through from a name no policy has.
import { describe, expect, it } from 'vitest';
import { hostName, PolicySet } from '../../../src/policy/set.js';
import type { Ownership } from '../../../src/policy/types.js';

const owns = (name: string, more: Partial<Ownership> = {}): Ownership => ({
  name,
  hosts: [],
  destinationPrincipals: [],
  default: false,
  sites: {},
  ...more,
});
const INVENTORY = 'spiffe://cluster.local/ns/inventory/sa/inventory-api';

const set = new PolicySet([
  {
    owns: owns('inventory', {
      hosts: ['inventory.example.com', '*.inventory.example.com'],
      destinationPrincipals: [INVENTORY],
    }),
    value: 'inventory',
  },
  { owns: owns('orders', { hosts: ['orders.example.com', '*.example.com'] }), value: 'orders' },
  { owns: owns('reports'), value: 'reports' },
  { owns: owns('catch-all', { default: true }), value: 'catch-all' },
]);
const pick = (keys: Parameters<typeof set.select>[0]) => {
  const selected = set.select(keys);
  return selected.ok ? `${selected.value} by ${selected.by}` : 'policy_unknown';
};

describe('PolicySet.select: first that applies', () => {
  it('a context extension names the policy, whatever the host says', () => {
    expect(pick({ extension: 'reports', host: 'inventory.example.com' })).toBe(
      'reports by context extension',
    );
  });

  it('an extension naming no policy is policy_unknown at once, never the host or the default', () => {
    expect(pick({ extension: 'invntory', host: 'inventory.example.com' })).toBe('policy_unknown');
  });

  it('then the destination principal, before the host', () => {
    expect(pick({ destinationPrincipal: INVENTORY, host: 'orders.example.com' })).toBe(
      'inventory by destination principal',
    );
  });

  it('then the host: exact names, case and port ignored', () => {
    expect(pick({ host: 'Inventory.Example.com:8443' })).toBe('inventory by host');
    expect(pick({ host: 'orders.example.com' })).toBe('orders by host');
  });

  it('a wildcard covers deeper names; the longest suffix wins', () => {
    expect(pick({ host: 'eu.inventory.example.com' })).toBe('inventory by host');
    expect(pick({ host: 'a.b.inventory.example.com' })).toBe('inventory by host');
    expect(pick({ host: 'billing.example.com' })).toBe('orders by host');
    // `*.example.com` does not cover example.com itself.
    expect(pick({ host: 'example.com' })).toBe('catch-all by default');
  });

  it('then the explicit default; without one, policy_unknown', () => {
    expect(pick({ host: 'elsewhere.test' })).toBe('catch-all by default');
    expect(pick({})).toBe('catch-all by default');
    const noDefault = new PolicySet([
      { owns: owns('inventory', { hosts: ['inventory.example.com'] }), value: 'x' },
    ]);
    expect(noDefault.select({ host: 'elsewhere.test' })).toMatchObject({ ok: false });
  });

  it('an unknown destination principal falls through to the host (it is not a name)', () => {
    expect(
      pick({ destinationPrincipal: 'spiffe://cluster.local/ns/x/sa/y', host: 'orders.example.com' }),
    ).toBe('orders by host');
  });

  it('a single policy file owns every request, whatever it says', () => {
    const single = new PolicySet([{ owns: owns('policy'), value: 'only' }], true);
    expect(single.select({ extension: 'other', host: 'anything' })).toEqual({
      ok: true,
      value: 'only',
      by: 'only policy',
    });
  });
});

describe('hostName: the host part of an :authority', () => {
  it.each([
    ['inventory.example.com', 'inventory.example.com'],
    ['Inventory.Example.COM:443', 'inventory.example.com'],
    ['inventory.example.com.', 'inventory.example.com'],
    ['[::1]:9191', '[::1]'],
    ['[2001:db8::1]', '[2001:db8::1]'],
    ['10.0.0.1:8080', '10.0.0.1'],
  ])('%s → %s', (authority, host) => {
    expect(hostName(authority)).toBe(host);
  });

  it('an empty authority has no host', () => {
    expect(hostName('')).toBeUndefined();
    expect(hostName(':80')).toBeUndefined();
  });
});
