// What a CheckRequest offers for choosing its policy (src/request/policy-keys.ts): the context extension,
// the destination principal and the host, as Envoy sends them, and nothing the request did not say.
import { describe, expect, it } from 'vitest';
import { policyKeysOf } from '../../../src/request/policy-keys.js';
import { checkRequestFor } from '../../../src/wire/check-request.js';
import type { CheckRequest } from '../../../src/wire/types.js';

const get = { method: 'GET', path: '/x', headers: [] };

describe('policyKeysOf', () => {
  it('reads the scopegate_policy extension, the destination principal and the host', () => {
    const request = checkRequestFor({
      ...get,
      host: 'Shipments.example.com:8443',
      contextExtensions: { scopegate_policy: 'shipments', other: 'x' },
      destinationPrincipal: 'spiffe://cluster.local/ns/shipments/sa/shipments',
    });
    expect(policyKeysOf(request)).toEqual({
      extension: 'shipments',
      destinationPrincipal: 'spiffe://cluster.local/ns/shipments/sa/shipments',
      host: 'Shipments.example.com:8443',
    });
  });

  it('an empty extension is still a name (no policy has it: final), an empty principal is none', () => {
    const request = checkRequestFor({
      ...get,
      contextExtensions: { scopegate_policy: '' },
      destinationPrincipal: '',
    });
    expect(policyKeysOf(request)).toEqual({ extension: '', host: 'inventory.local' });
  });

  it('without http.host, the :authority header; nothing at all, no host', () => {
    const request = checkRequestFor(get);
    delete request.attributes!.request!.http!.host;
    expect(policyKeysOf(request)).toEqual({ host: 'inventory.local' });
    expect(policyKeysOf({})).toEqual({});
    expect(policyKeysOf({ attributes: { request: { http: { headers: {} } } } })).toEqual({});
  });

  it('only the extension map’s own key counts, never one from the prototype', () => {
    const extensions = Object.create({ scopegate_policy: 'inherited' }) as Record<string, string>;
    const request: CheckRequest = { attributes: { context_extensions: extensions } };
    expect(policyKeysOf(request)).toEqual({});
  });
});
