// `scopegate replay --policy CANDIDATE RECORDS.jsonl...`: re-decide recorded decisions under a candidate
// policy (a FILE or DIR, chosen per record as `serve` would) and report what changes. Streams each file line by
// line (`-` is stdin), so a million records take bounded memory. Exit 0 when nothing the `--fail-on` kinds
// name happened (default: any decision change), 3 when one did, 2 on a usage error, a candidate that is not
// a valid policy, or a file that cannot be read.
import { hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { LRUCache } from 'lru-cache';
import type { CommandIO } from '../explain/command.js';
import { formatProblem } from '../policy/index.js';
import { loadPolicySet } from '../policy/source.js';
import { MAX_RECORD_CHARS, readRecordLine } from '../record/read.js';
import type { DecisionRecord } from '../record/types.js';
import { EXIT } from './diff-command.js';
import { type Replayed, replayRecord } from './replay.js';
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
  const replayed = new SameInputs((record) => replayRecord(record, set));
  const started = performance.now();
  for (const file of positionals) {
    const input = file === '-' ? io.stdin : createReadStream(file, { highWaterMark: 1 << 20 });
    if (input === undefined) return io.usage('- (stdin) is not available here');
    const lines = new LineSplitter((line, number, tooLong) => {
      report.lines++;
      if (tooLong) {
        report.notRecord('unparsable', `${file}:${number}`, `longer than ${MAX_RECORD_CHARS} characters`);
        return;
      }
      if (line.trim() === '') {
        report.lines--;
        return;
      }
      const read = readRecordLine(line);
      if (!read.ok) report.notRecord(read.problem, `${file}:${number}`, read.detail);
      else report.add(read.record, replayed.of(line, read.record));
    });
    try {
      input.setEncoding('utf8');
      for await (const chunk of input as AsyncIterable<string>) lines.push(chunk);
      lines.end();
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
 * Records of the same inputs (one caller's repeated requests) replay alike: the outcome is kept per line as it
 * reads after its request id and trace id, the only fields that differ between them, and only for lines
 * written the way scopegate writes them (so that tail holds every input). Bounded.
 */
class SameInputs {
  private readonly kept = new LRUCache<string, Replayed>({ max: 10_000 });

  constructor(private readonly replay: (record: DecisionRecord) => Replayed) {}

  of(line: string, record: DecisionRecord): Replayed {
    const inputs = inputsOf(line, record);
    if (inputs === undefined) return this.replay(record);
    // Kept by digest: a slice of the line would hold on to the whole chunk it was read in.
    const key = hash('sha256', inputs, 'base64url');
    let replayed = this.kept.get(key);
    if (replayed === undefined) {
      replayed = this.replay(record);
      this.kept.set(key, replayed);
    }
    return replayed;
  }
}

/** The line after its type, version, time, request id and trace id, when it starts with exactly those. */
function inputsOf(line: string, record: DecisionRecord): string | undefined {
  const head =
    `{"type":${JSON.stringify(record.type)},"v":${record.v},"time":${JSON.stringify(record.time)},` +
    `"request_id":${JSON.stringify(record.request_id)},` +
    (record.trace_id === undefined ? '' : `"trace_id":${JSON.stringify(record.trace_id)},`);
  return line.startsWith(head) ? line.slice(head.length) : undefined;
}

/**
 * Splits text into numbered lines (from 1), handing each to `line` as it completes, synchronously: each at most
 * MAX_RECORD_CHARS long; a longer one is skipped to its end and said to be too long, so no line can make the
 * reader hold more than that.
 */
export class LineSplitter {
  private carry = '';
  private skipping = false;
  private number = 0;

  constructor(private readonly line: (text: string, number: number, tooLong: boolean) => void) {}

  push(chunk: string): void {
    let start = 0;
    for (let end = chunk.indexOf('\n'); end !== -1; end = chunk.indexOf('\n', start)) {
      this.number++;
      const piece = chunk.slice(start, end);
      start = end + 1;
      if (this.skipping || this.carry.length + piece.length > MAX_RECORD_CHARS) {
        this.skipping = false;
        this.carry = '';
        this.line('', this.number, true);
        continue;
      }
      const text = this.carry === '' ? piece : this.carry + piece;
      this.carry = '';
      this.line(text.endsWith('\r') ? text.slice(0, -1) : text, this.number, false);
    }
    if (this.skipping) return;
    this.carry += chunk.slice(start);
    if (this.carry.length > MAX_RECORD_CHARS) {
      this.skipping = true;
      this.carry = '';
    }
  }

  /** The last line, when the text did not end with a newline. */
  end(): void {
    if (this.skipping) this.line('', this.number + 1, true);
    else if (this.carry !== '') this.line(this.carry, this.number + 1, false);
    this.carry = '';
    this.skipping = false;
  }
}
