// The replay command's reading (src/review/replay-command.ts): lines split as they arrive, whatever the chunks,
// CRLF tolerated, a line longer than a record may be skipped to its end (bounded memory), stdin as `-`.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { tokenBasis } from '../../../src/record/basis.js';
import { MAX_RECORD_CHARS } from '../../../src/record/read.js';
import { LineSplitter, replayCommand } from '../../../src/review/replay-command.js';
import { compile, EXAMPLE_POLICY_FILE, examplePolicyText } from '../../support/policies.js';

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

describe('replayCommand: records of the same inputs', () => {
  const policy = compile(examplePolicyText(), EXAMPLE_POLICY_FILE);
  const issuer = 'https://dev-issuer.scopegate.local/';
  const record = {
    type: 'scopegate.decision',
    v: 1,
    time: '2026-12-05T10:00:00.000Z',
    request_id: 'r1',
    policy: 'inventory',
    revision: policy.revision,
    method: 'GET',
    path: '/api/inventory/transactions',
    token: {
      basis: tokenBasis(policy, issuer),
      issuer,
      subject: 'svc-inventory-sync',
      client: 'inventory-sync',
      grant_type: 'client_credentials',
      scopes: ['inventory.read'],
      roles: [],
      locations: [],
    },
    route: 'list_transactions',
    decision: 'deny',
    reason: 'scope_missing',
    dry_run: false,
    sampled_at: 1,
  };

  it('are each counted and decided on their own inputs, whatever the key order of the line', async () => {
    const { path: _path, ...rest } = record;
    // The same line after the request id as r1's, but its path (first here) names no route.
    const reordered = { path: '/api/inventory/nothing', ...rest, request_id: 'r4' };
    const lines = [
      record,
      { ...record, request_id: 'r2', time: '2026-12-05T11:00:00.000Z' },
      { ...record, request_id: 'r3', trace_id: '0af7651916cd43dd8448eb211c80319c' },
      reordered,
    ].map((r) => `${JSON.stringify(r)}\n`);
    const out: string[] = [];
    await replayCommand(['--policy', EXAMPLE_POLICY_FILE, '--json', '--examples', '10', '-'], {
      out: (t) => void out.push(t),
      err: () => {},
      usage: () => 2,
      stdin: Readable.from(lines),
    });
    const report = JSON.parse(out.join('\n'));
    expect(report.changes['deny-to-allow'].examples.map((e: { request_id: string }) => e.request_id)).toEqual(
      ['r1', 'r2', 'r3'],
    );
    expect(
      report.changes.reason.examples.map((e: { request_id: string; now: { reason: string } }) => [
        e.request_id,
        e.now.reason,
      ]),
    ).toEqual([['r4', 'route_unknown']]);
  });
});
