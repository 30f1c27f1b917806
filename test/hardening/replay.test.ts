// Resource bounds under replay (issue 7, item 3): one scopegate (`scopegate serve --workers 1`, its own
// process, as beside Envoy; the example policy, a real JWKS server on loopback) answers the whole bad-input
// corpus again and again over real gRPC, with a bounded number of calls in flight. It must keep answering
// every vector with its expected reason, never stall its event loop for 100 ms or more (the server's own
// measurement, nodejs_eventloop_lag_max_seconds, scraped from its /metrics), keep its RSS bounded, and still
// allow the support thread's POST at the end. The load generator runs in this process, not the server's:
// encoding a megabyte request is the client's work (Envoy's, in production), not a stall of scopegate.
//
// How many passes: the issue asks for the corpus replayed 10,000 times. One pass is ~200 vectors, some of them
// megabytes (a 1 MB token, 10,000 headers, a 100,000-deep body), so 10,000 passes are about two million
// calls: hours on the 2-core CI machine, far past its ~2 minute budget. In CI this test therefore replays as
// many *full* passes as fit in a fixed time budget (SCOPEGATE_REPLAY_SECONDS, default 20 s, at least 3 passes)
// and asserts on what ran. `node bench/hardening-replay.js` runs this same file with
// SCOPEGATE_REPLAY_PASSES=10000 (no time budget) and prints the same report; its measured numbers are in the
// header of that script.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isReason } from '../../src/vocabulary/index.js';
import { checkRequestFor } from '../../src/wire/check-request.js';
import type { CheckRequest } from '../../src/wire/types.js';
import { type AuthorizationConnection, connectAuthorization } from '../support/grpc-client.js';
import { type JwksServer, startJwksServer } from '../support/jwks-server.js';
import { examplePolicyText, supportThreadClaims } from '../support/policies.js';
import { type Served, serve } from '../support/process.js';
import { parsePrometheusText } from '../support/prometheus.js';
import { answerOf } from '../support/scopegate.js';
import { mintToken, newSigningKey, type SigningKey } from '../support/tokens.js';
import { CORPUS, type CorpusContext, corpusContext, expectedReasons } from './corpus.js';

const FULL_PASSES = Number(process.env.SCOPEGATE_REPLAY_PASSES ?? 0);
/** Hard cap, whatever the environment says: every loop here is bounded. */
const MAX_PASSES = 10_000;
const BUDGET_MS =
  FULL_PASSES > 0 ? Number.POSITIVE_INFINITY : Number(process.env.SCOPEGATE_REPLAY_SECONDS ?? 20) * 1000;
const MIN_PASSES = 3;
/** Stall bound while other test files compete for the same 2 cores (see the assertion). */
const STALL_BOUND_SHARED_MS = 400;
/** Calls in flight at once: what a busy Envoy keeps open to one ext_authz backend, without swamping 2 cores. */
const CONCURRENCY = 8;
/** Rebuild the requests well before the corpus tokens expire (an hour after the context was made). */
const REBUILD_AFTER_MS = 30 * 60 * 1000;
const MiB = 1024 * 1024;
/** The CI run ends within its budget plus a few passes; the bench's full run takes as long as it takes. */
const TIMEOUT_MS = FULL_PASSES > 0 ? 6 * 3600 * 1000 : 180_000;

let key: SigningKey;
let jwks: JwksServer;
let server: Served;
let grpc: AuthorizationConnection;

