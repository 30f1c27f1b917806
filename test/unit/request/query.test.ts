// The query string: where `access_token` or `?location=` may come from, so it is decoded as strictly as
// the path and repeated names are kept (the identity phase refuses a token sent twice).
import { describe, expect, it } from 'vitest';
import { parseQuery } from '../../../src/request/query.js';

function parsed(raw: string): Record<string, readonly string[]> {
  const result = parseQuery(raw);
  if (!result.ok) throw new Error(`expected ${raw} to parse, got ${result.detail}`);
  return Object.fromEntries(result.value);
}

describe('parseQuery', () => {
  it.each([
    ['', {}],
    ['a=b&c=d', { a: ['b'], c: ['d'] }],
    ['location=WH01&location=WH02', { location: ['WH01', 'WH02'] }],
    ['q=hello+world', { q: ['hello world'] }],
    ['q=a%2Bb', { q: ['a+b'] }],
    ['q=caf%C3%A9', { q: ['café'] }],
    ['a%20b=c', { 'a b': ['c'] }],
    ['flag', { flag: [''] }],
    ['flag=', { flag: [''] }],
    ['a=1&&b=2&', { a: ['1'], b: ['2'] }],
    ['x=a=b', { x: ['a=b'] }],
    ['path=%2Fa%2F..%2F', { path: ['/a/../'] }],
  ])('%j → %j', (raw, expected) => {
    expect(parsed(raw)).toEqual(expected);
  });

  it('keeps a parameter named __proto__ as an ordinary name', () => {
    const result = parseQuery('__proto__=x&constructor=y');
    expect(result.ok && result.value.get('__proto__')).toEqual(['x']);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });

  it.each([
    ['x=%G1', 'bad percent-encoding'],
    ['x=%4', 'bad percent-encoding'],
    ['%=1', 'bad percent-encoding'],
    ['x=%FF', 'not valid UTF-8'],
    ['x=%C0%AF', 'not valid UTF-8'],
    ['x=%00', 'control character'],
    ['x=a%0D%0Ab', 'control character'],
    ['x\u0001=1', 'control character'],
  ])('%j is request_malformed: %s', (raw, detail) => {
    const result = parseQuery(raw);
    expect(result).toMatchObject({ ok: false, reason: 'request_malformed' });
    expect(!result.ok && result.detail).toContain(detail);
  });

  it('reads 100 parameters and refuses 101', () => {
    const hundred = Array.from({ length: 100 }, (_, i) => `p${i}=${i}`).join('&');
    expect(parseQuery(hundred).ok).toBe(true);
    const result = parseQuery(`${hundred}&one=more`);
    expect(result).toMatchObject({ ok: false, reason: 'request_malformed' });
    expect(!result.ok && result.detail).toContain('more than 100 parameters');
    expect(parseQuery('a=1&b=2&c=3', { maxParameters: 2 }).ok).toBe(false);
  });

  it('refuses a query longer than its byte cap before splitting it', () => {
    const result = parseQuery('a=' + 'x'.repeat(20_000));
    expect(result).toMatchObject({ ok: false, reason: 'request_malformed' });
    expect(!result.ok && result.detail).toContain('longer than 16384 bytes');
  });
});
