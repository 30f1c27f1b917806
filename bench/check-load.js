#!/usr/bin/env node
// Load generator for scopegate's Check over real gRPC on loopback. Starts `scopegate serve` on the example
// policy (fresh dev keys, pinned to CPU 0 with taskset when available so "one core" means one core), drives it
// from this process (CPU 1) with N outstanding calls, and prints checks/s, p50 and p99 per scenario.
//
//   npm run bench                       # all scenarios, concurrency 1, 16, 64, 5 s each
//   npm run bench -- --seconds 2 --concurrency 16 --scenario repeated
//
// Bounded: every run stops after --seconds per cell; only 127.0.0.1 is targeted.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';

const root = fileURLToPath(new URL('..', import.meta.url));
const { checkRequestFor } = await import(new URL('../dist/dev/check-client.js', import.meta.url).href);
const { ensureDevKeys, mintToken } = await import(new URL('../dist/dev/keys.js', import.meta.url).href);
const { loadClients } = await import(new URL('../dist/server/proto.js', import.meta.url).href);

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '1,16,64' },
    scenario: { type: 'string', default: 'repeated,mixed,distinct' },
    'no-pin': { type: 'boolean', default: false },
  },
});
const seconds = Math.min(Number(values.seconds), 60);
const concurrencies = values.concurrency.split(',').map(Number);
const scenarios = values.scenario.split(',');

