// What a replay found (src/review/report.ts): how a recorded outcome and a replayed one differ, counted by
// kind, route, caller and reason, weighted by sampling, with examples; tables bounded.
import { describe, expect, it } from 'vitest';
import type { DecisionRecord } from '../../../src/record/types.js';
import { changeOf, ReplayReport } from '../../../src/review/report.js';
import type { Decision } from '../../../src/vocabulary/index.js';

const record = (more: Partial<DecisionRecord> = {}): DecisionRecord => ({
  type: 'scopegate.decision',
  v: 1,
  time: '2026-12-05T10:00:00.000Z',
  request_id: 'r',
  policy: 'inventory',
  revision: 'abc',
  method: 'POST',
  path: '/t',
  token: { basis: 'b', subject: 'svc-a', client: 'app', scopes: [], roles: [], locations: [] },
  route: 'create',
  decision: 'deny',
  reason: 'location_denied',
  missing: { locations: ['WH03'] },
  dry_run: false,
  sampled_at: 1,
  ...more,
});
const decision = (more: Partial<Decision>): Decision => ({
  reason: 'allowed',
  detail: 'allowed',
  revision: 'n',
  route: 'create',
  ...more,
});

describe('changeOf', () => {
  it('names the kind of change, or none', () => {
    const allowed = record({ decision: 'allow', reason: 'allowed', missing: undefined });
    expect(changeOf(allowed, decision({}))).toBeUndefined();
    expect(changeOf(allowed, decision({ reason: 'role_missing' }))).toBe('allow-to-deny');
    expect(changeOf(record(), decision({}))).toBe('deny-to-allow');
    expect(changeOf(record(), decision({ reason: 'scope_missing' }))).toBe('reason');
    expect(
      changeOf(record(), decision({ reason: 'location_denied', missing: { locations: ['WH04'] } })),
    ).toBe('reason');
    expect(
      changeOf(record(), decision({ reason: 'location_denied', missing: { locations: ['WH03'] } })),
    ).toBeUndefined();
    expect(
      changeOf(
        record(),
        decision({ reason: 'location_denied', missing: { locations: ['WH03'] }, dryRun: true }),
      ),
    ).toBe('enforcement');
  });
});

describe('ReplayReport', () => {
  it('counts by kind, route, caller and reason, weighs by sampling, keeps a few examples', () => {
    const report = new ReplayReport(2);
    for (let i = 0; i < 5; i++)
      report.add(record({ request_id: `r${i}` }), { ok: true, decision: decision({}) });
    report.add(record({ decision: 'allow', reason: 'allowed', missing: undefined, sampled_at: 0.01 }), {
      ok: true,
      decision: decision({ reason: 'role_missing', detail: 'no role' }),
    });
    report.add(record(), { ok: false, why: 'the record does not hold it' });
    report.notRecord('foreign', 'f:9', 'not a scopegate decision record');
    const json = JSON.parse(JSON.stringify(report));
    expect(json.changes['deny-to-allow']).toMatchObject({
      count: 5,
      weighted: 5,
      by_route: { create: 5 },
      by_caller: { 'svc-a (app)': 5 },
      by_reason: { 'location_denied → allowed': 5 },
    });
    expect(json.changes['deny-to-allow'].examples.map((e: { request_id: string }) => e.request_id)).toEqual([
      'r0',
      'r1',
    ]);
    expect(json.changes['allow-to-deny']).toMatchObject({ count: 1, weighted: 100 });
    expect(json.changes['allow-to-deny'].examples[0].now).toEqual({
      decision: 'deny',
      reason: 'role_missing',
      detail: 'no role',
    });
    expect(json.cannot_replay).toMatchObject({ count: 1, by_reason: { 'the record does not hold it': 1 } });
    expect(json.not_records.foreign).toEqual({
      count: 1,
      examples: ['f:9: not a scopegate decision record'],
    });
    expect(report.found(['allow-to-deny'])).toBe(true);
    expect(report.found(['reason', 'enforcement'])).toBe(false);
    expect(report.found(['cannot-replay'])).toBe(true);
    expect(report.found(['not-records'])).toBe(true);
    expect(report.render('candidate.yaml')).toContain('allow → deny');
  });

  it('keeps at most 1,000 names a table: the rest are "(other)"', () => {
    const report = new ReplayReport();
    for (let i = 0; i < 1500; i++) {
      const token = { basis: 'b', subject: `svc-${i}`, scopes: [], roles: [], locations: [] };
      report.add(record({ token }), { ok: true, decision: decision({}) });
    }
    const callers = JSON.parse(JSON.stringify(report)).changes['deny-to-allow'].by_caller;
    expect(Object.keys(callers)).toHaveLength(1001);
    expect(callers['(other)']).toBe(500);
  });
});
