// The metrics contract (DESIGN.md, README "Operating it"), read the way an SRE reads it: start scopegate,
// send a known mix of traffic, scrape the real /metrics, and check every count per reason and route, the
// missing permissions by source, the latency buckets, the cache, reloads, revision and key refreshes, and the
// Node process metrics. Then promtool, Prometheus's own linter, must accept the scrape as it is.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_ISSUER } from '../support/policies.js';
import { parsePrometheusText, type Sample, type Scrape } from '../support/prometheus.js';
import { promtool, promtoolSuiteName, skipWithoutPromtool } from '../support/promtool.js';
import { type Harness, startHarness } from '../support/scopegate.js';
import { sendKnownTraffic } from './known-traffic.js';

let h: Harness;
let scrape: Scrape;
let revisions: { firstRevision: string; lastRevision: string };

beforeAll(async () => {
  // Decision records on, so their counter is in the scrape too (and in promtool's check of it).
  const records = join(mkdtempSync(join(tmpdir(), 'scopegate-records-')), 'decisions.jsonl');
  h = await startHarness(undefined, { flags: ['--decision-log', records] });
  revisions = await sendKnownTraffic(h);
  scrape = parsePrometheusText(await h.scrape());
}, 60_000);
afterAll(async () => h?.close());

/** Every sample of a family as `label=value,…` → value, so a whole family is compared at once. */
function family(name: string, ...labelNames: string[]): Record<string, number> {
  const rows: Record<string, number> = {};
  for (const sample of scrape.samples.filter((s: Sample) => s.name === name)) {
    rows[labelNames.map((l) => `${l}=${sample.labels[l] ?? '?'}`).join(',')] = sample.value;
  }
  return rows;
}

