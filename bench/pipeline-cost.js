#!/usr/bin/env node
// scopegate's own work, in-process, without the gRPC transport around it (issue 11's scale and verify targets):
//
//   scale   decide() over a policy with 10 routes and 10 subjects vs 10,000 of each (decision cache off, token
//           cache on: every check matches a route, finds the subject's roles and grants, as a cache miss would)
//   verify  a token-cache miss (Authenticator.authenticate on a never-seen token: strict header/payload
//           reading, key lookup, signature, claims, cache insert) vs jose's jwtVerify alone on the same tokens,
//           for RS256 and ES256 tokens (--algs): signature verifications per second on this Node.js
//
//   node bench/pipeline-cost.js                    # both
//   node bench/pipeline-cost.js --only scale --checks 200000
//   node bench/pipeline-cost.js --only verify --node .venv/bin/node   # re-runs itself on that Node.js
//
// Each side runs in alternating rounds (A B A B …) and the best round counts, so a noisy neighbour costs both
// sides alike. Bounded by --rounds and the counts below; no network.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createLocalJWKSet, exportJWK, generateKeyPair, jwtVerify, SignJWT } from 'jose';
import { describeNode, nodeBinary, rerunOnNode } from './node-binary.js';
import { scalePolicyText, scaleRequestAt } from './scale-policy.js';

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: 'scale,verify' },
    checks: { type: 'string', default: '100000' },
    tokens: { type: 'string', default: '2000' },
    rounds: { type: 'string', default: '4' },
    sizes: { type: 'string', default: '10,10000' },
    algs: { type: 'string', default: 'RS256,ES256' },
    node: { type: 'string' },
  },
});
// In-process: with --node, the whole bench runs again on that Node.js, and its exit code is this one's.
rerunOnNode(values.node, import.meta.url);

const dist = (path) => import(new URL(`../dist/${path}`, import.meta.url).href);
const { loadPolicyFile, formatProblem } = await dist('policy/index.js');
const { Authenticator, KeyRegistry } = await dist('identity/index.js');
const { DecisionCache } = await dist('cache/decisions.js');
const { decide } = await dist('check/decide.js');
const { readRequest } = await dist('request/facts.js');
const { checkRequestFor } = await dist('wire/check-request.js');

const checks = Math.min(Number(values.checks), 2_000_000);
const tokenCount = Math.min(Number(values.tokens), 20_000);
const rounds = Math.min(Number(values.rounds), 20);

const ISSUER = 'https://bench.scopegate.local/';
const AUDIENCE = 'https://gateway.example.com';
const dir = mkdtempSync(join(tmpdir(), 'scopegate-pipeline-cost-'));
const policyText = (n) =>
  scalePolicyText(n, { issuer: ISSUER, audience: AUDIENCE, jwksFile: './keys/jwks.json' });
const ALGS = ['RS256', 'ES256'];
const algs = values.algs.split(',').map((a) => a.trim());
const unknownAlgs = algs.filter((a) => !ALGS.includes(a));
if (unknownAlgs.length > 0)
  throw new Error(`--algs: unknown ${unknownAlgs.join(', ')} (known: ${ALGS.join(', ')})`);
/** One signing key per algorithm, kid = the algorithm; the issuer's JWKS holds both public keys. */
const signing = {};
for (const alg of ALGS) signing[alg] = await generateKeyPair(alg);
const jwks = {
  keys: await Promise.all(
    ALGS.map(async (alg) => ({ ...(await exportJWK(signing[alg].publicKey)), kid: alg, alg, use: 'sig' })),
  ),
};
mkdirSync(join(dir, 'keys'));
writeFileSync(join(dir, 'keys/jwks.json'), JSON.stringify(jwks));

