// The dashboard and the alerts an SRE relies on, checked against the real thing: every query names only
// metrics a real scopegate scrape has (a renamed metric must break this test, not silently blank a panel or
// mute an alert), every expression parses (promtool), the alert rules pass their own unit tests in both
// directions, and the Prometheus config loads the rules docker-compose mounts.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { sendKnownTraffic } from '../integration/known-traffic.js';
import { promtool, promtoolSuiteName, skipWithoutPromtool } from '../support/promtool.js';
import { type Harness, startHarness } from '../support/scopegate.js';

/** Grafana's reference to the dashboard's datasource variable (a literal, not a JS template). */
const DATASOURCE_VARIABLE = '$' + '{datasource}';

const root = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(join(root, path), 'utf8');

interface Target {
  readonly expr: string;
  readonly refId: string;
  readonly datasource?: { type?: string; uid?: string };
}
interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly datasource?: { type?: string; uid?: string };
  readonly gridPos: { h: number; w: number; x: number; y: number };
  readonly targets?: Target[];
  readonly panels?: Panel[];
}
interface Variable {
  readonly name: string;
  readonly type: string;
  readonly query: string;
  readonly datasource?: { uid?: string };
}
interface Dashboard {
  readonly schemaVersion: number;
  readonly uid: string;
  readonly panels: Panel[];
  readonly templating: { list: Variable[] };
  readonly annotations: { list: Array<{ name: string; expr?: string; datasource?: { uid?: string } }> };
}

const dashboard = JSON.parse(read('deploy/grafana/scopegate.json')) as Dashboard;
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));

interface AlertRule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Record<string, string>;
  readonly annotations?: Record<string, string>;
}
const alertRules = (parse(read('deploy/prometheus/alerts.yaml')) as { groups: Array<{ rules: AlertRule[] }> })
  .groups[0]!.rules;

/** What Grafana would put in place of its built-ins and our variables, for one plausible selection. */
const SAMPLE_VALUES: Readonly<Record<string, string>> = {
  __rate_interval: '5m',
  __interval: '1m',
  __range: '1h',
  job: 'scopegate',
  instance: '127.0.0.1:9464',
  policy: 'inventory',
  route: 'create_transaction',
  reason: 'scope_missing',
};

/** `$var`, `${var}`, `${var:format}` and `[[var]]` replaced; names without a sample value are reported. */
function substitute(expr: string, unknown: string[] = []): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (whole, a, b, c) => {
    const name = (a ?? b ?? c) as string;
    const value = SAMPLE_VALUES[name];
    if (value === undefined) unknown.push(name);
    return value ?? whole;
  });
}

/** `label_values(selector, label)` → the selector, which must name a metric the scrape has. */
function selectorOfLabelValues(query: string): string | undefined {
  return /^label_values\((.+),\s*\w+\)$/.exec(query.trim())?.[1];
}

interface Query {
  readonly where: string;
  /** The expression with sample values in place of variables. */
  readonly expr: string;
  readonly unknownVariables: readonly string[];
}

/** Every PromQL expression the dashboard runs: panel targets, annotations and variable queries. */
function dashboardQueries(): Query[] {
  const raw: Array<{ where: string; expr: string }> = [
    ...panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr })),
    ),
    ...dashboard.annotations.list
      .filter((a) => a.expr !== undefined)
      .map((a) => ({ where: `annotation "${a.name}"`, expr: a.expr! })),
    ...dashboard.templating.list
      .filter((v) => v.type === 'query')
      .map((v) => ({ where: `variable ${v.name}`, expr: selectorOfLabelValues(v.query) ?? v.query })),
  ];
  return raw.map(({ where, expr }) => {
    const unknownVariables: string[] = [];
    return { where, expr: substitute(expr, unknownVariables), unknownVariables };
  });
}

/** The panels' PromQL as written, variables unreplaced. */
function dashboardQueriesRaw(): Array<{ where: string; expr: string }> {
  return panels.flatMap((p) =>
    (p.targets ?? []).map((t) => ({ where: `panel ${p.id} "${p.title}" ${t.refId}`, expr: t.expr })),
  );
}

/** Strings blanked, so a label value can never be read as PromQL. */
const withoutStrings = (expr: string) => expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');

