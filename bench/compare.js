#!/usr/bin/env node
// scopegate side by side with the usual choice and with the floors, in one run on this machine (issues 11, 22):
//   direct Check over gRPC (ghz) against scopegate, the OPA comparator (bench/opa, OPA-Envoy's equivalent)
//   and a do-nothing grpc-js ext_authz (the Node transport floor); and HTTP through Envoy (wrk) with no
//   authorization (the floor), with jwt_authn + rbac in-process (bench/envoy-rbac.yaml), with gRPC ext_authz
//   to each of them (envoy/envoy.yaml), and with HTTP ext_authz (envoy/envoy-http.yaml, `http_service`) to
//   scopegate's `--http` door and to a do-nothing node:http server (the HTTP floor), and to the canned floors of
//   both doors (do-nothing servers answering with scopegate's own answers). Every contestant gets the
//   same requests (bench/compare-mix.js: 8 allowed, 2 denied, round-robin) and must answer them as expected,
//   or it is flagged broken, not ranked.
//
// Two token regimes, side by side, each against the comparator with and without OPA's io_jwt cache:
//   - repeated tokens (4 tokens, each reused for its lifetime: the common case): scopegate with its default
//     caches answers from its decision cache after the warm-up; the OPA comparator verifies every token
//     unless its io_jwt cache is on (`--jwt-cache`, opt-in in OPA-Envoy too). scopegate with
//     `--token-cache-size 0 --decision-cache-size 0` runs the same requests with nothing cached.
//   - distinct tokens (the cache-miss cells; --distinct N, default 30,000, more than the caches' 10,000
//     entries): every request has a token of its own, so every cache misses; the report shows the hit
//     share scopegate's metrics counted.
// Answers are checked under load, not only counted: scopegate's decisions by reason and route (its
// metrics), the comparator's by allow/deny and status (its GET /answers), and, through Envoy, the status
// each request of the mix got (Envoy's access log, by x-bench-case), against what the mix must give.
//
// Through Envoy every route answers with a direct_response (bench/compare-envoy.js; issue 22): no upstream
// process shares the CPUs, so the numbers are Envoy, its authorization filter and the server it asks.
//
//   npm run bench:compare                                  # 5 s cells, c = 1, 16, 64; writes bench/results/
//   npm run bench:compare -- --seconds 10 --only scopegate,opa --scopegate-args "--workers 2"
//   npm run bench:compare -- --smoke                       # CI: ~1 s cells, c = 16, checks only, writes nothing
//   npm run bench:compare -- --node .venv/bin/node         # scopegate and the Node floors on another Node.js
//
// Flags: --seconds N (per cell, 1..60), --concurrency 1,16,64 (ghz), --connections 8 (wrk),
// --only scopegate,opa,noop,rbac,envoy (scopegate brings its caches-off twin and its HTTP door through Envoy,
// opa its io_jwt-cache twin, noop its HTTP twin and, with scopegate, the canned floors through Envoy),
// --distinct N (tokens of the cache-miss cells, 0: none), --scopegate-args "...", --noop-workers N (default: as many gRPC
// processes as scopegate runs), --envoy-workers N (processes of the scopegate and the do-nothing servers Envoy asks;
// default 1, as the Kubernetes manifests run it: Envoy and wrk share these 2 cores), --node PATH (the Node.js binary for every Node process the bench starts:
// scopegate and the do-nothing ext_authz; default: the one running the bench), --smoke.
//
// Fairness on a small machine: nothing is pinned. OPA uses every core (GOMAXPROCS) and scopegate may too
// (--workers), so pinning servers to one CPU and the load generator to another would cap the multi-core
// contestants at one core while the load generator idles on the other. Instead every process shares all
// CPUs, and the table reports the CPU seconds each server's process tree used during the cell (and checks
// per CPU-second), so the reader sees what each result cost.
//
// Bounded: each server runs under coreutils `timeout` sized to the whole run, each load generator is killed
// after its cell plus 30 s, everything is killed on exit, Ctrl-C or error; only 127.0.0.1 is used.
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  accessLogCounts,
  decisionsOf,
  delta,
  doorProblems,
  hitShare,
  snapshot,
  splitProblems,
} from './compare-answers.js';
import { envoyConfig, startTimedEnvoy } from './compare-envoy.js';
import {
  BENCH_TOOLS_HINT,
  distIsFresh,
  findTool,
  inCI,
  portOf,
  removeOnExit,
  root,
  runGhz,
  runWrk,
  startMeasuring,
  startServer,
  treeUsage,
} from './compare-lib.js';
import { buildDistinctMix, buildMix, checkRequests, replay, replayHttp, writeWrkMix } from './compare-mix.js';
import { describeMachine, LABELS, markdown, ratios, writeResults } from './compare-report.js';
import { describeNode, nodeBinary } from './node-binary.js';

