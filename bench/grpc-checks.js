// Load for bench/policy-sets.js: keeps N Checks outstanding against one scopegate over the client
// bench/check-load.js uses (grpc-js, up to four channels), and checks every answer against what the mix expects
// (the allow bit always; the deny reason too when asked); can keep when each Check was sent and how long it
// took, for the latency inside and outside the windows when a reload ran.
import * as grpc from '@grpc/grpc-js';

const { loadClients } = await import(new URL('../dist/wire/proto.js', import.meta.url).href);
export const { AuthorizationClient } = loadClients();

/** The reason of an answer: `allowed`, or the `reason` its deny body names. */
export function reasonOf(response) {
  if (response?.denied_response === undefined) return 'allowed';
  try {
    return JSON.parse(response.denied_response.body).reason;
  } catch {
    return 'unreadable deny body';
  }
}

/** Sorted latencies → p50, p99 and max (ms). */
export function percentiles(sorted) {
  const at = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
  return { p50: at(0.5), p99: at(0.99), max: sorted.at(-1) ?? Number.NaN };
}

/**
 * Keeps `concurrency` Checks outstanding, going round `requests` from index `from`, until `seconds` have
 * passed, `once` is set and every request was sent once, or `stopped()` says so. `expected[i]` is the reason
 * request i must get: `reasons` compares it exactly, otherwise only allowed vs denied is compared (cheap, so
 * the load generator keeps up). `record` keeps each Check's send time and latency.
 */
export async function drive({
  target,
  requests,
  expected,
  concurrency,
  seconds = Number.POSITIVE_INFINITY,
  once = false,
  from = 0,
  reasons = false,
  stopped = () => false,
  record,
}) {
  const clients = Array.from(
    { length: Math.min(concurrency, 4) },
    (_, i) => new AuthorizationClient(target, grpc.credentials.createInsecure(), { 'grpc.channel_id': i }),
  );
  const latencies = [];
  const mismatches = [];
  let next = from;
  let errors = 0;
  let allowed = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  const more = () => performance.now() < deadline && !stopped() && (!once || next - from < requests.length);
  async function worker(w) {
    const client = clients[w % clients.length];
    while (more()) {
      const i = next++ % requests.length;
      const sentAt = performance.now();
      await new Promise((resolve) =>
        client.Check(requests[i], (err, response) => {
          const took = performance.now() - sentAt;
          latencies.push(took);
          record?.(sentAt, took);
          if (err) errors++;
          else {
            const got = reasons ? reasonOf(response) : response?.denied_response === undefined;
            const want = reasons ? expected[i] : expected[i] === 'allowed';
            if (got === 'allowed' || got === true) allowed++;
            if (got !== want && mismatches.length < 10)
              mismatches.push({ request: i, expected: expected[i], got: reasons ? got : String(got) });
          }
          resolve();
        }),
      );
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  const elapsed = (performance.now() - started) / 1000;
  for (const client of clients) client.close();
  latencies.sort((a, b) => a - b);
  return {
    count: latencies.length,
    rate: latencies.length / elapsed,
    ...percentiles(latencies),
    errors,
    allowed,
    mismatches,
    next,
  };
}
