// The Prometheus metrics contract from DESIGN.md. Label values come only from the policies (their names, routes,
// permissions, issuers) and closed sets (reasons, decisions), never from the request, so cardinality stays
// bounded whatever clients send.
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { CHANGE_KINDS, type PolicyChange } from '../policy/diff.js';
import { type Decision, type DecisionLabel, reasonsWhere, type Transport } from '../vocabulary/index.js';
import { type HistogramSeries, HotHistogram } from './hot-histogram.js';

/**
 * prom-client's default collectors export these as gauges, yet name them like counters; `promtool check
 * metrics` rejects that, and dashboards would rate() them. Each is only the sum of its labelled sibling
 * (`nodejs_active_handles{type}` …), so nothing is lost by leaving them out: `sum(nodejs_active_handles)`.
 */
export const GAUGES_NAMED_LIKE_COUNTERS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
] as const;

/** Histogram buckets from 50 µs: most checks are answered from caches in well under a millisecond. */
export const CHECK_DURATION_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

/** Increments not yet handed to prom-client, for one label set. */
interface PendingCount {
  readonly labels: Record<string, string>;
  pending: number;
}

function pendingCount(
  counts: Map<string, PendingCount>,
  key: string,
  labels: Record<string, string>,
): PendingCount {
  const count = { labels, pending: 0 };
  counts.set(key, count);
  return count;
}

/** Hands pending increments to their prom-client counter (run by prom-client just before it reads it). */
function flush(counts: Map<string, PendingCount>, counter: Counter<string>): void {
  for (const count of counts.values()) {
    if (count.pending === 0) continue;
    counter.inc(count.labels, count.pending);
    count.pending = 0;
  }
}

export class Metrics {
  readonly registry = new Registry();

  /**
   * The Check path's counts, as plain numbers: each scrape hands them to prom-client (`collect`), which would
   * otherwise validate and hash a label set on every increment. Bounded like the series themselves.
   */
  private readonly decided = new Map<string, PendingCount>();
  private readonly lookups = new Map<string, PendingCount>();
  private readonly missed = new Map<string, PendingCount>();
  /** The revision each policy serves, for replacing its `scopegate_policy_revision_info` series. */
  private readonly revisions = new Map<string, string>();
  /** The front doors this process serves (gRPC always): their fail-closed series start at 0. */
  private readonly transports = new Set<Transport>(['grpc']);

  readonly decisions: Counter<'decision' | 'reason' | 'route' | 'policy' | 'transport'> = new Counter({
    name: 'scopegate_decisions_total',
    help: 'Check decisions by outcome, reason, policy, route and front door (policy is empty when no policy owns the request).',
    labelNames: ['decision', 'reason', 'route', 'policy', 'transport'] as const,
    registers: [this.registry],
    collect: (): void => flush(this.decided, this.decisions),
  });

  readonly missingPermissions: Counter<'policy' | 'route' | 'permission' | 'source'> = new Counter({
    name: 'scopegate_missing_permissions_total',
    help: 'Permissions a denied request lacked, by policy, route and where it should have come from (scope or role).',
    labelNames: ['policy', 'route', 'permission', 'source'] as const,
    registers: [this.registry],
    collect: (): void => flush(this.missed, this.missingPermissions),
  });

  readonly checkDuration = new HotHistogram(
    'scopegate_check_duration_seconds',
    'Time from receiving a Check to answering it, by decision and front door.',
    CHECK_DURATION_BUCKETS,
    this.registry,
  );

  readonly cacheLookups: Counter<'cache' | 'result'> = new Counter({
    name: 'scopegate_cache_lookups_total',
    help: 'Cache lookups by cache and result.',
    labelNames: ['cache', 'result'] as const,
    registers: [this.registry],
    collect: (): void => flush(this.lookups, this.cacheLookups),
  });

  readonly policyReloads = new Counter({
    name: 'scopegate_policy_reloads_total',
    help: 'Policy loads and reloads by policy and result.',
    labelNames: ['policy', 'result'] as const,
    // With `serve --workers N` every worker loads the same file: the aggregate is one worker's count (the
    // highest), as if one process had loaded it, not N times the reloads.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly policyRevision = new Gauge({
    name: 'scopegate_policy_revision_info',
    help: 'The revision each policy serves (content hash); value is always 1.',
    labelNames: ['policy', 'revision'] as const,
    // Across workers: 1 for every revision some worker serves, so a split shows as two series.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly policyChanges = new Counter({
    name: 'scopegate_policy_changes_total',
    help: 'What policy reloads changed, by policy and kind of change (as scopegate diff names them).',
    labelNames: ['policy', 'kind'] as const,
    // Every worker reloads the same file and finds the same changes: counted once, as for reloads.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly decisionRecords = new Counter({
    name: 'scopegate_decision_records_total',
    help: 'Decision records (serve --decision-log) written, dropped (over the queue bound) or failed (a write failed).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly jwksRefreshes = new Counter({
    name: 'scopegate_jwks_refreshes_total',
    help: 'JWKS fetches by issuer and result.',
    labelNames: ['issuer', 'result'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of GAUGES_NAMED_LIKE_COUNTERS) this.registry.removeSingleMetric(name);
    }
    // A failure before any policy is chosen is counted under no policy; at 0 from the start (see `policyServed`).
    this.failClosedAtZero('');
  }

