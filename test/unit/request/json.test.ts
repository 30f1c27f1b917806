// Security rule 4's JSON reader. JSON.parse keeps the last of two equal keys, so the same body could be
// authorised for WH01 and stored for WH99; this reader refuses it, and never recurses on the JS stack.
import { describe, expect, it } from 'vitest';
import { parseStrictJson } from '../../../src/request/json.js';

function problemOf(text: string, limits = {}): string {
  const result = parseStrictJson(text, limits);
  if (result.ok) throw new Error(`expected a problem for ${JSON.stringify(text.slice(0, 40))}`);
  return result.problem;
}

describe('parseStrictJson reads what JSON.parse reads', () => {
  it.each([
    '{"location":"WH01","quantity":3}',
    '{"lines":[{"location":"WH01"},{"location":"WH02"}],"note":null,"ok":true,"no":false}',
    '  [1, -2.5, 3e2, 4E-2, 0, -0, 1.5e+3]  ',
    '"a string with \\"escapes\\" \\\\ \\/ \\b\\f\\n\\r\\t \\u00e9 \\ud83d\\ude00"',
    '42',
    'null',
    '{}',
    '[]',
    '[[],{},[{}]]',
    '{"":"empty key","a":{"a":{"a":1}}}',
    '{"same":1,"nested":{"same":2},"list":[{"same":3},{"same":4}]}',
    '\t\n\r {"ws" \n : \t 1 }',
  ])('%s', (text) => {
    const result = parseStrictJson(text);
    expect(result.ok).toBe(true);
    // JSON.parse is the oracle for inputs with no duplicate keys.
    expect(result.ok && JSON.stringify(result.value)).toBe(JSON.stringify(JSON.parse(text)));
  });
});

describe('parseStrictJson refuses what would be read two ways', () => {
  it('refuses a duplicate key at the top level, naming the key', () => {
    const text = '{"location":"WH01","location":"WH99"}';
    expect(problemOf(text)).toContain('duplicate key "location"');
    // The danger in one line: JSON.parse quietly takes the second value.
    expect(JSON.parse(text).location).toBe('WH99');
  });

  it('refuses a duplicate key nested in an array of objects', () => {
    expect(
      problemOf('{"lines":[{"location":"WH01"},{"location":"WH01","sku":"A","location":"WH99"}]}'),
    ).toContain('duplicate key "location"');
  });

  it('refuses duplicates that only differ in how they are escaped', () => {
    expect(problemOf('{"location":"WH01","loc\\u0061tion":"WH99"}')).toContain('duplicate key "location"');
  });

  it('does not show a duplicate key that does not look like a field name', () => {
    const problem = problemOf('{"Bearer eyJhbGci secret":1,"Bearer eyJhbGci secret":2}');
    expect(problem).toContain('duplicate key');
    expect(problem).not.toContain('secret');
  });

  it('builds objects without a prototype, so __proto__ is only a key', () => {
    const result = parseStrictJson('{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}}}');
    expect(result.ok).toBe(true);
    const value = (result.ok ? result.value : {}) as Record<string, unknown>;
    expect(Object.getPrototypeOf(value)).toBeNull();
    expect(Object.hasOwn(value, '__proto__')).toBe(true);
    expect(Object.getOwnPropertyDescriptor(value, '__proto__')?.value).toEqual({ polluted: true });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(problemOf('{"__proto__":1,"__proto__":2}')).toContain('duplicate key "__proto__"');
  });
});

