// CheckRequest → RequestFacts, with CheckRequests built by hand in the shapes proto-loader decodes
// (keepCase: Envoy's own snake_case names; bytes as Buffer).
import { describe, expect, it } from 'vitest';
import { readRequest } from '../../../src/request/facts.js';
import { bodyText } from '../../../src/request/locations.js';
import type { RequestFacts } from '../../../src/request/types.js';
import type { CheckRequest, HeaderValue, HttpRequestAttrs, ProtoValue } from '../../../src/wire/types.js';

type Attributes = NonNullable<CheckRequest['attributes']>;

function checkRequest(http: HttpRequestAttrs, attributes: Partial<Attributes> = {}): CheckRequest {
  return { attributes: { request: { http }, ...attributes } };
}

/** What Envoy sends for `POST /api/inventory/transactions` in its default (map) header mode. */
function postTransaction(extra: Partial<HttpRequestAttrs> = {}): HttpRequestAttrs {
  return {
    id: '1234567890',
    method: 'POST',
    path: '/api/inventory/transactions?dryRun=true',
    host: 'inventory.example.com',
    headers: {
      ':method': 'POST',
      ':path': '/api/inventory/transactions?dryRun=true',
      ':authority': 'inventory.example.com',
      ':scheme': 'https',
      authorization: 'Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig',
      'content-type': 'application/json',
      'x-request-id': 'c0ffee-42',
    },
    body: '{"location":"WH01","quantity":3}',
    ...extra,
  };
}

function factsOf(check: CheckRequest, limits = {}): RequestFacts {
  const result = readRequest(check, limits);
  if (!result.ok) throw new Error(`expected facts, got ${result.reason}: ${result.detail}`);
  return result.value;
}

function refusal(check: CheckRequest, limits = {}) {
  const result = readRequest(check, limits);
  if (result.ok) throw new Error('expected a refusal');
  return result;
}

describe('readRequest: the inventory POST from the support thread', () => {
  it('reads method, canonical path, query, headers, body and request id', () => {
    const facts = factsOf(checkRequest(postTransaction()));
    expect(facts.method).toBe('POST');
    expect(facts.path).toBe('/api/inventory/transactions');
    expect(Object.fromEntries(facts.query)).toEqual({ dryRun: ['true'] });
    expect(facts.headers.get('authorization')).toBe('Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig');
    expect(facts.headers.get(':authority')).toBe('inventory.example.com');
    expect(facts.requestId).toBe('c0ffee-42');
    expect(facts.body).toEqual({ content: '{"location":"WH01","quantity":3}', partial: false });
    expect(facts.jwtAuthnPayloads.size).toBe(0);
  });

  it.each([
    ['no attributes', {} as CheckRequest],
    ['no request', { attributes: {} } as CheckRequest],
    ['no http', { attributes: { request: {} } } as CheckRequest],
  ])('%s → request_malformed', (_, check) => {
    expect(refusal(check).reason).toBe('request_malformed');
    expect(refusal(check).detail).toContain('no HTTP request attributes');
  });

  it('refuses an ambiguous path with the precise detail', () => {
    const denial = refusal(
      checkRequest(postTransaction({ path: '/api/inventory/%2e%2e/admin', headers: {} })),
    );
    expect(denial).toMatchObject({ reason: 'request_malformed' });
    expect(denial.detail).toContain('dot segment');
  });

  it('refuses a path attribute that disagrees with the :path header', () => {
    const http = postTransaction({ path: '/api/inventory/transactions' });
    http.headers = { ...http.headers, ':path': '/admin' };
    expect(refusal(checkRequest(http)).detail).toContain('path attribute and :path header disagree');
  });

  it('reads the path from :path when the attribute is empty, and a bad query is refused', () => {
    expect(factsOf(checkRequest(postTransaction({ path: '' }))).path).toBe('/api/inventory/transactions');
    const denial = refusal(checkRequest({ method: 'GET', path: '/a?x=%ZZ' }));
    expect(denial.detail).toContain('bad percent-encoding');
    expect(refusal(checkRequest({ method: 'GET' })).detail).toContain('no path');
  });
});