const dist = (path) => import(new URL(`../dist/${path}`, import.meta.url).href);
const { findEnvoy, INSTALL_HINT: ENVOY_HINT } = await dist('dev/envoy.js');
const { ensureDevKeys } = await dist('dev/keys.js');

/** What --only names; scopegate, opa and noop each bring their twins (`TWINS`). */
const CHOICES = ['envoy', 'rbac', 'noop', 'opa', 'scopegate'];
const TWINS = {
  scopegate: ['scopegate-nocache', 'scopegate-http'],
  opa: ['opa-jwt'],
  noop: ['noop-http', 'canned', 'canned-http'],
};
/** The canned floors replay scopegate's answers: they run only where scopegate does. */
const CANNED = ['canned', 'canned-http'];
/** Direct cells: which servers run which token regime. */
const DIRECT = {
  repeated: ['scopegate', 'scopegate-nocache', 'opa', 'opa-jwt', 'noop'],
  distinct: ['scopegate', 'opa', 'opa-jwt'],
};
/**
 * Through-Envoy order: Envoy alone first, so a broken setup shows before the contestants run; then each door's
 * floors right before scopegate on that door, and the comparator next to scopegate's gRPC cell, so the cells a
 * ratio compares run close together in time (a 2-core VM slows as sustained load goes on). A `-http` shape is
 * Envoy's HTTP ext_authz (envoy/envoy-http.yaml) to the same program's HTTP door: scopegate-http is the very
 * scopegate process of the gRPC cells (`serve --http`), noop-http a do-nothing node:http server. The canned
 * floors are the do-nothing servers answering each request with the answer scopegate gave it (once, kept):
 * Envoy's work with scopegate's answers, without scopegate's (bench/noop-authz.js --answers-from).
 */
const SHAPES = [
  'envoy',
  'rbac',
  'noop',
  'canned',
  'scopegate',
  'opa',
  'opa-jwt',
  'noop-http',
  'canned-http',
  'scopegate-http',
];
/** The comparator's io_jwt cache when on: as many entries as scopegate's default token cache. */
const JWT_CACHE_ENTRIES = 10_000;
const CACHES_OFF = ['--token-cache-size', '0', '--decision-cache-size', '0'];

function options() {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '1,16,64' },
      connections: { type: 'string', default: '8' },
      only: { type: 'string', default: 'scopegate,opa,noop,rbac,envoy' },
      distinct: { type: 'string', default: '30000' },
      'scopegate-args': { type: 'string', default: '' },
      'noop-workers': { type: 'string' },
      'envoy-workers': { type: 'string', default: '1' },
      node: { type: 'string' },
      smoke: { type: 'boolean', default: false },
    },
  });
  const only = values.only.split(',').map((s) => s.trim());
  const unknown = only.filter((name) => !CHOICES.includes(name));
  if (unknown.length > 0)
    throw new Error(`--only: unknown ${unknown.join(', ')} (known: ${CHOICES.join(', ')})`);
  const twins = only.flatMap((name) => TWINS[name] ?? []);
  only.push(...twins.filter((name) => only.includes('scopegate') || !CANNED.includes(name)));
  const count = (text, max, what) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new Error(`${what}: ${text} is not a whole number 1..${max}`);
    return n;
  };
  return {
    smoke: values.smoke,
    seconds: values.smoke ? 1 : count(values.seconds, 60, '--seconds'),
    concurrencies: values.smoke
      ? [16]
      : values.concurrency.split(',').map((c) => count(c, 256, '--concurrency')),
    connections: count(values.connections, 256, '--connections'),
    // Smoke: enough distinct tokens to exercise the cells, not to defeat the caches.
    distinct: values.smoke
      ? 200
      : values.distinct === '0'
        ? 0
        : count(values.distinct, 1_000_000, '--distinct'),
    only,
    // The floor is the reference for every through-Envoy "added" number: it runs whenever Envoy does.
    shapes: SHAPES.filter((s) => only.includes(s) || (s === 'envoy' && only.some((o) => o !== 'envoy'))),
    scopegateArgs: values['scopegate-args'].trim(),
    noopWorkers:
      values['noop-workers'] === undefined ? undefined : count(values['noop-workers'], 64, '--noop-workers'),
    envoyWorkers: count(values['envoy-workers'], 64, '--envoy-workers'),
    node: nodeBinary(values.node),
  };
}

