import { describe, expect, it } from 'vitest';
import { TokenCache } from '../../../src/cache/tokens.js';
import type { Principal } from '../../../src/vocabulary/index.js';
import { ManualClock } from './fixtures.js';

function principal(subject: string, expiresAt: number | undefined): Principal {
  return { subject, scopes: new Set(['inventory.read']), roles: new Set(), locations: [], expiresAt };
}

describe('TokenCache: verified tokens, never past exp', () => {
  it('returns the principal stored for a token, and counts hits and misses', () => {
    const clock = new ManualClock();
    const lookups: string[] = [];
    const cache = new TokenCache({ now: clock.now, onLookup: (_, result) => lookups.push(result) });
    expect(cache.get('rev', 'token-a')).toBeUndefined();
    cache.set('rev', 'token-a', principal('svc-a', clock.seconds + 300));
    expect(cache.get('rev', 'token-a')).toMatchObject({ ok: true, value: { subject: 'svc-a' } });
    expect(cache.get('rev', 'token-b')).toBeUndefined();
    expect(lookups).toEqual(['miss', 'hit', 'miss']);
  });

  it('never serves a principal past its token exp', () => {
    const clock = new ManualClock();
    const cache = new TokenCache({ now: clock.now });
    cache.set('rev', 'token', principal('svc', clock.seconds + 60));
    clock.advance(59_000);
    expect(cache.get('rev', 'token')?.ok).toBe(true);
    clock.advance(1_000);
    // At exp the entry may still be in the LRU, but the exp check drops it: a miss, so a full verification decides.
    expect(cache.get('rev', 'token')).toBeUndefined();
    clock.advance(10_000);
    expect(cache.get('rev', 'token')).toBeUndefined();
  });

  it('does not cache a principal that is already expired or has no exp', () => {
    const clock = new ManualClock();
    const cache = new TokenCache({ now: clock.now });
    cache.set('rev', 'expired', principal('svc', clock.seconds - 1));
    cache.set('rev', 'no-exp', principal('svc', undefined));
    expect(cache.size).toBe(0);
  });

  it('keys entries by policy revision: a principal built under one policy is not served under another', () => {
    const clock = new ManualClock();
    const cache = new TokenCache({ now: clock.now });
    cache.set('rev-1', 'token', principal('svc', clock.seconds + 300));
    expect(cache.get('rev-2', 'token')).toBeUndefined();
    expect(cache.get('rev-1', 'token')?.ok).toBe(true);
  });

  it('is bounded by entry count, dropping the least recently used', () => {
    const clock = new ManualClock();
    const cache = new TokenCache({ now: clock.now, maxEntries: 3 });
    for (let i = 0; i < 10; i++) cache.set('rev', `token-${i}`, principal(`svc-${i}`, clock.seconds + 300));
    expect(cache.size).toBe(3);
    expect(cache.get('rev', 'token-0')).toBeUndefined();
    expect(cache.get('rev', 'token-9')).toMatchObject({ ok: true, value: { subject: 'svc-9' } });
  });
});
