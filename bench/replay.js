#!/usr/bin/env node
// `scopegate replay` throughput and peak memory (issue 23): N generated decision records (default 1,000,000:
// the support thread's traffic over 1,000 subjects and 40 locations, ~650 bytes each) are written to a
// temporary file, then `scopegate replay --policy CANDIDATE --json FILE` runs in a child process against the
// example policy granting WH03 (so records change and the report's tables fill). Prints records per second on
// the replay's own clock (reading, parsing, re-deciding, tallying), the child's CPU seconds and records per
// CPU second (the fair number on a shared machine), and its peak RSS. The file is removed afterwards.
// Needs `npm run build` first.
//
//   node bench/replay.js                   # 1,000,000 records
//   node bench/replay.js --records 200000
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadPolicySet } from '../dist/policy/source.js';
import { tokenBasis } from '../dist/record/basis.js';

const { values } = parseArgs({ options: { records: { type: 'string', default: '1000000' } } });
const total = Number(values.records);
const root = fileURLToPath(new URL('..', import.meta.url));
const policyFile = join(root, 'examples/inventory/policy.yaml');
const dir = mkdtempSync(join(tmpdir(), 'scopegate-bench-replay-'));
const candidate = join(dir, 'policy.yaml');
writeFileSync(
  candidate,
  readFileSync(policyFile, 'utf8')
    .replace('locations: [WH01, WH02, "EU-*"]', 'locations: [WH01, WH02, WH03, "EU-*"]')
    .replaceAll('./dev-keys/', join(root, 'examples/inventory/dev-keys/')),
);

const { policies } = await loadPolicySet(policyFile);
const policy = policies[0];
const issuer = policy.issuers[0].issuer;
const basis = tokenBasis(policy, issuer);
const refusedBasis = tokenBasis(policy);

/** Record i: a mix of allows (sampled) and the thread's denies, over 1,000 subjects and 40 locations. */
function recordAt(i) {
  const kind = i % 10;
  const location = `WH${String((i % 40) + 1).padStart(2, '0')}`;
  const base = {
    type: 'scopegate.decision',
    v: 1,
    time: '2026-12-05T10:00:00.000Z',
    request_id: `req-${i}`,
    policy: policy.name,
    revision: policy.revision,
    policy_keys: { host: 'inventory.example.com' },
  };
  if (kind === 9) {
    return {
      ...base,
      method: 'GET',
      path: '/api/inventory/transactions',
      token: { basis: refusedBasis, reason: 'token_expired', detail: 'the token has expired' },
      decision: 'deny',
      reason: 'token_expired',
      dry_run: false,
      sampled_at: 1,
    };
  }
  const subject = kind < 6 ? 'svc-inventory-sync' : `svc-${i % 1000}`;
  const scopes = kind === 3 ? ['inventory.write'] : ['inventory.read', 'inventory.write'];
  const token = {
    basis,
    issuer,
    subject,
    client: 'inventory-sync',
    grant_type: 'client_credentials',
    scopes,
    roles: [],
    locations: [],
  };
  const post = kind < 8;
  return {
    ...base,
    method: post ? 'POST' : 'GET',
    path: post ? '/api/inventory/transactions' : `/api/inventory/transactions/${i}`,
    token,
    ...(post && { locations: { source: 'body:location', found: [location] } }),
    route: post ? 'create_transaction' : 'get_transaction',
    // Allows were sampled at 1 %; the rest are denies as recorded (the report compares, whatever they are).
    ...(kind < 3 && location <= 'WH02'
      ? { decision: 'allow', reason: 'allowed', sampled_at: 0.01 }
      : { decision: 'deny', reason: 'location_denied', missing: { locations: [location] }, sampled_at: 1 }),
    dry_run: false,
  };
}

const recordsFile = join(dir, 'records.jsonl');
const file = createWriteStream(recordsFile);
for (let i = 0; i < total; i += 2000) {
  let text = '';
  for (let j = i; j < Math.min(total, i + 2000); j++) text += `${JSON.stringify(recordAt(j))}\n`;
  if (!file.write(text)) await new Promise((resolve) => file.once('drain', resolve));
}
await new Promise((resolve) => file.end(resolve));

const child = spawn(
  process.execPath,
  [
    '--input-type=module',
    '-e',
    "const { main } = await import('./dist/cli.js'); const code = await main(process.argv.slice(1)); const u = process.resourceUsage(); process.stderr.write(JSON.stringify({ maxRSS: u.maxRSS, cpu: (u.userCPUTime + u.systemCPUTime) / 1e6 }) + '\\n'); process.exitCode = code;",
    'replay',
    '--policy',
    candidate,
    '--json',
    recordsFile,
  ],
  { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
);
let out = '';
let err = '';
child.stdout.on('data', (d) => {
  out += d;
});
child.stderr.on('data', (d) => {
  err += d;
});
const code = await new Promise((resolve) => child.on('close', resolve));
rmSync(dir, { recursive: true, force: true });
const report = JSON.parse(out);
const { maxRSS, cpu } = JSON.parse(err.trim().split('\n').at(-1));
console.log(
  JSON.stringify(
    {
      node: process.version,
      records: report.records,
      exit: code,
      replay_seconds: report.seconds,
      records_per_second: report.records_per_second,
      process_cpu_seconds: Number(cpu.toFixed(2)),
      records_per_cpu_second: Math.round(report.records / cpu),
      peak_rss_mib: Math.round(maxRSS / 1024),
      unchanged: report.unchanged,
      changes: Object.fromEntries(Object.entries(report.changes).map(([k, g]) => [k, g.count])),
      cannot_replay: report.cannot_replay.count,
    },
    null,
    2,
  ),
);