/** Every tool the selected contestants need, found or explained; all problems at once, never a silent skip. */
function findTools(o) {
  const problems = [];
  const tools = {};
  const direct = o.only.some((name) => DIRECT.repeated.includes(name));
  if (!distIsFresh())
    console.error('compare: dist/ is older than src/ (or missing); run `npm run build` first.');
  if (direct) {
    // In CI only the pinned ghz from install-bench-tools.sh counts; locally any ghz on the PATH or in ~/go/bin.
    tools.ghz = findTool('ghz', { venvOnly: inCI });
    if (!tools.ghz) problems.push(`ghz not found: ${BENCH_TOOLS_HINT}`);
  }
  if (o.shapes.length > 0) {
    tools.envoy = findEnvoy();
    if (!tools.envoy) problems.push(`Envoy not found: ${ENVOY_HINT}`);
    tools.wrk = findTool('wrk');
    if (!tools.wrk)
      problems.push(
        'wrk not found: install the Debian package `wrk` (bash scripts/install-bench-tools.sh checks it)',
      );
  }
  if (o.only.includes('opa')) {
    tools.opa = findTool('opa-authz', { venvOnly: true });
    if (!tools.opa) problems.push(`the OPA comparator .venv/bin/opa-authz is missing: ${BENCH_TOOLS_HINT}`);
    if (inCI && !findTool('go')) problems.push(`the Go toolchain is missing (CI=true): ${BENCH_TOOLS_HINT}`);
  }
  if (problems.length > 0) throw new Error(problems.join('\n'));
  return tools;
}