/** Every `metric{matchers}` selector of an expression, with its matchers as written. */
function selectors(expr: string): Array<{ metric: string; matchers: string }> {
  return [...expr.matchAll(/([a-zA-Z_:][\w:]*)\s*\{((?:[^}"]|"(?:[^"\\]|\\.)*")*)\}/g)].map((m) => ({
    metric: m[1]!,
    matchers: m[2]!,
  }));
}

const POLICY_FILTER = 'policy=~"$policy"';
/** The metrics whose series belong to one policy, which the policy variable must narrow. */
const PER_POLICY = ['scopegate_decisions_total', 'scopegate_missing_permissions_total'];

/**
 * Where the policy variable is not applied as it should be: every selector of a per-policy metric filters by
 * it, except one for policy_unknown denials, which carry an empty policy and would vanish under any choice.
 */
function policyFilterProblems(queries: ReadonlyArray<{ where: string; expr: string }>): string[] {
  const problems = new Set<string>();
  for (const { where, expr } of queries)
    for (const { metric, matchers } of selectors(expr)) {
      if (!PER_POLICY.includes(metric)) continue;
      const filtered = matchers.includes(POLICY_FILTER);
      if (matchers.includes('reason="policy_unknown"')) {
        if (filtered)
          problems.add(
            `${where}: filters policy_unknown by the policy variable, which hides it (its policy is empty)`,
          );
      } else if (!filtered) problems.add(`${where}: reads ${metric} without ${POLICY_FILTER}`);
    }
  return [...problems];
}

/** Labels every scraped series carries, from the target. */
const TARGET_LABELS = ['job', 'instance'];
/** The labels of each scopegate metric: a contract (README, Metrics), like the names. */
const METRIC_LABELS: Readonly<Record<string, readonly string[]>> = {
  scopegate_decisions_total: ['decision', 'reason', 'route', 'policy', 'transport'],
  scopegate_missing_permissions_total: ['policy', 'route', 'permission', 'source'],
  scopegate_check_duration_seconds: ['decision', 'transport'],
  scopegate_cache_lookups_total: ['cache', 'result'],
  scopegate_policy_reloads_total: ['policy', 'result'],
  scopegate_policy_revision_info: ['policy', 'revision'],
  scopegate_jwks_refreshes_total: ['issuer', 'result'],
  scopegate_policy_changes_total: ['policy', 'kind'],
  scopegate_decision_records_total: ['result'],
};

/** The labels a series of this metric may have; undefined for metrics that are not scopegate's own. */
function contractLabels(metric: string): readonly string[] | undefined {
  const histogram = /^(.*)_(bucket|sum|count)$/.exec(metric);
  const own = METRIC_LABELS[metric] ?? (histogram ? METRIC_LABELS[histogram[1]!] : undefined);
  if (own === undefined) return undefined;
  return [...own, ...TARGET_LABELS, ...(histogram?.[2] === 'bucket' ? ['le'] : [])];
}

/**
 * Labels an expression reads that its metrics do not have: in a selector's matchers, and in `by`, `without`,
 * `on` and `ignoring` (checked when every metric of the expression is scopegate's, so the labels are known).
 */
function unknownLabels(expr: string): string[] {
  const unknown: string[] = [];
  for (const { metric, matchers } of selectors(expr)) {
    const allowed = contractLabels(metric);
    for (const m of withoutStrings(matchers).matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g))
      if (allowed && !allowed.includes(m[1]!)) unknown.push(`${metric}{${m[1]}}`);
  }
  const known = metricNames(expr).map(contractLabels);
  if (known.length === 0 || known.some((labels) => labels === undefined)) return unknown;
  const labels = new Set(known.flat());
  for (const m of withoutStrings(expr).matchAll(/\b(by|without|on|ignoring)\s*\(([^)]*)\)/g))
    for (const label of m[2]!.split(',').map((l) => l.trim()))
      if (label !== '' && !labels.has(label as string)) unknown.push(`${m[1]} (${label})`);
  return unknown;
}

/**
 * Where a scrape and the contract differ: each scopegate series (histograms by their `_bucket`, `_sum` and
 * `_count` series) must carry exactly its metric's labels (the target's are Prometheus's, not in the scrape),
 * and every metric of the contract must be in the scrape.
 */
function labelContractProblems(scraped: ReadonlyMap<string, ReadonlySet<string>>): string[] {
  const problems: string[] = [];
  const sorted = (labels: Iterable<string>) => [...labels].sort().join(', ');
  for (const [series, labels] of scraped) {
    const contract = contractLabels(series)?.filter((l) => !TARGET_LABELS.includes(l));
    if (contract === undefined) problems.push(`${series}: not in the contract`);
    else if (sorted(labels) !== sorted(contract))
      problems.push(`${series}: labels ${sorted(labels)}, not ${sorted(contract)}`);
  }
  for (const metric of Object.keys(METRIC_LABELS)) {
    const present = [metric, `${metric}_bucket`].some((series) => scraped.has(series));
    if (!present) problems.push(`${metric}: not in the scrape`);
  }
  return problems;
}

