// YAML with positions: every problem at the exact key or value, aliases bounded and followed (or not), and
// typed readers that report what they find wrong instead of throwing. Positions were counted by hand.

import { describe, expect, test } from 'vitest';
import { isMap, type Node } from 'yaml';
import { formatProblem } from '../../../src/config/problems.js';
import { aliasExpansionProblem, MAX_ALIAS_COUNT, parseYaml, YamlReader } from '../../../src/config/yaml.js';

/** A reader over `text` (which must be valid YAML), and the document's root node. */
function read(text: string, followAliases = true) {
  const parsed = parseYaml(text, { uniqueKeys: false });
  expect(parsed.errors).toEqual([]);
  const reader = new YamlReader(parsed, 'f.yaml', { followAliases });
  return {
    reader,
    root: parsed.doc.contents as Node | null,
    problems: () => reader.problems.map(formatProblem),
  };
}

describe('parseYaml', () => {
  test("a syntax error is located where the parser stopped, with yaml's code", () => {
    const { errors, lineCounter } = parseYaml('a: [1, 2\nb: 3\n', { uniqueKeys: true });
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]!.code).toMatch(/^[A-Z_]+$/);
    expect(lineCounter.linePos(errors[0]!.offset).line).toBeGreaterThanOrEqual(1);
  });

  test("duplicate keys are yaml's error only when asked", () => {
    expect(parseYaml('a: 1\na: 2\n', { uniqueKeys: true }).errors.map((e) => [e.code, e.offset])).toEqual([
      ['DUPLICATE_KEY', 5],
    ]);
    expect(parseYaml('a: 1\na: 2\n', { uniqueKeys: false }).errors).toEqual([]);
  });

  test('warnings count too: an unknown tag is not guessed at', () => {
    expect(parseYaml('a: !custom 1\n', { uniqueKeys: true }).errors.map((e) => e.message)).toEqual([
      'Unresolved tag: !custom',
    ]);
  });
});

describe('aliasExpansionProblem', () => {
  test('an alias bomb ("billion laughs") is refused at the first alias, quickly', () => {
    const levels = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 9; i++) {
      const [prev, name] = [String.fromCharCode(96 + i), String.fromCharCode(97 + i)];
      levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    }
    const { doc, lineCounter } = parseYaml(`${levels.join('\n')}\n`, { uniqueKeys: true });
    // CPU time, not wall time: the bound is against expanding 9^9 nodes, and a busy machine stretches wall
    // time without adding any work (each test file is its own process).
    const started = process.cpuUsage();
    const problem = aliasExpansionProblem(doc);
    const { user, system } = process.cpuUsage(started);
    expect((user + system) / 1000).toBeLessThan(2000);
    expect(problem?.message).toBe(
      `aliases expand too much (more than ${MAX_ALIAS_COUNT} uses of anchored content)`,
    );
    // `*a`, the first alias: line 2, column 8.
    expect(lineCounter.linePos(problem!.offset)).toEqual({ line: 2, col: 8 });
  });

  test('an alias naming no anchor cannot be resolved', () => {
    const { doc } = parseYaml('a: 1\nb: *nowhere\n', { uniqueKeys: true });
    expect(aliasExpansionProblem(doc)).toEqual({
      offset: 8,
      message: expect.stringMatching(/^aliases could not be resolved \(.*nowhere/),
    });
  });

  test('a few aliases sharing a list are fine', () => {
    const { doc } = parseYaml('a: &reads [GET, HEAD]\nb: *reads\nc: *reads\n', { uniqueKeys: true });
    expect(aliasExpansionProblem(doc)).toBeUndefined();
  });
});

describe('YamlReader: sections and entries', () => {
  test('an unknown key suggests the closest known one, at the key, and a missing required key is named', () => {
    const { reader, root, problems } = read('route:\n  nmae: a\n  permision: [X]\n');
    const route = reader.section(root, '', { route: true })?.route;
    const s = reader.section(route!.value, 'route', { name: true, permissions: true, mode: false });
    expect(s).toEqual({});
    expect(problems()).toEqual([
      'f.yaml:2:3: route.nmae: unknown key "nmae"; expected one of name, permissions, mode',
      'f.yaml:3:3: route.permision: unknown key "permision"; did you mean "permissions"?',
      'f.yaml:2:3: route.name: required key "name" is missing',
      'f.yaml:2:3: route.permissions: required key "permissions" is missing',
    ]);
  });

  test('a duplicate key is reported at the second, naming the line of the first; the first value is kept', () => {
    const { reader, root, problems } = read('a: 1\nb: 2\na: 3\n');
    expect(reader.entries(root, '')?.map((e) => e.key)).toEqual(['a', 'b']);
    expect(problems()).toEqual(['f.yaml:3:1: a: duplicate key "a" (first at line 1)']);
    expect([...reader.duplicateKeyOffsets]).toEqual([10]);
  });

  test('keys must be non-empty strings', () => {
    const { reader, root, problems } = read('1: a\n"": b\nok: c\n');
    expect(reader.entries(root, 'top')?.map((e) => e.key)).toEqual(['ok']);
    expect(problems()).toEqual([
      'f.yaml:1:1: top: a key must be a non-empty string, got the number 1 (quote it)',
      'f.yaml:2:1: top: a key must be a non-empty string, got an empty string (quote it)',
    ]);
  });

  test('a map where something else is written says what was found', () => {
    const { reader, root, problems } = read('- a\n');
    expect(reader.entries(root, 'scopes')).toBeUndefined();
    expect(problems()).toEqual(['f.yaml:1:1: scopes: expected a map, got a list']);
  });

  test('field paths quote keys that are not plain names', () => {
    const { reader, root, problems } = read('scopes:\n  inventory.read: 1\n');
    const scopes = reader.entries(root, '')![0]!;
    const [entry] = reader.entries(scopes.value, 'scopes')!;
    reader.stringList(entry!.value, 'scopes["inventory.read"]');
    expect(problems()).toEqual(['f.yaml:2:19: scopes["inventory.read"]: expected a list, got the number 1']);
  });
});

