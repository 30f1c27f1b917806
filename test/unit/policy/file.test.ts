// One policy file of a live source (src/policy/file.ts): content equal to the served revision is known by its
// hash without parsing, new content is a candidate, and what cannot be read or parsed is a located problem.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fileSignature, PolicyFile } from '../../../src/policy/file.js';
import { formatProblem } from '../../../src/policy/index.js';
import { LIST_ROUTE, policy } from './fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'scopegate-file-'));

describe('PolicyFile.read', () => {
  it('new content is a candidate; once served, the same content again is unchanged; a change is a candidate', async () => {
    const path = join(dir, 'orders.yaml');
    writeFileSync(path, policy('', LIST_ROUTE));
    const file = new PolicyFile<string>(path, 10);
    const first = await file.read();
    expect(first.kind).toBe('candidate');
    if (first.kind !== 'candidate') return;
    expect(first.policy.name).toBe('orders');
    file.served = { policy: first.policy, value: 'served' };
    expect(await file.read()).toEqual({ kind: 'unchanged' });
    writeFileSync(path, `${policy('', LIST_ROUTE)}# edited\n`);
    expect((await file.read()).kind).toBe('candidate');
  });

  it('a file that cannot be read, or does not validate, is rejected with located problems', async () => {
    const missing = new PolicyFile<string>(join(dir, 'gone.yaml'), 10);
    const gone = await missing.read();
    expect(gone.kind === 'rejected' && gone.problems.map(formatProblem)).toEqual([
      `${join(dir, 'gone.yaml')}:1:1: cannot read the policy file (ENOENT)`,
    ]);
    const path = join(dir, 'broken.yaml');
    writeFileSync(path, 'version: 2\n');
    const broken = await new PolicyFile<string>(path, 10).read();
    expect(broken.kind === 'rejected' && broken.problems.map(formatProblem)[0]).toMatch(/broken\.yaml:1:1: /);
  });

  it('knows whether the file looks changed since its last read (path, inode, size, times)', async () => {
    const path = join(dir, 'watched.yaml');
    writeFileSync(path, policy('', LIST_ROUTE));
    const file = new PolicyFile<string>(path, 10);
    expect(await file.looksChanged()).toBe(true); // never read
    await file.read();
    expect(file.signature).toBe(await fileSignature(path));
    expect(await file.looksChanged()).toBe(false);
    writeFileSync(path, `${policy('', LIST_ROUTE)}# more\n`);
    expect(await file.looksChanged()).toBe(true);
  });
});