describe('parseStrictJson is bounded', () => {
  it('refuses 100,000 levels of nesting quickly, without a stack overflow', () => {
    for (const text of [
      '['.repeat(100_000) + ']'.repeat(100_000),
      '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000),
    ]) {
      const started = performance.now();
      expect(problemOf(text)).toContain('deeper than 64 levels');
      expect(performance.now() - started).toBeLessThan(100);
    }
  });

  it('reads 64 levels and refuses 65', () => {
    expect(parseStrictJson('['.repeat(64) + ']'.repeat(64)).ok).toBe(true);
    expect(problemOf('['.repeat(65) + ']'.repeat(65))).toContain('deeper than 64 levels');
    expect(parseStrictJson('[[[1]]]', { maxDepth: 2 }).ok).toBe(false);
  });

  it('refuses text over 1 MiB, counted in UTF-8 bytes', () => {
    // Four strings of 256 KiB (the longest string) and the punctuation around them: exactly 1 MiB.
    const quarter = 256 * 1024;
    const justFits = `["${'x'.repeat(quarter - 4)}","${'x'.repeat(quarter - 3)}","${'x'.repeat(quarter - 3)}","${'x'.repeat(quarter - 3)}"]`;
    expect(justFits.length).toBe(1024 * 1024);
    expect(parseStrictJson(justFits).ok).toBe(true);
    expect(problemOf(`"${'x'.repeat(1024 * 1024)}"`)).toContain('larger than 1048576 bytes');
    expect(problemOf(`"${'é'.repeat(600_000)}"`)).toContain('larger than');
  });

  it('refuses a string longer than 256 Ki characters as written, escaped or not, and reads one that long', () => {
    const longest = 256 * 1024;
    expect(parseStrictJson(`"${'x'.repeat(longest)}"`).ok).toBe(true);
    expect(problemOf(`"${'x'.repeat(longest + 1)}"`)).toContain('a string is longer than 262144 characters');
    expect(problemOf(`"${'\\u00e9'.repeat(longest / 6 + 1)}"`)).toContain('a string is longer than');
  });

  it('refuses an object with more than 10,000 keys, and reads one with 10,000', () => {
    const keys = (n: number) => `{${Array.from({ length: n }, (_, i) => `"k${i}":1`).join(',')}}`;
    expect(parseStrictJson(keys(10_000)).ok).toBe(true);
    expect(problemOf(keys(10_001))).toContain('an object has more than 10000 keys');
  });

  it('reads escapes in long strings the way JSON.parse does, and still refuses a lone surrogate among them', () => {
    const text = `"${'a\\u00e9\\"\\\\\\n'.repeat(5000)}"`;
    expect(parseStrictJson(text)).toEqual({ ok: true, value: JSON.parse(text) });
    expect(problemOf(`"${'\\u00e9'.repeat(5000)}\\ud800x"`)).toContain('an unpaired surrogate escape');
  });

  it('refuses a number literal longer than 64 characters, and one out of range', () => {
    expect(parseStrictJson(`[${'1'.repeat(64)}]`).ok).toBe(true);
    expect(problemOf(`[${'1'.repeat(65)}]`)).toContain('longer than 64 characters');
    expect(problemOf('[1e400]')).toContain('out of range');
  });
});

describe('parseStrictJson refuses invalid JSON with an offset, never the text', () => {
  it.each([
    ['', 'empty'],
    ['   ', 'empty'],
    ['\uFEFF{"location":"WH01"}', 'byte order mark'],
    ['{', 'unexpected end'],
    ['{"a":1', 'unexpected end'],
    ['{"a":', 'unexpected end'],
    ['[1,', 'unexpected end'],
    ['{"a":1,}', 'expected a string key'],
    ['[1,]', 'unexpected character'],
    ["{'a':1}", 'expected a string key'],
    ['{"a" 1}', "expected ':'"],
    ['[1 2]', "expected ',' or ']'"],
    ['{"a":1 "b":2}', "expected ',' or '}'"],
    ['1 2', 'unexpected text after the JSON value'],
    ['{"a":1}}', 'unexpected text after the JSON value'],
    ['01', 'unexpected text after the JSON value'],
    ['1.', 'unexpected text after the JSON value'],
    ['.5', 'unexpected character'],
    ['+1', 'unexpected character'],
    ['-', 'invalid number'],
    ['NaN', 'unexpected character'],
    ['Infinity', 'unexpected character'],
    ['tru', 'unexpected character'],
    ['"abc', 'unterminated string'],
    ['"a\u0001b"', 'control character inside a string'],
    ['"a\nb"', 'control character inside a string'],
    ['"\\x41"', 'invalid escape'],
    ['"\\u12G4"', 'invalid \\u escape'],
    ['"\\ud800"', 'unpaired surrogate'],
    ['"\\udc00"', 'unpaired surrogate'],
    ['"\\ud800\\u0041"', 'unpaired surrogate'],
    ['[1]\u00a0', 'unexpected text'],
  ])('%j: %s', (text, problem) => {
    const found = problemOf(text);
    expect(found).toContain(problem);
    expect(found).toMatch(problem === 'empty' || problem === 'byte order mark' ? /./ : /at offset \d+/);
  });

  it('says where, not what: a secret in a broken body stays out of the problem', () => {
    const problem = problemOf('{"password":"s3cr3t-hunter2", oops}');
    expect(problem).toMatch(/offset 30/);
    expect(problem).not.toContain('s3cr3t');
  });
});
