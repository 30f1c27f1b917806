// What each contestant of bench/compare.js answered during a cell, read from the contestant itself, and held to
// what the mix must give: scopegate's decisions by reason and route (its Prometheus scrape), the OPA
// comparator's answers by allow/deny and status (opa-authz --admin, GET /answers), and the status Envoy gave
// each request of the mix (its access log, by x-bench-case). A server's count is the difference between a
// snapshot taken after the warm-up and one taken after the cell; the access log is read from where it ended
// after the warm-up.
import { readFileSync } from 'node:fs';

/** A snapshot of a server's own counts, as a flat { key: number }; undefined when it has none to give. */
export async function snapshot(kind, server) {
  if (kind === 'scopegate') return scopegateCounts(server.listening.admin);
  if (kind === 'opa') return getJson(`${server.listening.admin}/answers`);
  return undefined;
}

/**
 * Envoy's answers in its JSON access log from byte `from` on (bench/compare-envoy.js adds the request's
 * x-bench-case as `case`): counts by "case status", and apart the requests whose client left before the
 * answer (status 0: in flight when wrk stopped).
 */
export function accessLogCounts(file, from) {
  const counts = {};
  let leftEarly = 0;
  for (const line of readFileSync(file).subarray(from).toString('utf8').split('\n')) {
    if (line === '') continue;
    const entry = JSON.parse(line);
    const status = Number(entry.status);
    const key = `${entry.case} ${status}`;
    if (status === 0) leftEarly++;
    else counts[key] = (counts[key] ?? 0) + 1;
  }
  return { counts, leftEarly };
}

async function getJson(url) {
  const response = await fetch(url, { signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

/**
 * scopegate_decisions_total by "decision reason route" and by "transport:<door>", and cache lookups by
 * "cache:<name> <result>".
 */
async function scopegateCounts(admin) {
  const response = await fetch(`http://${admin}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const text = await response.text();
  const counts = {};
  for (const line of text.split('\n')) {
    const decision = /^scopegate_decisions_total\{(.*)\} (\S+)$/.exec(line);
    const lookup = /^scopegate_cache_lookups_total\{(.*)\} (\S+)$/.exec(line);
    const match = decision ?? lookup;
    if (!match) continue;
    const labels = Object.fromEntries([...match[1].matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const key = decision
      ? `${labels.decision} ${labels.reason} ${labels.route}`
      : `cache:${labels.cache} ${labels.result}`;
    counts[key] = (counts[key] ?? 0) + Number(match[2]);
    if (decision) {
      const door = `transport:${labels.transport}`;
      counts[door] = (counts[door] ?? 0) + Number(match[2]);
    }
  }
  return counts;
}

/** after − before, keeping only the keys that moved. */
export function delta(before, after) {
  const moved = {};
  for (const [key, n] of Object.entries(after ?? {})) {
    const d = n - (before?.[key] ?? 0);
    if (d !== 0) moved[key] = d;
  }
  return moved;
}

/**
 * Problems with a cell's answers, given what the server counted (`counted`), how many answers the load
 * generator saw (`seen`), the mix (round-robin) and a slack for requests in flight at either end.
 * `expectedKey(request)` names the count each request of the mix must land in.
 */
export function splitProblems({ counted, seen, mix, slack, expectedKey, what }) {
  const expected = {};
  for (const r of mix) expected[expectedKey(r)] = (expected[expectedKey(r)] ?? 0) + 1;
  const total = Object.values(counted).reduce((a, b) => a + b, 0);
  const problems = [];
  if (total < seen || total > seen + slack)
    problems.push(`${what}: counted ${total} answers, the load generator ${seen}`);
  for (const key of new Set([...Object.keys(expected), ...Object.keys(counted)])) {
    const want = ((expected[key] ?? 0) / mix.length) * total;
    const got = counted[key] ?? 0;
    if ((want === 0 && got > 0) || Math.abs(got - want) > slack)
      problems.push(`${what}: ${got} × "${key}", expected ${Math.round(want)}`);
  }
  return problems;
}

/** The decision counts of a scopegate delta (without its cache lookups and its counts by door). */
export const decisionsOf = (counts) =>
  Object.fromEntries(
    Object.entries(counts).filter(([key]) => !key.startsWith('cache:') && !key.startsWith('transport:')),
  );

/** A scopegate delta whose decisions were not all made at `door` ('grpc', 'http'): one problem saying so. */
export function doorProblems(counts, door) {
  const elsewhere = Object.entries(counts).filter(
    ([key, n]) => key.startsWith('transport:') && key !== `transport:${door}` && n > 0,
  );
  const seen = JSON.stringify(
    Object.fromEntries(Object.entries(counts).filter(([key]) => key.startsWith('transport:'))),
  );
  if (elsewhere.length > 0) return [`decided at another door than ${door}: ${seen}`];
  return (counts[`transport:${door}`] ?? 0) > 0 ? [] : [`no decision counted at the ${door} door`];
}

/** Hit share of one of scopegate's caches in a delta ("token" or "decision"), or undefined when not looked up. */
export function hitShare(counts, cache) {
  const hits = counts[`cache:${cache} hit`] ?? 0;
  const lookups = Object.entries(counts)
    .filter(([key]) => key.startsWith(`cache:${cache} `))
    .reduce((sum, [, n]) => sum + n, 0);
  return lookups > 0 ? hits / lookups : undefined;
}