const mint = (claims, alg = 'RS256') =>
  new SignJWT({ scope: 'read', client_id: 'bench', gty: 'client_credentials', ...claims })
    .setProtectedHeader({ alg, kid: alg, typ: 'at+jwt' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('2h')
    .sign(signing[alg].privateKey);

async function snapshotFor(text, { tokenCacheSize = 10_000, decisionCacheSize = 0 } = {}) {
  const file = join(dir, `policy-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  const loaded = await loadPolicyFile(file);
  if (!loaded.ok) throw new Error(loaded.problems.map(formatProblem).join('\n'));
  const keys = new KeyRegistry({ fetchTimeoutMs: 100 });
  for (const issuer of loaded.policy.issuers) keys.storeFor(issuer);
  await keys.start();
  const policy = loaded.policy;
  return {
    policy,
    authenticator: new Authenticator(policy, keys, { tokenCacheSize }),
    decisions: new DecisionCache({ maxEntries: decisionCacheSize }),
    keys,
  };
}

/**
 * Best of `rounds` for each side, alternating; each side returns operations done. Also the least CPU time
 * (this process, all threads: WebCrypto verifies on libuv's pool) per operation, in µs.
 */
async function race(sides) {
  const best = Object.fromEntries(Object.keys(sides).map((name) => [name, 0]));
  const cpu = Object.fromEntries(Object.keys(sides).map((name) => [name, Number.POSITIVE_INFINITY]));
  for (let round = 0; round < rounds; round++) {
    for (const [name, run] of Object.entries(sides)) {
      const started = performance.now();
      const cpuBefore = process.cpuUsage();
      const ops = await run();
      const { user, system } = process.cpuUsage(cpuBefore);
      best[name] = Math.max(best[name], ops / ((performance.now() - started) / 1000));
      cpu[name] = Math.min(cpu[name], (user + system) / ops);
    }
  }
  race.cpu = cpu;
  return best;
}

async function scale() {
  const tokensPerSide = 1_000;
  const side = async (n) => {
    const snapshot = await snapshotFor(policyText(n));
    const tokens = await Promise.all(
      Array.from({ length: tokensPerSide }, (_, i) => mint({ sub: `s${i % n}` })),
    );
    // Every request allowed: its route exists and its subject has the role.
    const requests = Array.from({ length: 4_096 }, (_, i) => {
      const { token, path } = scaleRequestAt(i, n, tokensPerSide);
      return checkRequestFor({ method: 'GET', path, token: tokens[token], headers: [] });
    });
    for (const request of requests) {
      const { decision } = await decide(request, snapshot); // warm the token cache; prove the mix is allowed
      if (decision.reason !== 'allowed') throw new Error(`scale bench request denied: ${decision.reason}`);
    }
    return async () => {
      for (let i = 0; i < checks; i++) await decide(requests[i & 4095], snapshot);
      return checks;
    };
  };
  const [a, b] = values.sizes.split(',').map(Number);
  const label = (n) => `${n.toLocaleString('en')} routes, ${n.toLocaleString('en')} subjects`;
  const best = await race({ [label(a)]: await side(a), [label(b)]: await side(b) });
  const [small, large] = Object.values(best);
  console.log(
    `scale: decide() per second, decision cache off, ${checks} checks per round, best of ${rounds}`,
  );
  for (const [name, rate] of Object.entries(best))
    console.log(`  ${name.padEnd(32)} ${rate.toFixed(0).padStart(8)} checks/s`);
  console.log(`  ${b.toLocaleString('en')} ÷ ${a}: ${(large / small).toFixed(2)}× (target ≥ 0.8×)`);
}

async function verify(alg) {
  const snapshot = await snapshotFor(policyText(10));
  const tokens = await Promise.all(
    Array.from({ length: tokenCount }, (_, i) => mint({ sub: 's1', jti: `t${i}` }, alg)),
  );
  const facts = tokens.map((token) => {
    const read = readRequest(checkRequestFor({ method: 'GET', path: '/r1/1', token, headers: [] }));
    if (!read.ok) throw new Error('bench request unreadable');
    return read.value;
  });
  const localJwks = createLocalJWKSet(jwks);
  const options = { issuer: ISSUER, audience: AUDIENCE, algorithms: [alg] };
  // A fresh authenticator (empty token cache) per round: every token is a miss, as 1,000,000 new tokens are.
  const sides = {
    'jose jwtVerify alone': async () => {
      for (const token of tokens) await jwtVerify(token, localJwks, options);
      return tokens.length;
    },
    'scopegate token-cache miss': async () => {
      const authenticator = new Authenticator(snapshot.policy, snapshot.keys, { tokenCacheSize: 10_000 });
      for (const f of facts) {
        const outcome = await authenticator.authenticate(f);
        if (!outcome.ok) throw new Error(`verify bench token refused: ${outcome.reason}`);
      }
      return facts.length;
    },
  };
  const best = await race(sides);
  const [jose, ours] = Object.values(best);
  console.log(`verify: distinct ${alg} tokens, ${tokenCount} per round, one at a time, best of ${rounds}`);
  for (const [name, rate] of Object.entries(best)) {
    console.log(
      `  ${name.padEnd(28)} ${rate.toFixed(0).padStart(6)} verifies/s  ${(1e6 / rate).toFixed(1)} µs each,` +
        ` ${race.cpu[name].toFixed(1)} µs CPU each`,
    );
  }
  const [joseCpu, oursCpu] = Object.values(race.cpu);
  console.log(
    `  scopegate ÷ jose: ${(jose / ours).toFixed(2)}× the time, ${(oursCpu / joseCpu).toFixed(2)}× the CPU (target ≤ 1.2×)`,
  );
}

console.log(`node ${describeNode(nodeBinary())}`);
if (values.only.includes('scale')) await scale();
if (values.only.includes('verify')) for (const alg of algs) await verify(alg);
process.exit(0);
