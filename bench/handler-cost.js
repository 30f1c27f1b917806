#!/usr/bin/env node
// The CPU one Check costs scopegate's own code, without the network: the gRPC Check handler exactly as the
// server runs it (checkMethod; createGrpcServer's grpc-js handler in older builds), called in-process with the
// decoded CheckRequest, its answer framed as the server sends it. Against another build (--base DIR: a checkout with its own dist/ and
// node_modules/, e.g. `git worktree add /tmp/base <commit> && cd /tmp/base && npm ci && npm run build`), in
// alternating rounds, best round of each: what a change costs per Check, in µs of CPU, without the transport's
// noise (the transport is ~90 % of a Check; bench:compare measures it whole).
//
//   node bench/handler-cost.js                          # this build: allowed repeats, and a mix with denies
//   node bench/handler-cost.js --base /tmp/base         # and the other build, side by side
//
// Mixes: "repeat" (100 tokens, allowed GETs: every Check a decision-cache hit) and "mixed" (the same, one
// request in five denied: an unknown route, a missing token, a malformed token). Bounded by --rounds and
// --calls; no network, nothing written.
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { pino } from 'pino';
import { describeNode, nodeBinary } from './node-binary.js';
import { scalePolicyText, scaleRequestAt } from './scale-policy.js';

const { values } = parseArgs({
  options: {
    base: { type: 'string' },
    rounds: { type: 'string', default: '7' },
    calls: { type: 'string', default: '200000' },
  },
});
const rounds = Math.min(Number(values.rounds), 30);
const calls = Math.min(Number(values.calls), 2_000_000);

