// The JSON body path a route's `location: { body: … }` is written in (`location`, `transaction.location`,
// `lines[].location`): its grammar, the steps it compiles to once when the policy loads, and the text a
// refusal names a step by (request/locations.ts formats the steps back).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileLocationSource, formatBodyPath, parseBodyPath } from '../../../src/policy/body-path.js';
import type { BodyPathStep } from '../../../src/policy/types.js';

describe('parseBodyPath: the grammar', () => {
  it('parseBodyPath', () => {
    expect(parseBodyPath('lines[].location')).toEqual([
      { key: 'lines', each: true },
      { key: 'location', each: false },
    ]);
    for (const bad of ['', 'a..b', '.a', 'a.', 'a[0]', 'a[]b', '[]', 'a[].[]'])
      expect(parseBodyPath(bad)).toBeUndefined();
  });

  it('one key, nested keys, and [] on any step but after a key', () => {
    expect(parseBodyPath('location')).toEqual([{ key: 'location', each: false }]);
    expect(parseBodyPath('transaction.location')).toEqual([
      { key: 'transaction', each: false },
      { key: 'location', each: false },
    ]);
    expect(parseBodyPath('locations[]')).toEqual([{ key: 'locations', each: true }]);
    expect(parseBodyPath('orders[].lines[].location')).toEqual([
      { key: 'orders', each: true },
      { key: 'lines', each: true },
      { key: 'location', each: false },
    ]);
  });

  it('a key is any JSON member name without ".", "[" or "]"', () => {
    expect(parseBodyPath('x-warehouse.$code')).toEqual([
      { key: 'x-warehouse', each: false },
      { key: '$code', each: false },
    ]);
    expect(parseBodyPath('lieu de stockage')).toEqual([{ key: 'lieu de stockage', each: false }]);
  });

  it('an array of arrays cannot be written: "a[][]" is not a body path', () => {
    for (const bad of ['a[][]', 'a[]]', 'a[[]', 'a]', 'a[', '[]a', '[].a']) {
      expect(parseBodyPath(bad)).toBeUndefined();
    }
  });
});

describe('formatBodyPath: steps back into the text the policy wrote', () => {
  it('writes each step, with [] where the step is a list', () => {
    expect(
      formatBodyPath([
        { key: 'lines', each: true },
        { key: 'location', each: false },
      ]),
    ).toBe('lines[].location');
    expect(formatBodyPath([{ key: 'lines', each: true }])).toBe('lines[]');
    expect(formatBodyPath([])).toBe('');
  });

  it('parse and format are inverse over every path the grammar accepts', () => {
    const key = fc.string({
      unit: fc.constantFrom('a', 'B', '-', '_', '$', ' ', 'é', '0'),
      minLength: 1,
      maxLength: 6,
    });
    const step = fc.record({ key, each: fc.boolean() });
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 5 }), (steps: BodyPathStep[]) => {
        const text = formatBodyPath(steps);
        expect(parseBodyPath(text)).toEqual(steps);
        expect(formatBodyPath(parseBodyPath(text) ?? [])).toBe(text);
      }),
      { numRuns: 2_000 },
    );
  });
});

describe('compileLocationSource: a validated source, its body path parsed once', () => {
  it('a body source carries its text and its steps', () => {
    expect(compileLocationSource({ body: 'lines[].location' })).toEqual({
      body: 'lines[].location',
      steps: [
        { key: 'lines', each: true },
        { key: 'location', each: false },
      ],
    });
  });

  it('path, query and header sources are copied as they are, never shared with the document', () => {
    for (const source of [{ path: 'location' }, { query: 'warehouse' }, { header: 'x-warehouse' }]) {
      const compiled = compileLocationSource(source);
      expect(compiled).toEqual(source);
      expect(compiled).not.toBe(source);
      expect(compiled).not.toHaveProperty('steps');
    }
  });

  it('a broken body path can never reach a Check: compiling it fails (validation refuses it first)', () => {
    expect(() => compileLocationSource({ body: 'lines[.location' })).toThrow(/invalid body path/);
  });

  it('the error names the path, since reaching it is a bug in validation', () => {
    for (const body of ['', 'a..b', 'a[0]']) {
      expect(() => compileLocationSource({ body })).toThrow(`invalid body path "${body}" passed validation`);
    }
  });
});
