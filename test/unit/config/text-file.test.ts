// Reading a file a person wrote: real files in a temp dir, the cap enforced before and while reading, strict
// UTF-8, and problems that name nothing of the content.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { errorCode, readTextFile } from '../../../src/config/text-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'scopegate-text-file-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readTextFile', () => {
  test('reads a UTF-8 file up to the cap, the cap itself included', async () => {
    const file = join(dir, 'exact.yaml');
    await writeFile(file, 'name: josé\n');
    const bytes = Buffer.byteLength('name: josé\n');
    expect(await readTextFile(file, bytes)).toEqual({ ok: true, text: 'name: josé\n' });
  });

  test('a file one byte over the cap is refused with its size, before anything is read', async () => {
    const file = join(dir, 'over.yaml');
    await writeFile(file, 'x'.repeat(101));
    expect(await readTextFile(file, 100)).toEqual({ ok: false, problem: 'too_large', bytes: 101 });
  });

  test('a file whose size says nothing (a device) is still read no further than the cap', async () => {
    // /dev/zero stats as 0 bytes and never ends.
    expect(await readTextFile('/dev/zero', 1024)).toEqual({ ok: false, problem: 'too_large' });
  });

  test('a file whose size says nothing but that ends (/proc) is read whole, or refused past the cap', async () => {
    // /proc/self/cmdline stats as 0 bytes; this process's command line is some hundred bytes.
    const cmdline = readFileSync('/proc/self/cmdline', 'utf8');
    const bytes = Buffer.byteLength(cmdline);
    expect(await readTextFile('/proc/self/cmdline', 64 * 1024)).toEqual({ ok: true, text: cmdline });
    expect(await readTextFile('/proc/self/cmdline', bytes)).toEqual({ ok: true, text: cmdline });
    expect(await readTextFile('/proc/self/cmdline', bytes - 1)).toEqual({ ok: false, problem: 'too_large' });
  });

  test('a file larger than the cap by the time it is read is refused, at any cap', async () => {
    // /dev/urandom, like /dev/zero, stats as 0 bytes and never ends.
    for (const cap of [0, 1, 1000, 1024 * 1024]) {
      expect(await readTextFile('/dev/urandom', cap)).toEqual({ ok: false, problem: 'too_large' });
    }
  });

  test('invalid UTF-8 is refused, never turned into replacement characters', async () => {
    const file = join(dir, 'latin1.yaml');
    await writeFile(file, Buffer.from('name: caf\xe9\n', 'latin1'));
    expect(await readTextFile(file, 1024)).toEqual({ ok: false, problem: 'not_utf8' });
  });

  test('a missing file is a problem with its system code, not an exception', async () => {
    expect(await readTextFile(join(dir, 'nope.yaml'), 1024)).toEqual({
      ok: false,
      problem: 'unreadable',
      code: 'ENOENT',
    });
  });

  test('a directory is unreadable too', async () => {
    expect(await readTextFile(dir, 1024 * 1024)).toEqual({
      ok: false,
      problem: 'unreadable',
      code: 'EISDIR',
    });
  });

  test('a symlink is followed, as a ConfigMap mount needs', async () => {
    const target = join(dir, 'target.yaml');
    const link = join(dir, 'link.yaml');
    await writeFile(target, 'version: 1\n');
    await symlink(target, link);
    expect(await readTextFile(link, 1024)).toEqual({ ok: true, text: 'version: 1\n' });
  });

  test('an empty file is empty text', async () => {
    const file = join(dir, 'empty.yaml');
    await writeFile(file, '');
    expect(await readTextFile(file, 1024)).toEqual({ ok: true, text: '' });
  });
});

describe('errorCode', () => {
  test('the code of a system or library error, nothing for anything else', () => {
    expect(errorCode(Object.assign(new Error('x'), { code: 'EACCES' }))).toBe('EACCES');
    expect(errorCode({ code: 'ERR_JWT_EXPIRED' })).toBe('ERR_JWT_EXPIRED');
    expect(errorCode({ code: 42 })).toBeUndefined();
    expect(errorCode(new Error('no code'))).toBeUndefined();
    expect(errorCode('ENOENT')).toBeUndefined();
    expect(errorCode(null)).toBeUndefined();
  });
});
