// The verified-token cache: what a signature check established, by the token's hash, never past `exp`, for as
// long as whoever asks says the entry is current; principals kept per claims mapping.
import { describe, expect, it } from 'vitest';
import {
  type CachedToken,
  principalFor,
  TokenCache,
  type TokenLookupStatus,
  tokenHash,
} from '../../../src/cache/tokens.js';
import type { Denial, Principal, SigningKeyRef } from '../../../src/vocabulary/index.js';
import { ManualClock } from '../identity/fixtures.js';

const signedBy: SigningKeyRef = { issuer: 'https://idp.example/', thumbprint: 't1', kid: 'k1', alg: 'RS256' };
const verified = (expiresAt: number) => ({
  issuer: 'https://idp.example/',
  basis: 'basis-1',
  claims: { sub: 'svc' },
  signedBy,
  expiresAt,
});
const always = () => true;
const principal = (subject: string): Principal => ({
  subject,
  scopes: new Set(['inventory.read']),
  roles: new Set(),
  locations: [],
});

describe('TokenCache: verified tokens, never past exp', () => {
  it('returns the entry stored for a token hash, and counts hits and misses', () => {
    const clock = new ManualClock();
    const lookups: string[] = [];
    const cache = new TokenCache({ now: clock.now, onLookup: (_, result) => lookups.push(result) });
    expect(cache.get('hash-a', always)).toBeUndefined();
    cache.setVerified('hash-a', verified(clock.seconds + 300));
    expect(cache.get('hash-a', always)).toMatchObject({ kind: 'verified', claims: { sub: 'svc' } });
    expect(cache.get('hash-b', always)).toBeUndefined();
    expect(lookups).toEqual(['miss', 'hit', 'miss']);
  });

  it('writes what a lookup found into the status object a caller passes (a Check span)', () => {
    const clock = new ManualClock();
    const cache = new TokenCache({ now: clock.now });
    const missed: TokenLookupStatus = {};
    cache.get('hash-a', always, missed);
    cache.setVerified('hash-a', verified(clock.seconds + 300));
    const hit: TokenLookupStatus = {};
    cache.get('hash-a', always, hit);
    expect([missed, hit]).toEqual([{ tokenCache: 'miss' }, { tokenCache: 'hit' }]);
  });

  it('never serves an entry past its token exp', () => {
    const clock = new ManualClock();
    const cache = new TokenCache({ now: clock.now });
    cache.setVerified('hash', verified(clock.seconds + 60));
    clock.advance(59_000);
    expect(cache.get('hash', always)).toBeDefined();
    clock.advance(1_000);
    // At exp the entry may still be in the LRU, but the exp check drops it: a miss, so a full verification decides.
    expect(cache.get('hash', always)).toBeUndefined();
  });

  it('does not keep a token that is already expired', () => {
    const clock = new ManualClock();
    const cache = new TokenCache({ now: clock.now });
    cache.setVerified('hash', verified(clock.seconds - 1));
    expect(cache.size).toBe(0);
  });

  it('drops an entry the asker no longer finds current (key withdrawn, issuer settings changed)', () => {
    const clock = new ManualClock();
    const cache = new TokenCache({ now: clock.now });
    cache.setVerified('hash', verified(clock.seconds + 300));
    let seen: CachedToken | undefined;
    const stale = (entry: CachedToken) => {
      seen = entry;
      return false;
    };
    expect(cache.get('hash', stale)).toBeUndefined();
    expect(seen).toMatchObject({ basis: 'basis-1', signedBy });
    expect(cache.get('hash', always)).toBeUndefined();
  });

  it('remembers an expired token (its denial) for at most five minutes', () => {
    const clock = new ManualClock();
    const cache = new TokenCache({ now: clock.now });
    const expired: Denial = { ok: false, reason: 'token_expired', detail: 'the token has expired' };
    cache.setExpired('hash', { issuer: 'https://idp.example/', basis: 'basis-1', expired, keySet: {} });
    clock.advance(5 * 60_000);
    expect(cache.get('hash', always)).toMatchObject({ kind: 'expired', expired });
    clock.advance(1);
    expect(cache.get('hash', always)).toBeUndefined();
  });

  it('is bounded by entry count, dropping the least recently used; size 0 turns it off', () => {
    const clock = new ManualClock();
    const cache = new TokenCache({ now: clock.now, maxEntries: 3 });
    for (let i = 0; i < 10; i++) cache.setVerified(`hash-${i}`, verified(clock.seconds + 300));
    expect(cache.size).toBe(3);
    expect(cache.get('hash-0', always)).toBeUndefined();
    expect(cache.get('hash-9', always)).toBeDefined();
    const off = new TokenCache({ maxEntries: 0 });
    off.setVerified('hash', verified(Date.now() / 1000 + 300));
    expect(off.enabled).toBe(false);
    expect(off.get('hash', always)).toBeUndefined();
  });
});

describe('principalFor: one principal per claims mapping, kept with the entry', () => {
  it('builds once per mapping, and again for another mapping', () => {
    const cache = new TokenCache();
    const entry = cache.setVerified('hash', verified(Date.now() / 1000 + 300));
    let builds = 0;
    const build = (subject: string) => () => {
      builds++;
      return { ok: true as const, value: principal(subject) };
    };
    const first = principalFor(entry, 'mapping-1', build('svc'));
    expect(principalFor(entry, 'mapping-1', build('other'))).toBe(first);
    expect(principalFor(entry, 'mapping-2', build('svc-2'))).toMatchObject({ value: { subject: 'svc-2' } });
    expect(builds).toBe(2);
  });
});

describe('tokenHash', () => {
  it('is the base64url SHA-256 of the token, never the token', () => {
    expect(tokenHash('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
    expect(tokenHash('abc')).not.toContain('abc');
  });
});
