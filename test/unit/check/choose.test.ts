// Which policy owns a request (src/check/choose.ts): a set of one file owns every request without reading it;
// a set of several chooses by what the request offers.
import { describe, expect, it } from 'vitest';
import { choosePolicy } from '../../../src/check/choose.js';
import { PolicySet } from '../../../src/policy/set.js';
import type { Ownership } from '../../../src/policy/types.js';
import { checkRequestFor } from '../../../src/wire/check-request.js';
import type { CheckRequest } from '../../../src/wire/types.js';

const owns = (name: string, hosts: string[] = []): Ownership => ({
  name,
  hosts,
  destinationPrincipals: [],
  default: false,
  sites: {},
});

describe('choosePolicy', () => {
  it('a set of one file takes its policy without reading the request at all', () => {
    const set = new PolicySet([{ owns: owns('inventory'), value: 'inventory' }], true);
    const untouchable = new Proxy({} as CheckRequest, {
      get: () => {
        throw new Error('the request was read');
      },
    });
    expect(choosePolicy(set, untouchable)).toEqual({ ok: true, value: 'inventory', by: 'only policy' });
  });

  it('a set of several chooses by the request, and says when none owns it', () => {
    const set = new PolicySet([
      { owns: owns('inventory', ['inventory.example.com']), value: 'inventory' },
      { owns: owns('shipments', ['shipments.example.com']), value: 'shipments' },
    ]);
    const at = (host: string) => checkRequestFor({ method: 'GET', path: '/', headers: [], host });
    expect(choosePolicy(set, at('shipments.example.com'))).toEqual({
      ok: true,
      value: 'shipments',
      by: 'host',
    });
    expect(choosePolicy(set, at('orders.example.com'))).toMatchObject({ ok: false });
    // One policy in a directory is still a set: it owns only what it claims.
    const lone = new PolicySet([{ owns: owns('inventory', ['inventory.example.com']), value: 'inventory' }]);
    expect(choosePolicy(lone, at('orders.example.com'))).toMatchObject({ ok: false });
  });
});

describe('choosing from an HTTP front door', () => {
  const owns = (name: string, more: Partial<Ownership> = {}) => ({
    owns: { name, hosts: [], destinationPrincipals: [], default: false, ...more },
    value: name,
  });
  const request = { attributes: { request: { http: { host: 'a.example.com' } } } };
  it('chooses by host or default, never by a context extension or destination it cannot carry', () => {
    const set = new PolicySet([owns('a', { hosts: ['a.example.com'] }), owns('b', { default: true })]);
    expect(choosePolicy(set, request, 'http')).toMatchObject({ ok: true, value: 'a' });
    const named = { attributes: { ...request.attributes, context_extensions: { scopegate_policy: 'b' } } };
    expect(choosePolicy(set, named, 'grpc')).toMatchObject({ ok: true, value: 'b' });
    expect(choosePolicy(set, named, 'http')).toMatchObject({ ok: true, value: 'a' });
  });

  it('refuses every request when a policy can be chosen only by name: Envoy names it, the host could not', () => {
    // `admin` claims a host; `catchall` is what Envoy names on a catch-all virtual host. Over HTTP a client
    // sending `Host: admin.example.com` to the catch-all would be judged by `admin`: refused instead.
    const set = new PolicySet([
      owns('admin', { hosts: ['admin.example.com'] }),
      owns('catchall'),
      owns('default', { default: true }),
    ]);
    const admin = { attributes: { request: { http: { host: 'admin.example.com' } } } };
    expect(choosePolicy(set, admin, 'grpc')).toMatchObject({ ok: true, value: 'admin' });
    for (const transport of ['http', 'forward_auth'] as const) {
      const chosen = choosePolicy(set, admin, transport);
      expect(chosen.ok).toBe(false);
      expect(!chosen.ok && chosen.detail).toBe(
        "this policy set has policies only Envoy's context extension can name (catchall), which the HTTP front door cannot carry: give them match.hosts, or use the gRPC front door",
      );
    }
    // Many are named a few at a time.
    const many = new PolicySet(['e', 'd', 'c', 'b', 'a'].map((name) => owns(name)));
    const chosen = choosePolicy(many, admin, 'http');
    expect(!chosen.ok && chosen.detail).toMatch(/\(a, b, c and 2 more\)/);
  });

  it('refuses every request when the set chooses by destination principal: its host alone could pick another', () => {
    const set = new PolicySet([
      owns('a', { hosts: ['a.example.com'] }),
      owns('b', { destinationPrincipals: ['spiffe://cluster.local/ns/x/sa/y'] }),
    ]);
    expect(choosePolicy(set, request, 'grpc')).toMatchObject({ ok: true, value: 'a' });
    const chosen = choosePolicy(set, request, 'forward_auth');
    expect(chosen.ok).toBe(false);
    expect(!chosen.ok && chosen.detail).toMatch(/destination principal/);
  });
});
