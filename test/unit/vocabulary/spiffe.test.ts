// SPIFFE IDs (src/vocabulary/spiffe.ts): what is one, what only looks like one, and the `*` a peer list may
// end with. A look-alike must never pass, since an ID that passes is compared byte for byte with a policy's.
import { describe, expect, test } from 'vitest';
import { spiffeIdProblem } from '../../../src/vocabulary/index.js';

describe('spiffeIdProblem', () => {
  test.each([
    'spiffe://cluster.local/ns/inventory/sa/inventory-api',
    'spiffe://example.org',
    'spiffe://td_1.example-2.org/a.b/c_d/E-F',
  ])('%s is an ID', (id) => {
    expect(spiffeIdProblem(id)).toBeUndefined();
  });

  test.each([
    ['SPIFFE://cluster.local/ns/a/sa/b', 'does not start with spiffe:// (the scheme is lower case)'],
    ['https://cluster.local/ns/a', 'does not start with spiffe:// (the scheme is lower case)'],
    ['spiffe://', 'has no trust domain'],
    ['spiffe:///ns/a', 'has no trust domain'],
    [
      'spiffe://Cluster.local/ns/a',
      'has a trust domain with characters other than lower-case letters, digits, ".", "-" and "_"',
    ],
    [
      'spiffe://cluster.local:8443/ns/a',
      'has a trust domain with characters other than lower-case letters, digits, ".", "-" and "_"',
    ],
    [
      'spiffe://user@cluster.local/ns/a',
      'has a trust domain with characters other than lower-case letters, digits, ".", "-" and "_"',
    ],
    ['spiffe://cluster.local/', 'has an empty path segment (a doubled or trailing "/")'],
    ['spiffe://cluster.local/ns//a', 'has an empty path segment (a doubled or trailing "/")'],
    ['spiffe://cluster.local/ns/../sa', 'has a "." or ".." path segment'],
    ['spiffe://cluster.local/ns/./sa', 'has a "." or ".." path segment'],
    ['spiffe://cluster.local/ns/a%2Fb', 'is percent-encoded (an ID has one spelling)'],
    [
      'spiffe://cluster.local/ns/a?b=c',
      'has a path segment with characters other than letters, digits, ".", "-" and "_"',
    ],
    [
      'spiffe://cluster.local/ns/a#frag',
      'has a path segment with characters other than letters, digits, ".", "-" and "_"',
    ],
    [
      'spiffe://cluster.local/ns/a\u0000',
      'has a path segment with characters other than letters, digits, ".", "-" and "_"',
    ],
    [
      'spiffe://cluster.local/ns/josé',
      'has a path segment with characters other than letters, digits, ".", "-" and "_"',
    ],
    ['spiffe://cluster.local/ns/*', 'contains "*"'],
    [`spiffe://cluster.local/${'a'.repeat(2030)}`, 'is longer than 2048 bytes'],
  ])('%j is not: it %s', (id, problem) => {
    expect(spiffeIdProblem(id)).toBe(problem);
  });

  test('with wildcard, only a whole last segment may be "*"', () => {
    expect(spiffeIdProblem('spiffe://cluster.local/ns/inventory/sa/*', { wildcard: true })).toBeUndefined();
    expect(spiffeIdProblem('spiffe://cluster.local/ns/*/sa/x', { wildcard: true })).toBe(
      'uses "*" other than as its whole last segment',
    );
    expect(spiffeIdProblem('spiffe://cluster.local/ns/inventory/sa/api-*', { wildcard: true })).toBe(
      'uses "*" other than as its whole last segment',
    );
    expect(spiffeIdProblem('spiffe://*', { wildcard: true })).toBe(
      'has a trust domain with characters other than lower-case letters, digits, ".", "-" and "_"',
    );
  });
});
