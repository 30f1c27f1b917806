// The decision-record writer (src/telemetry/decision-records.ts): lines in order, size rotation keeping N
// files, allows sampled at the rate and denies always, a bounded queue that drops and counts, and a failing
// destination (a full disk: /dev/full) counted and logged once, never a throw.
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { DecisionRecord } from '../../../src/record/types.js';
import { DecisionRecords, recordsPathFor } from '../../../src/telemetry/decision-records.js';
import { captureLog } from '../../support/logs.js';

const record = (i: number): DecisionRecord => ({
  type: 'scopegate.decision',
  v: 1,
  time: '2026-12-05T10:00:00.000Z',
  request_id: `req-${i}`,
  revision: 'abc',
  method: 'GET',
  path: '/x',
  decision: 'deny',
  reason: 'token_missing',
  dry_run: false,
  sampled_at: 1,
});

function writer(destination: string, more: Partial<ConstructorParameters<typeof DecisionRecords>[0]> = {}) {
  const counts = { written: 0, dropped: 0, failed: 0 };
  const captured = captureLog('info');
  const records = new DecisionRecords({
    destination,
    allowRate: 1,
    maxFileBytes: 0,
    keepFiles: 2,
    log: captured.log,
    count: (result, n) => {
      counts[result] += n;
    },
    ...more,
  });
  return { records, counts, logged: captured.lines };
}

const lines = (file: string) => readFileSync(file, 'utf8').trim().split('\n');

describe('DecisionRecords', () => {
  it('writes one JSON line per record, in order, and counts them', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'records-')), 'decisions.jsonl');
    const { records, counts } = writer(file);
    for (let i = 0; i < 50; i++) records.write(record(i));
    await records.close();
    expect(lines(file).map((l) => JSON.parse(l).request_id)).toEqual(
      Array.from({ length: 50 }, (_, i) => `req-${i}`),
    );
    expect(counts).toEqual({ written: 50, dropped: 0, failed: 0 });
  });

  it('rotates by size: PATH.1 the newest, at most keepFiles kept, none larger than the limit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'records-'));
    const file = join(dir, 'decisions.jsonl');
    const size = JSON.stringify(record(0)).length + 1;
    const { records } = writer(file, { maxFileBytes: size * 3, keepFiles: 2 });
    // One record at a time, so each write sees the file as the last one left it.
    for (let i = 0; i < 10; i++) {
      records.write(record(i));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await records.close();
    expect(lines(file).map((l) => JSON.parse(l).request_id)).toEqual(['req-9']);
    expect(lines(`${file}.1`).map((l) => JSON.parse(l).request_id)).toEqual(['req-6', 'req-7', 'req-8']);
    expect(lines(`${file}.2`).map((l) => JSON.parse(l).request_id)).toEqual(['req-3', 'req-4', 'req-5']);
    expect(existsSync(`${file}.3`)).toBe(false);
    for (const f of [file, `${file}.1`, `${file}.2`]) expect(statSync(f).size).toBeLessThanOrEqual(size * 3);
  });

  it('samples allows at the rate and records every deny', () => {
    let next = 0;
    const random = () => [0.005, 0.5, 0.0099][next++ % 3]!;
    const { records } = writer('stdout', { allowRate: 0.01, random });
    expect([records.sample('allow'), records.sample('allow'), records.sample('allow')]).toEqual([
      0.01,
      undefined,
      0.01,
    ]);
    expect([records.sample('deny'), records.sample('dry_run_deny')]).toEqual([1, 1]);
    expect(writer('stdout', { allowRate: 0 }).records.sample('allow')).toBeUndefined();
  });

  it('over the queue bound, drops and counts: memory stays bounded when the disk is slow', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'records-')), 'decisions.jsonl');
    const size = JSON.stringify(record(0)).length + 1;
    const { records, counts } = writer(file, { maxPendingBytes: size * 10 });
    for (let i = 0; i < 100; i++) records.write(record(i)); // all in one turn: nothing written yet
    await records.close();
    expect(counts.dropped).toBe(90);
    expect(counts.written).toBe(10);
    expect(lines(file)).toHaveLength(10);
  });

  it.skipIf(!existsSync('/dev/full'))(
    'a full disk: every record counted as failed, one warning, no throw, writing retried later',
    async () => {
      const { records, counts, logged } = writer('/dev/full', { retryMs: 10 });
      for (let i = 0; i < 5; i++) records.write(record(i));
      await new Promise((resolve) => setTimeout(resolve, 50));
      for (let i = 0; i < 5; i++) records.write(record(i));
      await records.close();
      expect(counts).toEqual({ written: 0, dropped: 0, failed: 10 });
      const warnings = logged.filter((l) =>
        l.msg?.toString().startsWith('decision records could not be written'),
      );
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ level: 'warn', error: 'ENOSPC', decision_log: '/dev/full' });
    },
  );

  it('a record that cannot be built is counted as failed', () => {
    const { records, counts } = writer('stdout');
    records.failed(new Error('bug'));
    expect(counts.failed).toBe(1);
  });

  it('a worker of --workers N writes PATH.<worker>; stdout stays stdout', () => {
    expect(recordsPathFor('/var/log/d.jsonl', undefined)).toBe('/var/log/d.jsonl');
    expect(recordsPathFor('/var/log/d.jsonl', 3)).toBe('/var/log/d.jsonl.3');
    expect(recordsPathFor('stdout', 3)).toBe('stdout');
  });
});
