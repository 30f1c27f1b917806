// "The account may not touch the warehouse/location in the payload ({"location":"WH01",…})": finding the
// locations a request names, from the path, query, a header or the JSON body, and refusing every doubt.
import { describe, expect, it } from 'vitest';
import { compileLocationSource } from '../../../src/policy/body-path.js';
import type { CompiledRoute, LocationSource, RouteMatch } from '../../../src/policy/types.js';
import { readRequest } from '../../../src/request/facts.js';
import { isJsonContentType, readLocations } from '../../../src/request/locations.js';
import type { RequestFacts } from '../../../src/request/types.js';
import type { CheckRequest, HttpRequestAttrs } from '../../../src/wire/types.js';

function route(location?: LocationSource): CompiledRoute {
  return {
    name: 'create_transaction',
    index: 0,
    methods: ['POST'],
    path: '/api/inventory/transactions',
    permissions: ['INV_TRANSACTION_CREATE', 'INV_TRANSACTION_READ'],
    mode: 'enforce',
    identity: 'token',
    ...(location && { location: compileLocationSource(location) }),
  };
}

function match(location?: LocationSource, params: Record<string, string> = {}): RouteMatch {
  return { route: route(location), params };
}

function facts(http: Partial<HttpRequestAttrs>): RequestFacts {
  const check: CheckRequest = {
    attributes: { request: { http: { method: 'POST', path: '/api/inventory/transactions', ...http } } },
  };
  const result = readRequest(check);
  if (!result.ok) throw new Error(`test request refused: ${result.detail}`);
  return result.value;
}

/** A POST with a JSON body, as Envoy forwards it with `with_request_body`. */
function post(
  body: string,
  headers: Record<string, string> = { 'content-type': 'application/json' },
): RequestFacts {
  return facts({ body, headers });
}

/** readLocations for a body read in one slice: every body here is small, so the answer must be at once. */
function readNow(source: LocationSource | undefined, request: RequestFacts, params = {}) {
  const result = readLocations(match(source, params), request);
  if (result instanceof Promise) throw new Error('a small body must be read synchronously');
  return result;
}

function locationsOf(source: LocationSource | undefined, request: RequestFacts, params = {}): string[] {
  const result = readNow(source, request, params);
  if (!result.ok) throw new Error(`expected locations, got ${result.reason}: ${result.detail}`);
  return result.value;
}

function refusal(source: LocationSource, request: RequestFacts, params = {}) {
  const result = readNow(source, request, params);
  if (result.ok) throw new Error(`expected a refusal, got ${JSON.stringify(result.value)}`);
  return result;
}

describe('readLocations: where the route says to look', () => {
  it('finds nothing, and needs nothing, on a route without `location`', () => {
    expect(locationsOf(undefined, post('{"location":"WH01"}'))).toEqual([]);
  });

  it('reads a path parameter: GET /api/inventory/locations/WH01/items', () => {
    const request = facts({ method: 'GET', path: '/api/inventory/locations/WH01/items' });
    expect(locationsOf({ path: 'location' }, request, { location: 'WH01' })).toEqual(['WH01']);
  });

  it('reads every value of a query parameter, once each', () => {
    const request = facts({ method: 'GET', path: '/items?location=WH01&location=WH02&location=WH01' });
    expect(locationsOf({ query: 'location' }, request)).toEqual(['WH01', 'WH02']);
  });

  it('reads a header, split on "," and trimmed (a repeated header arrives joined)', () => {
    expect(
      locationsOf({ header: 'X-Location' }, facts({ headers: { 'x-location': 'WH01, WH02 ,WH03' } })),
    ).toEqual(['WH01', 'WH02', 'WH03']);
    const raw = facts({
      header_map: {
        headers: [
          { key: 'x-location', raw_value: Buffer.from('WH01') },
          { key: 'x-location', raw_value: Buffer.from('EU-7') },
        ],
      },
    });
    expect(locationsOf({ header: 'x-location' }, raw)).toEqual(['WH01', 'EU-7']);
  });

  it('reads the body field from the support thread', () => {
    expect(locationsOf({ body: 'location' }, post('{"location":"WH01","sku":"A-1","quantity":3}'))).toEqual([
      'WH01',
    ]);
  });

  it('reads a nested body field', () => {
    expect(
      locationsOf({ body: 'transfer.to.location' }, post('{"transfer":{"to":{"location":"WH02"}}}')),
    ).toEqual(['WH02']);
  });

  it('reads every element of an array with `[]`', () => {
    const body = '{"lines":[{"location":"WH01","qty":1},{"location":"WH02","qty":2},{"location":"WH01"}]}';
    expect(locationsOf({ body: 'lines[].location' }, post(body))).toEqual(['WH01', 'WH02']);
    expect(locationsOf({ body: 'locations[]' }, post('{"locations":["WH01","WH03"]}'))).toEqual([
      'WH01',
      'WH03',
    ]);
    const orders = '{"orders":[{"lines":[{"location":"A"}]},{"lines":[{"location":"B"},{"location":"C"}]}]}';
    expect(locationsOf({ body: 'orders[].lines[].location' }, post(orders))).toEqual(['A', 'B', 'C']);
  });

  it.each([
    'application/json',
    'application/json; charset=utf-8',
    'Application/JSON;charset="UTF-8"',
    'application/merge-patch+json',
    'application/vnd.inventory.v1+json; charset=utf-8',
  ])('accepts content-type %s', (contentType) => {
    expect(
      locationsOf({ body: 'location' }, post('{"location":"WH01"}', { 'content-type': contentType })),
    ).toEqual(['WH01']);
  });
});