describe('YamlReader: positions', () => {
  test('a problem at a node is at its first character; at an offset, where the offset falls', () => {
    const { reader, root, problems } = read('a: 1\nlist:\n  - x\n');
    const [, list] = reader.entries(root, '')!;
    reader.report(reader.list(list!.value, 'list')![0], 'list[0]', 'at the item');
    reader.reportAt(5, 'list', 'at the key');
    reader.report(null, '', 'about the whole file');
    expect(problems()).toEqual([
      'f.yaml:3:5: list[0]: at the item',
      'f.yaml:2:1: list: at the key',
      'f.yaml:1:1: about the whole file',
    ]);
  });
});

describe('YamlReader: values', () => {
  const written = (text: string) => {
    const r = read(`v: ${text}\n`);
    return { ...r, value: r.reader.entries(r.root, '')![0]!.value };
  };

  test('stringList: each item located, repeats and non-strings reported', () => {
    const { reader, value, problems } = written('[a, b, a]');
    expect(reader.stringList(value, 'v', { unique: true })).toEqual([
      { value: 'a', node: expect.anything(), field: 'v[0]' },
      { value: 'b', node: expect.anything(), field: 'v[1]' },
    ]);
    expect(problems()).toEqual(['f.yaml:1:11: v[2]: "a" is listed twice']);

    const bad = written('[a, 2, ""]');
    expect(bad.reader.stringList(bad.value, 'v')).toBeUndefined();
    expect(bad.problems()).toEqual([
      'f.yaml:1:8: v[1]: expected a string, got the number 2',
      'f.yaml:1:11: v[2]: must not be empty',
    ]);

    const empty = written('[]');
    expect(empty.reader.stringList(empty.value, 'v', { nonEmpty: true })).toBeUndefined();
    expect(empty.problems()).toEqual(['f.yaml:1:4: v: the list must not be empty']);
  });

  test('integer: a whole number within bounds, or what was found', () => {
    const ok = written('30');
    expect(ok.reader.integer(ok.value, 'v', 0, 300)).toBe(30);
    for (const [text, found] of [
      ['301', '301'],
      ['1.5', '1.5'],
      ['"30"', '"30"'],
      ['true', 'true'],
      ['[1]', 'a list'],
    ]) {
      const r = written(text!);
      expect(r.reader.integer(r.value, 'v', 0, 300)).toBeUndefined();
      expect(r.problems()).toEqual([`f.yaml:1:4: v: expected a whole number from 0 to 300, got ${found}`]);
    }
  });

  test('url: http(s) only, named as the caller names it', () => {
    const ok = written('https://idp.example.com/jwks.json');
    expect(ok.reader.url(ok.value, 'v', 'jwks uri')).toBe('https://idp.example.com/jwks.json');
    const bad = written('file:///etc/jwks.json');
    expect(bad.reader.url(bad.value, 'v', 'jwks uri')).toBeUndefined();
    expect(bad.problems()).toEqual([
      'f.yaml:1:4: v: jwks uri must be an http(s) URL, got "file:///etc/jwks.json"',
    ]);
  });

  test('string: nothing, blanks and non-strings are each named', () => {
    for (const [text, message] of [
      ['', 'expected a string, got nothing'],
      ['"  "', 'must not be empty'],
      ['{ a: 1 }', 'expected a string, got a map'],
      ['false', 'expected a string, got false'],
    ]) {
      const r = written(text!);
      expect(r.reader.string(r.value, 'v')).toBeUndefined();
      expect(r.problems()).toHaveLength(1);
      expect(r.problems()[0]).toMatch(new RegExp(`^f\\.yaml:1:\\d+: v: ${message}$`));
    }
  });
});

describe('YamlReader: aliases', () => {
  test('followed: an alias reads as the node its anchor names', () => {
    const { reader, root, problems } = read('a: &reads [GET, HEAD]\nb: *reads\n');
    const [, b] = reader.entries(root, '')!;
    expect(reader.stringList(b!.value, 'b')?.map((x) => x.value)).toEqual(['GET', 'HEAD']);
    expect(problems()).toEqual([]);
  });

  test('an alias inside the node it names is refused, and reads as nothing usable', () => {
    const { reader, root, problems } = read('p: &p [a, *p]\n');
    const [p] = reader.entries(root, '')!;
    expect(reader.stringList(p!.value, 'p')).toBeUndefined();
    expect(problems()).toEqual([
      'f.yaml:1:11: alias "*p" refers to a node that contains it',
      'f.yaml:1:11: p[1]: expected a string, got an alias that cannot be used',
    ]);
  });

  test('plainData: a map or list as plain data, with its aliases expanded', () => {
    const { reader, root } = read('base: &b { location: WH01 }\nbody: { lines: [*b, *b] }\n');
    const [, body] = reader.entries(root, '')!;
    const node = reader.deref(body!.value);
    if (!isMap(node)) throw new Error('expected a map');
    expect(reader.plainData(node)).toEqual({ lines: [{ location: 'WH01' }, { location: 'WH01' }] });
  });

  test('not followed: an alias is itself and fits no shape', () => {
    const { reader, root, problems } = read('a: &x hello\nb: *x\n', false);
    const [, b] = reader.entries(root, '')!;
    expect(reader.string(b!.value, 'b')).toBeUndefined();
    expect(problems()).toEqual(['f.yaml:2:4: b: expected a string, got an alias that cannot be used']);
  });
});