/** Keys, policy copy and request files in one temp dir; the servers that run for the whole bench. */
async function prepare(o, tools) {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-compare-'));
  removeOnExit(dir);
  cpSync(join(root, 'examples/inventory/policy.yaml'), join(dir, 'policy.yaml'));
  const { keyFile, jwksFile } = await ensureDevKeys(join(dir, 'dev-keys'));
  const mix = await buildMix(keyFile);
  const requests = checkRequests(mix);
  writeFileSync(join(dir, 'checks.json'), ghzData(requests));
  writeWrkMix(mix, join(dir, 'mix.lua'));
  let distinctMix = [];
  if (o.distinct > 0 && o.only.some((name) => DIRECT.distinct.includes(name))) {
    const started = performance.now();
    distinctMix = await buildDistinctMix(mix, keyFile, o.distinct);
    // One data file per concurrency, each starting a share further into the tokens, so a server's later
    // cells do not start on the tokens its earlier cells just verified.
    const distinctRequests = checkRequests(distinctMix);
    for (const [i] of o.concurrencies.entries()) {
      const shift = Math.floor((i * distinctRequests.length) / o.concurrencies.length);
      const rotated = [...distinctRequests.slice(shift), ...distinctRequests.slice(0, shift)];
      writeFileSync(join(dir, `checks-distinct-${i}.json`), ghzData(rotated));
    }
    const took = ((performance.now() - started) / 1000).toFixed(1);
    console.error(`compare: ${o.distinct} distinct tokens minted and written in ${took} s`);
  }
  // Generous: every cell plus its warm-up, Envoy starts and stops, and slack for a slow machine.
  const cells =
    o.concurrencies.length * (DIRECT.repeated.length + DIRECT.distinct.length) + o.shapes.length + 2;
  const limitSeconds = cells * (o.seconds + 10) + 240;
  const node = o.node.path;
  const servers = {};
  const start = (name, command, args) => startServer({ name, command, args, limitSeconds });
  if (o.only.includes('scopegate')) {
    const args = ['serve', '--policy', join(dir, 'policy.yaml'), '--listen', '127.0.0.1:0'];
    args.push(
      '--admin',
      '127.0.0.1:0',
      '--log-level',
      'warn',
      ...o.scopegateArgs.split(/\s+/).filter(Boolean),
    );
    servers.scopegate = await start('scopegate', node, [join(root, 'bin/scopegate.js'), ...args]);
    // Later flags win: the twin is scopegate with the same arguments and both caches off.
    const twin = [join(root, 'bin/scopegate.js'), ...args, ...CACHES_OFF];
    servers['scopegate-nocache'] = await start('scopegate-nocache', node, twin);
    // The one Envoy asks, on both doors (gRPC and --http), with --envoy-workers processes serving.
    const asked = [...args, '--workers', String(o.envoyWorkers), '--http', '127.0.0.1:0'];
    servers['scopegate-envoy'] = await start('scopegate-envoy', node, [
      join(root, 'bin/scopegate.js'),
      ...asked,
    ]);
  }
  if (o.only.includes('opa')) {
    servers.opa = await start('opa', tools.opa, opaArgs(jwksFile));
    const withCache = [...opaArgs(jwksFile), '--jwt-cache', String(JWT_CACHE_ENTRIES)];
    servers['opa-jwt'] = await start('opa-jwt', tools.opa, withCache);
  }
  if (o.only.includes('noop')) {
    // As many serving processes as scopegate has (its primary + workers, or one process alone).
    const scopegateProcesses = servers.scopegate ? treeUsage(servers.scopegate.pid).processes : 1;
    o.noopWorkers ??= Math.max(1, scopegateProcesses > 1 ? scopegateProcesses - 1 : 1);
    const args = [
      join(root, 'bench/noop-authz.js'),
      '--listen',
      '127.0.0.1:0',
      '--workers',
      String(o.noopWorkers),
    ];
    servers.noop = await start('noop', node, args);
    // The floors Envoy asks: as many processes as the scopegate Envoy asks.
    const floor = (door) => [
      join(root, 'bench/noop-authz.js'),
      door,
      '127.0.0.1:0',
      '--workers',
      String(o.envoyWorkers),
    ];
    servers['noop-envoy'] = await start('noop-envoy', node, floor('--listen'));
    servers['noop-http'] = await start('noop-http', node, floor('--http'));
    // The canned floors ask the scopegate Envoy asks, once per distinct request, on the same door.
    const asked = servers['scopegate-envoy']?.listening;
    if (asked) {
      servers.canned = await start('canned', node, [...floor('--listen'), '--answers-from', asked.grpc]);
      servers['canned-http'] = await start('canned-http', node, [
        ...floor('--http'),
        '--answers-from',
        asked.http,
      ]);
    }
  }
  o.noopWorkers ??= 1;
  return { dir, keyFile, jwksFile, mix, distinctMix, requests, servers, limitSeconds, start, tools };
}

/** CheckRequests as ghz reads them: protobuf's JSON mapping, where `body` (bytes in proto/) is base64. */
function ghzData(requests) {
  const forGhz = requests.map((request) => {
    const http = request.attributes.request.http;
    if (http.body === undefined) return request;
    const body = Buffer.from(http.body, 'utf8').toString('base64');
    return { ...request, attributes: { ...request.attributes, request: { http: { ...http, body } } } };
  });
  return JSON.stringify(forGhz);
}

/** The timed comparator: bench/opa/policy.rego alone, answers counted on --admin. */
const opaArgs = (jwksFile, policies = ['policy.rego']) => [
  '--listen',
  '127.0.0.1:0',
  '--admin',
  '127.0.0.1:0',
  ...policies.flatMap((file) => ['--policy', join(root, 'bench/opa', file)]),
  '--jwks',
  jwksFile,
];