describe('readLocations: a body that cannot be read is body_unreadable, never "no location"', () => {
  it.each([
    [
      'a body Envoy cut',
      facts({
        body: '{"location":"WH01","lines":[',
        headers: { 'content-type': 'application/json', 'x-envoy-auth-partial-body': 'true' },
      }),
      "cut at Envoy's buffer limit",
    ],
    ['no body at all', facts({ headers: { 'content-type': 'application/json' } }), 'body is empty'],
    [
      'bytes that are not UTF-8',
      facts({ raw_body: Buffer.from([0x7b, 0xff, 0x7d]), headers: { 'content-type': 'application/json' } }),
      'not valid UTF-8',
    ],
    ['text/plain', post('{"location":"WH01"}', { 'content-type': 'text/plain' }), 'content-type'],
    ['no content-type', post('{"location":"WH01"}', {}), 'content-type'],
    [
      'application/jsonx',
      post('{"location":"WH01"}', { 'content-type': 'application/jsonx' }),
      'content-type',
    ],
    [
      'a non-UTF-8 charset',
      post('{"location":"WH01"}', { 'content-type': 'application/json; charset=iso-8859-1' }),
      'content-type',
    ],
    [
      'form data',
      post('location=WH01', { 'content-type': 'application/x-www-form-urlencoded' }),
      'content-type',
    ],
    ['invalid JSON', post('{"location":"WH01",}'), 'not valid JSON'],
    ['a BOM', post('\uFEFF{"location":"WH01"}'), 'byte order mark'],
    ['a top-level array', post('[{"location":"WH01"}]'), 'not a JSON object'],
    [
      '100,000 levels of nesting',
      post('{"location":"WH01","x":' + '['.repeat(100_000) + ']'.repeat(100_000) + '}'),
      'deeper than 64',
    ],
  ])('%s', (_, request, detail) => {
    const denial = refusal({ body: 'location' }, request);
    expect(denial.reason).toBe('body_unreadable');
    expect(denial.detail).toContain(detail);
  });

  it('refuses the duplicate-key body instead of checking one warehouse and storing another', () => {
    const denial = refusal({ body: 'location' }, post('{"location":"WH01","quantity":3,"location":"WH99"}'));
    expect(denial).toMatchObject({ reason: 'body_unreadable' });
    expect(denial.detail).toContain('duplicate key "location"');
    expect(denial.detail).not.toContain('WH99');
    const nested = refusal(
      { body: 'lines[].location' },
      post('{"lines":[{"location":"WH01","location":"WH99"}]}'),
    );
    expect(nested.detail).toContain('duplicate key');
  });

  it.each([
    ['a number', '{"location":1}', 'location'],
    ['an object', '{"location":{"code":"WH01"}}', 'location'],
    ['a boolean', '{"location":true}', 'location'],
    ['an array', '{"location":["WH01"]}', 'location'],
    ['an array element', '{"lines":[{"location":"WH01"},{"location":7}]}', 'lines[].location'],
    ['a list element', '{"locations":["WH01",false]}', 'locations[]'],
  ])('refuses a location that is %s', (_, body, path) => {
    const denial = refusal({ body: path }, post(body));
    expect(denial.reason).toBe('body_unreadable');
    expect(denial.detail).toContain('location must be a string');
  });

  it('refuses a body whose shape does not fit the path', () => {
    expect(refusal({ body: 'lines[].location' }, post('{"lines":{"location":"WH01"}}')).detail).toContain(
      '"lines[]" is not an array',
    );
    expect(refusal({ body: 'transfer.location' }, post('{"transfer":"WH01"}')).detail).toContain(
      '"transfer" is not an object',
    );
  });
});

