// readHeaders on its own: the bounds it sets before anything is parsed, and who is to blame when headers are
// too large. A bearer token that alone makes them too large is a malformed token (401 token_invalid, RFC 6750
// §3.1), like any oversized token; anything else too large is the request's fault (400). How the headers
// read into RequestFacts (joins, lower case, raw mode) is in facts.test.ts.
import { describe, expect, it } from 'vitest';
import { DEFAULT_HEADER_LIMITS, readHeaders } from '../../../src/request/headers.js';
import type { HeaderValue, HttpRequestAttrs } from '../../../src/wire/types.js';

const LIMIT = DEFAULT_HEADER_LIMITS.maxHeaderBytes;
const raw = (key: string, value: string): HeaderValue => ({ key, raw_value: Buffer.from(value) });
const token = (bytes: number) => `Bearer ${'t'.repeat(bytes)}`;

describe('readHeaders: too many bytes', () => {
  it('a bearer token that alone overflows the headers is token_invalid, in either mode', () => {
    for (const http of [
      { headers: { authorization: token(LIMIT), 'content-type': 'application/json' } },
      {
        header_map: {
          headers: [raw('Authorization', token(LIMIT)), raw('content-type', 'application/json')],
        },
      },
      { header_map: { headers: [{ key: 'authorization', value: `bEaReR ${'t'.repeat(LIMIT)}` }] } },
    ])
      expect(readHeaders(http)).toMatchObject({
        ok: false,
        reason: 'token_invalid',
        detail: `the bearer token makes the request headers exceed ${LIMIT} bytes`,
      });
  });

  it('too large without the token, or with another kind of credential, is request_malformed', () => {
    const big = 'x'.repeat(LIMIT);
    const cases: HttpRequestAttrs[] = [
      { headers: { authorization: token(10), cookie: big } },
      { headers: { authorization: `Basic ${big}` } },
      { header_map: { headers: [raw('authorization', token(10)), raw('cookie', big)] } },
    ];
    for (const http of cases)
      expect(readHeaders(http)).toMatchObject({ ok: false, reason: 'request_malformed' });
  });

  it('counts bytes, not characters, and takes a lower cap when given one', () => {
    expect(readHeaders({ headers: { x: 'é'.repeat(5) } }, { maxHeaderBytes: 10 })).toMatchObject({
      ok: false,
      detail: 'request headers exceed 10 bytes',
    });
    expect(readHeaders({ headers: { x: 'é'.repeat(4) } }, { maxHeaderBytes: 10 })).toMatchObject({
      ok: true,
    });
    // The header count keeps its default when only the byte cap is given.
    const many = Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`h${i}`, '']));
    expect(readHeaders({ headers: many }, { maxHeaderBytes: LIMIT })).toMatchObject({
      ok: false,
      detail: 'request has more than 200 headers',
    });
  });
});

describe('readHeaders: what it reads', () => {
  it('a map value that is not text reads as empty, not as whatever it stringifies to', () => {
    const read = readHeaders({ headers: { 'x-odd': 42 as unknown as string } });
    expect(read.ok && read.value.get('x-odd')).toBe('');
  });

  it('nothing sent is no headers, not an error', () => {
    expect(readHeaders({})).toEqual({ ok: true, value: new Map() });
  });
});
