// `explain --claims FILE`: the claims file is read like every file a person gives scopegate, capped and
// strictly UTF-8, and a file that cannot be used is a usage error (exit 2) that says why, never its content.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { explainCommand, MAX_CLAIMS_BYTES } from '../../../src/explain/command.js';

const dir = mkdtempSync(join(tmpdir(), 'scopegate-claims-'));

/** The usage message explain gives for `--claims file` (before any policy is read). */
async function usageFor(file: string): Promise<{ code: number; messages: string[] }> {
  const messages: string[] = [];
  const code = await explainCommand(
    ['--policy', join(dir, 'not-read.yaml'), '--claims', file, '--path', '/x'],
    {
      out: () => {},
      err: (text) => messages.push(text),
      usage: (message) => {
        messages.push(message);
        return 2;
      },
    },
  );
  return { code, messages };
}

describe('explain --claims FILE', () => {
  test('a missing file names the system error and what to give instead', async () => {
    expect(await usageFor(join(dir, 'nope.json'))).toEqual({
      code: 2,
      messages: ['--claims: cannot read the file (ENOENT); give a file or inline JSON'],
    });
  });

  test('a file over the cap is refused', async () => {
    const file = join(dir, 'big.json');
    writeFileSync(file, `{"sub":"${'x'.repeat(MAX_CLAIMS_BYTES)}"}`);
    expect(await usageFor(file)).toEqual({
      code: 2,
      messages: [`--claims file is larger than ${MAX_CLAIMS_BYTES} bytes`],
    });
  });

  test('a file that is not UTF-8 is refused, not read with replacement characters', async () => {
    const file = join(dir, 'latin1.json');
    writeFileSync(file, Buffer.from('{"sub":"jos\xe9"}', 'latin1'));
    expect(await usageFor(file)).toEqual({ code: 2, messages: ['--claims file is not valid UTF-8'] });
  });

  test('a file that is not a JSON object says so', async () => {
    const file = join(dir, 'list.json');
    writeFileSync(file, '[1, 2]');
    expect(await usageFor(file)).toEqual({ code: 2, messages: ['--claims must be a JSON object of claims'] });
  });
});
