// The replay command's reading (src/review/replay-command.ts): lines split as they arrive, whatever the chunks,
// CRLF tolerated, a line longer than a record may be skipped to its end (bounded memory), stdin as `-`.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { MAX_RECORD_CHARS } from '../../../src/record/read.js';
import { LineSplitter, replayCommand } from '../../../src/review/replay-command.js';
import { EXAMPLE_POLICY_FILE } from '../../support/policies.js';

function split(chunks: string[]) {
  const lines: Array<[string, number, boolean]> = [];
  const splitter = new LineSplitter((text, number, tooLong) => void lines.push([text, number, tooLong]));
  for (const chunk of chunks) splitter.push(chunk);
  splitter.end();
  return lines;
}

describe('LineSplitter', () => {
  it('splits across chunks, numbers from 1, drops a CR, keeps a last line without a newline', () => {
    expect(split(['a\nb', 'c\r\n', '\nd'])).toEqual([
      ['a', 1, false],
      ['bc', 2, false],
      ['', 3, false],
      ['d', 4, false],
    ]);
  });

  it('a line longer than a record is reported too long, never held whole', () => {
    const long = 'x'.repeat(MAX_RECORD_CHARS);
    expect(split(['ok\n', long, long, '\nnext\n'])).toEqual([
      ['ok', 1, false],
      ['', 2, true],
      ['next', 3, false],
    ]);
    expect(split([long, 'x'])).toEqual([['', 1, true]]);
  });
});

describe('replayCommand', () => {
  it('reads stdin as -, and counts what is not a record', async () => {
    const out: string[] = [];
    const code = await replayCommand(['--policy', EXAMPLE_POLICY_FILE, '--json', '-'], {
      out: (t) => void out.push(t),
      err: () => {},
      usage: () => 2,
      stdin: Readable.from(['{"level":"info"}\n', 'not json\n']),
    });
    expect(code).toBe(0);
    const report = JSON.parse(out.join('\n'));
    expect([
      report.lines,
      report.records,
      report.not_records.foreign.count,
      report.not_records.unparsable.count,
    ]).toEqual([2, 0, 1, 1]);
  });
});