const ISSUER = 'https://bench.scopegate.local/';
const AUDIENCE = 'https://gateway.example.com';
const SUBJECTS = 10;
const TOKENS = 100;
const dir = mkdtempSync(join(tmpdir(), 'scopegate-handler-cost-'));
const { publicKey, privateKey } = await generateKeyPair('RS256');
mkdirSync(join(dir, 'keys'));
const jwk = { ...(await exportJWK(publicKey)), kid: 'k', alg: 'RS256', use: 'sig' };
writeFileSync(join(dir, 'keys/jwks.json'), JSON.stringify({ keys: [jwk] }));
const policyFile = join(dir, 'policy.yaml');
writeFileSync(
  policyFile,
  scalePolicyText(SUBJECTS, { issuer: ISSUER, audience: AUDIENCE, jwksFile: './keys/jwks.json' }),
);
const tokens = await Promise.all(
  Array.from({ length: TOKENS }, (_, i) =>
    new SignJWT({ scope: 'read', client_id: 'bench', gty: 'client_credentials', sub: `s${i % SUBJECTS}` })
      .setProtectedHeader({ alg: 'RS256', kid: 'k', typ: 'at+jwt' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('2h')
      .sign(privateKey),
  ),
);
// Allow lines are logged at debug: at info, as served, an allow writes nothing and a deny one line.
const log = pino({ level: 'info' }, pino.destination({ dest: '/dev/null', sync: false }));

/** The registered Check handler of the build in `root`, fed the mix; returns a function running `n` calls. */
async function build(root) {
  const dist = (path) => import(new URL(`dist/${path}`, `file://${resolve(root)}/`).href);
  const has = (path) => existsSync(join(root, 'dist', path));
  const { loadPolicyFile } = await dist('policy/index.js');
  const { Authenticator, KeyRegistry } = await dist('identity/index.js');
  const { DecisionCache } = await dist('cache/decisions.js');
  const { Metrics } = await dist('telemetry/metrics.js');
  const { createGrpcServer, HealthStatus, checkMethod } = await dist('server/grpc.js');
  // Where older builds kept what moved: the CheckRequest maker, and a policy set (one policy before it).
  const { checkRequestFor } = await dist(
    has('wire/check-request.js') ? 'wire/check-request.js' : 'dev/check-client.js',
  );
  const loaded = await loadPolicyFile(policyFile);
  if (!loaded.ok)
    throw new Error(`${root}: the bench policy is refused: ${JSON.stringify(loaded.problems[0])}`);
  const keys = new KeyRegistry({ fetchTimeoutMs: 100 });
  for (const issuer of loaded.policy.issuers) keys.storeFor(issuer);
  await keys.start();
  const snapshot = {
    policy: loaded.policy,
    authenticator: new Authenticator(loaded.policy, keys, { tokenCacheSize: 10_000 }),
    decisions: new DecisionCache({ maxEntries: 10_000 }),
  };
  let current = () => snapshot;
  if (has('policy/set.js')) {
    const { PolicySet } = await dist('policy/set.js');
    const set = new PolicySet([{ owns: loaded.policy.owns, value: snapshot }], true);
    current = () => set;
  }
  const deps = { current, metrics: new Metrics(), log };
  const handler = await checkHandler(deps, { createGrpcServer, HealthStatus, checkMethod }, dist);
  const request = (i, mixed) => {
    const { token, path } = scaleRequestAt(i, SUBJECTS, TOKENS);
    if (mixed && i % 5 === 1)
      return checkRequestFor({ method: 'GET', path: '/nowhere', token: tokens[token], headers: [] });
    if (mixed && i % 5 === 3) return checkRequestFor({ method: 'GET', path, headers: [] });
    if (mixed && i % 10 === 8) return checkRequestFor({ method: 'GET', path, token: 'a.b.c', headers: [] });
    return checkRequestFor({ method: 'GET', path, token: tokens[token], headers: [] });
  };
  const run = (requests) => {
    let pending = 0;
    const sent = (err, answer) => {
      if (err) throw err;
      handler.serialize(answer);
      pending--;
    };
    const call = (r) => {
      pending++;
      handler.func({ request: r, metadata: null }, sent);
    };
    // Warm: every token verified, every repeat kept.
    return async () => {
      for (const r of requests) call(r);
      while (pending > 0) await new Promise((done) => setTimeout(done, 10));
      return async (n) => {
        for (let i = 0; i < n; i++) call(requests[i % requests.length]);
        // A build may answer some denies a tick later: they count too.
        while (pending > 0) await new Promise((done) => setImmediate(done));
        return n;
      };
    };
  };
  return {
    repeat: await run(Array.from({ length: 1_000 }, (_, i) => request(i, false)))(),
    mixed: await run(Array.from({ length: 1_000 }, (_, i) => request(i, true)))(),
  };
}

/**
 * The Check handler as `func(call, callback)` and `serialize(answer)`: grpc-js's registered handler in builds
 * serving gRPC with grpc-js, and in builds on node:http2 the Check method (checkMethod) with the framing.
 */
async function checkHandler(deps, { createGrpcServer, HealthStatus, checkMethod }, dist) {
  if (checkMethod === undefined)
    return createGrpcServer(deps, new HealthStatus()).handlers.get(
      '/envoy.service.auth.v3.Authorization/Check',
    );
  const { frameMessage } = await dist('server/h2-grpc.js');
  const method = checkMethod(deps);
  const headers = {};
  return {
    func: ({ request }, callback) => {
      const reply = method(request, headers);
      if (reply instanceof Promise) reply.then((bytes) => callback(null, bytes));
      else callback(null, reply);
    },
    serialize: frameMessage,
  };
}

const builds = { 'this build': await build(fileURLToPath(new URL('..', import.meta.url))) };
if (values.base) builds[`--base ${values.base}`] = await build(values.base);

console.log(`node ${describeNode(nodeBinary())}`);
console.log(`handler-cost: µs of CPU per Check (best of ${rounds} alternating rounds of ${calls} calls)`);
for (const mix of ['repeat', 'mixed']) {
  const best = {};
  for (let round = 0; round < rounds; round++) {
    for (const [name, sides] of Object.entries(builds)) {
      const before = process.cpuUsage();
      const n = await sides[mix](calls);
      const { user, system } = process.cpuUsage(before);
      best[name] = Math.min(best[name] ?? Number.POSITIVE_INFINITY, (user + system) / n);
    }
  }
  const [ours, base] = Object.values(best);
  const ratio = base === undefined ? '' : `  this ÷ base: ${(ours / base).toFixed(2)}×`;
  console.log(
    `  ${mix.padEnd(7)} ${Object.entries(best)
      .map(([name, us]) => `${name} ${us.toFixed(2)} µs`)
      .join(', ')}${ratio}`,
  );
}
process.exit(0);
