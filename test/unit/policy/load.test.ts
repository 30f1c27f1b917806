// Loading a policy file from disk: real files in a temp dir, size caps before parsing, and YAML tricks
// (alias bombs, anchors) handled without surprises.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { formatProblem, loadPolicyFile, MAX_POLICY_BYTES, parsePolicy } from '../../../src/policy/index.js';
import { DESIGN_SAMPLE, LIST_ROUTE, policy, problemsOf } from './fixtures.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scopegate-policy-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('loadPolicyFile', () => {
  test('loads a valid file and resolves jwks.file next to it', async () => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, DESIGN_SAMPLE);
    const result = await loadPolicyFile(file);
    if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
    expect(result.policy.source).toBe(file);
    expect(result.policy.issuers[0]?.jwks).toEqual({ file: join(dir, 'jwks.json') });
  });

  test('problems name the file as it was given', async () => {
    const file = join(dir, 'typo.yaml');
    await writeFile(file, policy('', LIST_ROUTE).replace('version: 1', 'versoin: 1'));
    const result = await loadPolicyFile(file);
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      `${file}:1:1: versoin: unknown key "versoin"; did you mean "version"?`,
      `${file}:1:1: version: required key "version" is missing`,
    ]);
  });

  test('a missing file is a problem, not an exception', async () => {
    const file = join(dir, 'nope.yaml');
    const result = await loadPolicyFile(file);
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      `${file}:1:1: cannot read the policy file (ENOENT)`,
    ]);
  });

  test('a file over 1 MiB is refused before it is parsed', async () => {
    const file = join(dir, 'huge.yaml');
    const text = `${policy('', LIST_ROUTE)}${'#'.repeat(MAX_POLICY_BYTES)}\n`;
    await writeFile(file, text);
    const result = await loadPolicyFile(file);
    const size = Buffer.byteLength(text);
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      `${file}:1:1: the policy is ${size} bytes; the limit is 1048576 bytes (1 MiB)`,
    ]);
  });

  test('a file that is not UTF-8 is refused (no silent replacement characters in names)', async () => {
    const file = join(dir, 'latin1.yaml');
    await writeFile(
      file,
      Buffer.from(policy('', LIST_ROUTE).replace('list_transactions', 'list_\xe9'), 'latin1'),
    );
    const result = await loadPolicyFile(file);
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      `${file}:1:1: the policy file is not valid UTF-8`,
    ]);
  });
});

describe('parsePolicy', () => {
  test('text over 1 MiB is refused', () => {
    const text = `${policy('', LIST_ROUTE)}${'#'.repeat(MAX_POLICY_BYTES)}\n`;
    const result = parsePolicy(text, 'big.yaml');
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      `big.yaml:1:1: the policy is ${Buffer.byteLength(text)} bytes; the limit is 1048576 bytes (1 MiB)`,
    ]);
  });

  test('an alias bomb ("billion laughs") is refused quickly', () => {
    const levels = ['a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const name = String.fromCharCode(97 + i);
      levels.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(', ')}]`);
    }
    const started = process.cpuUsage();
    const result = parsePolicy(`${levels.join('\n')}\n`, 'bomb.yaml');
    const { user, system } = process.cpuUsage(started);
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      'bomb.yaml:2:8: invalid YAML: aliases expand too much (more than 50 uses of anchored content)',
    ]);
    // Generous, and CPU time, not wall time: the point is "does not expand 9^9 nodes", not a benchmark, and a
    // busy machine stretches wall time without adding any work (each test file is its own process).
    expect((user + system) / 1000).toBeLessThan(2000);
  });

  test('a few anchors and aliases for shared lists are fine', () => {
    const text = policy(
      '',
      `  - name: list_transactions
    method: &reads [GET, HEAD]
    path: /api/inventory/transactions
    permissions: &read [INV_TRANSACTION_READ]
  - name: get_transaction
    method: *reads
    path: /api/inventory/transactions/{id}
    permissions: *read
`,
    );
    const result = parsePolicy(text, 'policy.yaml');
    if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
    expect(result.policy.routes[1]?.methods).toEqual(['GET', 'HEAD']);
    expect(result.policy.routes[1]?.permissions).toEqual(['INV_TRANSACTION_READ']);
  });

  test('an alias to a node that contains it is refused', () => {
    const text = policy('', LIST_ROUTE).replace(
      'permissions: [INV_TRANSACTION_READ]',
      'permissions: &p [INV_TRANSACTION_READ, *p]',
    );
    const result = parsePolicy(text, 'policy.yaml');
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      'policy.yaml:15:44: alias "*p" refers to a node that contains it',
      'policy.yaml:15:44: routes[0].permissions[1]: expected a string, got an alias that cannot be used',
    ]);
  });

  test('a policy near 1 MiB full of typos is still checked quickly, every typo reported', () => {
    const scopes = Array.from({ length: 3000 }, (_, i) => `  scope.${i}: [PERM_${i}_READ]`).join('\n');
    const typos = Array.from({ length: 20_000 }, (_, i) => `PERM_${i % 3000}_RAED`);
    const text = `version: 1
authentication:
  envoyJwtAuthn: { metadataKey: jwt_payload }
scopes:
${scopes}
routes:
  - name: everything
    method: GET
    path: /
    permissions: [${typos.join(', ')}]
`;
    expect(Buffer.byteLength(text)).toBeLessThan(MAX_POLICY_BYTES);
    // CPU time, not wall time: the bound is against work that grows out of proportion (a suggestion search
    // per typo), and a busy machine stretches wall time without adding any (each test file is its own process).
    const started = process.cpuUsage();
    const result = parsePolicy(text, 'typos.yaml');
    const { user, system } = process.cpuUsage(started);
    expect((user + system) / 1000).toBeLessThan(5000);
    const problems = result.ok ? [] : result.problems;
    expect(problems).toHaveLength(20_000);
    expect(formatProblem(problems[0]!)).toBe(
      'typos.yaml:3009:19: routes[0].permissions[0]: unknown permission "PERM_0_RAED"; did you mean "PERM_0_READ"?',
    );
  });

  test('two YAML documents in one file are refused', () => {
    const result = parsePolicy(`${policy('', LIST_ROUTE)}---\nversion: 1\n`, 'policy.yaml');
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      'policy.yaml:16:1: invalid YAML: a policy file holds one YAML document; remove the "---" separator',
    ]);
  });

  test('an unknown YAML tag is refused rather than guessed at', () => {
    const result = parsePolicy(
      policy('', LIST_ROUTE).replace('version: 1', 'version: !custom 1'),
      'policy.yaml',
    );
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([
      'policy.yaml:1:10: invalid YAML: Unresolved tag: !custom',
    ]);
  });
});

describe('YAML mistakes are reported where they are', () => {
  test('invalid YAML is reported where the parser stopped', () => {
    const text = policy('', LIST_ROUTE).replace(
      'permissions: [INV_TRANSACTION_READ]',
      'permissions: [INV_TRANSACTION_READ',
    );
    const problems = problemsOf(text);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]).toMatch(/^policy\.yaml:16:1: invalid YAML: /);
  });

  test('a tab used for indentation is invalid YAML, at its line', () => {
    const text = policy('', LIST_ROUTE).replace('    method: GET', '\tmethod: GET');
    expect(problemsOf(text)[0]).toMatch(/^policy\.yaml:13:1: invalid YAML: /);
  });

  test('a key written twice is refused, naming where it was first', () => {
    const text = policy('', LIST_ROUTE).replace('    method: GET\n', '    method: GET\n    method: POST\n');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:14:5: routes[0].method: duplicate key "method" (first at line 13)',
    ]);
  });
});
