// Security rule 2: one canonical path, and a precise request_malformed for anything ambiguous. Vectors
// include the ones Envoy's own path normalisation tests use (test/common/http/path_utility_test.cc):
// where Envoy *normalises* (`/a/b/../c` → `/a/c`), scopegate refuses, because the upstream may not.
import { describe, expect, it } from 'vitest';
import { canonicalPath } from '../../../src/request/path.js';

describe('canonicalPath accepts plain paths and splits the query off first', () => {
  it.each([
    ['/api/inventory/transactions', '/api/inventory/transactions', ''],
    ['/api/inventory/locations/WH01/items?limit=10', '/api/inventory/locations/WH01/items', 'limit=10'],
    ['/', '/', ''],
    ['/?a=1', '/', 'a=1'],
    // Envoy's AlreadyNormalPaths and NormalizeCasePath (case is never folded).
    ['/xyz', '/xyz', ''],
    ['/x/y/z', '/x/y/z', ''],
    ['/A/B/C', '/A/B/C', ''],
    // Envoy's RemoveQueryAndFragment: only the first `?` splits; slashes in the query are the query's.
    ['/abc?', '/abc', ''],
    ['/abc??', '/abc', '?'],
    ['/abc??param=value', '/abc', '?param=value'],
    ['/abc?param=value1&param=value2', '/abc', 'param=value1&param=value2'],
    ['/a/b?a=///c', '/a/b', 'a=///c'],
    ['/a/b?x=..%2F..', '/a/b', 'x=..%2F..'],
    // Percent-decoding of everything that is not ambiguous.
    ['/a%20b', '/a b', ''],
    ['/caf%C3%A9/x', '/café/x', ''],
    ['/price/%E2%82%AC', '/price/€', ''],
    ['/emoji/%F0%9F%98%80', '/emoji/😀', ''],
    ['/%41%42C', '/ABC', ''],
    ['/v1/items/...', '/v1/items/...', ''],
    ['/v1/.well-known/x', '/v1/.well-known/x', ''],
    ['/a/b:c@d', '/a/b:c@d', ''],
  ])('%s → path %s, query %s', (raw, path, query) => {
    expect(canonicalPath(raw)).toEqual({ ok: true, value: { path, query } });
  });
});