describe('readRequest: the method', () => {
  it.each([
    ['GET', 'GET'],
    ['PROPFIND', 'PROPFIND'],
  ])('%s → %s', (given, method) => {
    expect(factsOf(checkRequest({ method: given, path: '/a' })).method).toBe(method);
  });

  it('falls back to :method in raw-header mode', () => {
    const http = { path: '/a', header_map: { headers: [{ key: ':method', raw_value: Buffer.from('PUT') }] } };
    expect(factsOf(checkRequest(http)).method).toBe('PUT');
  });

  it.each([
    ['post', 'token of 1-16 upper-case letters'],
    ['Get', 'token of 1-16 upper-case letters'],
    ['G3T', 'token of 1-16 upper-case letters'],
    ['GET ', 'token of 1-16 upper-case letters'],
    ['GET,POST', 'token of 1-16 upper-case letters'],
    ['M-SEARCH', 'token of 1-16 upper-case letters'],
    ['A'.repeat(17), 'token of 1-16 upper-case letters'],
    ['', 'no method'],
  ])('%j → request_malformed (%s)', (method, detail) => {
    const denial = refusal(checkRequest({ method, path: '/a' }));
    expect(denial.reason).toBe('request_malformed');
    expect(denial.detail).toContain(detail);
  });

  it('refuses a method attribute that disagrees with :method', () => {
    const denial = refusal(checkRequest({ method: 'GET', path: '/a', headers: { ':method': 'DELETE' } }));
    expect(denial.detail).toContain('method attribute and :method header disagree');
  });
});

describe('readRequest: headers as a map or as raw header_map', () => {
  const raw = (key: string, value: string): HeaderValue => ({ key, raw_value: Buffer.from(value) });

  it('joins a repeated raw header with "," exactly as Envoy joins it in map mode', () => {
    // Envoy's ext_authz integration test: three x-duplicate lines arrive as "one,two,three" in map mode,
    // and as three separate header_map entries with encode_raw_headers.
    const mapMode = factsOf(
      checkRequest({ method: 'GET', path: '/a', headers: { 'x-duplicate': 'one,two,three' } }),
    );
    const rawMode = factsOf(
      checkRequest({
        method: 'GET',
        path: '/a',
        header_map: {
          headers: [raw('x-duplicate', 'one'), raw('x-duplicate', 'two'), raw('x-duplicate', 'three')],
        },
      }),
    );
    expect(rawMode.headers.get('x-duplicate')).toBe('one,two,three');
    expect(rawMode.headers.get('x-duplicate')).toBe(mapMode.headers.get('x-duplicate'));
  });

  it('shows two Authorization lines as one joined value, for the identity phase to refuse', () => {
    const facts = factsOf(
      checkRequest({
        method: 'GET',
        path: '/a',
        header_map: { headers: [raw('Authorization', 'Bearer a'), raw('authorization', 'Bearer b')] },
      }),
    );
    expect(facts.headers.get('authorization')).toBe('Bearer a,Bearer b');
  });

  it('reads `value` when there is no raw_value, lower-cases names, keeps pseudo-headers', () => {
    const facts = factsOf(
      checkRequest({
        method: 'GET',
        path: '/a',
        header_map: {
          headers: [
            { key: ':authority', value: 'inventory.example.com' },
            { key: 'X-Location', value: 'WH01', raw_value: Buffer.alloc(0) },
          ],
        },
      }),
    );
    expect(facts.headers.get(':authority')).toBe('inventory.example.com');
    expect(facts.headers.get('x-location')).toBe('WH01');
    expect(facts.headers.has('X-Location')).toBe(false);
  });

  it('lower-cases map names too, joining two spellings of one name', () => {
    const facts = factsOf(
      checkRequest({ method: 'GET', path: '/a', headers: { 'X-Request-Id': 'A1', 'x-request-id': 'B2' } }),
    );
    expect(facts.headers.get('x-request-id')).toBe('A1,B2');
  });

  it('decodes non-UTF-8 raw bytes with replacement characters, as map mode would', () => {
    const facts = factsOf(
      checkRequest({
        method: 'GET',
        path: '/a',
        header_map: { headers: [{ key: 'x-odd', raw_value: Buffer.from([0x61, 0xc0, 0x62]) }] },
      }),
    );
    expect(facts.headers.get('x-odd')).toBe('a\uFFFDb');
  });

  it('refuses headers sent both ways at once, and a header with no name', () => {
    expect(
      refusal(
        checkRequest({
          method: 'GET',
          path: '/a',
          headers: { a: '1' },
          header_map: { headers: [raw('b', '2')] },
        }),
      ).detail,
    ).toContain('both as a map and as header_map');
    expect(
      refusal(checkRequest({ method: 'GET', path: '/a', header_map: { headers: [raw('', 'x')] } })).detail,
    ).toContain('no name');
  });

  it('reads 200 headers and refuses 201, in either mode, and honours a configured cap', () => {
    const mapOf = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']));
    const rawOf = (n: number) => Array.from({ length: n }, (_, i) => raw(`x-h${i}`, 'v'));
    expect(factsOf(checkRequest({ method: 'GET', path: '/a', headers: mapOf(200) })).headers.size).toBe(200);
    expect(refusal(checkRequest({ method: 'GET', path: '/a', headers: mapOf(201) })).detail).toContain(
      'more than 200 headers',
    );
    expect(
      refusal(checkRequest({ method: 'GET', path: '/a', header_map: { headers: rawOf(201) } })).reason,
    ).toBe('request_malformed');
    expect(
      refusal(checkRequest({ method: 'GET', path: '/a', headers: mapOf(11) }), { maxHeaders: 10 }).detail,
    ).toContain('more than 10 headers');
  });

  it('refuses more than 64 KiB of headers in total, in either mode', () => {
    const big = 'x'.repeat(33 * 1024);
    expect(
      refusal(checkRequest({ method: 'GET', path: '/a', headers: { a: big, b: big } })).detail,
    ).toContain('exceed 65536 bytes');
    expect(
      refusal(
        checkRequest({ method: 'GET', path: '/a', header_map: { headers: [raw('a', big), raw('b', big)] } }),
      ).detail,
    ).toContain('exceed 65536 bytes');
    expect(factsOf(checkRequest({ method: 'GET', path: '/a', headers: { a: big } })).headers.get('a')).toBe(
      big,
    );
  });
});

