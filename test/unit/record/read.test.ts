// Reading records back (src/record/read.ts): a record, or which kind of line it is not.
import { describe, expect, it } from 'vitest';
import { MAX_RECORD_CHARS, readRecordLine } from '../../../src/record/read.js';

const record = {
  type: 'scopegate.decision',
  v: 1,
  time: '2026-12-05T10:00:00.000Z',
  request_id: 'r1',
  policy: 'inventory',
  revision: 'abc',
  method: 'GET',
  path: '/x',
  token: { basis: 'b', subject: 's', scopes: [], roles: [], locations: [] },
  locations: { source: 'query:location', reason: 'request_malformed', detail: 'd' },
  peer: { reason: 'peer_missing', detail: 'none', missing: { peer: null } },
  decision: 'deny',
  reason: 'token_missing',
  dry_run: false,
  sampled_at: 1,
};
const read = (value: unknown) => readRecordLine(typeof value === 'string' ? value : JSON.stringify(value));

describe('readRecordLine', () => {
  it('reads a record, with the front door it came in by or (written before doors were recorded) without', () => {
    expect(read(record)).toEqual({ ok: true, record });
    for (const transport of ['grpc', 'http', 'forward_auth'])
      expect(read({ ...record, transport })).toEqual({ ok: true, record: { ...record, transport } });
    expect(
      read({
        ...record,
        request: { reason: 'request_malformed', detail: 'd' },
        method: undefined,
        path: undefined,
      }).ok,
    ).toBe(true);
  });

  it('tells unparsable, foreign, unknown-version and invalid lines apart', () => {
    expect(read('{"type":')).toMatchObject({ ok: false, problem: 'unparsable' });
    expect(read('x'.repeat(MAX_RECORD_CHARS + 1))).toMatchObject({ ok: false, problem: 'unparsable' });
    expect(read({ level: 'info', msg: 'listening' })).toMatchObject({ ok: false, problem: 'foreign' });
    expect(read('[1,2]')).toMatchObject({ ok: false, problem: 'foreign' });
    expect(read({ ...record, v: 2 })).toEqual({
      ok: false,
      problem: 'unknown_version',
      detail: 'format version 2; this scopegate reads 1',
    });
    for (const broken of [
      { ...record, reason: 'nope' },
      { ...record, decision: 'maybe' },
      { ...record, sampled_at: 0 },
      { ...record, sampled_at: 2 },
      { ...record, dry_run: 'no' },
      { ...record, token: { basis: 'b', subject: 's', scopes: 'read' } },
      { ...record, token: { subject: 's', scopes: [], roles: [], locations: [] } },
      { ...record, token: { basis: 'b', reason: 'allowed', detail: 'd' } },
      { ...record, peer: 7 },
      { ...record, locations: { source: 'body:location', found: [1] } },
      { ...record, path: undefined },
      { ...record, transport: 'smtp' },
      { ...record, transport: null },
    ]) {
      expect(read(broken), JSON.stringify(broken)).toMatchObject({ ok: false, problem: 'invalid' });
    }
  });
});