  /**
   * The two fail-closed 503 reasons page someone (deploy/prometheus/alerts.yaml): at 0 from the first scrape,
   * the first one is an increase() the alert sees, not a new series it cannot.
   */
  private failClosedAtZero(policy: string, transports: Iterable<Transport> = this.transports): void {
    for (const transport of transports)
      for (const reason of reasonsWhere('failClosed'))
        this.decisions.inc({ decision: 'deny', reason, route: '', policy, transport }, 0);
  }

  /** A front door besides gRPC is served (`serve --http`, `--forward-auth`): its fail-closed series at 0. */
  transportServed(transport: Transport): void {
    if (this.transports.has(transport)) return;
    this.transports.add(transport);
    for (const policy of ['', ...this.revisions.keys()]) this.failClosedAtZero(policy, [transport]);
  }

  /** A policy's revision is served: its revision series, and its counters present at 0 for rate() and alerts. */
  policyServed(policy: string, revision: string): void {
    const before = this.revisions.get(policy);
    if (before === undefined) {
      this.policyReloads.inc({ policy, result: 'success' }, 0);
      this.policyReloads.inc({ policy, result: 'error' }, 0);
      this.failClosedAtZero(policy);
    } else if (before !== revision) this.policyRevision.remove({ policy, revision: before });
    this.revisions.set(policy, revision);
    this.policyRevision.set({ policy, revision }, 1);
  }

  /** A policy left the set: its series go with it, so series stay bounded by the files served now. */
  policyRemoved(policy: string): void {
    const revision = this.revisions.get(policy);
    if (revision !== undefined) this.policyRevision.remove({ policy, revision });
    this.revisions.delete(policy);
    for (const result of ['success', 'error']) this.policyReloads.remove({ policy, result });
    for (const kind of CHANGE_KINDS) this.policyChanges.remove({ policy, kind });
    for (const [key, { decided }] of this.series) {
      if (decided.labels.policy !== policy) continue;
      this.series.delete(key);
      this.decided.delete(key);
      this.decisions.remove(decided.labels);
    }
    for (const transport of this.transports)
      for (const reason of reasonsWhere('failClosed'))
        this.decisions.remove({ decision: 'deny', reason, route: '', policy, transport });
    for (const [key, count] of this.missed) {
      if (count.labels.policy !== policy) continue;
      this.missed.delete(key);
      this.missingPermissions.remove(count.labels);
    }
  }

  /** The series of one (decision, reason, route, policy, transport), found once per Check by one map lookup. */
  private readonly series = new Map<
    string,
    { readonly decided: PendingCount; readonly took: HistogramSeries }
  >();

  recordDecision(
    decision: Decision,
    label: DecisionLabel,
    seconds: number,
    transport: Transport = 'grpc',
  ): void {
    const route = decision.route ?? '';
    const policy = decision.policy ?? '';
    const key = `${label}\0${decision.reason}\0${route}\0${policy}\0${transport}`;
    let series = this.series.get(key);
    if (series === undefined) {
      series = {
        decided: pendingCount(this.decided, key, {
          decision: label,
          reason: decision.reason,
          route,
          policy,
          transport,
        }),
        took: this.checkDuration.seriesFor(`${label}\0${transport}`, { decision: label, transport }),
      };
      this.series.set(key, series);
    }
    series.decided.pending++;
    series.took.observe(seconds);
    for (const { permission, source } of decision.missingBySource ?? []) {
      const missedKey = `${policy}\0${route}\0${permission}\0${source}`;
      (
        this.missed.get(missedKey) ??
        pendingCount(this.missed, missedKey, { policy, route, permission, source })
      ).pending++;
    }
  }

  /** A reload's changes, counted by kind (labels from the closed CHANGE_KINDS and the policy's name). */
  recordPolicyChanges(policy: string, changes: readonly PolicyChange[]): void {
    for (const { kind } of changes) this.policyChanges.inc({ policy, kind });
  }

  recordCacheLookup(cache: 'token' | 'decision', result: 'hit' | 'miss'): void {
    const key = `${cache} ${result}`;
    (this.lookups.get(key) ?? pendingCount(this.lookups, key, { cache, result })).pending++;
  }
}
