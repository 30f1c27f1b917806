#!/usr/bin/env node
// Load generator for scopegate's Check over real gRPC on loopback. Starts `scopegate serve` on the example
// policy (fresh dev keys, pinned to CPU 0 with taskset when available so "one core" means one core), drives it
// from this process (CPU 1) with N outstanding calls, and prints checks/s, p50 and p99 per scenario.
//
//   npm run bench                       # repeated, mixed, distinct; concurrency 1, 16, 64, 5 s each
//   npm run bench -- --seconds 2 --concurrency 16 --scenario repeated
//   npm run bench -- --scenario caches  # caches on vs off (a second server with both sizes 0), 1 vs 100,000 tokens
//   npm run bench -- --scenario rss     # server RSS while 1,000,000 distinct valid tokens go through the caches
//   npm run bench -- --scenario scale   # 10 vs 10,000 routes and subjects (decision cache off)
//   npm run bench -- --scenario rss --node .venv/bin/node   # the servers on another Node.js binary
//   npm run bench -- --scenario tracing --concurrency 16 --rounds 5 [--base DIR]
//                                       # tracing off vs on (100 % and 1 % sampled, OTLP/HTTP to a loopback
//                                       # sink that discards), alternating rounds; with --base, also a built
//                                       # checkout without tracing (scopegate's bin/ and dist/ in DIR)
//
// The 100,000 RS256 tokens are real, distinct and valid: minted once with worker threads (about half a minute)
// into a file under the OS temp dir with their key, and reused by later runs while they have 12 h left.
// The RSS run mints ES256 tokens (also real and valid; RS256 would take minutes to sign a million) with a key
// added to the bench's JWKS, in batches, while it runs.
//
// Bounded: every cell stops after --seconds; token counts are capped; only 127.0.0.1 is targeted.
import { spawn, spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import { mintMany } from './mint-many.js';
import { describeNode, nodeBinary } from './node-binary.js';
import { scalePolicyText, scaleRequestAt } from './scale-policy.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const { checkRequestFor } = await import(new URL('../dist/wire/check-request.js', import.meta.url).href);
const { ensureDevKeys, mintToken } = await import(new URL('../dist/dev/keys.js', import.meta.url).href);
const { loadClients } = await import(new URL('../dist/wire/proto.js', import.meta.url).href);

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '5' },
    concurrency: { type: 'string', default: '1,16,64' },
    scenario: { type: 'string', default: 'repeated,mixed,distinct' },
    'no-pin': { type: 'boolean', default: false },
    distinct: { type: 'string', default: '100000' },
    'rss-tokens': { type: 'string', default: '1000000' },
    'token-cache-size': { type: 'string', default: '10000' },
    'decision-cache-size': { type: 'string', default: '10000' },
    node: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    base: { type: 'string' },
  },
});
// The Node.js the scopegate servers run on; the load generator stays on the one running this file.
const serverNode = nodeBinary(values.node);
const seconds = Math.min(Number(values.seconds), 60);
const concurrencies = values.concurrency.split(',').map(Number);
const scenarios = values.scenario.split(',');
const distinctCount = Math.min(Number(values.distinct), 200_000);
const rssTokens = Math.min(Number(values['rss-tokens']), 2_000_000);
const cachesOn = ['--token-cache-size', values['token-cache-size']];
cachesOn.push('--decision-cache-size', values['decision-cache-size']);
const cachesOff = ['--token-cache-size', '0', '--decision-cache-size', '0'];

