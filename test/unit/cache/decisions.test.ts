// The decision cache on its own: what makes two requests "the same", and when a kept decision stops counting.
import { describe, expect, it } from 'vitest';
import {
  DecisionCache,
  type DecisionInputs,
  type DecisionLookupStatus,
} from '../../../src/cache/decisions.js';
import { tokenHash } from '../../../src/cache/tokens.js';
import type { Decision, SigningKeyRef } from '../../../src/vocabulary/index.js';
import { ManualClock } from '../identity/fixtures.js';

const signedBy: SigningKeyRef = {
  issuer: 'https://idp.example.test/',
  thumbprint: 'abc',
  kid: 'k1',
  alg: 'RS256',
};
const allowed: Decision = {
  reason: 'allowed',
  detail: 'allowed',
  revision: 'rev-1',
  route: 'create_transaction',
  subject: 'svc-inventory-sync',
};
const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.e30.c2ln';
const inputs = (more: Partial<DecisionInputs> = {}): DecisionInputs => ({
  policy: 'inventory',
  revision: 'rev-1',
  tokenHash: tokenHash(TOKEN),
  method: 'POST',
  route: 'create_transaction',
  locations: ['WH01'],
  ...more,
});
const published = () => true;

describe('DecisionCache: the key', () => {
  it('differs whenever the revision, token, method, route or locations differ', () => {
    const keys = [
      inputs(),
      inputs({ revision: 'rev-2' }),
      inputs({ tokenHash: tokenHash('eyJhbGciOiJSUzI1NiJ9.e30.b3RoZXI') }),
      inputs({ method: 'PUT' }),
      inputs({ route: 'update_transaction' }),
      inputs({ locations: ['WH03'] }),
      inputs({ locations: ['WH01', 'WH03'] }),
      // The deny names refused locations in request order, so the order is part of the question.
      inputs({ locations: ['WH03', 'WH01'] }),
      inputs({ locations: [] }),
    ].map((i) => DecisionCache.keyFor(i));
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('keeps the parts apart: a route name cannot swallow a location', () => {
    const a = DecisionCache.keyFor(inputs({ route: 'r","WH01', locations: [] }));
    const b = DecisionCache.keyFor(inputs({ route: 'r', locations: ['WH01'] }));
    expect(a).not.toBe(b);
    // Parts that spell the same text once joined, with or without the length prefixes.
    const pairs: Array<[Partial<DecisionInputs>, Partial<DecisionInputs>]> = [
      [
        { route: 'r4:WH01', locations: [] },
        { route: 'r', locations: ['WH01'] },
      ],
      [{ locations: ['WH01WH02'] }, { locations: ['WH01', 'WH02'] }],
      [{ locations: ['4:WH01'] }, { locations: ['WH01', ''] }],
      [
        { method: 'GET', route: '1:r' },
        { method: 'GET1:', route: 'r' },
      ],
    ];
    for (const [x, y] of pairs)
      expect(DecisionCache.keyFor(inputs(x))).not.toBe(DecisionCache.keyFor(inputs(y)));
  });

  it('keeps requests naming many locations apart', () => {
    const many = (last: string) => [...Array.from({ length: 60 }, (_, i) => `WH${i}`), last];
    const a = DecisionCache.keyFor(inputs({ locations: many('WH98') }));
    const b = DecisionCache.keyFor(inputs({ locations: many('WH99') }));
    expect(a).not.toBe(b);
    // A long key's hashed tail can never equal a short key's plain one.
    expect(DecisionCache.keyFor(inputs({ locations: ['WH01'] }))).not.toBe(a);
  });

  it('never contains the token itself: only its hash', () => {
    const key = DecisionCache.keyFor(inputs());
    for (const part of TOKEN.split('.')) expect(key).not.toContain(part);
    expect(key.startsWith(tokenHash(TOKEN))).toBe(true);
  });
});

describe('DecisionCache: what it serves', () => {
  it('serves a kept decision and counts hits and misses', () => {
    const clock = new ManualClock();
    const lookups: string[] = [];
    const cache = new DecisionCache({ now: clock.now, onLookup: (_, result) => lookups.push(result) });
    const key = DecisionCache.keyFor(inputs());
    expect(cache.get(key, published)).toBeUndefined();
    cache.set(key, allowed, { expiresAt: clock.seconds + 300, signedBy });
    expect(cache.get(key, published)).toMatchObject(allowed);
    // Kept, it carries room for its answer, built once for every request it answers.
    expect(cache.get(key, published)?.kept).toEqual({});
    expect(lookups).toEqual(['miss', 'hit', 'hit']);
  });

  it('writes what a lookup found into the status object a caller passes (a Check span)', () => {
    const clock = new ManualClock();
    const cache = new DecisionCache({ now: clock.now });
    const key = DecisionCache.keyFor(inputs());
    const missed: DecisionLookupStatus = {};
    cache.get(key, published, missed);
    cache.set(key, allowed, { expiresAt: clock.seconds + 300, signedBy });
    const hit: DecisionLookupStatus = {};
    cache.get(key, published, hit);
    expect([missed, hit]).toEqual([{ decisionCache: 'miss' }, { decisionCache: 'hit' }]);
  });

  it('hands out a frozen copy: one caller cannot change the answer for the next', () => {
    const clock = new ManualClock();
    const cache = new DecisionCache({ now: clock.now });
    const key = DecisionCache.keyFor(inputs());
    cache.set(key, { ...allowed }, { expiresAt: clock.seconds + 300, signedBy });
    const hit = cache.get(key, published);
    expect(Object.isFrozen(hit)).toBe(true);
  });

  it("never serves a decision at or past its token's exp", () => {
    const clock = new ManualClock();
    const cache = new DecisionCache({ now: clock.now });
    const key = DecisionCache.keyFor(inputs());
    cache.set(key, allowed, { expiresAt: clock.seconds + 60, signedBy });
    clock.advance(59_000);
    expect(cache.get(key, published)).toMatchObject(allowed);
    clock.advance(1_000);
    expect(cache.get(key, published)).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('does not keep a decision whose token has already expired', () => {
    const clock = new ManualClock();
    const cache = new DecisionCache({ now: clock.now });
    cache.set(DecisionCache.keyFor(inputs()), allowed, { expiresAt: clock.seconds - 1, signedBy });
    expect(cache.size).toBe(0);
  });

  it('drops a decision once the key that signed its token is no longer published', () => {
    const clock = new ManualClock();
    const cache = new DecisionCache({ now: clock.now });
    const key = DecisionCache.keyFor(inputs());
    cache.set(key, allowed, { expiresAt: clock.seconds + 300, signedBy });
    const asked: SigningKeyRef[] = [];
    expect(
      cache.get(key, (ref) => {
        asked.push(ref);
        return false;
      }),
    ).toBeUndefined();
    expect(asked).toEqual([signedBy]);
    // Gone for good: the key coming back later does not revive it (a fresh check must decide).
    expect(cache.get(key, published)).toBeUndefined();
  });

  it('is bounded by entry count, dropping the least recently used', () => {
    const clock = new ManualClock();
    const cache = new DecisionCache({ now: clock.now, maxEntries: 5 });
    for (let i = 0; i < 50; i++) {
      cache.set(DecisionCache.keyFor(inputs({ locations: [`WH${i}`] })), allowed, {
        expiresAt: clock.seconds + 300,
        signedBy,
      });
    }
    expect(cache.size).toBe(5);
    expect(cache.get(DecisionCache.keyFor(inputs({ locations: ['WH0'] })), published)).toBeUndefined();
    expect(cache.get(DecisionCache.keyFor(inputs({ locations: ['WH49'] })), published)).toMatchObject(
      allowed,
    );
  });

  it('size 0 turns it off: nothing kept, nothing looked up or counted', () => {
    const lookups: string[] = [];
    const cache = new DecisionCache({ maxEntries: 0, onLookup: (_, result) => lookups.push(result) });
    const key = DecisionCache.keyFor(inputs());
    cache.set(key, allowed, { expiresAt: Date.now() / 1000 + 300, signedBy });
    expect(cache.enabled).toBe(false);
    expect(cache.get(key, published)).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(lookups).toEqual([]);
  });
});

describe('DecisionCache: bounded in bytes, not only entries', () => {
  const manyLocations = Array.from({ length: 100 }, (_, i) => `L${i}-${'x'.repeat(120)}`);
  const bigDeny: Decision = {
    reason: 'location_denied',
    detail: `svc may not access location ${manyLocations.join(', ')}`,
    revision: 'rev-1',
    route: 'create_transaction',
    missing: { locations: manyLocations },
  };

  it('every key stays small, however many locations the request names', () => {
    const small = DecisionCache.keyFor(inputs());
    const large = DecisionCache.keyFor(inputs({ locations: manyLocations }));
    // Two SHA-256 digests (token, then the hashed rest) at most.
    expect(large.length).toBeLessThanOrEqual(2 * 43 + 1);
    expect(small.length).toBeLessThan(2 * 43 + 160);
    expect(large).not.toBe(small);
  });

  it('large denies evict each other long before the entry count is reached', () => {
    const clock = new ManualClock();
    const cache = new DecisionCache({ now: clock.now, maxEntries: 1_000 });
    for (let i = 0; i < 1_000; i++) {
      cache.set(
        DecisionCache.keyFor(inputs({ tokenHash: tokenHash(`t${i}`), locations: manyLocations })),
        bigDeny,
        {
          expiresAt: clock.seconds + 60,
          signedBy,
        },
      );
    }
    // ~1.6 MB budget for 1,000 entries; each of these is ~50 KB, so only a few dozen fit.
    expect(cache.size).toBeGreaterThan(0);
    expect(cache.size).toBeLessThan(100);
  });
});
