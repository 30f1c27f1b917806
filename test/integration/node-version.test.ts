// `scopegate` (and so `npm start`, which runs it) on an unsupported Node.js: one line on stderr, exit 1, and
// nothing else done: the `keys` command that would create a key pair creates nothing. The running Node.js is
// made to report an old version by a preload (test/support/fake-node-version.cjs); the same preload with a
// supported version shows the command works, so the refusal is the version's doing.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { unsupportedNodeMessage } from '../../bin/node-support.js';
import { BIN, ROOT } from '../support/process.js';

const PRELOAD = fileURLToPath(new URL('../support/fake-node-version.cjs', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'scopegate-node-version-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** `node --require PRELOAD bin/scopegate.js ARGS` reporting Node.js `version`. */
function scopegateOn(version: string, args: string[]) {
  const result = spawnSync(process.execPath, ['--require', PRELOAD, BIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, FAKE_NODE_VERSION: version },
    timeout: 20_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('scopegate on an unsupported Node.js', () => {
  it('the preload makes node report the version it is given', () => {
    const result = spawnSync(process.execPath, ['--require', PRELOAD, '-p', 'process.version'], {
      encoding: 'utf8',
      env: { ...process.env, FAKE_NODE_VERSION: '18.20.8' },
    });
    expect(result.stdout.trim()).toBe('v18.20.8');
  });

  it.each(['18.20.8', '20.18.3', '21.7.3'])('on %s: one line, exit 1, and no key pair created', (version) => {
    const keys = join(scratch, `keys-${version}`);
    const result = scopegateOn(version, ['keys', keys]);
    expect(result.stderr).toBe(`${unsupportedNodeMessage(version)}\n`);
    expect(result.stdout).toBe('');
    expect(result.code).toBe(1);
    expect(existsSync(keys)).toBe(false);
  });

  it('on a supported version the same command creates the key pair', () => {
    const keys = join(scratch, 'keys-supported');
    const result = scopegateOn('20.19.0', ['keys', keys]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(existsSync(keys)).toBe(true);
  });
});