/** Which of scopegate's own counts a server keeps: 'scopegate', 'opa' or none. */
const countsKind = (name) =>
  name.startsWith('scopegate') ? 'scopegate' : name.startsWith('opa') ? 'opa' : undefined;

/**
 * What a server counted, for holding to the mix: scopegate's decisions (not its cache lookups); the
 * comparator's answers without the calls the client cancelled (those in flight when the load stopped, at most
 * `slack`; more is a problem).
 */
function answersOf(kind, counted, slack) {
  if (kind === 'scopegate') return decisionsOf(counted);
  const { cancelled = 0, ...answers } = counted;
  return cancelled <= slack ? answers : counted;
}

/** The key each request of the mix must be counted under, by the kind of server that counts. */
const expectedKey = {
  scopegate: (r) => `${r.allow ? 'allow' : 'deny'} ${r.reason} ${r.route}`,
  opa: (r) => (r.allow ? 'allow 200' : 'deny 403'),
};

/** The noop servers allow everything; the others answer as the policy does. */
const allowsAll = (name) => name === 'noop' || name === 'noop-http';

/** The split a server must answer: the policy's for scopegate and OPA, allow-everything for the noop server. */
const expectedAnswers = (name, mix) => mix.map((r) => allowsAll(name) || r.allow);

/** Servers Envoy asks that are not their shape's namesake: the --envoy-workers processes (`prepare`). */
const ENVOY_ASKS = { scopegate: 'scopegate-envoy', 'scopegate-http': 'scopegate-envoy', noop: 'noop-envoy' };

/**
 * The authz server behind an Envoy shape and the address Envoy asks it on: scopegate and scopegate-http are
 * one process (`scopegate-envoy`) on its gRPC and --http doors; a shape ending in `-http` is asked over HTTP.
 */
function authzOf(shape, servers) {
  const server = servers[ENVOY_ASKS[shape] ?? shape];
  if (server === undefined) return undefined;
  const door = shape.endsWith('-http') ? 'http' : 'grpc';
  const address = server.listening[door];
  if (address === undefined) throw new Error(`${shape}: ${server.name} serves no ${door} door`);
  return { server, address, door };
}

/** Problems with a server's answers to one replay of the mix over grpc-js (empty when it answers as expected). */
async function answerProblems(name, server, ctx) {
  let answers;
  try {
    answers = await replay(server.listening.grpc, ctx.requests);
  } catch (err) {
    return [`Check failed: ${err.message}`];
  }
  const expected = expectedAnswers(name, ctx.mix);
  const wrong = ctx.mix
    .map((r, i) =>
      answers[i] === expected[i] ? undefined : `${r.name} → ${answers[i] ? 'allowed' : 'denied'}`,
    )
    .filter(Boolean);
  return wrong.length === 0 ? [] : [`answered against the expected split: ${wrong.join(', ')}`];
}

/** scopegate and the OPA comparator must decide bench/opa/cases.json the same way before anything is measured. */
async function equivalence(o, ctx) {
  if (!o.only.includes('opa') || !o.only.includes('scopegate'))
    return 'not run (needs both scopegate and opa)';
  let checkEquivalence;
  let loadCases;
  try {
    ({ checkEquivalence, loadCases } = await import(new URL('./opa/equivalence.js', import.meta.url).href));
  } catch (err) {
    throw new Error(`bench/opa/equivalence.js could not be loaded (${err.message}); ${BENCH_TOOLS_HINT}`);
  }
  // The comparator with request-shape.rego answers every case; the timed ones all but the request-shape cases.
  const shaped = await ctx.start('opa-shape', ctx.tools.opa, [
    ...opaArgs(ctx.jwksFile, ['policy.rego', 'request-shape.rego']),
    '--query',
    'data.envoy.authz.shape.result',
  ]);
  let outcome;
  try {
    outcome = await checkEquivalence({
      scopegate: ctx.servers.scopegate.listening.grpc,
      opa: shaped.listening.grpc,
      opaTimed: {
        'opa (timed)': ctx.servers.opa.listening.grpc,
        'opa-jwt (timed)': ctx.servers['opa-jwt'].listening.grpc,
      },
      keyFile: ctx.keyFile,
    });
  } finally {
    await shaped.stop();
  }
  const { mismatches, results, skipped } = outcome;
  const wrong = Array.isArray(mismatches) ? mismatches : [];
  const count = Array.isArray(mismatches) ? mismatches.length : Number(mismatches);
  if (count > 0) {
    console.error(
      `compare: scopegate and the OPA comparator disagree on ${count} case(s); nothing measured:`,
    );
    for (const m of wrong) console.error(`  ${JSON.stringify(m)}`);
    process.exit(1);
  }
  const shapeCases = loadCases().filter((c) => c.requestShape).length;
  return (
    `${results?.length ?? '?'} cases, allow/deny and HTTP status all alike with bench/opa/request-shape.rego added;` +
    ` the timed policy alone differs only on ${skipped?.['opa (timed)'] ?? '?'} of the ${shapeCases} request-shape cases`
  );
}

