// The Prometheus metrics contract from DESIGN.md. Label values come only from the policy (route names,
// permissions, issuers) and closed sets (reasons, decisions), never from the request, so cardinality stays
// bounded whatever clients send.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Reason } from '../decision/reasons.js';
import type { Decision } from '../decision/types.js';

export type DecisionLabel = 'allow' | 'deny' | 'dry_run_deny';

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

/** Denials that mean scopegate, not the caller, is failing; neither is ever tied to a route. */
const FAIL_CLOSED_REASONS = ['keys_unavailable', 'internal_error'] as const satisfies readonly Reason[];

/** Histogram buckets from 50 µs: most checks are answered from caches in well under a millisecond. */
export const CHECK_DURATION_BUCKETS = [
  0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
];

export class Metrics {
  readonly registry = new Registry();

  readonly decisions = new Counter({
    name: 'scopegate_decisions_total',
    help: 'Check decisions by outcome, reason and policy route.',
    labelNames: ['decision', 'reason', 'route'] as const,
    registers: [this.registry],
  });

  readonly missingPermissions = new Counter({
    name: 'scopegate_missing_permissions_total',
    help: 'Permissions a denied request lacked, by route and by where it should have come from (scope or role).',
    labelNames: ['route', 'permission', 'source'] as const,
    registers: [this.registry],
  });

  readonly checkDuration = new Histogram({
    name: 'scopegate_check_duration_seconds',
    help: 'Time from receiving a Check to answering it.',
    labelNames: ['decision'] as const,
    buckets: CHECK_DURATION_BUCKETS,
    registers: [this.registry],
  });

  readonly cacheLookups = new Counter({
    name: 'scopegate_cache_lookups_total',
    help: 'Cache lookups by cache and result.',
    labelNames: ['cache', 'result'] as const,
    registers: [this.registry],
  });

  readonly policyReloads = new Counter({
    name: 'scopegate_policy_reloads_total',
    help: 'Policy loads and reloads by result.',
    labelNames: ['result'] as const,
    // With `serve --workers N` every worker loads the same file: the aggregate is one worker's count (the
    // highest), as if one process had loaded it, not N times the reloads.
    aggregator: 'max',
    registers: [this.registry],
  });

  readonly policyRevision = new Gauge({
    name: 'scopegate_policy_revision_info',
    help: 'The policy revision being served (content hash); value is always 1.',
    labelNames: ['revision'] as const,
    // Across workers: 1 for every revision some worker serves, so a split shows as two series.
    aggregator: 'max',
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
    // Present from the first scrape, so rate() and absent() work before any traffic.
    this.policyReloads.inc({ result: 'success' }, 0);
    this.policyReloads.inc({ result: 'error' }, 0);
    // The two fail-closed 503 reasons page someone (deploy/prometheus/alerts.yaml): at 0 from the start, the
    // first one is an increase() the alert sees, not a new series it cannot.
    for (const reason of FAIL_CLOSED_REASONS) this.decisions.inc({ decision: 'deny', reason, route: '' }, 0);
  }

  /**
   * The counter and histogram series of one (decision, reason, route), bound once: prom-client checks and
   * hashes a label set on every inc() otherwise, twice per Check. Bounded like the series themselves.
   */
  private readonly series = new Map<
    string,
    {
      readonly decided: Counter.Internal;
      readonly took: Histogram.Internal<'decision'>;
    }
  >();

  recordDecision(decision: Decision, label: DecisionLabel, seconds: number): void {
    const route = decision.route ?? '';
    const key = `${label}\0${decision.reason}\0${route}`;
    let series = this.series.get(key);
    if (series === undefined) {
      series = {
        decided: this.decisions.labels({ decision: label, reason: decision.reason, route }),
        took: this.checkDuration.labels({ decision: label }),
      };
      this.series.set(key, series);
    }
    series.decided.inc();
    series.took.observe(seconds);
    for (const { permission, source } of decision.missingBySource ?? []) {
      this.missingPermissions.inc({ route, permission, source });
    }
  }

  /** `scopegate_cache_lookups_total` series, bound on first use: one per (cache, result), four in all. */
  private readonly lookups = new Map<string, Counter.Internal>();

  recordCacheLookup(cache: 'token' | 'decision', result: 'hit' | 'miss'): void {
    const key = `${cache} ${result}`;
    let series = this.lookups.get(key);
    if (series === undefined) {
      series = this.cacheLookups.labels({ cache, result });
      this.lookups.set(key, series);
    }
    series.inc();
  }

  setRevision(revision: string): void {
    this.policyRevision.reset();
    this.policyRevision.set({ revision }, 1);
  }
}
