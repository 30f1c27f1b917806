// Where the body comes from (a defect the hardening corpus found): Envoy sends the body as `body` or, with
// `pack_as_bytes: true`, as `raw_body`, never both. A CheckRequest with both used to be decided on `body`
// alone, so the location checked could differ from the bytes forwarded; now it is request_malformed.
import { describe, expect, it } from 'vitest';
import { readRequest } from '../../../src/request/facts.js';
import { bodyText } from '../../../src/request/locations.js';
import type { CheckRequest, HttpRequestAttrs } from '../../../src/wire/envoy.js';

function post(body: Partial<Pick<HttpRequestAttrs, 'body' | 'raw_body'>>): CheckRequest {
  return {
    attributes: {
      request: {
        http: {
          method: 'POST',
          path: '/api/inventory/transactions',
          headers: { 'content-type': 'application/json' },
          ...body,
        },
      },
    },
  };
}

describe('readRequest: body or raw_body, never both', () => {
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