/**
 * One ghz cell against one server: warm-up (always on the repeated mix, so a cache-miss cell's tokens are all
 * new to the server), then the measured cell with the CPU and RSS it cost, and what the server itself counted
 * of its answers, held to the mix's split.
 */
async function directCell(name, regime, concurrency, o, ctx, tools) {
  const server = ctx.servers[name];
  const connections = Math.min(concurrency, availableParallelism());
  const index = o.concurrencies.indexOf(concurrency);
  const ghz = (seconds, dataFile) =>
    runGhz({
      ghz: tools.ghz,
      address: server.listening.grpc,
      dataFile: join(ctx.dir, dataFile),
      outFile: join(ctx.dir, 'ghz.json'),
      concurrency,
      connections,
      seconds,
    });
  await ghz(1, 'checks.json'); // warm-up: connections, JIT, caches
  const kind = countsKind(name);
  const countedBefore = await snapshot(kind, server);
  const measuring = startMeasuring({ server: server.pid });
  const result = await ghz(
    o.seconds,
    regime === 'distinct' ? `checks-distinct-${index}.json` : 'checks.json',
  );
  const usage = measuring().server;
  const counted = delta(countedBefore, await snapshot(kind, server));
  const problems = [];
  if (result.errors > 0) problems.push(`${result.errors} gRPC errors (${JSON.stringify(result.statuses)})`);
  if (usage.processesLost > 0)
    problems.push(`${usage.processesLost} of its processes exited during the cell`);
  if (kind) {
    problems.push(
      ...splitProblems({
        counted: answersOf(kind, counted, concurrency + ctx.mix.length),
        seen: result.count,
        mix: ctx.mix,
        slack: concurrency + ctx.mix.length,
        expectedKey: expectedKey[kind],
        what: 'under load',
      }),
    );
  }
  const caches =
    kind === 'scopegate'
      ? { token: hitShare(counted, 'token'), decision: hitShare(counted, 'decision') }
      : undefined;
  console.error(
    `  ${LABELS[name]}, ${regime} tokens, c=${concurrency}: ${Math.round(result.rps)} checks/s, p99 ${result.p99?.toFixed(2)} ms` +
      (problems.length > 0 ? ` — ${problems.join('; ')}` : ''),
  );
  return {
    contestant: name,
    regime,
    concurrency,
    connections,
    ...result,
    ...usage,
    caches,
    counted,
    problems,
  };
}

/**
 * Every direct cell, contestants taking turns at each concurrency (so the cells a ratio compares run close
 * together in time). Each server's answers to the mix are checked one by one before the load and again after
 * it (one that degraded under load is broken), and counted during each cell.
 */
async function directCells(o, ctx, tools) {
  const regimes = Object.entries(DIRECT)
    .filter(([regime]) => regime === 'repeated' || ctx.distinctMix.length > 0)
    .map(([regime, names]) => [regime, names.filter((n) => o.only.includes(n))]);
  const names = [...new Set(regimes.flatMap(([, n]) => n))];
  const before = {};
  for (const name of names) before[name] = await answerProblems(name, ctx.servers[name], ctx);
  const cells = [];
  for (const concurrency of o.concurrencies) {
    for (const [regime, regimeNames] of regimes) {
      for (const name of regimeNames) cells.push(await directCell(name, regime, concurrency, o, ctx, tools));
    }
  }
  for (const name of names) {
    const after = (await answerProblems(name, ctx.servers[name], ctx)).map((p) => `after the load: ${p}`);
    for (const cell of cells.filter((c) => c.contestant === name)) {
      cell.problems.unshift(...before[name]);
      cell.problems.push(...after);
      cell.ok = cell.problems.length === 0;
    }
  }
  return cells;
}