beforeAll(async () => {
  key = await newSigningKey('RS256');
  jwks = await startJwksServer([key.publicJwk]);
  const policy = join(mkdtempSync(join(tmpdir(), 'scopegate-replay-')), 'policy.yaml');
  writeFileSync(policy, examplePolicyText(jwks.uri));
  server = await serve([
    ...['--policy', policy, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--workers', '1'],
    // Silent: the corpus is all denials, and writing two million log lines is not what is measured here.
    ...['--log-level', 'silent', '--jwks-timeout-ms', '2000'],
  ]);
  grpc = connectAuthorization(server.grpc);
});
afterAll(async () => {
  grpc?.close();
  server?.child.kill('SIGTERM');
  await server?.exited;
  await jwks?.close();
});

/** The server's resident set, from /proc (Linux; the CI machine and the dev container). */
function serverRss(): number {
  const status = readFileSync(`/proc/${server.child.pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN) * 1024;
}

/**
 * What the server measured about itself since the previous scrape: prom-client resets its event-loop delay
 * histogram on every collect, so the longest stall of a run is the largest of its scrapes.
 */
async function serverLoop() {
  const metrics = parsePrometheusText(await (await fetch(`http://${server.admin}/metrics`)).text());
  const gcOver = (le: string) =>
    metrics.value('nodejs_gc_duration_seconds_count') -
    metrics.value('nodejs_gc_duration_seconds_bucket', { le });
  return {
    maxMs: metrics.value('nodejs_eventloop_lag_max_seconds') * 1000,
    p99Ms: metrics.value('nodejs_eventloop_lag_p99_seconds') * 1000,
    gcPauses: metrics.value('nodejs_gc_duration_seconds_count'),
    gcOver100Ms: gcOver('0.1'),
  };
}

interface Prepared {
  readonly name: string;
  readonly expected: readonly string[];
  readonly request: CheckRequest;
}

async function prepare(ctx: CorpusContext): Promise<Prepared[]> {
  const out: Prepared[] = [];
  for (const vector of CORPUS) {
    out.push({ name: vector.name, expected: expectedReasons(vector), request: await vector.request(ctx) });
  }
  return out;
}

interface PassResult {
  calls: number;
  grpcErrors: number;
  /** Vector names answered with a reason their entry does not expect (first few only). */
  wrong: string[];
  wrongCount: number;
}

/** One full pass over the corpus with at most CONCURRENCY calls in flight. */
async function replayOnce(vectors: readonly Prepared[]): Promise<PassResult> {
  const result: PassResult = { calls: 0, grpcErrors: 0, wrong: [], wrongCount: 0 };
  let next = 0;
  const worker = async () => {
    while (next < vectors.length) {
      const vector = vectors[next++]!;
      result.calls++;
      try {
        const response = await grpc.check(vector.request, 10_000);
        const reason = response.dynamic_metadata?.fields?.reason?.string_value ?? '';
        if (!isReason(reason) || !vector.expected.includes(reason)) {
          result.wrongCount++;
          if (result.wrong.length < 5) result.wrong.push(`${vector.name} → ${reason || '(no reason)'}`);
        }
      } catch {
        result.grpcErrors++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return result;
}

const mib = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;

describe('the whole corpus, replayed against one server', () => {
  it(
    'keeps serving, never stalls the event loop for 100 ms, and keeps RSS bounded',
    async () => {
      let ctx = await corpusContext(key);
      let builtAt = Date.now();
      let vectors = await prepare(ctx);

      // Warm-up pass: JIT, caches, key fetch and gRPC buffers settle before the baseline is taken.
      const warm = await replayOnce(vectors);
      expect(warm.grpcErrors).toBe(0);
      expect(warm.wrong).toEqual([]);

      const start = serverRss();
      let peak = start;
      const sampler = setInterval(() => {
        peak = Math.max(peak, serverRss());
      }, 100);
      // The loop measurement starts here: scraping resets the server's histogram.
      const before = await serverLoop();
      const loop = { maxMs: 0, p99Ms: 0 };
      const scrapeLoop = async () => {
        const now = await serverLoop();
        loop.maxMs = Math.max(loop.maxMs, now.maxMs);
        loop.p99Ms = Math.max(loop.p99Ms, now.p99Ms);
        return now;
      };
      let scraping = Promise.resolve();
      const scraper = setInterval(() => {
        scraping = scraping.then(() => scrapeLoop().then(() => undefined));
      }, 2_000);

      const began = Date.now();
      const target = FULL_PASSES > 0 ? Math.min(FULL_PASSES, MAX_PASSES) : MAX_PASSES;
      const totals = { passes: 0, calls: 0, grpcErrors: 0, wrongCount: 0, wrong: [] as string[] };
      const rssByPass: number[] = [];
      try {
        while (totals.passes < target && (Date.now() - began < BUDGET_MS || totals.passes < MIN_PASSES)) {
          if (Date.now() - builtAt > REBUILD_AFTER_MS) {
            ctx = await corpusContext(key);
            builtAt = Date.now();
            vectors = await prepare(ctx);
          }
          const pass = await replayOnce(vectors);
          totals.passes++;
          totals.calls += pass.calls;
          totals.grpcErrors += pass.grpcErrors;
          totals.wrongCount += pass.wrongCount;
          if (totals.wrong.length < 5) totals.wrong.push(...pass.wrong.slice(0, 5 - totals.wrong.length));
          rssByPass.push(serverRss());
          if (FULL_PASSES > 0 && totals.passes % 100 === 0) {
            console.info(`replay: ${totals.passes} passes, server rss ${mib(serverRss())} MiB`);
          }
        }
      } finally {
        clearInterval(sampler);
        clearInterval(scraper);
      }
      const seconds = (Date.now() - began) / 1000;
      await scraping;
      const after = await scrapeLoop();
      const end = serverRss();
      peak = Math.max(peak, end);
      const stallMs = loop.maxMs;
      // Growth across the second half of the run: a leak keeps climbing there, a warm heap does not.
      const half = rssByPass[Math.floor(rssByPass.length / 2)] ?? start;

      const report = {
        vectors: vectors.length,
        passes: totals.passes,
        calls: totals.calls,
        seconds: Math.round(seconds * 10) / 10,
        callsPerSecond: Math.round(totals.calls / seconds),
        eventLoopMaxMs: Math.round(stallMs * 10) / 10,
        eventLoopP99Ms: Math.round(loop.p99Ms * 10) / 10,
        gcPauses: after.gcPauses - before.gcPauses,
        gcPausesOver100Ms: after.gcOver100Ms - before.gcOver100Ms,
        rssStartMiB: mib(start),
        rssPeakMiB: mib(peak),
        rssEndMiB: mib(end),
        rssSecondHalfGrowthMiB: mib(end - half),
        grpcErrors: totals.grpcErrors,
        wrongAnswers: totals.wrongCount,
      };
      console.info(`hardening replay: ${JSON.stringify(report)}`);

      expect(totals.passes).toBeGreaterThanOrEqual(FULL_PASSES > 0 ? target : MIN_PASSES);
      expect(totals.calls).toBe(totals.passes * vectors.length);
      expect(totals.grpcErrors, 'every call got a CheckResponse').toBe(0);
      expect(totals.wrong, 'every vector kept its reason on every pass').toEqual([]);
      // The bound is 100 ms. It is asserted as such in the dedicated full run (bench/hardening-replay.js,
      // nothing else on the machine: 40.4 ms over 10,000 passes). In `npm test` other test files share the 2
      // cores, and time the server waits for a CPU reads as event-loop delay too, so there the bound only
      // catches real blocking: a synchronous parse of a megabyte token or a 100,000-deep body would cost
      // seconds, far above it.
      expect(stallMs, 'longest event-loop stall (ms)').toBeLessThan(
        FULL_PASSES > 0 ? 100 : STALL_BOUND_SHARED_MS,
      );
      // Generous bounds: in-flight megabyte requests and V8's heap sizing move RSS by tens of MiB; a leak of
      // even 1 KiB per call would pass 1 GiB over two million calls, and a few MiB per pass shows here.
      // Measured (2 cores, the server process): ~100 MiB after one warm-up pass, then ~130-140 MiB whether the
      // run lasts 20 s or 20 minutes (10,000 passes: peak 139.8, end 133.0, second half +3.1 MiB).
      expect(mib(peak - start), 'peak RSS growth (MiB)').toBeLessThan(320);
      expect(mib(end - start), 'RSS growth over the run (MiB)').toBeLessThan(224);
      expect(mib(end - half), 'RSS growth over the second half (MiB)').toBeLessThan(48);

      // And it still serves the support thread.
      const token = await mintToken(key, supportThreadClaims());
      const answer = answerOf(
        await grpc.check(
          checkRequestFor({
            method: 'POST',
            path: '/api/inventory/transactions',
            token,
            headers: [['content-type', 'application/json']],
            body: '{"location":"WH01","item":"ITEM001","quantity":10}',
          }),
        ),
      );
      expect(answer.reason).toBe('allowed');
      expect(answer.status).toBe(200);
    },
    TIMEOUT_MS,
  );
});