// --- keys: the RS256 dev key kept across runs (its pre-minted tokens stay valid), plus a fresh ES256 key ---
const keep = join(tmpdir(), 'scopegate-bench-keep');
const { keyFile } = await ensureDevKeys(join(keep, 'dev-keys'));
const dir = mkdtempSync(join(tmpdir(), 'scopegate-bench-'));
cpSync(join(root, 'examples/inventory/policy.yaml'), join(dir, 'policy.yaml'));
mkdirSync(join(dir, 'dev-keys'));
cpSync(join(keep, 'dev-keys', 'jwks.json'), join(dir, 'dev-keys', 'jwks.json'));
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ecKid = 'bench-es256';
{
  const jwksFile = join(dir, 'dev-keys', 'jwks.json');
  const jwks = JSON.parse(readFileSync(jwksFile, 'utf8'));
  const publicJwk = ec.publicKey.export({ format: 'jwk' });
  jwks.keys.push({ ...publicJwk, kid: ecKid, alg: 'ES256', use: 'sig' });
  writeFileSync(jwksFile, JSON.stringify(jwks));
}

// --- scopegate servers of our own, on the example policy ---
const pin = !values['no-pin'] && spawnSync('taskset', ['--version']).status === 0;
if (pin) spawnSync('taskset', ['-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
const servers = new Set();

/**
 * `scopegate serve` as one process (--workers 1: this bench measures one core) with extra flags, pinned to
 * CPU 0; resolves with the process and its gRPC address.
 */
async function startScopegate(
  extra = [],
  policyFile = join(dir, 'policy.yaml'),
  { env = {}, from = root } = {},
) {
  const serveArgs = [join(from, 'bin/scopegate.js'), 'serve', '--policy', policyFile];
  serveArgs.push(
    '--listen',
    '127.0.0.1:0',
    '--admin',
    '127.0.0.1:0',
    '--log-level',
    'warn',
    '--workers',
    '1',
  );
  serveArgs.push(...extra);
  const options = { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...env } };
  const child = pin
    ? spawn('taskset', ['-c', '0', serverNode.path, ...serveArgs], options)
    : spawn(serverNode.path, serveArgs, options);
  servers.add(child);
  const listening = await new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      const line = buffered.split('\n').find((l) => l.includes('"listening"'));
      if (line) resolve(JSON.parse(line));
    });
    child.once('exit', (code) => reject(new Error(`scopegate exited ${code}`)));
    setTimeout(() => reject(new Error('scopegate did not print "listening" within 10 s')), 10_000).unref();
  });
  return { child, address: listening.grpc, admin: listening.admin };
}

/** Heap used / heap total / external (MiB) from the server's own /metrics: what the RSS is made of. */
async function heapMiB(server) {
  const text = await (await fetch(`http://${server.admin}/metrics`)).text();
  const value = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN) / 2 ** 20;
  return ['nodejs_heap_size_used_bytes', 'nodejs_heap_size_total_bytes', 'nodejs_external_memory_bytes']
    .map((name) => value(name).toFixed(0))
    .join(' / ');
}

async function stopScopegate(server) {
  const exited = new Promise((resolve) => server.child.once('exit', resolve));
  server.child.kill('SIGTERM');
  await exited;
  servers.delete(server.child);
}

// taskset runs node as its child (exec), so the pid is node's own.
function rssMiB(pid) {
  try {
    const kib = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kib === undefined ? Number.NaN : Number(kib) / 1024;
  } catch {
    return Number.NaN;
  }
}

const main = await startScopegate(cachesOn);
const address = main.address;
const server = main.child;

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

/**
 * Keeps `concurrency` calls outstanding for `seconds`; returns checks/s and latency percentiles. `requests` is
 * an array, or a function from a running index (starting at `from`) to a request, for pools too big to prebuild.
 */