describe('canonicalPath refuses ambiguous paths as request_malformed, saying why', () => {
  it.each([
    // empty / not origin-form
    ['', 'path is empty'],
    ['?a=1', 'path is empty'],
    ['a/b/../c', 'does not start with /'],
    ['..', 'does not start with /'],
    ['*', 'does not start with /'],
    ['http://evil.example/api', 'does not start with /'],
    // dot segments, raw and encoded, from Envoy's NormalizeValidPaths
    ['/a/b/../c', 'dot segment'],
    ['/a/b/./c', 'dot segment'],
    ['/a/b/../../../../c', 'dot segment'],
    ['/../a/b', 'dot segment'],
    ['/./a/b', 'dot segment'],
    ['/a/b/%2E%2E/c', 'dot segment'],
    ['/a/b/%2e%2e/c', 'dot segment'],
    ['/a/b/%2E./c', 'dot segment'],
    ['/a/b/.%2e/c', 'dot segment'],
    ['/a/b/%2E/c', 'dot segment'],
    ['/a/b/..', 'dot segment'],
    ['/a/b/.', 'dot segment'],
    // backslashes, raw and encoded
    ['/a/..\\c', 'backslash'],
    ['/a\\b', 'backslash'],
    ['/%5c%25', 'encoded backslash (%5C)'],
    ['/a%5Cb', 'encoded backslash (%5C)'],
    // encoded slashes (Envoy keeps `/a/%2F%2f/c` as is; an upstream may decode it into `/a///c`)
    ['/a/%2F%2f/c', 'encoded slash (%2F)'],
    ['/api/inventory%2ftransactions', 'encoded slash (%2F)'],
    // double encoding
    ['/a%252Fb', 'encoded percent sign (%25)'],
    ['/a%25', 'encoded percent sign (%25)'],
    // empty segments
    ['//a/b/c', 'empty segment (//)'],
    ['//evil.example/api', 'empty segment (//)'],
    ['/a//b/c', 'empty segment (//)'],
    ['/a///b', 'empty segment (//)'],
    ['/a/b/c//', 'empty segment (//)'],
    ['/a/b/', 'ends with a slash'],
    // path parameters
    ['/a;b', '; path parameter'],
    ['/api/inventory/transactions;jsessionid=1', '; path parameter'],
    ['/a%3Bb', 'encoded ; (%3B)'],
    ['/a%3bb', 'encoded ; (%3B)'],
    // control characters, raw and encoded (Envoy's InvalidPaths use %00)
    ['/xyz/.%00../abc', 'encoded control character'],
    ['/xyz/%00.%00./abc', 'encoded control character'],
    ['/a\u0000b', 'control character'],
    ['/a\nb', 'control character'],
    ['/a\u007fb', 'control character'],
    ['/a%0Ab', 'encoded control character'],
    ['/a%0d%0aSet-Cookie:x', 'encoded control character'],
    ['/a%7F', 'encoded control character'],
    ['/a%1f', 'encoded control character'],
    ['/a%C2%85', 'control character'],
    // bad percent-encoding (Envoy's `%%0000`)
    ['/xyz/AAAAA%%0000/abc', 'bad percent-encoding'],
    ['/a%G1', 'bad percent-encoding'],
    ['/a%4', 'bad percent-encoding'],
    ['/a%', 'bad percent-encoding'],
    // bytes that are not UTF-8: overlong `/` (Envoy's `/%c0%af`), stray bytes, cut sequences
    ['/%c0%af', 'not valid UTF-8'],
    ['/%C0%AE%C0%AE/etc', 'not valid UTF-8'],
    ['/a%FF', 'not valid UTF-8'],
    ['/%E2%82', 'not valid UTF-8'],
    ['/%ED%A0%80', 'not valid UTF-8'],
    // `?` and `#` smuggled into the path
    ['/a%3Fb', 'encoded ? (%3F)'],
    ['/a%23b', 'encoded # (%23)'],
    ['/a#frag', 'fragment (#)'],
    ['/a?x=1#frag', 'fragment (#)'],
    ['/abc#?param=value', 'fragment (#)'],
    ['/a b', 'raw space'],
  ])('%j is refused: %s', (raw, detail) => {
    const result = canonicalPath(raw);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.reason).toBe('request_malformed');
    expect(result.detail).toContain(detail);
  });

  it('caps the path at 8 KiB before looking at it, but not the query', () => {
    const longest = '/' + 'a'.repeat(8191);
    expect(canonicalPath(longest).ok).toBe(true);
    const tooLong = canonicalPath(longest + 'a');
    expect(tooLong).toMatchObject({ ok: false, reason: 'request_malformed' });
    expect(!tooLong.ok && tooLong.detail).toContain('longer than 8192 bytes');
    // Multi-byte characters count in bytes: 4,096 two-byte characters plus the slash is 8,193 bytes.
    expect(canonicalPath('/' + 'é'.repeat(4096)).ok).toBe(false);
    expect(canonicalPath('/a?' + 'q'.repeat(9000)).ok).toBe(true);
  });

  it('never turns a //host path into a host, whatever follows', () => {
    for (const raw of ['//evil.example', '//evil.example/', '///x']) {
      expect(canonicalPath(raw)).toMatchObject({ ok: false, reason: 'request_malformed' });
    }
  });

  it('rejects a 100 KiB path of escapes quickly', () => {
    const started = performance.now();
    expect(canonicalPath('/' + '%41'.repeat(40_000)).ok).toBe(false);
    expect(performance.now() - started).toBeLessThan(200);
  });
});