describe('readRequest: the request id (it is logged)', () => {
  it('strips everything but [A-Za-z0-9._:-]', () => {
    const facts = factsOf(
      checkRequest({ method: 'GET', path: '/a', headers: { 'x-request-id': 'abc<script>\n"def 1.2:3_4-5' } }),
    );
    expect(facts.requestId).toBe('abcscriptdef1.2:3_4-5');
  });

  it('caps it at 128 characters', () => {
    const facts = factsOf(
      checkRequest({ method: 'GET', path: '/a', headers: { 'x-request-id': 'a'.repeat(5000) } }),
    );
    expect(facts.requestId).toBe('a'.repeat(128));
  });

  it('falls back to http.id, then to a fresh UUID', () => {
    expect(factsOf(checkRequest({ method: 'GET', path: '/a', id: '987654' })).requestId).toBe('987654');
    expect(
      factsOf(checkRequest({ method: 'GET', path: '/a', id: '1', headers: { 'x-request-id': '<<>>' } }))
        .requestId,
    ).toBe('1');
    const first = factsOf(checkRequest({ method: 'GET', path: '/a' })).requestId;
    const second = factsOf(checkRequest({ method: 'GET', path: '/a' })).requestId;
    expect(first).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(second).not.toBe(first);
  });
});

describe('readRequest: the body', () => {
  it('keeps raw_body (pack_as_bytes) as bytes until a route reads it, then decodes it as UTF-8', () => {
    const facts = factsOf(
      checkRequest({ method: 'POST', path: '/a', raw_body: Buffer.from('{"location":"Zürich-1"}') }),
    );
    expect(bodyText(facts.body, 1024)).toEqual({ ok: true, value: '{"location":"Zürich-1"}' });
  });

  it('refuses bytes that are not UTF-8 (body or raw_body) instead of guessing at them', () => {
    for (const sent of [
      { raw_body: Buffer.from([0x7b, 0xc0, 0xaf, 0x7d]) },
      { body: Buffer.from([0x7b, 0xff, 0x7d]) },
    ]) {
      const facts = factsOf(checkRequest({ method: 'POST', path: '/a', ...sent }));
      expect(bodyText(facts.body, 1024)).toMatchObject({ ok: false, reason: 'body_unreadable' });
    }
  });

  it('does not decode a body larger than the JSON limit at all', () => {
    const facts = factsOf(checkRequest({ method: 'POST', path: '/a', body: Buffer.alloc(2048, 0xff) }));
    expect(bodyText(facts.body, 1024)).toMatchObject({
      ok: false,
      detail: 'the body is larger than 1024 bytes',
    });
  });

  it('has no content when no body was sent', () => {
    expect(factsOf(checkRequest({ method: 'POST', path: '/a' })).body).toEqual({ partial: false });
    expect(
      factsOf(checkRequest({ method: 'POST', path: '/a', body: '', raw_body: Buffer.alloc(0) })).body.content,
    ).toBeUndefined();
  });

  it.each([
    ['true', true],
    ['TRUE', true],
    ['false,true', true],
    ['false', false],
  ])('x-envoy-auth-partial-body: %s → partial %s', (value, partial) => {
    const facts = factsOf(
      checkRequest({
        method: 'POST',
        path: '/a',
        body: '{"loc',
        headers: { 'x-envoy-auth-partial-body': value },
      }),
    );
    expect(facts.body.partial).toBe(partial);
  });

  it('is not partial when the header is absent', () => {
    expect(factsOf(checkRequest({ method: 'POST', path: '/a', body: '{}' })).body.partial).toBe(false);
  });
});