describe('readLocations: none found is location_missing', () => {
  it.each([
    ['absent', '{"sku":"A-1"}'],
    ['null', '{"location":null}'],
    ['empty', '{"location":""}'],
    ['an empty array', '{"lines":[]}'],
    ['a missing parent', '{"transfer":null}'],
  ])('body field %s', (_, body) => {
    const path = body.includes('lines')
      ? 'lines[].location'
      : body.includes('transfer')
        ? 'transfer.location'
        : 'location';
    const denial = refusal({ body: path }, post(body));
    expect(denial.reason).toBe('location_missing');
    expect(denial.detail).toContain(`the body field "${path}"`);
  });

  it('no query parameter, header or path parameter', () => {
    expect(refusal({ query: 'location' }, facts({ path: '/items?other=1' })).reason).toBe('location_missing');
    expect(refusal({ header: 'x-location' }, facts({})).reason).toBe('location_missing');
    expect(refusal({ header: 'x-location' }, facts({ headers: { 'x-location': ' , ' } })).reason).toBe(
      'location_missing',
    );
    expect(refusal({ path: 'location' }, facts({}), {}).reason).toBe('location_missing');
  });
});

describe('readLocations: location codes a request may send', () => {
  it.each([
    ['"*"', '{"location":"*"}'],
    ['a prefix pattern', '{"location":"EU-*"}'],
  ])('refuses %s as request_malformed: a request location is never a wildcard', (_, body) => {
    const denial = refusal({ body: 'location' }, post(body));
    expect(denial.reason).toBe('request_malformed');
    expect(denial.detail).toContain('"*"');
  });

  it('refuses "*" from a query or header as well', () => {
    expect(refusal({ query: 'location' }, facts({ path: '/items?location=*' })).reason).toBe(
      'request_malformed',
    );
    expect(refusal({ header: 'x-location' }, facts({ headers: { 'x-location': 'WH01,*' } })).reason).toBe(
      'request_malformed',
    );
  });

  it.each([
    ['a space', 'WH 01'],
    ['a slash', 'WH01/../WH99'],
    ['a newline', 'WH01\nWH99'],
    ['non-ASCII', 'WHÖ1'],
  ])('refuses a code with %s', (_, code) => {
    const denial = refusal({ body: 'location' }, post(JSON.stringify({ location: code })));
    expect(denial.reason).toBe('request_malformed');
    expect(denial.detail).toContain('[A-Za-z0-9._:-]');
  });

  it('accepts 128 characters and refuses 129', () => {
    const longest = 'W'.repeat(128);
    expect(locationsOf({ body: 'location' }, post(JSON.stringify({ location: longest })))).toEqual([longest]);
    const denial = refusal({ body: 'location' }, post(JSON.stringify({ location: `${longest}W` })));
    expect(denial.reason).toBe('request_malformed');
    expect(denial.detail).toContain('longer than 128');
  });

  it('accepts 100 distinct locations and refuses 101', () => {
    const codes = (n: number) => Array.from({ length: n }, (_, i) => `WH${i}`);
    expect(locationsOf({ body: 'locations[]' }, post(JSON.stringify({ locations: codes(100) })))).toEqual(
      codes(100),
    );
    const denial = refusal({ body: 'locations[]' }, post(JSON.stringify({ locations: codes(101) })));
    expect(denial.reason).toBe('request_malformed');
    expect(denial.detail).toContain('more than 100 locations');
  });
});

describe('helpers the policy compiler can reuse', () => {
  it('isJsonContentType', () => {
    expect(isJsonContentType('application/problem+json')).toBe(true);
    expect(isJsonContentType('application/json, text/plain')).toBe(false);
    expect(isJsonContentType(undefined)).toBe(false);
  });
});

describe('readLocations: a location key spelled twice in different case (security rule 4)', () => {
  it.each([
    ['case', '{"location":"WH01","Location":"WH99"}'],
    ['upper case', '{"LOCATION":"WH98","location":"WH01"}'],
  ])('refuses a second key differing only in %s', (_, body) => {
    const denial = refusal({ body: 'location' }, post(body));
    expect(denial.reason).toBe('body_unreadable');
    expect(denial.detail).toContain('spelled differently');
  });

  it('folds compatibility characters too (ſ folds to s, as Go does)', () => {
    expect(refusal({ body: 'site' }, post('{"site":"WH01","\u017fite":"WH99"}')).reason).toBe(
      'body_unreadable',
    );
  });

  it('checks lookalikes at every step of a nested path', () => {
    const body = '{"transfer":{"location":"WH01"},"Transfer":{"location":"WH99"}}';
    expect(refusal({ body: 'transfer.location' }, post(body)).reason).toBe('body_unreadable');
  });

  it('other fields may differ only in case without trouble', () => {
    expect(locationsOf({ body: 'location' }, post('{"location":"WH01","item":"a","Item":"b"}'))).toEqual([
      'WH01',
    ]);
  });
});

