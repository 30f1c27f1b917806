// The CheckRequest an HTTP request makes, as Envoy's ext_authz filter builds it: what `explain`, `test`,
// `scopegate check`, the tests and the benchmarks send. It must read back through the request phase as the
// same method, path, headers and body the caller meant.
import { describe, expect, it } from 'vitest';
import { readRequest } from '../../../src/request/facts.js';
import { bodyText } from '../../../src/request/locations.js';
import { checkRequestFor } from '../../../src/wire/check-request.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('checkRequestFor', () => {
  it('sends the pseudo-headers Envoy sends, the query staying in :path and in path', () => {
    const http = checkRequestFor({ method: 'GET', path: '/api/inventory/stock?location=WH01', headers: [] })
      .attributes?.request?.http;
    expect(http?.headers).toMatchObject({
      ':method': 'GET',
      ':path': '/api/inventory/stock?location=WH01',
      ':authority': 'inventory.local',
      ':scheme': 'http',
    });
    expect(http).toMatchObject({
      method: 'GET',
      path: '/api/inventory/stock?location=WH01',
      host: 'inventory.local',
      scheme: 'http',
      protocol: 'HTTP/1.1',
    });
    expect(http?.query).toBeUndefined();
  });

  it('gives each request its own x-request-id, the same in the header and in id', () => {
    const ids = [1, 2, 3].map(() => {
      const http = checkRequestFor({ method: 'GET', path: '/', headers: [] }).attributes?.request?.http;
      expect(http?.headers?.['x-request-id']).toMatch(UUID);
      expect(http?.id).toBe(http?.headers?.['x-request-id']);
      return http?.id;
    });
    expect(new Set(ids).size).toBe(3);
  });

  it('lower-cases header names and joins a repeated header with "," as Envoy does', () => {
    const headers = checkRequestFor({
      method: 'GET',
      path: '/api/inventory/stock/summary',
      headers: [
        ['X-Location', 'WH01'],
        ['x-location', 'WH02'],
        ['Accept', 'application/json'],
      ],
    }).attributes?.request?.http?.headers;
    expect(headers?.['x-location']).toBe('WH01,WH02');
    expect(headers?.accept).toBe('application/json');
    expect(headers).not.toHaveProperty('X-Location');
  });

  it('puts the token in an Authorization header as "Bearer <token>"', () => {
    const headers = checkRequestFor({ method: 'GET', path: '/', token: 'eyJ.x.y', headers: [] }).attributes
      ?.request?.http?.headers;
    expect(headers?.authorization).toBe('Bearer eyJ.x.y');
    expect(
      checkRequestFor({ method: 'GET', path: '/', headers: [] }).attributes?.request?.http?.headers,
    ).not.toHaveProperty('authorization');
  });

  it('sends the body with its size in bytes (UTF-8), and neither when there is no body', () => {
    const body = '{"location":"Zürich-1"}';
    const http = checkRequestFor({ method: 'POST', path: '/api/inventory/transactions', headers: [], body })
      .attributes?.request?.http;
    expect(http?.body).toBe(body);
    expect(http?.size).toBe(String(body.length + 1));
    const none = checkRequestFor({ method: 'GET', path: '/', headers: [] }).attributes?.request?.http;
    expect(none).not.toHaveProperty('body');
    expect(none).not.toHaveProperty('size');
  });

  it('passes the method on as given: a lower-case one is for the request phase to refuse', () => {
    const request = checkRequestFor({ method: 'post', path: '/', headers: [] });
    expect(request.attributes?.request?.http?.method).toBe('post');
    expect(readRequest(request)).toMatchObject({ ok: false, reason: 'request_malformed' });
  });

  it('reads back through the request phase as the request that was meant', () => {
    const request = checkRequestFor({
      method: 'POST',
      path: '/api/inventory/transactions?dryRun=true',
      token: 'abc.def.ghi',
      headers: [['Content-Type', 'application/json']],
      body: '{"location":"WH01"}',
    });
    const read = readRequest(request);
    if (!read.ok) throw new Error(`${read.reason}: ${read.detail}`);
    expect(read.value.method).toBe('POST');
    expect(read.value.path).toBe('/api/inventory/transactions');
    expect(read.value.query.get('dryRun')).toEqual(['true']);
    expect(read.value.headers.get('content-type')).toBe('application/json');
    expect(read.value.headers.get('authorization')).toBe('Bearer abc.def.ghi');
    expect(read.value.requestId).toBe(request.attributes?.request?.http?.headers?.['x-request-id']);
    expect(bodyText(read.value.body, 1024)).toEqual({ ok: true, value: '{"location":"WH01"}' });
  });
});