/** The labels a scrape shows on each scopegate series. */
function exposedLabels(text: string): Map<string, Set<string>> {
  const found = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const sample = /^(scopegate_[\w:]*)\{([^}]*)\}/.exec(line);
    if (!sample) continue;
    const labels = found.get(sample[1]!) ?? new Set<string>();
    for (const m of sample[2]!.matchAll(/(\w+)="/g)) labels.add(m[1]!);
    found.set(sample[1]!, labels);
  }
  return found;
}

const PROMQL_KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression reads. Enough of PromQL for our queries: strings, label matchers,
 * grouping clauses and ranges are removed first; what is left that is an identifier not called like a
 * function (and not a keyword) is a metric name.
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w.:"])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()/g)) {
    const name = m[1]!;
    if (!PROMQL_KEYWORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names].sort();
}

/** Metric names a scrape exposes: every sample name, and each histogram's series by family. */
function exposedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const sample = /^([a-zA-Z_:][\w:]*)[{\s]/.exec(line);
    if (sample) names.add(sample[1]!);
    const type = /^# TYPE (\S+) (histogram|summary)$/.exec(line);
    if (type) for (const suffix of ['_bucket', '_sum', '_count']) names.add(type[1]! + suffix);
  }
  return names;
}

/** A rules file with one recording rule per expression, so promtool parses each one. */
function writeRecordingRules(queries: ReadonlyArray<{ where: string; expr: string }>): string {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-dashboard-'));
  const file = join(dir, 'dashboard.rules.yaml');
  const rules = queries.map((q, i) => ({ record: `dashboard:query_${i}`, expr: q.expr }));
  writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules }] }));
  return file;
}

let h: Harness;
let scraped: Set<string>;
let scrapedLabels: Map<string, Set<string>>;
beforeAll(async () => {
  // Decision records on, so their counter is in the scrape too (and in promtool's check of it).
  const records = join(mkdtempSync(join(tmpdir(), 'scopegate-records-')), 'decisions.jsonl');
  h = await startHarness(undefined, { flags: ['--decision-log', records] });
  await sendKnownTraffic(h);
  const text = await h.scrape();
  scraped = exposedNames(text);
  scrapedLabels = exposedLabels(text);
}, 60_000);
afterAll(async () => h?.close());

describe('reading metric names out of PromQL', () => {
  it('finds metrics and only metrics: not functions, labels, label values, keywords or durations', () => {
    expect(
      metricNames(
        'sum by (reason, route) (rate(scopegate_decisions_total{decision="deny", route=~"a|b"}[5m]))' +
          ' / on (job) group_left sum(rate(scopegate_decisions_total[1h] offset 5m)) > 0.05' +
          ' and on (job) histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket{le!="+Inf"}[5m]))) > 1e-3' +
          ' unless absent(up{job="scopegate"})',
      ),
    ).toEqual(['scopegate_decisions_total', 'up', 'x_seconds_bucket']);
  });
});