/** Each request of the mix sent once through Envoy: 2xx where allowed, 403 where denied (or 2xx for all). */
async function httpAnswerProblems(url, allowAll, mix) {
  let statuses;
  try {
    statuses = await replayHttp(url, mix);
  } catch (err) {
    return [`request failed: ${err.message}`];
  }
  const wrong = mix
    .map((r, i) => {
      const allowed = statuses[i] >= 200 && statuses[i] < 300;
      const ok = allowAll || r.allow ? allowed : statuses[i] === 403;
      return ok ? undefined : `${r.name} → ${statuses[i]}`;
    })
    .filter(Boolean);
  return wrong.length === 0 ? [] : [`answered against the expected split: ${wrong.join(', ')}`];
}

/** Long enough for Envoy to write out its access log (src/dev/envoy.ts starts it flushing every 50 ms). */
const logFlushed = () => new Promise((resolve) => setTimeout(resolve, 250));

/** One wrk cell through one Envoy shape: warm-up, measured cell, answers against the expected split. */
async function envoyCell(shape, o, ctx, tools) {
  const asked = authzOf(shape, ctx.servers);
  const accessLog = join(ctx.dir, 'access.log');
  const configText = envoyConfig(shape, {
    authzPort: asked && portOf(asked.address),
    jwksText: ctx.jwksText,
    accessLogFile: accessLog,
  });
  const { envoy, envoyPid } = await startTimedEnvoy({
    bin: tools.envoy,
    configText,
    dir: ctx.dir,
    limitSeconds: ctx.limitSeconds,
  });
  try {
    const wrk = (seconds) =>
      runWrk({ url: envoy.url, dataFile: join(ctx.dir, 'mix.lua'), connections: o.connections, seconds });
    const allowAll = shape === 'envoy' || allowsAll(shape);
    const problems = await httpAnswerProblems(envoy.url, allowAll, ctx.mix);
    await wrk(1); // warm-up
    const kind = countsKind(shape);
    const authz = asked?.server;
    const countedBefore = kind ? await snapshot(kind, authz) : undefined;
    await logFlushed();
    const logFrom = statSync(accessLog).size;
    const measuring = startMeasuring({ authz: authz?.pid, envoy: envoyPid });
    const result = await wrk(o.seconds);
    const usage = measuring();
    // The status Envoy gave each request of the mix (its access log, by x-bench-case: 200 from the
    // direct_response where allowed, 403 where denied), and what the authz server decided for each.
    await logFlushed();
    const logged = accessLogCounts(accessLog, logFrom);
    const slack = o.connections + ctx.mix.length;
    if (logged.leftEarly > o.connections)
      problems.push(
        `${logged.leftEarly} requests logged unanswered (client gone), more than the connections`,
      );
    problems.push(
      ...splitProblems({
        counted: logged.counts,
        seen: result.count,
        mix: ctx.mix.map((r, index) => ({ ...r, index })),
        slack,
        expectedKey: (r) => `${r.index} ${allowAll || r.allow ? 200 : 403}`,
        what: "Envoy's access log",
      }),
    );
    let counted;
    if (kind) {
      counted = delta(countedBefore, await snapshot(kind, authz));
      // scopegate counts each Check under the door it came through: this cell's must all be Envoy's.
      if (kind === 'scopegate') problems.push(...doorProblems(counted, asked.door));
      problems.push(
        ...splitProblems({
          counted: answersOf(kind, counted, slack),
          seen: result.count,
          mix: ctx.mix,
          slack,
          expectedKey: expectedKey[kind],
          what: 'decided under load',
        }),
      );
    }
    const deniedShare = allowAll ? 0 : ctx.mix.filter((r) => !r.allow).length / ctx.mix.length;
    // Round-robin over the mix, minus what was still in flight at the end.
    if (Math.abs(result.denied - deniedShare * result.count) > slack) {
      problems.push(
        `${result.denied} of ${result.count} answered 403, expected ${Math.round(deniedShare * result.count)}`,
      );
    }
    if (result.other > 0) problems.push(`${result.other} answers neither 2xx nor 403`);
    if (result.errors > 0) problems.push(`${result.errors} socket errors`);
    if (result.count === 0) problems.push('no answers');
    for (const [label, u] of Object.entries(usage)) {
      if (u.processesLost > 0)
        problems.push(`${u.processesLost} ${label} process(es) exited during the cell`);
    }
    console.error(
      `  ${shape}: ${Math.round(result.rps)} req/s, p50 ${result.p50.toFixed(2)} ms, 403 ${result.denied}/${result.count}`,
    );
    return {
      contestant: shape,
      ...result,
      logged,
      counted,
      authz: usage.authz,
      envoyUsage: usage.envoy,
      problems,
      ok: problems.length === 0,
    };
  } finally {
    await envoy.stop();
    rmSync(accessLog, { force: true });
  }
}

