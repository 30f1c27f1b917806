// `scopegate replay --policy CANDIDATE RECORDS.jsonl...`: re-decide recorded decisions under a candidate
// policy (a FILE or DIR, chosen per record as `serve` would) and report what changes. Streams each file line by
// line (`-` is stdin), so a million records take bounded memory. Exit 0 when nothing the `--fail-on` kinds
// name happened (default: any decision change), 3 when one did, 2 on a usage error, a candidate that is not
// a valid policy, or a file that cannot be read.
import { createReadStream } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import type { CommandIO } from '../explain/command.js';
import { formatProblem } from '../policy/index.js';
import { loadPolicySet } from '../policy/source.js';
import { MAX_RECORD_CHARS, readRecordLine } from '../record/read.js';
import { EXIT } from './diff-command.js';
import { replayRecord } from './replay.js';
import { FAIL_ON_KINDS, type FailOn, REPLAY_CHANGES, ReplayReport } from './report.js';

export interface ReplayIO extends CommandIO {
  /** Standard input, for the file name `-`. */
  readonly stdin?: Readable;
}

export async function replayCommand(args: string[], io: ReplayIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      policy: { type: 'string' },
      json: { type: 'boolean', default: false },
      'fail-on': { type: 'string', default: REPLAY_CHANGES.join(',') },
      examples: { type: 'string', default: '3' },
    },
    allowPositionals: true,
    strict: true,
  });
  if (!values.policy) return io.usage('replay needs --policy CANDIDATE (a policy FILE or DIR)');
  if (positionals.length === 0) return io.usage('replay needs at least one RECORDS file (- for stdin)');
  const failOn = values['fail-on'].split(',').map((kind) => kind.trim()) as FailOn[];
  const unknown = failOn.filter((kind) => !(FAIL_ON_KINDS as readonly string[]).includes(kind));
  if (unknown.length > 0)
    return io.usage(`--fail-on: unknown ${unknown.join(', ')}; one of ${FAIL_ON_KINDS.join(', ')}`);
  const examples = Number(values.examples);
  if (!Number.isInteger(examples) || examples < 0 || examples > 100)
    return io.usage('--examples: expected an integer 0..100');

  const { set, problems } = await loadPolicySet(values.policy);
  if (problems.length > 0 || set.size === 0) {
    for (const problem of problems) io.err(formatProblem(problem));
    if (problems.length === 0) io.err(`scopegate: ${values.policy}: no policy found`);
    return EXIT.usage;
  }

  const report = new ReplayReport(examples);
  const started = performance.now();
  for (const file of positionals) {
    const input =
      file === '-' ? io.stdin : createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20 });
    if (input === undefined) return io.usage('- (stdin) is not available here');
    try {
      for await (const { line, number, tooLong } of linesOf(input)) {
        report.lines++;
        const where = `${file}:${number}`;
        if (tooLong) {
          report.notRecord('unparsable', where, `longer than ${MAX_RECORD_CHARS} characters`);
          continue;
        }
        if (line.trim() === '') {
          report.lines--;
          continue;
        }
        const read = readRecordLine(line);
        if (!read.ok) report.notRecord(read.problem, where, read.detail);
        else report.add(read.record, replayRecord(read.record, set));
      }
    } catch (err) {
      io.err(
        `scopegate: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
      return EXIT.usage;
    }
  }
  report.seconds = (performance.now() - started) / 1000;
  io.out(values.json ? JSON.stringify(report, null, 2) : report.render(values.policy));
  return report.found(failOn) ? EXIT.changed : EXIT.same;
}

/**
 * The lines of a text stream, numbered from 1, each at most MAX_RECORD_CHARS long: a longer one is skipped to
 * its end and said to be too long, so no line can make the reader hold more than that.
 */
async function* linesOf(input: Readable): AsyncGenerator<{ line: string; number: number; tooLong: boolean }> {
  input.setEncoding('utf8');
  let carry = '';
  let skipping = false;
  let number = 0;
  for await (const chunk of input as AsyncIterable<string>) {
    let start = 0;
    for (let end = chunk.indexOf('\n'); end !== -1; end = chunk.indexOf('\n', start)) {
      number++;
      const piece = chunk.slice(start, end);
      start = end + 1;
      if (skipping || carry.length + piece.length > MAX_RECORD_CHARS) {
        skipping = false;
        carry = '';
        yield { line: '', number, tooLong: true };
        continue;
      }
      const line = carry + piece;
      carry = '';
      yield { line: line.endsWith('\r') ? line.slice(0, -1) : line, number, tooLong: false };
    }
    if (!skipping) {
      carry += chunk.slice(start);
      if (carry.length > MAX_RECORD_CHARS) {
        skipping = true;
        carry = '';
      }
    }
  }
  if (skipping) yield { line: '', number: number + 1, tooLong: true };
  else if (carry !== '') yield { line: carry, number: number + 1, tooLong: false };
}