describe('deploy/grafana/scopegate.json', () => {
  it('is a Grafana dashboard with a Prometheus datasource variable and policy, route and reason variables', () => {
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    expect(variables.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    expect(variables.get('policy')).toMatchObject({ multi: true, includeAll: true, allValue: '.*' });
    expect(variables.get('policy')?.query).toMatch(/^label_values\(scopegate_decisions_total\b.*, policy\)$/);
    expect(variables.get('route')?.query).toMatch(/^label_values\(scopegate_decisions_total\b.*, route\)$/);
    expect(variables.get('reason')?.query).toMatch(/^label_values\(scopegate_decisions_total\b.*, reason\)$/);
  });

  it('every panel and query reads from the chosen datasource, and panel ids are unique', () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of panels.filter((p) => p.type !== 'row')) {
      expect(panel.datasource?.uid, panel.title).toBe(DATASOURCE_VARIABLE);
      expect(panel.targets?.length, panel.title).toBeGreaterThan(0);
      for (const target of panel.targets ?? [])
        expect(target.datasource?.uid, panel.title).toBe(DATASOURCE_VARIABLE);
      expect(panel.gridPos.x + panel.gridPos.w, panel.title).toBeLessThanOrEqual(24);
    }
    for (const annotation of dashboard.annotations.list.filter((a) => a.expr !== undefined))
      expect(annotation.datasource?.uid).toBe(DATASOURCE_VARIABLE);
  });

  it('uses only variables it defines (or Grafana built-ins)', () => {
    for (const query of dashboardQueries()) expect(query.unknownVariables, query.where).toEqual([]);
    const used = new Set(
      [...JSON.stringify(dashboard).matchAll(/\$\{?(\w+)/g)]
        .map((m) => m[1]!)
        .filter((n) => !n.startsWith('__')),
    );
    for (const name of used) expect(variables.has(name), name).toBe(true);
  });

  it('has the panels the issue asks for, each on the right metric', () => {
    const exprOf = (title: RegExp) => {
      const panel = panels.find((p) => title.test(p.title));
      expect(panel, String(title)).toBeDefined();
      return (panel?.targets ?? []).map((t) => t.expr).join('\n');
    };
    expect(exprOf(/denials by policy, reason and route/i)).toMatch(
      /sum by \(policy, reason, route\) \(rate\(scopegate_decisions_total\{[^}]*decision="deny"/,
    );
    expect(exprOf(/requests no policy owns/i)).toMatch(
      /scopegate_decisions_total\{[^}]*reason="policy_unknown"/,
    );
    expect(exprOf(/missing permissions: scope/i)).toMatch(
      /^topk\(\d+, sum by \(policy, route, permission\) .*scopegate_missing_permissions_total\{[^}]*source="scope"/,
    );
    expect(exprOf(/missing permissions: role/i)).toMatch(
      /^topk\(\d+, sum by \(policy, route, permission\) .*scopegate_missing_permissions_total\{[^}]*source="role"/,
    );
    expect(exprOf(/allow \/ deny rate/i)).toMatch(/sum by \(decision\) \(rate\(scopegate_decisions_total/);
    const latency = exprOf(/latency p50 \/ p99/i);
    expect(latency).toContain(
      'histogram_quantile(0.5, sum by (le) (rate(scopegate_check_duration_seconds_bucket',
    );
    expect(latency).toContain(
      'histogram_quantile(0.99, sum by (le) (rate(scopegate_check_duration_seconds_bucket',
    );
    expect(exprOf(/cache hit ratio/i)).toMatch(/result="hit".*\/.*scopegate_cache_lookups_total/);
    expect(exprOf(/policy revision served, per policy/i)).toMatch(
      /^scopegate_policy_revision_info\{[^}]*policy=~/,
    );
    expect(exprOf(/reloads by policy and result/i)).toMatch(
      /sum by \(policy, result\) .*scopegate_policy_reloads_total/,
    );
    // A split is counted within one policy: two policies on two revisions are no split.
    expect(exprOf(/revisions served per policy/i)).toContain(
      'count by (policy) (count by (policy, revision) (scopegate_policy_revision_info',
    );
    expect(exprOf(/jwks refreshes by issuer and result/i)).toMatch(
      /sum by \(issuer, result\) .*scopegate_jwks_refreshes_total/,
    );
  });

  it('the policy variable narrows every per-policy query; the policy_unknown panel, whose policy is empty, it does not', () => {
    expect(policyFilterProblems(dashboardQueriesRaw())).toEqual([]);
  });

  it('the policy filter check can fail: a panel that ignores the variable, and policy_unknown hidden by it', () => {
    expect(
      policyFilterProblems([
        { where: 'a', expr: 'sum(rate(scopegate_decisions_total{job="$job"}[5m]))' },
        {
          where: 'b',
          expr: 'sum(rate(scopegate_decisions_total{reason="policy_unknown", policy=~"$policy"}[5m]))',
        },
        { where: 'c', expr: 'sum(rate(scopegate_missing_permissions_total{policy=~"$policy"}[5m]))' },
      ]),
    ).toEqual([
      'a: reads scopegate_decisions_total without policy=~"$policy"',
      'b: filters policy_unknown by the policy variable, which hides it (its policy is empty)',
    ]);
  });

  it('every label a query reads is one its metric has (the contract)', () => {
    for (const query of dashboardQueries())
      expect(unknownLabels(query.expr), `${query.where}: ${query.expr}`).toEqual([]);
  });

  it('a real scrape has exactly the contract: every scopegate metric, each with exactly its labels', () => {
    expect(labelContractProblems(scrapedLabels)).toEqual([]);
  });

  it('the contract check can fail: a label missing, a label added, a metric missing, a metric not in it', () => {
    const broken = new Map([...scrapedLabels].map(([metric, labels]) => [metric, new Set(labels)]));
    broken.get('scopegate_decisions_total')!.delete('policy');
    broken.get('scopegate_policy_reloads_total')!.add('file');
    broken.delete('scopegate_policy_revision_info');
    broken.set('scopegate_policy_files', new Set(['policy']));
    expect(labelContractProblems(broken)).toEqual([
      'scopegate_decisions_total: labels decision, reason, route, transport, not decision, policy, reason, route, transport',
      'scopegate_policy_reloads_total: labels file, policy, result, not policy, result',
      'scopegate_policy_files: not in the contract',
      'scopegate_policy_revision_info: not in the scrape',
    ]);
  });

  it('the label check can fail: a misspelt label, and grouping by a label the metric does not have', () => {
    expect(unknownLabels('sum by (policy) (rate(scopegate_decisions_total{polcy="inventory"}[5m]))')).toEqual(
      ['scopegate_decisions_total{polcy}'],
    );
    expect(unknownLabels('sum by (issuer) (rate(scopegate_decisions_total[5m]))')).toEqual(['by (issuer)']);
  });

  it('every query names only metrics that exist in a real scrape', () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(15);
    for (const query of queries) {
      const names = metricNames(query.expr);
      expect(names.length, query.where).toBeGreaterThan(0);
      expect(
        names.filter((n) => !scraped.has(n)),
        `${query.where}: ${query.expr}`,
      ).toEqual([]);
    }
  });

  it('a query on a misspelled metric would be caught by that check', () => {
    const names = metricNames('sum(rate(scopegate_decision_total{route=~"$route"}[5m]))');
    expect(names.filter((n) => !scraped.has(n))).toEqual(['scopegate_decision_total']);
  });
});

describe('deploy/prometheus/alerts.yaml', () => {
  const alerts = alertRules.filter((r) => r.alert !== undefined);

  it('every alert waits (for), says who to wake (severity page or ticket), and explains itself', () => {
    expect(alerts.length).toBeGreaterThanOrEqual(7);
    for (const rule of alerts) {
      expect(rule.for, rule.alert).toMatch(/^\d+[smh]$/);
      expect(['page', 'ticket'], rule.alert).toContain(rule.labels?.severity);
      for (const key of ['summary', 'description', 'runbook'])
        expect(rule.annotations?.[key]?.length, `${rule.alert} ${key}`).toBeGreaterThan(20);
    }
  });

  it('covers what a team pages or tickets on', () => {
    const exprOf = (name: string) => alerts.find((r) => r.alert === name)?.expr ?? '';
    expect(exprOf('ScopegateDown')).toContain('up{job="scopegate"} == 0');
    expect(exprOf('ScopegateTargetMissing')).toContain('absent(up{job="scopegate"})');
    expect(exprOf('ScopegateKeysUnavailable')).toContain('reason="keys_unavailable"');
    expect(exprOf('ScopegateInternalErrors')).toContain('reason="internal_error"');
    expect(exprOf('ScopegatePolicyReloadFailed')).toContain(
      'increase(scopegate_policy_reloads_total{result="error"}',
    );
    expect(exprOf('ScopegateCheckLatencyHigh')).toMatch(
      /histogram_quantile\(0\.99,\s+sum by \([^)]*le\) \(rate\(scopegate_check_duration_seconds_bucket/,
    );
    expect(exprOf('ScopegateJwksRefreshFailing')).toContain('scopegate_jwks_refreshes_total{result="error"}');
    expect(exprOf('ScopegateDenialSpike')).toMatch(/sum by \(job, policy, reason, route\)[\s\S]*\[1h\]/);
    // Per policy: a revision split compares revisions of one policy, a failed reload names its policy.
    expect(exprOf('ScopegatePolicyRevisionsDiverge')).toContain(
      'count by (job, policy) (count by (job, policy, revision) (scopegate_policy_revision_info))',
    );
    expect(exprOf('ScopegatePolicyReloadFailed')).toMatch(/^sum by \(job, instance, policy\) /);
    expect(exprOf('ScopegateRequestsWithoutPolicy')).toContain(
      'scopegate_decisions_total{reason="policy_unknown"}',
    );
    const severity = (name: string) => alerts.find((r) => r.alert === name)?.labels?.severity;
    expect(severity('ScopegateKeysUnavailable')).toBe('page');
    expect(severity('ScopegateDown')).toBe('page');
    expect(severity('ScopegatePolicyReloadFailed')).toBe('ticket');
    expect(severity('ScopegateRequestsWithoutPolicy')).toBe('ticket');
  });

  it('names only metrics that exist in a real scrape (or up, which Prometheus adds)', () => {
    for (const rule of alertRules) {
      const missing = metricNames(rule.expr).filter((n) => !scraped.has(n) && n !== 'up');
      expect(missing, rule.alert ?? rule.record).toEqual([]);
    }
  });

  it('reads only labels its metrics have', () => {
    for (const rule of alertRules) expect(unknownLabels(rule.expr), rule.alert ?? rule.record).toEqual([]);
  });

  it('has unit tests that show each alert firing and each alert staying quiet', () => {
    const suite = parse(read('deploy/prometheus/alerts.test.yaml')) as {
      tests: Array<{ alert_rule_test?: Array<{ alertname: string; exp_alerts?: unknown[] }> }>;
    };
    const checks = suite.tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const { alert } of alerts) {
      const mine = checks.filter((c) => c.alertname === alert);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${alert} fires`,
      ).toBe(true);
      expect(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${alert} stays quiet`,
      ).toBe(true);
    }
  });
});

describe('deploy/prometheus/prometheus.yml and docker-compose', () => {
  it('loads every rule file, and docker-compose mounts each one beside the config', () => {
    const config = parse(read('deploy/prometheus/prometheus.yml')) as { rule_files?: string[] };
    expect(config.rule_files).toContain('alerts.yaml');
    const compose = parse(read('docker-compose.yml')) as {
      services: Record<string, { volumes?: string[] }>;
    };
    const volumes = compose.services.prometheus?.volumes ?? [];
    expect(volumes).toContain('./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
    for (const file of config.rule_files ?? [])
      expect(volumes).toContain(`./deploy/prometheus/${file}:/etc/prometheus/${file}:ro`);
  });
});

describe.skipIf(skipWithoutPromtool)(
  promtoolSuiteName('promtool on the dashboard, alerts and config'),
  () => {
    it('every dashboard expression parses as PromQL', () => {
      const queries = dashboardQueries();
      const run = promtool(['check', 'rules', writeRecordingRules(queries)]);
      const legend = queries.map((q, i) => `dashboard:query_${i} = ${q.where}`).join('\n');
      expect(run.output, legend).toContain(`SUCCESS: ${queries.length} rules found`);
      expect(run.code).toBe(0);
    });

    it('a broken expression is rejected (so the check above can fail)', () => {
      const run = promtool([
        'check',
        'rules',
        writeRecordingRules([
          { where: 'broken', expr: 'sum by (reason (rate(scopegate_decisions_total[5m]))' },
        ]),
      ]);
      expect(run.code).not.toBe(0);
      expect(run.output).toMatch(/parse error|unexpected/i);
    });

    it('the alert rules are valid', () => {
      const run = promtool(['check', 'rules', join(root, 'deploy/prometheus/alerts.yaml')]);
      expect(run.output).toContain(`SUCCESS: ${alertRules.length} rules found`);
      expect(run.code).toBe(0);
    });

    it('the alert unit tests pass: each alert fires when it should and stays quiet on healthy traffic', () => {
      const run = promtool(['test', 'rules', 'alerts.test.yaml'], { cwd: join(root, 'deploy/prometheus') });
      expect(run.output).toContain('SUCCESS');
      expect(run.code).toBe(0);
    });

    it('the alert unit tests catch a broken alert (a denial-spike threshold nobody would reach)', () => {
      const dir = mkdtempSync(join(tmpdir(), 'scopegate-alerts-'));
      copyFileSync(join(root, 'deploy/prometheus/alerts.test.yaml'), join(dir, 'alerts.test.yaml'));
      const original = read('deploy/prometheus/alerts.yaml');
      const broken = original.replace(') > 0.05', ') > 0.5');
      expect(broken).not.toBe(original);
      writeFileSync(join(dir, 'alerts.yaml'), broken);
      const run = promtool(['test', 'rules', 'alerts.test.yaml'], { cwd: dir });
      expect(run.code).not.toBe(0);
      expect(run.output).toContain('ScopegateDenialSpike');
    });

    it('the Prometheus config is valid and finds its rule file', () => {
      const run = promtool(['check', 'config', join(root, 'deploy/prometheus/prometheus.yml')]);
      expect(run.output).toContain('1 rule files found');
      expect(run.output).toContain(`SUCCESS: ${alertRules.length} rules found`);
      expect(run.code).toBe(0);
    });
  },
);