/** The middle value (the mean of the two middle ones for an even count); NaN for none. */
function median(values) {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main() {
  const o = options();
  const tools = findTools(o);
  const startedAt = new Date().toISOString();
  const machine = describeMachine({ ...tools, node: o.node });
  console.error(
    `compare: ${o.smoke ? 'smoke run' : `${o.seconds} s per cell`}, contestants ${o.only.join(', ')},` +
      ` Node.js ${describeNode(o.node)}`,
  );
  const ctx = await prepare(o, tools);
  ctx.jwksText = readFileSync(ctx.jwksFile, 'utf8');
  try {
    const equivalent = await equivalence(o, ctx);
    const direct = await directCells(o, ctx, tools);
    const envoy = [];
    // The floor runs first and (unless a smoke run) again halfway and last; the median of its cells is the
    // floor, so neither one noisy cell nor the luckiest one shifts every "added" number.
    const contestants = o.shapes.filter((s) => s !== 'envoy');
    const order = o.shapes.includes('envoy') ? ['envoy', ...contestants] : contestants;
    if (o.shapes.includes('envoy') && !o.smoke) {
      order.splice(1 + Math.ceil(contestants.length / 2), 0, 'envoy');
      order.push('envoy');
    }
    const seen = new Set();
    for (const shape of order) {
      const cell = await envoyCell(shape, o, ctx, tools);
      envoy.push(seen.has(shape) ? { ...cell, again: true } : cell);
      seen.add(shape);
    }
    const floors = envoy.filter((e) => e.contestant === 'envoy');
    const floor = (key) => median(floors.map((e) => e[key]));
    for (const e of envoy) {
      e.addedP50 = e.p50 - floor('p50');
      e.addedP99 = e.p99 - floor('p99');
    }
    const run = {
      startedAt,
      command: `node bench/compare.js ${process.argv.slice(2).join(' ')}`.trim(),
      options: o,
      machine,
      mix: ctx.mix.map(({ token: _token, ...request }) => request),
      distinctTokens: ctx.distinctMix.length,
      equivalence: equivalent,
      direct,
      envoy,
      floorCells: floors.length,
      ratios: ratios({ direct, envoy, concurrencies: o.concurrencies }),
    };
    console.log(markdown(run));
    const broken = [...direct, ...envoy].filter((cell) => !cell.ok);
    if (broken.length > 0) {
      console.error(`compare: ${broken.length} cell(s) BROKEN (see "answers"); nothing written`);
      return 1;
    }
    if (!o.smoke) for (const file of writeResults(run)) console.error(`compare: wrote ${file}`);
    return 0;
  } finally {
    for (const server of Object.values(ctx.servers)) await server.stop();
  }
}

try {
  process.exitCode = await main();
} catch (err) {
  console.error(`compare: ${err.message}`);
  process.exitCode = 1;
}
// Nothing may keep the process alive (a lingering gRPC channel, a timer): the work is done.
process.exit();
