// Decision records end to end: `serve --decision-log FILE` behind real gRPC writes one line per decision of
// the support thread (every deny, and allows at --decision-log-allows 1); every line validates against
// decision-record.schema.json and holds no token; `scopegate replay` of that file against the same policy
// changes nothing, against the policy granting WH03 flips exactly the WH03 deny, and against the policy with
// one permission removed flips exactly the records that permission decided, with the right new reasons.
// Lines that are not records (corrupt, foreign, another format version) are counted and named, not skipped.
// Each record names the front door its Check came in by; records written before that still replay.
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { replayCommand } from '../../src/review/replay-command.js';
import { sendHttp } from '../support/http-front.js';
import { type Harness, type HttpLike, startHarness } from '../support/scopegate.js';
import { post } from './known-traffic.js';

const dir = mkdtempSync(join(tmpdir(), 'scopegate-records-'));
const recordsFile = join(dir, 'decisions.jsonl');
let h: Harness;
let tokens: string[] = [];
let lines: string[];
let policyText: string;

/** The support thread's requests, each with the reason it gets under the example policy. */
async function supportThread(): Promise<Array<[HttpLike, string]>> {
  const full = await h.syncToken('inventory.read inventory.write');
  const writeOnly = await h.syncToken('inventory.write');
  const read = await h.syncToken('inventory.read');
  const newIntegration = await h.token({
    sub: 'svc-new-integration',
    client_id: 'new-integration',
    gty: 'client_credentials',
    scope: 'inventory.read inventory.write',
  });
  const stockReport = await h.token({
    sub: 'svc-stock-report',
    client_id: 'stock-report',
    gty: 'client_credentials',
    scope: 'inventory.read inventory.write',
  });
  const wrongGrant = await h.syncToken('inventory.read inventory.write', { gty: 'authorization_code' });
  const expired = await h.syncToken('inventory.read', { exp: Math.floor(Date.now() / 1000) - 600 });
  const otherAudience = await h.token({ sub: 'svc-inventory-sync', aud: 'https://elsewhere.example.com' });
  tokens = [full, writeOnly, read, newIntegration, stockReport, wrongGrant, expired, otherAudience];
  return [
    [{ method: 'GET', path: '/api/inventory/transactions', token: read }, 'allowed'],
    [{ method: 'GET', path: '/api/inventory/transactions?location=WH01&secret=q', token: read }, 'allowed'],
    [post(full), 'allowed'],
    [post(writeOnly), 'scope_missing'],
    [post(writeOnly, 'WH03'), 'scope_missing'],
    [post(newIntegration), 'role_missing'],
    [post(stockReport), 'client_scope_not_allowed'],
    [post(full, 'WH03'), 'location_denied'],
    [post(wrongGrant), 'grant_type_not_allowed'],
    [{ method: 'GET', path: '/api/inventory/transactions', token: expired }, 'token_expired'],
    [{ method: 'GET', path: '/api/inventory/transactions', token: otherAudience }, 'audience_mismatch'],
    [{ method: 'GET', path: '/api/inventory/transactions' }, 'token_missing'],
    [{ method: 'GET', path: '/api/inventory/transactions/%2e%2e/admin', token: read }, 'request_malformed'],
    [{ method: 'DELETE', path: '/api/inventory/transactions/42', token: full }, 'route_unknown'],
    [{ method: 'GET', path: '/api/inventory/stock?location=WH09', token: read }, 'location_denied'],
    [{ method: 'GET', path: '/api/inventory/locations/WH02/items', token: read }, 'allowed'],
    [{ ...post(full), body: '{"location":' }, 'body_unreadable'],
    [{ ...post(full), body: '{"item":"ITEM001"}' }, 'location_missing'],
    [{ method: 'GET', path: '/api/inventory/reports/stock' }, 'peer_missing'],
  ];
}

beforeAll(async () => {
  h = await startHarness(undefined, {
    flags: ['--decision-log', recordsFile, '--decision-log-allows', '1'],
  });
  policyText = readFileSync(h.policyFile, 'utf8');
  for (const [request, reason] of await supportThread()) {
    expect((await h.send(request)).reason, `${request.method} ${request.path}`).toBe(reason);
  }
  await h.close(); // drains the record writer
  lines = readFileSync(recordsFile, 'utf8').trim().split('\n');
});