// --- a scopegate of its own, on the example policy with fresh dev keys ---
const dir = mkdtempSync(join(tmpdir(), 'scopegate-bench-'));
cpSync(join(root, 'examples/inventory/policy.yaml'), join(dir, 'policy.yaml'));
const { keyFile } = await ensureDevKeys(join(dir, 'dev-keys'));
const pin = !values['no-pin'] && spawnSync('taskset', ['--version']).status === 0;
const serveArgs = [join(root, 'bin/scopegate.js'), 'serve', '--policy', join(dir, 'policy.yaml')];
serveArgs.push('--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--log-level', 'warn');
const server = pin
  ? spawn('taskset', ['-c', '0', process.execPath, ...serveArgs], { stdio: ['ignore', 'pipe', 'inherit'] })
  : spawn(process.execPath, serveArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
if (pin) spawnSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
const address = await new Promise((resolve, reject) => {
  let buffered = '';
  server.stdout.on('data', (chunk) => {
    buffered += chunk;
    const line = buffered.split('\n').find((l) => l.includes('"listening"'));
    if (line) resolve(JSON.parse(line).grpc);
  });
  server.once('exit', (code) => reject(new Error(`scopegate exited ${code}`)));
  setTimeout(() => reject(new Error('scopegate did not print "listening" within 10 s')), 10_000).unref();
});

// --- requests ---
const base = {
  issuer: 'https://dev-issuer.scopegate.local/',
  audience: 'https://gateway.example.com',
  keyFile,
};
const sync = (scope, extra = {}) =>
  mintToken({
    ...base,
    subject: 'svc-inventory-sync',
    client: 'inventory-sync',
    grantType: 'client_credentials',
    scope,
    ttlSeconds: 3600,
    ...extra,
  });
const get = (token, path = '/api/inventory/transactions') =>
  checkRequestFor({ method: 'GET', path, token, headers: [] });
const post = (token, location) =>
  checkRequestFor({
    method: 'POST',
    path: '/api/inventory/transactions',
    token,
    headers: [['content-type', 'application/json']],
    body: JSON.stringify({ location, item: 'ITEM001', quantity: 10 }),
  });

const readWrite = await sync('inventory.read inventory.write');
const writeOnly = await sync('inventory.write');
const pool = await Promise.all(
  Array.from({ length: 100 }, (_, i) => sync('inventory.read inventory.write', { extraClaims: { n: i } })),
);

function mixedRequests() {
  // 80 % allowed (100 distinct repeated tokens, GET and POST), 20 % denied for five different reasons.
  const requests = [];
  for (let i = 0; i < 100; i++) {
    const t = pool[i];
    requests.push(get(t), get(t, `/api/inventory/transactions/${i}`), post(t, 'WH01'), post(t, 'EU-WEST-1'));
  }
  for (let i = 0; i < 20; i++) {
    requests.push(
      post(writeOnly, 'WH01'),
      post(readWrite, 'WH03'),
      get(undefined),
      get(readWrite, '/api//transactions'),
    );
    requests.push(get(readWrite, '/api/inventory/unknown'));
  }
  return requests;
}

async function distinctRequests(count) {
  const tokens = [];
  for (let i = 0; i < count; i++) tokens.push(await sync('inventory.read', { extraClaims: { n: i } }));
  return tokens.map((t) => get(t));
}

const { AuthorizationClient } = loadClients();

/** Keeps `concurrency` calls outstanding for `seconds`; returns checks/s and latency percentiles. */
async function drive(requests, concurrency, durationSeconds, once = false) {
  const clients = Array.from(
    { length: Math.min(concurrency, 4) },
    (_, i) => new AuthorizationClient(address, grpc.credentials.createInsecure(), { 'grpc.channel_id': i }),
  );
  const latencies = [];
  let next = 0;
  let errors = 0;
  const deadline = performance.now() + durationSeconds * 1000;
  const started = performance.now();
  async function worker(w) {
    const client = clients[w % clients.length];
    while (performance.now() < deadline && (!once || next < requests.length)) {
      const request = requests[next++ % requests.length];
      const t0 = performance.now();
      await new Promise((resolve) =>
        client.Check(request, (err) => {
          if (err) errors++;
          latencies.push(performance.now() - t0);
          resolve();
        }),
      );
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const elapsed = (performance.now() - started) / 1000;
  for (const client of clients) client.close();
  latencies.sort((a, b) => a - b);
  const pct = (p) =>
    latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] ?? NaN;
  return { rate: latencies.length / elapsed, p50: pct(50), p99: pct(99), errors, count: latencies.length };
}

/** CPU seconds the server process has used (Linux /proc), to report checks per server CPU-second. */
function serverCpuSeconds() {
  try {
    const fields = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks (USER_HZ = 100)
  } catch {
    return Number.NaN;
  }
}

const rows = [];
try {
  for (const scenario of scenarios) {
    for (const concurrency of concurrencies) {
      let requests;
      if (scenario === 'repeated') requests = [get(readWrite)];
      else if (scenario === 'mixed') requests = mixedRequests();
      else if (scenario === 'distinct') requests = await distinctRequests(12_000);
      else throw new Error(`unknown scenario ${scenario}`);
      await drive(requests.slice(0, 200), concurrency, 0.5); // warm-up (JIT, connections)
      // Distinct tokens: stop when the pool is used up, so every check is a token-cache miss (full RS256 verify).
      const measured = scenario === 'distinct' ? requests.slice(200) : requests;
      const cpuBefore = serverCpuSeconds();
      const result = await drive(measured, concurrency, seconds, scenario === 'distinct');
      const cpu = serverCpuSeconds() - cpuBefore;
      // When the load generator saturates first, checks per server CPU-second is the server's one-core capacity.
      const perCpuSecond = result.count / cpu;
      rows.push({ scenario, concurrency, ...result, perCpuSecond });
      console.log(
        `${scenario.padEnd(9)} c=${String(concurrency).padEnd(3)} ${result.rate.toFixed(0).padStart(7)} checks/s` +
          `  p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms` +
          `  server CPU ${((100 * cpu) / (result.count / result.rate)).toFixed(0).padStart(3)}%` +
          `  ${Number.isFinite(perCpuSecond) ? perCpuSecond.toFixed(0) : '?'} checks per server CPU-second` +
          `  (${result.count} checks, ${result.errors} gRPC errors)`,
      );
    }
  }
} finally {
  server.kill('SIGTERM');
}
console.log(
  `\nserver ${pin ? 'pinned to CPU 0, load generator on CPU 1' : 'not pinned'}; node ${process.version}`,
);