// Where the body comes from (a defect the hardening corpus found): Envoy sends the body as `body` or, with
// `pack_as_bytes: true`, as `raw_body`, never both. A CheckRequest with both used to be decided on `body`
// alone, so the location checked could differ from the bytes forwarded; now it is request_malformed.
describe('readRequest: body or raw_body, never both', () => {
  const post = (body: Partial<Pick<HttpRequestAttrs, 'body' | 'raw_body'>>): CheckRequest =>
    checkRequest({
      method: 'POST',
      path: '/api/inventory/transactions',
      headers: { 'content-type': 'application/json' },
      ...body,
    });

  it('body and raw_body naming different locations is request_malformed, naming neither', () => {
    const result = readRequest(
      post({ body: '{"location":"WH01"}', raw_body: Buffer.from('{"location":"WH03"}') }),
    );
    expect(result).toMatchObject({ ok: false, reason: 'request_malformed' });
    expect(!result.ok && result.detail).toContain('raw_body');
    expect(!result.ok && result.detail).not.toContain('WH0');
  });

  it('body and raw_body with the same text is still request_malformed: Envoy never sends both', () => {
    const text = '{"location":"WH01"}';
    expect(readRequest(post({ body: text, raw_body: Buffer.from(text) }))).toMatchObject({
      ok: false,
      reason: 'request_malformed',
    });
  });

  it('either one alone is read', () => {
    const text = '{"location":"WH01"}';
    for (const body of [{ body: text }, { raw_body: Buffer.from(text) }]) {
      const result = readRequest(post(body));
      expect(result.ok && bodyText(result.value.body, 1024)).toEqual({ ok: true, value: text });
    }
  });

  it('an empty body beside a raw_body is not "both" (proto3 sends "" for an unset string)', () => {
    const result = readRequest(post({ body: '', raw_body: Buffer.from('{"location":"WH01"}') }));
    expect(result.ok && bodyText(result.value.body, 1024)).toEqual({
      ok: true,
      value: '{"location":"WH01"}',
    });
  });
});

describe('readRequest: what Envoy adds', () => {
  it('copies context_extensions', () => {
    const extensions = { tenant: 'acme', route: 'inventory' };
    const facts = factsOf(checkRequest({ method: 'GET', path: '/a' }, { context_extensions: extensions }));
    extensions.tenant = 'changed';
    expect({ ...facts.contextExtensions }).toEqual({ tenant: 'acme', route: 'inventory' });
  });

  it('turns every jwt_authn payload Struct into plain JSON', () => {
    const str = (s: string): ProtoValue => ({ string_value: s, kind: 'string_value' });
    const payload: ProtoValue = {
      kind: 'struct_value',
      struct_value: {
        fields: {
          sub: str('svc-inventory-sync'),
          scope: str('inventory.read inventory.write'),
          exp: { number_value: 1_900_000_000, kind: 'number_value' },
          email_verified: { bool_value: true, kind: 'bool_value' },
          nickname: { null_value: 'NULL_VALUE', kind: 'null_value' },
          roles: {
            kind: 'list_value',
            list_value: { values: [str('Inventory Data Reader'), { number_value: 7 }] },
          },
          address: { struct_value: { fields: { country: str('DE') } } },
        },
      },
    };
    const facts = factsOf(
      checkRequest(
        { method: 'GET', path: '/a' },
        {
          metadata_context: {
            filter_metadata: { 'envoy.filters.http.jwt_authn': { fields: { jwt_payload: payload } } },
          },
        },
      ),
    );
    expect(JSON.parse(JSON.stringify(facts.jwtAuthnPayloads.get('jwt_payload')))).toEqual({
      sub: 'svc-inventory-sync',
      scope: 'inventory.read inventory.write',
      exp: 1_900_000_000,
      email_verified: true,
      nickname: null,
      roles: ['Inventory Data Reader', 7],
      address: { country: 'DE' },
    });
  });

  it('ignores other filters’ metadata', () => {
    const facts = factsOf(
      checkRequest(
        { method: 'GET', path: '/a' },
        {
          metadata_context: {
            filter_metadata: { 'envoy.filters.http.other': { fields: { x: { string_value: 'y' } } } },
          },
        },
      ),
    );
    expect(facts.jwtAuthnPayloads.size).toBe(0);
  });

  it('refuses a jwt_authn payload nested deeper than 32 levels', () => {
    let value: ProtoValue = { string_value: 'deep' };
    for (let i = 0; i < 40; i++) value = { struct_value: { fields: { a: value } } };
    const denial = refusal(
      checkRequest(
        { method: 'GET', path: '/a' },
        {
          metadata_context: {
            filter_metadata: { 'envoy.filters.http.jwt_authn': { fields: { jwt_payload: value } } },
          },
        },
      ),
    );
    expect(denial.reason).toBe('request_malformed');
    expect(denial.detail).toContain('deeper than 32 levels');
  });
});