async function drive(requests, concurrency, durationSeconds, once = false, target = address, from = 0) {
  const clients = Array.from(
    { length: Math.min(concurrency, 4) },
    (_, i) => new AuthorizationClient(target, grpc.credentials.createInsecure(), { 'grpc.channel_id': i }),
  );
  const latencies = [];
  let next = from;
  const count = typeof requests === 'function' ? Number.POSITIVE_INFINITY : requests.length;
  const at = typeof requests === 'function' ? requests : (i) => requests[i % requests.length];
  let errors = 0;
  let allowed = 0;
  const deadline = performance.now() + durationSeconds * 1000;
  const started = performance.now();
  async function worker(w) {
    const client = clients[w % clients.length];
    while (performance.now() < deadline && (!once || next - from < count)) {
      const request = at(next++);
      const t0 = performance.now();
      await new Promise((resolve) =>
        client.Check(request, (err, response) => {
          if (err) errors++;
          else if (response?.denied_response === undefined) allowed++;
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
  return {
    rate: latencies.length / elapsed,
    p50: pct(50),
    p99: pct(99),
    errors,
    allowed,
    count: latencies.length,
    next,
  };
}

/** CPU seconds the server process has used (Linux /proc), to report checks per server CPU-second. */
function serverCpuSeconds(pid = server.pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks (USER_HZ = 100)
  } catch {
    return Number.NaN;
  }
}

// --- minting many real tokens: bench/mint-many.js (worker threads, compact JWS by hand) ---
const readClaims = {
  iss: base.issuer,
  aud: base.audience,
  sub: 'svc-inventory-sync',
  client_id: 'inventory-sync',
  gty: 'client_credentials',
  scope: 'inventory.read',
};

/** 100,000 distinct RS256 tokens, from the kept file while they have 12 h left, else minted and saved. */
async function distinctRs256Tokens(count) {
  mkdirSync(keep, { recursive: true });
  const file = join(keep, `rs256-tokens-${count}.txt`);
  if (existsSync(file) && Date.now() - statSync(file).mtimeMs < 12 * 3_600_000) {
    const tokens = readFileSync(file, 'utf8').split('\n');
    if (tokens.length === count) return tokens;
  }
  const started = performance.now();
  const jwk = JSON.parse(readFileSync(keyFile, 'utf8'));
  const exp = Math.floor(Date.now() / 1000) + 24 * 3600;
  const tokens = await mintMany({
    jwk,
    alg: 'RS256',
    kid: jwk.kid,
    claims: readClaims,
    from: 0,
    to: count,
    exp,
  });
  writeFileSync(file, tokens.join('\n'), { mode: 0o600 });
  console.log(
    `minted ${count} RS256 tokens in ${((performance.now() - started) / 1000).toFixed(1)} s → ${file}`,
  );
  return tokens;
}

function report(label, concurrency, result, cpu) {
  const perCpuSecond = result.count / cpu;
  console.log(
    `${label.padEnd(9)} c=${String(concurrency).padEnd(3)} ${result.rate.toFixed(0).padStart(7)} checks/s` +
      `  p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms` +
      `  server CPU ${((100 * cpu) / (result.count / result.rate)).toFixed(0).padStart(3)}%` +
      `  ${Number.isFinite(perCpuSecond) ? perCpuSecond.toFixed(0) : '?'} checks per server CPU-second` +
      `  (${result.count} checks, ${result.allowed} allowed, ${result.errors} gRPC errors)`,
  );
  return perCpuSecond;
}

/** Caches on vs off × 1 vs N distinct tokens: the same GET, allowed, on two servers differing only in cache sizes. */
async function cachesScenario() {
  const tokens = await distinctRs256Tokens(distinctCount);
  const off = await startScopegate(cachesOff);
  let cursor = 0;
  try {
    for (const [caches, target] of [
      ['on', main],
      ['off', off],
    ]) {
      for (const [label, pool] of [
        ['1 token', [tokens[0]]],
        [`${distinctCount} tokens`, tokens],
      ]) {
        for (const concurrency of concurrencies) {
          // Each cell continues through the pool where the last stopped, so no cell replays warm tokens.
          const at = (i) => get(pool[i % pool.length]);
          const warm = await drive(at, concurrency, 0.5, false, target.address, cursor);
          const cpuBefore = serverCpuSeconds(target.child.pid);
          const result = await drive(at, concurrency, seconds, false, target.address, warm.next);
          cursor = pool.length > 1 ? result.next : 0;
          const cpu = serverCpuSeconds(target.child.pid) - cpuBefore;
          rows.push({ scenario: `caches ${caches}, ${label}`, concurrency, ...result });
          report(`caches ${caches.padEnd(3)} ${label.padEnd(14)}`, concurrency, result, cpu);
        }
      }
    }
  } finally {
    await stopScopegate(off);
  }
}

/** RSS of a fresh server (caches at their configured sizes) as N distinct valid tokens go through it. */
async function rssScenario() {
  const fresh = await startScopegate(cachesOn);
  try {
    const jwk = ec.privateKey.export({ format: 'jwk' });
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const batch = 50_000;
    const step = Math.max(batch, Math.floor(rssTokens / 10 / batch) * batch);
    console.log(
      `RSS of scopegate on Node.js ${describeNode(serverNode)} (token cache ${values['token-cache-size']},` +
        ` decision cache ${values['decision-cache-size']} entries) while ${rssTokens} distinct valid ES256 tokens are checked:`,
    );
    console.log(`  after ${String(0).padStart(8)} tokens: ${rssMiB(fresh.child.pid).toFixed(1)} MiB`);
    const started = performance.now();
    let allowed = 0;
    for (let from = 0; from < rssTokens; from += batch) {
      const to = Math.min(rssTokens, from + batch);
      const tokens = await mintMany({ jwk, alg: 'ES256', kid: ecKid, claims: readClaims, from, to, exp });
      const result = await drive(
        tokens.map((t) => get(t)),
        64,
        3600,
        true,
        fresh.address,
      );
      allowed += result.allowed;
      if (to % step === 0 || to === rssTokens) {
        console.log(
          `  after ${String(to).padStart(8)} tokens: ${rssMiB(fresh.child.pid).toFixed(1)} MiB` +
            ` (heap used / heap total / external: ${await heapMiB(fresh)} MiB)`,
        );
      }
    }
    console.log(
      `  (${allowed} of ${rssTokens} allowed, in ${((performance.now() - started) / 1000).toFixed(0)} s, minting included)`,
    );
  } finally {
    await stopScopegate(fresh);
  }
}

/**
 * Tracing's cost in checks per server CPU-second: off, on with every Check sampled, on with 1 % (root spans:
 * the bench sends no trace context, so the client-header fallback is read too), and, with --base, a build
 * without tracing. One server each, driven in turn, round after round, so drift hits them all alike. The on
 * servers export OTLP/HTTP (protobuf, the default) to a sink in this process that reads and discards; spans
 * the bounded queue drops are counted from their warnings.
 */
async function tracingScenario() {
  const sink = createServer((request, response) => {
    request.resume();
    request.on('end', () => response.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${sink.address().port}`;
  const traced = (ratio) => ({
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: String(ratio),
    // Export as the spans come, so their cost falls inside the round that made them.
    OTEL_BSP_SCHEDULE_DELAY: '200',
  });
  const variants = [
    ...(values.base ? [{ name: 'no tracing (base build)', from: values.base, env: {} }] : []),
    { name: 'tracing off', env: {} },
    { name: 'tracing on, 100 %', env: traced(1) },
    { name: 'tracing on, 1 %', env: traced(0.01) },
    ...(process.env.BENCH_ALWAYS_OFF ? [{ name: 'tracing on, 0 %', env: traced(0) }] : []),
  ];
  const running = [];
  for (const variant of variants) {
    const target = await startScopegate(cachesOn, undefined, {
      env: variant.env,
      from: variant.from ?? root,
    });
    let dropped = 0;
    target.child.stdout.on('data', (chunk) => {
      for (const line of String(chunk).split('\n'))
        if (line.includes('"msg":"tracing"') && line.includes('Dropped')) dropped++;
    });
    running.push({ ...variant, target, perRound: [], dropped: () => dropped });
  }
  const requests = [get(readWrite)];
  const rounds = Math.min(Number(values.rounds), 50);
  try {
    for (const concurrency of concurrencies) {
      for (const variant of running) await drive(requests, concurrency, 0.5, false, variant.target.address);
      for (let round = 0; round < rounds; round++) {
        for (const variant of running) {
          const pid = variant.target.child.pid;
          const cpuBefore = serverCpuSeconds(pid);
          const result = await drive(requests, concurrency, seconds, false, variant.target.address);
          // The last batch's export, if any, belongs to this round too.
          await new Promise((resolve) => setTimeout(resolve, 300));
          variant.perRound.push(result.count / (serverCpuSeconds(pid) - cpuBefore));
        }
      }
      const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
      const off = median(running.find((v) => v.name === 'tracing off').perRound);
      console.log(
        `\ntracing, repeated allowed GET, concurrency ${concurrency}, ${rounds} rounds of ${seconds} s:`,
      );
      for (const variant of running) {
        const value = median(variant.perRound);
        console.log(
          `  ${variant.name.padEnd(24)} median ${value.toFixed(0).padStart(6)} checks per server CPU-second` +
            `  (${(value / off).toFixed(3)}× off; rounds ${variant.perRound.map((v) => v.toFixed(0)).join(', ')})` +
            (variant.dropped() ? `  ${variant.dropped()} drop warnings` : ''),
        );
        rows.push({ scenario: `tracing ${variant.name}`, concurrency, perCpuSecond: value });
        variant.perRound = [];
      }
    }
  } finally {
    for (const variant of running) await stopScopegate(variant.target);
    sink.close();
  }
}

/**
 * 10 vs 10,000 routes and subjects over gRPC, the decision cache off (every check matches a route and works
 * out the subject's grants, as a cache miss does), the same 1,000 tokens' worth of requests spread over all
 * routes and subjects (bench/scale-policy.js). bench/pipeline-cost.js measures the same without the transport.
 */
async function scaleScenario() {
  for (const n of [10, 10_000]) {
    const file = join(dir, `policy-scale-${n}.yaml`);
    writeFileSync(file, scalePolicyText(n, { ...base, jwksFile: './dev-keys/jwks.json' }));
    const tokens = await Promise.all(
      Array.from({ length: 1_000 }, (_, i) =>
        mintToken({
          ...base,
          subject: `s${i % n}`,
          client: 'bench',
          grantType: 'client_credentials',
          scope: 'read',
          ttlSeconds: 3600,
        }),
      ),
    );
    const requests = Array.from({ length: 4_096 }, (_, i) => {
      const { token, path } = scaleRequestAt(i, n, tokens.length);
      return get(tokens[token], path);
    });
    const target = await startScopegate(['--decision-cache-size', '0'], file);
    try {
      for (const concurrency of concurrencies) {
        await drive(requests, concurrency, 0.5, false, target.address); // warm-up: token cache, JIT
        const cpuBefore = serverCpuSeconds(target.child.pid);
        const result = await drive(requests, concurrency, seconds, false, target.address);
        const cpu = serverCpuSeconds(target.child.pid) - cpuBefore;
        if (result.allowed !== result.count)
          throw new Error(`scale: ${result.count - result.allowed} not allowed`);
        const perCpuSecond = report(`scale ${n.toLocaleString('en')}`.padEnd(14), concurrency, result, cpu);
        rows.push({ scenario: `scale ${n}`, concurrency, ...result, perCpuSecond });
      }
    } finally {
      await stopScopegate(target);
    }
  }
}

const rows = [];
try {
  for (const scenario of scenarios) {
    if (scenario === 'scale') {
      await scaleScenario();
      continue;
    }
    if (scenario === 'caches') {
      await cachesScenario();
      continue;
    }
    if (scenario === 'rss') {
      await rssScenario();
      continue;
    }
    if (scenario === 'tracing') {
      await tracingScenario();
      continue;
    }
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
      const perCpuSecond = report(scenario, concurrency, result, cpu);
      rows.push({ scenario, concurrency, ...result, perCpuSecond });
    }
  }
} finally {
  for (const child of servers) child.kill('SIGTERM');
}
console.log(
  `\nserver ${pin ? 'pinned to CPU 0, load generator on CPU 1' : 'not pinned'}; server on Node.js` +
    ` ${describeNode(serverNode)}, load generator on ${process.version}`,
);
