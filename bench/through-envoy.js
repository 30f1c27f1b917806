#!/usr/bin/env node
// Latency scopegate adds behind a real Envoy: the same allowed GET through Envoy alone (ext_authz filter
// removed from envoy/envoy.yaml) and through Envoy + scopegate, driven by wrk on loopback. scopegate and the
// inventory upstream run as their own processes, Envoy with --concurrency 1.
//
//   npm run bench:envoy                      # 5 s per run, 8 connections
//   npm run bench:envoy -- --seconds 10 --connections 16
//
// Needs Envoy (bash scripts/install-envoy.sh) and wrk (Debian package `wrk`). Bounded; loopback only.
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = (path) => import(new URL(`../dist/${path}`, import.meta.url).href);
const { findEnvoy, localEnvoyConfig, startEnvoy, INSTALL_HINT } = await dist('dev/envoy.js');
const { ensureDevKeys, mintToken } = await dist('dev/keys.js');

const { values } = parseArgs({
  options: { seconds: { type: 'string', default: '5' }, connections: { type: 'string', default: '8' } },
});
const seconds = Math.min(Number(values.seconds), 60);
const connections = Math.min(Number(values.connections), 256);

const envoyBin = findEnvoy();
if (!envoyBin) throw new Error(`Envoy not found: ${INSTALL_HINT}`);
if (spawnSync('wrk', ['--version']).error) throw new Error('wrk not found: apt-get install wrk');

/** Starts `scopegate <args>` and resolves with its parsed listening line. */
function startProcess(args) {
  const child = spawn(process.execPath, [join(root, 'bin/scopegate.js'), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      const line = buffered.split('\n').find((l) => l.includes('"listening"'));
      if (line) resolve({ child, listening: JSON.parse(line) });
    });
    child.once('exit', (code) => reject(new Error(`scopegate ${args[0]} exited ${code}`)));
    setTimeout(() => reject(new Error(`scopegate ${args[0]} did not start`)), 10_000).unref();
  });
}
const portOf = (address) => Number(String(address).split(':').pop());

const dir = mkdtempSync(join(tmpdir(), 'scopegate-bench-envoy-'));
cpSync(join(root, 'examples/inventory/policy.yaml'), join(dir, 'policy.yaml'));
const { keyFile } = await ensureDevKeys(join(dir, 'dev-keys'));
const upstream = await startProcess(['dev-upstream', '--listen', '127.0.0.1:0']);
const scopegate = await startProcess([
  'serve',
  '--policy',
  join(dir, 'policy.yaml'),
  '--listen',
  '127.0.0.1:0',
  '--admin',
  '127.0.0.1:0',
  '--log-level',
  'warn',
]);
const ports = {
  scopegate: portOf(scopegate.listening.grpc),
  inventory: portOf(new URL(upstream.listening.url).port),
};
const withAuthz = localEnvoyConfig(join(root, 'envoy/envoy.yaml'), ports);
// The floor: the same config without the ext_authz filter.
const alone = parse(withAuthz);
for (const listener of alone.static_resources.listeners) {
  for (const chain of listener.filter_chains) {
    for (const filter of chain.filters) {
      const hcm = filter.typed_config;
      hcm.http_filters = hcm.http_filters.filter((f) => f.name !== 'envoy.filters.http.ext_authz');
    }
  }
}
const token = await mintToken({
  keyFile,
  issuer: 'https://dev-issuer.scopegate.local/',
  audience: 'https://gateway.example.com',
  subject: 'svc-inventory-sync',
  client: 'inventory-sync',
  grantType: 'client_credentials',
  scope: 'inventory.read inventory.write',
  ttlSeconds: 3600,
});

function wrk(url) {
  const run = spawnSync(
    'wrk',
    ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-H', `Authorization: Bearer ${token}`, url],
    {
      encoding: 'utf8',
      timeout: (seconds + 30) * 1000,
    },
  );
  const out = run.stdout;
  const ms = (label) => {
    const m = new RegExp(`^\\s+${label}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(out);
    if (!m) return Number.NaN;
    return Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]];
  };
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]), p50: ms('50'), p99: ms('99'), non2xx };
}

const results = {};
try {
  for (const [name, config] of [
    ['Envoy alone', stringify(alone)],
    ['Envoy + scopegate', withAuthz],
  ]) {
    const envoy = await startEnvoy({ bin: envoyBin, configText: config });
    try {
      const url = `${envoy.url}/api/inventory/transactions`;
      wrk(url); // warm-up: connections, JIT, token cache
      results[name] = wrk(url);
    } finally {
      await envoy.stop();
    }
  }
} finally {
  upstream.child.kill('SIGTERM');
  scopegate.child.kill('SIGTERM');
}
const floor = results['Envoy alone'];
console.log(
  `allowed GET /api/inventory/transactions, wrk -t1 -c${connections} -d${seconds}s, Envoy --concurrency 1, node ${process.version}`,
);
console.log('| through | req/s | p50 | p99 | added p50 | added p99 | non-2xx |');
console.log('|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(results)) {
  const added =
    name === 'Envoy alone'
      ? ['–', '–']
      : [`${(r.p50 - floor.p50).toFixed(2)} ms`, `${(r.p99 - floor.p99).toFixed(2)} ms`];
  console.log(
    `| ${name} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms | ${added[0]} | ${added[1]} | ${r.non2xx} |`,
  );
}