/** `scopegate replay` in this process: exit code and what it printed. */
async function replay(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await replayCommand(args, {
    out: (t) => void out.push(t),
    err: (t) => void err.push(t),
    usage: (m) => {
      err.push(m);
      return 2;
    },
  });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A validator of decision-record.schema.json. */
function recordSchema() {
  const schema = JSON.parse(
    readFileSync(new URL('../../decision-record.schema.json', import.meta.url), 'utf8'),
  );
  return new Ajv2020({ strict: true, allErrors: true }).compile(schema);
}

function candidate(name: string, edit: (text: string) => string): string {
  const text = edit(policyText);
  expect(text).not.toBe(policyText);
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

describe('the records the server writes', () => {
  it('one per decision, each valid against decision-record.schema.json', async () => {
    expect(lines).toHaveLength(19);
    const validate = recordSchema();
    for (const line of lines) {
      const record = JSON.parse(line);
      expect(validate(record), `${JSON.stringify(validate.errors)}\n${line}`).toBe(true);
    }
  });

  it('hold the inputs before the policy touched them, and never a token, a query value or a body', () => {
    const records = lines.map((line) => JSON.parse(line));
    const postWriteOnly = records.find((r) => r.reason === 'scope_missing');
    expect(postWriteOnly).toMatchObject({
      type: 'scopegate.decision',
      v: 1,
      policy: 'inventory',
      method: 'POST',
      path: '/api/inventory/transactions',
      token: {
        issuer: 'https://dev-issuer.scopegate.local/',
        subject: 'svc-inventory-sync',
        client: 'inventory-sync',
        grant_type: 'client_credentials',
        scopes: ['inventory.write'],
        roles: [],
        locations: [],
      },
      locations: { source: 'body:location', found: ['WH01'] },
      route: 'create_transaction',
      decision: 'deny',
      missing: { permissions: ['INV_TRANSACTION_READ'], scopes: ['inventory.read'] },
      dry_run: false,
      sampled_at: 1,
      policy_keys: { host: 'inventory.local' },
    });
    expect(records.find((r) => r.reason === 'request_malformed')).not.toHaveProperty('path');
    const all = lines.join('\n');
    for (const token of tokens) {
      expect(all).not.toContain(token);
      expect(all).not.toContain(token.split('.')[2]);
    }
    expect(all).not.toContain('secret');
    expect(all).not.toContain('ITEM001');
  });

  it('name the front door each Check came in by: gRPC here', () => {
    expect(new Set(lines.map((line) => JSON.parse(line).transport))).toEqual(new Set(['grpc']));
  });
});

describe('records from the HTTP front doors', () => {
  it('name their door, and validate against the schema', async () => {
    const file = join(dir, 'doors.jsonl');
    const doors = await startHarness(undefined, {
      flags: ['--decision-log', file, '--http', '127.0.0.1:0', '--forward-auth', '127.0.0.1:0'],
    });
    const list = '/api/inventory/transactions';
    const ids: Record<string, unknown> = {
      grpc: (await doors.send({ method: 'GET', path: list })).body?.request_id,
      http: (await sendHttp(doors.running.httpAddress!, { method: 'GET', target: list, headers: [] })).body
        ?.request_id,
      forward_auth: (
        await sendHttp(doors.running.forwardAuthAddress!, {
          method: 'GET',
          target: '/auth',
          headers: [
            ['x-forwarded-method', 'GET'],
            ['x-forwarded-uri', list],
          ],
        })
      ).body?.request_id,
    };
    await doors.close(); // drains the record writer
    const records = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    const validate = recordSchema();
    for (const record of records) expect(validate(record), JSON.stringify(validate.errors)).toBe(true);
    expect(Object.fromEntries(records.map((r) => [r.transport, r.request_id]))).toEqual(ids);
    expect(records.map((r) => r.reason)).toEqual(['token_missing', 'token_missing', 'token_missing']);
  });
});

describe('scopegate replay of the support thread', () => {
  it('against the same policy: nothing changes (exit 0)', async () => {
    const { code, out } = await replay(['--policy', h.policyFile, '--json', recordsFile]);
    expect(code).toBe(0);
    const report = JSON.parse(out);
    expect([report.records, report.unchanged, report.cannot_replay.count]).toEqual([19, 19, 0]);
  });

  it('records written before the door was recorded (no transport) replay as they did', async () => {
    const old = join(dir, 'before-transport.jsonl');
    const stripped = lines.map((line) => {
      const { transport, ...rest } = JSON.parse(line);
      expect(transport).toBe('grpc');
      return JSON.stringify(rest);
    });
    writeFileSync(old, `${stripped.join('\n')}\n`);
    const { code, out } = await replay(['--policy', h.policyFile, '--json', old]);
    expect(code).toBe(0);
    const report = JSON.parse(out);
    expect([report.records, report.unchanged]).toEqual([19, 19]);
  });

  it('against the policy granting WH03: exactly the WH03 deny becomes an allow (exit 3)', async () => {
    const granted = candidate('granted.yaml', (t) =>
      t.replace('locations: [WH01, WH02, "EU-*"]', 'locations: [WH01, WH02, WH03, "EU-*"]'),
    );
    const { code, out } = await replay(['--policy', granted, recordsFile]);
    expect(code).toBe(3);
    expect(out).toMatch(/deny → allow\s+1 {2}\(≈ 1 requests\)/);
    expect(out).toContain('by reason  location_denied → allowed 1');
    expect(out).toContain('by caller  svc-inventory-sync (inventory-sync) 1');
    expect(out).toMatch(
      /POST \/api\/inventory\/transactions \[create_transaction\].*deny location_denied → allow allowed/,
    );
  });

  it('against the policy with one permission removed: exactly the records it decided flip, with the right reasons', async () => {
    const fewer = candidate('fewer.yaml', (t) =>
      t.replace(
        'permissions: [INV_TRANSACTION_CREATE, INV_TRANSACTION_READ]',
        'permissions: [INV_TRANSACTION_CREATE]',
      ),
    );
    const { code, out } = await replay(['--policy', fewer, '--json', recordsFile]);
    expect(code).toBe(3);
    const report = JSON.parse(out);
    // The write-only POST to WH01 is now allowed; the one to WH03 now fails on its location instead.
    expect(report.changes['deny-to-allow']).toMatchObject({
      count: 1,
      by_reason: { 'scope_missing → allowed': 1 },
      by_route: { create_transaction: 1 },
    });
    expect(report.changes.reason).toMatchObject({
      count: 1,
      by_reason: { 'scope_missing → location_denied': 1 },
    });
    expect(report.changes.reason.examples[0].now).toMatchObject({
      decision: 'deny',
      reason: 'location_denied',
      missing: { locations: ['WH03'] },
    });
    expect(report.changes['allow-to-deny'].count).toBe(0);
    expect(report.unchanged).toBe(17);
    // --fail-on names what fails the run: only allow → deny here, which did not happen.
    expect((await replay(['--policy', fewer, '--fail-on', 'allow-to-deny', recordsFile])).code).toBe(0);
  });

  it('a candidate that verifies tokens differently: token outcomes cannot be replayed, and says why', async () => {
    const audience = candidate('audience.yaml', (t) =>
      t.replace(
        'audiences: [https://gateway.example.com]',
        'audiences: [https://gateway.example.com, https://elsewhere.example.com]',
      ),
    );
    const { code, out } = await replay(['--policy', audience, '--json', recordsFile]);
    const report = JSON.parse(out);
    expect(report.cannot_replay.count).toBeGreaterThan(0);
    expect(Object.keys(report.cannot_replay.by_reason)[0]).toMatch(/verifies tokens/);
    // Records that never read a token (a malformed request, a peer route) still replay.
    expect(report.unchanged).toBe(2);
    expect(code).toBe(0);
    expect((await replay(['--policy', audience, '--fail-on', 'cannot-replay', recordsFile])).code).toBe(3);
  });

  it('lines that are not records are counted and named: corrupt, foreign, another version, invalid', async () => {
    const mixed = join(dir, 'mixed.jsonl');
    writeFileSync(mixed, `${lines.slice(0, 3).join('\n')}\n`);
    const record = JSON.parse(lines[0]!);
    appendFileSync(
      mixed,
      [
        '{"type":"scopegate.decision","v":1,"time"', // cut mid-line
        '{"level":"info","msg":"listening"}',
        JSON.stringify({ ...record, v: 2 }),
        JSON.stringify({ ...record, reason: 'no_such_reason' }),
        '',
        `${lines[3]}\r`,
      ].join('\n'),
    );
    const { code, out } = await replay(['--policy', h.policyFile, mixed]);
    expect(code).toBe(0);
    expect(out).toMatch(/not records\s+4 {2}\(unparsable 1, foreign 1, unknown version 1, invalid 1\)/);
    expect(out).toContain(`${mixed}:4: not JSON`);
    expect(out).toContain(`${mixed}:6: format version 2; this scopegate reads 1`);
    expect(out).toContain(`${mixed}:7: field reason is missing or not what the schema says`);
    expect(out).toMatch(/replayed 4 records \(8 lines\)/);
    expect((await replay(['--policy', h.policyFile, '--fail-on', 'not-records', mixed])).code).toBe(3);
  });

  it('exit 2 for a file it cannot read, a broken candidate, or a usage mistake', async () => {
    const missing = await replay(['--policy', h.policyFile, join(dir, 'nope.jsonl')]);
    expect(missing.code).toBe(2);
    expect(missing.err).toContain('cannot read');
    const broken = join(dir, 'broken.yaml');
    writeFileSync(broken, 'version: 1\nroutes: [');
    expect((await replay(['--policy', broken, recordsFile])).code).toBe(2);
    expect((await replay([recordsFile])).code).toBe(2);
    expect((await replay(['--policy', h.policyFile, '--fail-on', 'everything', recordsFile])).err).toContain(
      '--fail-on: unknown everything',
    );
  });
});
