import { describe, expect, it } from 'vitest';
import { describeEnvoyHttp, describeForwardAuth } from '../../../src/wire/http-request.js';

const http = (described: ReturnType<typeof describeEnvoyHttp>) =>
  described.request.attributes!.request!.http!;

describe('describeEnvoyHttp', () => {
  it("is the original request: method, target, host as :authority, repeated headers joined with ','", () => {
    const described = describeEnvoyHttp({
      method: 'GET',
      target: '/a?b=1',
      rawHeaders: [
        'Host',
        'inventory.local',
        'Authorization',
        'Bearer a',
        'authorization',
        'Bearer b',
        'Connection',
        'keep-alive',
      ],
    });
    expect(described.refused).toBeUndefined();
    expect(http(described)).toMatchObject({ method: 'GET', path: '/a?b=1', host: 'inventory.local' });
    expect({ ...http(described).headers }).toEqual({
      authorization: 'Bearer a,Bearer b',
      ':method': 'GET',
      ':path': '/a?b=1',
      ':authority': 'inventory.local',
    });
    expect(described.request.attributes).not.toHaveProperty('source');
  });

  it('removes the configured path prefix, and refuses a path without it', () => {
    expect(
      http(describeEnvoyHttp({ method: 'GET', target: '/authz/api/x', rawHeaders: [] }, '/authz')).path,
    ).toBe('/api/x');
    expect(
      describeEnvoyHttp({ method: 'GET', target: '/authzapi/x', rawHeaders: [] }, '/authz').refused,
    ).toMatch(/path prefix/);
    expect(describeEnvoyHttp({ method: 'GET', target: '/api/x', rawHeaders: [] }, '/authz').refused).toMatch(
      /path prefix/,
    );
  });

  it('carries the body as its bytes, and marks one cut at the limit as partial', () => {
    const body = Buffer.from('{"location":"WH01"}');
    expect(http(describeEnvoyHttp({ method: 'POST', target: '/', rawHeaders: [], body })).raw_body).toBe(
      body,
    );
    const cut = http(describeEnvoyHttp({ method: 'POST', target: '/', rawHeaders: [], body, bodyCut: true }));
    expect(cut.headers!['x-envoy-auth-partial-body']).toBe('true');
  });
});

describe('describeForwardAuth', () => {
  it("takes the method, URI and host from the forwarded headers, not the proxy's own call", () => {
    const described = describeForwardAuth({
      method: 'GET',
      target: '/auth',
      rawHeaders: [
        'Host',
        'scopegate:9193',
        'X-Forwarded-Method',
        'POST',
        'X-Forwarded-Uri',
        '/api/x',
        'X-Forwarded-Host',
        'inventory.local',
        'Content-Length',
        '10',
      ],
    });
    expect(described.refused).toBeUndefined();
    expect(http(described)).toMatchObject({ method: 'POST', path: '/api/x', host: 'inventory.local' });
    expect({ ...http(described).headers }).toEqual({
      ':method': 'POST',
      ':path': '/api/x',
      ':authority': 'inventory.local',
    });
  });

  it('reads nginx X-Original-Method and X-Original-URI; both spellings must agree', () => {
    expect(
      http(
        describeForwardAuth({
          method: 'GET',
          target: '/auth',
          rawHeaders: ['X-Original-Method', 'GET', 'X-Original-URI', '/a'],
        }),
      ).path,
    ).toBe('/a');
    expect(
      describeForwardAuth({
        method: 'GET',
        target: '/auth',
        rawHeaders: ['X-Original-Method', 'GET', 'X-Original-URI', '/a', 'X-Forwarded-Uri', '/b'],
      }).refused,
    ).toMatch(/disagree/);
  });

  it('refuses a missing method or URI, and one sent twice', () => {
    expect(
      describeForwardAuth({ method: 'GET', target: '/a', rawHeaders: ['X-Forwarded-Uri', '/a'] }).refused,
    ).toMatch(/no x-forwarded-method or x-original-method/);
    expect(
      describeForwardAuth({ method: 'GET', target: '/a', rawHeaders: ['X-Forwarded-Method', 'GET'] }).refused,
    ).toMatch(/no x-forwarded-uri/);
    expect(
      describeForwardAuth({
        method: 'GET',
        target: '/a',
        rawHeaders: ['X-Forwarded-Method', 'GET', 'X-Forwarded-Uri', '/a', 'x-forwarded-uri', '/a'],
      }).refused,
    ).toMatch(/more than once/);
  });

  it('X-Scopegate-Deny-In-Headers: 1, sent once, asks for a deny in headers and is not a header of the request', () => {
    const base = ['X-Forwarded-Method', 'GET', 'X-Forwarded-Uri', '/a'];
    const asked = describeForwardAuth({
      method: 'GET',
      target: '/auth',
      rawHeaders: [...base, 'X-Scopegate-Deny-In-Headers', '1'],
    });
    expect(asked.denyInHeaders).toBe(true);
    expect(Object.keys(http(asked).headers!)).not.toContain('x-scopegate-deny-in-headers');
    for (const rawHeaders of [
      base,
      [...base, 'X-Scopegate-Deny-In-Headers', 'yes'],
      [...base, 'X-Scopegate-Deny-In-Headers', '1', 'x-scopegate-deny-in-headers', '1'],
    ])
      expect(
        describeForwardAuth({ method: 'GET', target: '/auth', rawHeaders }).denyInHeaders,
      ).toBeUndefined();
  });
});
