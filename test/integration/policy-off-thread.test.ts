// Large policies are parsed on a worker thread while the server keeps answering (src/policy/load.ts,
// loadPolicyFileOffThread). The worker runs compiled code, so this test loads the built module from dist/
// (test/global-setup.ts builds it): the same code `scopegate serve` runs.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/config/problems.js';
import type * as Load from '../../src/policy/load.js';

const built = (await import(new URL('../../dist/policy/load.js', import.meta.url).href)) as typeof Load;

/** A policy well above the off-thread threshold: n routes and n subjects. */
function largePolicy(n: number, brokenAt?: number): string {
  const lines = [
    'version: 1',
    'authentication:',
    '  issuers: [{ issuer: "https://idp.example/", audiences: [api], jwks: { uri: "https://idp.example/jwks" }, algorithms: [RS256] }]',
    'scopes: { read: [P] }',
    'roles: { R: [P] }',
    'subjects:',
  ];
  for (let i = 0; i < n; i++) lines.push(`  s${i}: {roles: [R]}`);
  lines.push('routes:');
  for (let i = 0; i < n; i++) {
    const field = i === brokenAt ? 'permisions' : 'permissions';
    lines.push(`  - {name: r${i}, method: GET, path: "/r${i}/{id}", ${field}: [P]}`);
  }
  return `${lines.join('\n')}\n`;
}

function write(text: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'scopegate-off-thread-')), 'policy.yaml');
  writeFileSync(file, text);
  return file;
}

describe('loadPolicyFileOffThread', () => {
  it('compiles a large policy on a worker thread to the same revision and routes as in place', async () => {
    const text = largePolicy(3_000);
    expect(text.length).toBeGreaterThan(built.OFF_THREAD_BYTES);
    const file = write(text);
    // While the worker parses, this thread's event loop keeps turning: hundreds of thousands of turns, where
    // parsing in place allows only the ~150 of reading the file.
    let turns = 0;
    let spinning = true;
    const spin = () => {
      turns++;
      if (spinning) setImmediate(spin);
    };
    setImmediate(spin);
    const offThread = await built.loadPolicyFileOffThread(file);
    spinning = false;
    expect(turns).toBeGreaterThan(5_000);
    const inPlace = built.parsePolicy(text, file);
    if (!offThread.ok || !inPlace.ok) throw new Error('both should load');
    expect(offThread.policy.revision).toBe(inPlace.policy.revision);
    expect(offThread.policy.routes.map((r) => r.name)).toEqual(inPlace.policy.routes.map((r) => r.name));
    expect(offThread.policy.matchRoute('GET', '/r2999/7')?.route.name).toBe('r2999');
    expect(offThread.policy.subjects.get(undefined, 's2999')?.roles).toEqual(
      inPlace.policy.subjects.get(undefined, 's2999')?.roles,
    );
  });

  it('reports a large broken policy with the same FILE:LINE:COL problems', async () => {
    const text = largePolicy(3_000, 2_500);
    const file = write(text);
    const offThread = await built.loadPolicyFileOffThread(file);
    const inPlace = built.parsePolicy(text, file);
    expect(offThread.ok).toBe(false);
    expect(inPlace.ok).toBe(false);
    if (offThread.ok || inPlace.ok) return;
    expect(offThread.problems.map(formatProblem)).toEqual(inPlace.problems.map(formatProblem));
    expect(offThread.problems.map(formatProblem).join('\n')).toMatch(/policy\.yaml:\d+:\d+: .*permisions/);
  });
});