describe('after a known mix of traffic, /metrics counts every decision by reason and route', () => {
  it('scopegate_decisions_total has exactly one series per decision, reason and route, with exact counts', () => {
    expect(family('scopegate_decisions_total', 'decision', 'reason', 'route')).toEqual({
      'decision=allow,reason=allowed,route=list_transactions': 3,
      'decision=allow,reason=allowed,route=create_transaction': 3,
      'decision=allow,reason=allowed,route=get_transaction': 1,
      'decision=deny,reason=scope_missing,route=create_transaction': 2,
      'decision=deny,reason=role_missing,route=create_transaction': 1,
      'decision=deny,reason=client_scope_not_allowed,route=create_transaction': 1,
      'decision=deny,reason=location_denied,route=create_transaction': 1,
      // Refused before a route is known: the route label is empty, never the path the client sent.
      'decision=deny,reason=token_missing,route=': 2,
      'decision=deny,reason=request_malformed,route=': 1,
      'decision=deny,reason=route_unknown,route=': 1,
      'decision=deny,reason=key_unknown,route=': 1,
      // Exported at 0 from start-up so the alerts on them see the first one (deploy/prometheus/alerts.yaml).
      'decision=deny,reason=keys_unavailable,route=': 0,
      'decision=deny,reason=internal_error,route=': 0,
    });
  });

  it('scopegate_missing_permissions_total says which permission was missing and whether a scope or a role lacked it', () => {
    expect(family('scopegate_missing_permissions_total', 'route', 'permission', 'source')).toEqual({
      // inventory.write alone: the read permission comes from no scope in the token (twice).
      'route=create_transaction,permission=INV_TRANSACTION_READ,source=scope': 2,
      // stock-report may not use inventory.write: the create permission is a scope problem too.
      'route=create_transaction,permission=INV_TRANSACTION_CREATE,source=scope': 1,
      // svc-new-integration has the scopes but not the Inventory Transaction Manager role.
      'route=create_transaction,permission=INV_TRANSACTION_CREATE,source=role': 1,
    });
  });

  it('scopegate_check_duration_seconds buckets start at 50 µs, are cumulative, and count every check', () => {
    for (const [decision, checks] of [
      ['allow', 7],
      ['deny', 10],
    ] as const) {
      const buckets = scrape.samples.filter(
        (s) => s.name === 'scopegate_check_duration_seconds_bucket' && s.labels.decision === decision,
      );
      // Compared as numbers: prom-client writes le="0.00005", and Prometheus 3 stores it as le="5e-05".
      expect(buckets.map((b) => (b.labels.le === '+Inf' ? Infinity : Number(b.labels.le)))).toEqual([
        50e-6,
        100e-6,
        250e-6,
        500e-6,
        1e-3,
        2.5e-3,
        5e-3,
        10e-3,
        25e-3,
        50e-3,
        0.1,
        0.25,
        0.5,
        1,
        Infinity,
      ]);
      const counts = buckets.map((b) => b.value);
      expect(counts).toEqual([...counts].sort((a, b) => a - b));
      expect(counts.at(-1)).toBe(checks);
      expect(scrape.value('scopegate_check_duration_seconds_count', { decision })).toBe(checks);
      expect(scrape.value('scopegate_check_duration_seconds_sum', { decision })).toBeGreaterThan(0);
    }
  });

  it('scopegate_cache_lookups_total counts decision and token cache hits and misses', () => {
    // The caller is identified first (security rule 10), so the token cache is asked by every Check whose
    // bearer token reaches verification: a miss per new token (read, full, write-only, new-integration,
    // stock-report, rotated key); a hit for each repeat (2 lists, the post, the get, the write-only post, the
    // WH03 post, the DELETE, which is route_unknown only once its caller is known, and the full token under
    // the reloaded policy: the cache outlives reloads while the issuer's settings and keys are the same).
    // No token or a malformed path: not asked.
    // The decision cache is asked next, for a verified token on a matched route with readable locations:
    // misses for the first list, post, get, write-only post, new-integration post, stock-report post, WH03
    // post and the WH03 post under the new revision; hits for the 2 repeated lists, the repeated post and the
    // repeated write-only post. The rotated key's token is refused before it.
    expect(family('scopegate_cache_lookups_total', 'cache', 'result')).toEqual({
      'cache=decision,result=miss': 8,
      'cache=decision,result=hit': 4,
      'cache=token,result=miss': 6,
      'cache=token,result=hit': 8,
    });
  });

  it('policy reloads are counted by policy and result, and revision_info names only the revision being served', () => {
    expect(family('scopegate_policy_reloads_total', 'policy', 'result')).toEqual({
      'policy=inventory,result=success': 2, // the start-up load and the fixed file
      'policy=inventory,result=error': 1, // the broken file, which never replaced the good one
    });
    expect(revisions.lastRevision).not.toBe(revisions.firstRevision);
    expect(family('scopegate_policy_revision_info', 'policy', 'revision')).toEqual({
      [`policy=inventory,revision=${revisions.lastRevision}`]: 1,
    });
  });

  it('JWKS refreshes are counted by issuer and result: the start-up fetch, and the one that failed', () => {
    expect(family('scopegate_jwks_refreshes_total', 'issuer', 'result')).toEqual({
      [`issuer=${EXAMPLE_ISSUER},result=success`]: 1,
      [`issuer=${EXAMPLE_ISSUER},result=error`]: 1,
    });
  });

  it('process and Node runtime metrics are there for CPU, memory, event loop lag and GC dashboards', () => {
    const names = new Set(scrape.samples.map((s) => s.name));
    for (const name of [
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
      'process_start_time_seconds',
      'process_open_fds',
      'nodejs_eventloop_lag_seconds',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_active_handles',
      'nodejs_version_info',
    ]) {
      expect(names, name).toContain(name);
    }
    expect(scrape.value('process_cpu_seconds_total')).toBeGreaterThan(0);
    expect(scrape.value('process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('every family has HELP and TYPE lines, and counters end in _total', () => {
    const types = new Map(
      [...scrape.text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!] as const),
    );
    const helped = new Set([...scrape.text.matchAll(/^# HELP (\S+) /gm)].map((m) => m[1]!));
    expect([...types.keys()].filter((name) => !helped.has(name))).toEqual([]);
    for (const [name, type] of types) {
      expect(`${name} ${type}`).toMatch(type === 'counter' ? /_total counter$/ : /^(?!\S+_total )/);
    }
    expect(types.get('scopegate_check_duration_seconds')).toBe('histogram');
    expect(types.get('scopegate_policy_revision_info')).toBe('gauge');
  });
});

describe.skipIf(skipWithoutPromtool)(promtoolSuiteName('promtool check metrics'), () => {
  it('accepts the real scrape with no findings', () => {
    const run = promtool(['check', 'metrics'], { stdin: scrape.text });
    expect(run.output).toBe('');
    expect(run.code).toBe(0);
  });

  it('rejects a scrape with a naming problem (so the check above can fail)', () => {
    const broken = [
      '# HELP scopegate_denials Denials.',
      '# TYPE scopegate_denials counter',
      'scopegate_denials 1',
      '',
    ].join('\n');
    const run = promtool(['check', 'metrics'], { stdin: broken });
    expect(run.code).not.toBe(0);
    expect(run.output).toContain('scopegate_denials');
  });
});
