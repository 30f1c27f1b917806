// Location grants, the patterns a subject's `locations` and a token's `locations` claim are written in: exact
// codes (`WH01`), trailing-`*` prefixes (`EU-*`) and `*`. What the validator says of a pattern it refuses,
// and that such a pattern, reaching the grant anyway from a token, grants nothing.
import { describe, expect, test } from 'vitest';
import {
  locationAllowed,
  locationPatternProblem,
  parseLocationGrant,
} from '../../../src/policy/locations.js';

describe('location grants', () => {
  test('* allows every location', () => {
    const grant = parseLocationGrant(['*']);
    expect(grant.all).toBe(true);
    expect(locationAllowed(grant, 'ANYWHERE-7')).toBe(true);
  });

  test('a trailing * is a prefix; exact codes are exact', () => {
    const grant = parseLocationGrant(['EU-*', 'WH01']);
    expect(grant.all).toBe(false);
    expect(grant.prefixes).toEqual(['EU-']);
    expect([...grant.exact]).toEqual(['WH01']);
    expect(locationAllowed(grant, 'EU-PAR2')).toBe(true);
    expect(locationAllowed(grant, 'WH01')).toBe(true);
    expect(locationAllowed(grant, 'WH011')).toBe(false);
    expect(locationAllowed(grant, 'EU')).toBe(false);
  });

  test('patterns we do not understand grant nothing (a token claim cannot widen access with them)', () => {
    const grant = parseLocationGrant(['E*U', '**', '', '*WH']);
    expect(grant.all).toBe(false);
    expect(locationAllowed(grant, 'EU')).toBe(false);
    expect(locationAllowed(grant, 'E*U')).toBe(false);
    expect(locationAllowed(grant, 'WH')).toBe(false);
  });

  test('an empty location code is never allowed, even with *', () => {
    expect(locationAllowed(parseLocationGrant(['*']), '')).toBe(false);
    expect(locationAllowed(parseLocationGrant([]), 'WH01')).toBe(false);
  });
});

describe('locationPatternProblem: what the validator says of a pattern', () => {
  test.each(['WH01', 'EU-*', 'WH01*', '*', 'eu-ams1', 'A'])('%s is a valid pattern', (pattern) => {
    expect(locationPatternProblem(pattern)).toBeUndefined();
  });

  test('an empty pattern is refused as empty', () => {
    expect(locationPatternProblem('')).toBe('a location must not be empty');
  });

  test.each(['E*U', '**', '*WH', 'EU-**', 'E*U*'])(
    '%s: "*" anywhere but alone or at the end is refused, naming the pattern and the one form allowed',
    (pattern) => {
      expect(locationPatternProblem(pattern)).toBe(
        `location pattern "${pattern}" may only use "*" alone or at the end (like "EU-*")`,
      );
    },
  );
});

describe('parseLocationGrant: patterns into a grant', () => {
  test('prefixes are kept once each, sorted, without their *', () => {
    const grant = parseLocationGrant(['US-*', 'EU-*', 'EU-*', 'APAC-*']);
    expect(grant.prefixes).toEqual(['APAC-', 'EU-', 'US-']);
    expect(grant.exact.size).toBe(0);
    expect(grant.all).toBe(false);
  });

  test('the grant and its prefix list are frozen', () => {
    const grant = parseLocationGrant(['EU-*', 'WH01']);
    expect(Object.isFrozen(grant)).toBe(true);
    expect(Object.isFrozen(grant.prefixes)).toBe(true);
    expect(() => (grant.prefixes as string[]).push('')).toThrow(TypeError);
  });

  test('a token claim holding something other than strings grants nothing for those entries', () => {
    // A `locations` claim is client-signed JSON: numbers, nulls and objects are skipped, not stringified.
    const claim = [42, null, { code: 'WH02' }, ['WH03'], 'WH01'] as unknown as string[];
    const grant = parseLocationGrant(claim);
    expect([...grant.exact]).toEqual(['WH01']);
    expect(grant.prefixes).toEqual([]);
    expect(grant.all).toBe(false);
    for (const code of ['42', 'null', 'WH02', 'WH03', '[object Object]']) {
      expect(locationAllowed(grant, code)).toBe(false);
    }
  });

  test('* among other patterns is every location', () => {
    const grant = parseLocationGrant(['WH01', '*', 'EU-*']);
    expect(grant.all).toBe(true);
    expect(locationAllowed(grant, 'US-NYC1')).toBe(true);
  });
});

describe("locationAllowed: a request's location against a grant", () => {
  test('codes are compared exactly: case and whitespace matter', () => {
    const grant = parseLocationGrant(['WH01', 'EU-*']);
    for (const code of ['wh01', 'WH01 ', ' WH01', 'eu-ams1', 'Eu-AMS1']) {
      expect(locationAllowed(grant, code)).toBe(false);
    }
  });

  test('a trailing * matches any rest, the empty one included ("EU-*" allows "EU-" itself)', () => {
    const grant = parseLocationGrant(['EU-*', 'WH01*']);
    expect(locationAllowed(grant, 'EU-')).toBe(true);
    expect(locationAllowed(grant, 'EU-AMS1-DOCK-7')).toBe(true);
    expect(locationAllowed(grant, 'WH01')).toBe(true);
    expect(locationAllowed(grant, 'WH012')).toBe(true);
    expect(locationAllowed(grant, 'XEU-AMS1')).toBe(false);
  });

  test('a code that is not a string is never allowed, even with *', () => {
    for (const code of [undefined, null, 42, ['WH01']] as unknown as string[]) {
      expect(locationAllowed(parseLocationGrant(['*']), code)).toBe(false);
    }
  });
});