describe('readLocations: a query or header location spelled a second way is ambiguous (security rule 4)', () => {
  it.each([
    ['different case', '/items?location=WH01&Location=WH99'],
    ['an array spelling (PHP, Rails, qs)', '/items?location=WH01&location[]=WH99'],
    ['an indexed array spelling', '/items?location=WH01&location[0]=WH99'],
    ['only the other spelling', '/items?Location=WH99'],
    ['full-width letters that fold to it', '/items?location=WH01&%EF%BD%8Cocation=WH99'],
  ])('a query with %s is request_malformed', (_, path) => {
    const denial = refusal({ query: 'location' }, facts({ method: 'GET', path }));
    expect(denial).toMatchObject({ reason: 'request_malformed' });
    expect(denial.detail).toContain('spelled differently');
  });

  it('PHP binds "x.location" and "x location" as "x_location"', () => {
    for (const path of ['/items?x_location=WH01&x.location=WH99', '/items?x_location=WH01&x+location=WH99']) {
      expect(refusal({ query: 'x_location' }, facts({ method: 'GET', path })).reason).toBe(
        'request_malformed',
      );
    }
  });

  it('a header sent as x-location and as x_location (CGI upstreams read both as one) is request_malformed', () => {
    const both = facts({ headers: { 'x-location': 'WH01', x_location: 'WH99' } });
    expect(refusal({ header: 'x-location' }, both)).toMatchObject({ reason: 'request_malformed' });
    const raw = facts({
      header_map: {
        headers: [
          { key: 'X_Location', raw_value: Buffer.from('WH99') },
          { key: 'x-location', raw_value: Buffer.from('WH01') },
        ],
      },
    });
    expect(refusal({ header: 'x-location' }, raw).reason).toBe('request_malformed');
  });

  it('other parameters and headers may look alike without trouble, and one name repeated is read in full', () => {
    const request = facts({
      method: 'GET',
      path: '/items?location=WH01&item=a&Item=b&location=WH02',
      headers: { 'x-item': 'a', x_item: 'b' },
    });
    expect(locationsOf({ query: 'location' }, request)).toEqual(['WH01', 'WH02']);
  });
});

describe("readLocations: Envoy's text body may not be the request's bytes (it writes '!' for bytes not UTF-8)", () => {
  const json = { 'content-type': 'application/json' };
  const wire = (text: string) => Buffer.from(text, 'utf8');

  it("a body in Envoy's text field with a '!' is body_unreadable, naming the fix", () => {
    const denial = refusal(
      { body: 'location' },
      facts({ headers: json, body: wire('{"location":"WH01","note":"!!"}') }),
    );
    expect(denial.reason).toBe('body_unreadable');
    expect(denial.detail).toContain('pack_as_bytes: true');
  });

  it("the same body without a '!' is read: Envoy changed nothing in it", () => {
    expect(
      locationsOf(
        { body: 'location' },
        facts({ headers: json, body: wire('{"location":"WH01","note":"ÿ"}') }),
      ),
    ).toEqual(['WH01']);
  });

  it("a '!' in raw_body (pack_as_bytes) or in text given in-process is the request's own", () => {
    const text = '{"location":"WH01","note":"urgent!"}';
    expect(locationsOf({ body: 'location' }, facts({ headers: json, raw_body: wire(text) }))).toEqual([
      'WH01',
    ]);
    expect(locationsOf({ body: 'location' }, facts({ headers: json, body: text }))).toEqual(['WH01']);
  });
});

describe('readLocations: every array element must name its location', () => {
  it.each([
    ['null', '{"lines":[{"location":"WH01"},{"location":null}]}'],
    ['missing', '{"lines":[{"location":"WH01"},{"sku":"A-1"}]}'],
    ['empty', '{"lines":[{"location":"WH01"},{"location":""}]}'],
    ['a null element', '{"lines":[{"location":"WH01"},null]}'],
  ])('one element with a %s location is location_missing, not a pass on the others', (_, body) => {
    const denial = refusal({ body: 'lines[].location' }, post(body));
    expect(denial.reason).toBe('location_missing');
    expect(denial.detail).toContain('lines[]');
  });

  it('all elements named: every location is returned', () => {
    const body = '{"lines":[{"location":"WH01"},{"location":"WH02"}]}';
    expect(locationsOf({ body: 'lines[].location' }, post(body))).toEqual(['WH01', 'WH02']);
  });
});
