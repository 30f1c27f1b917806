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
