#!/usr/bin/env node
// scopegate side by side with the usual choice and with the floors, in one run on this machine (issue 11):
//   direct Check over gRPC (ghz) against scopegate, the OPA comparator (bench/opa, OPA-Envoy's equivalent)
//   and a do-nothing grpc-js ext_authz (the Node transport floor); and HTTP through Envoy (wrk) with no
//   authorization (the floor), with jwt_authn + rbac in-process (bench/envoy-rbac.yaml), and with ext_authz
//   to each of the three. Every contestant gets the same requests (bench/compare-mix.js: 8 allowed, 2 denied,
//   round-robin) and must answer them with the expected split, or it is flagged broken, not ranked.
//
//   npm run bench:compare                                  # 5 s cells, c = 1, 16, 64; writes bench/results/
//   npm run bench:compare -- --seconds 10 --only scopegate,opa --scopegate-args "--workers 2"
//   npm run bench:compare -- --smoke                       # CI: ~1 s cells, c = 16, checks only, writes nothing
//   npm run bench:compare -- --node .venv/bin/node         # scopegate and the Node floors on another Node.js
//
// Flags: --seconds N (per cell, 1..60), --concurrency 1,16,64 (ghz), --connections 8 (wrk),
// --only scopegate,opa,noop,rbac,envoy, --scopegate-args "...", --noop-workers N (default: as many gRPC
// processes as scopegate runs), --node PATH (the Node.js binary for every Node process the bench starts:
// scopegate, the do-nothing ext_authz and the upstream; default: the one running the bench), --smoke.
//
// Fairness on a small machine: nothing is pinned. OPA uses every core (GOMAXPROCS) and scopegate may too
// (--workers), so pinning servers to one CPU and the load generator to another would cap the multi-core
// contestants at one core while the load generator idles on the other. Instead every process shares all
// CPUs, and the table reports the CPU seconds each server's process tree used during the cell (and checks
// per CPU-second), so the reader sees what each result cost.
//
// Bounded: each server runs under coreutils `timeout` sized to the whole run, each load generator is killed
// after its cell plus 30 s, everything is killed on exit, Ctrl-C or error; only 127.0.0.1 is used.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
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
import { buildMix, checkRequests, replay, replayHttp, writeWrkMix } from './compare-mix.js';
import { describeMachine, LABELS, markdown, ratios, writeResults } from './compare-report.js';
import { describeNode, nodeBinary } from './node-binary.js';

const dist = (path) => import(new URL(`../dist/${path}`, import.meta.url).href);
const { findEnvoy, INSTALL_HINT: ENVOY_HINT } = await dist('dev/envoy.js');
const { ensureDevKeys } = await dist('dev/keys.js');

const AUTHZ = ['scopegate', 'opa', 'noop'];
/** Through-Envoy order: floors first, so a broken setup shows before the contestants run. */
const SHAPES = ['envoy', 'rbac', 'noop', 'opa', 'scopegate'];

function options() {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '1,16,64' },
      connections: { type: 'string', default: '8' },
      only: { type: 'string', default: 'scopegate,opa,noop,rbac,envoy' },
      'scopegate-args': { type: 'string', default: '' },
      'noop-workers': { type: 'string' },
      node: { type: 'string' },
      smoke: { type: 'boolean', default: false },
    },
  });
  const only = values.only.split(',').map((s) => s.trim());
  const unknown = only.filter((name) => !SHAPES.includes(name));
  if (unknown.length > 0)
    throw new Error(`--only: unknown ${unknown.join(', ')} (known: ${SHAPES.join(', ')})`);
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
    only,
    // The floor is the reference for every through-Envoy "added" number: it runs whenever Envoy does.
    shapes: SHAPES.filter((s) => only.includes(s) || (s === 'envoy' && only.some((o) => o !== 'envoy'))),
    scopegateArgs: values['scopegate-args'].trim(),
    noopWorkers:
      values['noop-workers'] === undefined ? undefined : count(values['noop-workers'], 64, '--noop-workers'),
    node: nodeBinary(values.node),
  };
}

/** Every tool the selected contestants need, found or explained; all problems at once, never a silent skip. */
function findTools(o) {
  const problems = [];
  const tools = {};
  const direct = o.only.some((name) => AUTHZ.includes(name));
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
  // ghz reads the data file with protobuf's JSON mapping, where `body` (bytes in proto/) is base64.
  const forGhz = requests.map((request) => {
    const http = request.attributes.request.http;
    if (http.body === undefined) return request;
    const body = Buffer.from(http.body, 'utf8').toString('base64');
    return { ...request, attributes: { ...request.attributes, request: { http: { ...http, body } } } };
  });
  writeFileSync(join(dir, 'checks.json'), JSON.stringify(forGhz));
  writeWrkMix(mix, join(dir, 'mix.lua'));
  // Generous: every cell plus its warm-up, Envoy starts and stops, and slack for a slow machine.
  const cells = o.concurrencies.length * AUTHZ.length + o.shapes.length;
  const limitSeconds = cells * (o.seconds + 10) + 180;
  const node = o.node.path;
  const servers = {};
  const start = (name, command, args) => startServer({ name, command, args, limitSeconds });
  servers.upstream = await start('upstream', node, [join(root, 'bench/noop-upstream.js')]);
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
  }
  if (o.only.includes('opa')) {
    const args = [
      '--listen',
      '127.0.0.1:0',
      '--policy',
      join(root, 'bench/opa/policy.rego'),
      '--jwks',
      jwksFile,
    ];
    servers.opa = await start('opa', tools.opa, args);
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
  }
  o.noopWorkers ??= 1;
  return { dir, keyFile, jwksFile, mix, requests, servers, limitSeconds };
}

/** The split a server must answer: the policy's for scopegate and OPA, allow-everything for the noop server. */
const expectedAnswers = (name, mix) => mix.map((r) => name === 'noop' || r.allow);

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
  try {
    ({ checkEquivalence } = await import(new URL('./opa/equivalence.js', import.meta.url).href));
  } catch (err) {
    throw new Error(`bench/opa/equivalence.js could not be loaded (${err.message}); ${BENCH_TOOLS_HINT}`);
  }
  const { mismatches, results } = await checkEquivalence({
    scopegate: ctx.servers.scopegate.listening.grpc,
    opa: ctx.servers.opa.listening.grpc,
    keyFile: ctx.keyFile,
  });
  const wrong = Array.isArray(mismatches) ? mismatches : [];
  const count = Array.isArray(mismatches) ? mismatches.length : Number(mismatches);
  if (count > 0) {
    console.error(
      `compare: scopegate and the OPA comparator disagree on ${count} case(s); nothing measured:`,
    );
    for (const m of wrong) console.error(`  ${JSON.stringify(m)}`);
    process.exit(1);
  }
  return `${results?.length ?? '?'} cases, all decided the same`;
}

/** One ghz cell against one server: warm-up, then the measured cell with the CPU and RSS it cost. */
async function directCell(name, concurrency, o, ctx, tools) {
  const server = ctx.servers[name];
  const connections = Math.min(concurrency, availableParallelism());
  const ghz = (seconds) =>
    runGhz({
      ghz: tools.ghz,
      address: server.listening.grpc,
      dataFile: join(ctx.dir, 'checks.json'),
      outFile: join(ctx.dir, 'ghz.json'),
      concurrency,
      connections,
      seconds,
    });
  await ghz(1); // warm-up: connections, JIT, caches
  const measuring = startMeasuring({ server: server.pid });
  const result = await ghz(o.seconds);
  const usage = measuring().server;
  const problems = [];
  if (result.errors > 0) problems.push(`${result.errors} gRPC errors (${JSON.stringify(result.statuses)})`);
  if (usage.processesLost > 0)
    problems.push(`${usage.processesLost} of its processes exited during the cell`);
  console.error(
    `  ${LABELS[name]} c=${concurrency}: ${Math.round(result.rps)} checks/s, p99 ${result.p99?.toFixed(2)} ms`,
  );
  return { contestant: name, concurrency, connections, ...result, ...usage, problems };
}

/**
 * Every direct cell, contestants taking turns at each concurrency (so the cells a ratio compares run close
 * together in time). Each server's answers to the mix are checked before the load and again after it: one
 * that degraded under load (crashed, started failing closed) is broken.
 */
async function directCells(o, ctx, tools) {
  const names = AUTHZ.filter((n) => o.only.includes(n));
  const before = {};
  for (const name of names) before[name] = await answerProblems(name, ctx.servers[name], ctx);
  const cells = [];
  for (const concurrency of o.concurrencies) {
    for (const name of names) cells.push(await directCell(name, concurrency, o, ctx, tools));
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

/** One wrk cell through one Envoy shape: warm-up, measured cell, answers against the expected split. */
async function envoyCell(shape, o, ctx, tools) {
  const upstreamPort = portOf(new URL(ctx.servers.upstream.listening.url).host);
  const configText = envoyConfig(shape, {
    upstreamPort,
    authzPort: ctx.servers[shape] ? portOf(ctx.servers[shape].listening.grpc) : upstreamPort,
    jwksText: ctx.jwksText,
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
    const allowAll = shape === 'envoy' || shape === 'noop';
    const problems = await httpAnswerProblems(envoy.url, allowAll, ctx.mix);
    await wrk(1); // warm-up
    const measuring = startMeasuring({ authz: ctx.servers[shape]?.pid, envoy: envoyPid });
    const result = await wrk(o.seconds);
    const usage = measuring();
    const deniedShare = allowAll ? 0 : ctx.mix.filter((r) => !r.allow).length / ctx.mix.length;
    // Round-robin over the mix, minus what was still in flight at the end.
    const slack = o.connections + ctx.mix.length;
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
      authz: usage.authz,
      envoyUsage: usage.envoy,
      problems,
      ok: problems.length === 0,
    };
  } finally {
    await envoy.stop();
  }
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
    for (const shape of o.shapes) envoy.push(await envoyCell(shape, o, ctx, tools));
    // The floor runs first and (unless a smoke run) again last; the lower of the two is the floor, so one
    // noisy floor cell does not shift every "added" number.
    if (o.shapes.includes('envoy') && !o.smoke)
      envoy.push({ ...(await envoyCell('envoy', o, ctx, tools)), again: true });
    const floors = envoy.filter((e) => e.contestant === 'envoy');
    const floor = (key) => (floors.length > 0 ? Math.min(...floors.map((e) => e[key])) : Number.NaN);
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
      equivalence: equivalent,
      direct,
      envoy,
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
