// The metrics the Check path writes, read back the way Prometheus reads them (through the registry): one
// series per decision, reason and route with exact counts, missing permissions by source, cache lookups, and
// the series alerts rely on present at 0 before any traffic. Counts are kept as plain numbers between scrapes
// and handed over on each one: a scrape must neither lose nor repeat them.
import { describe, expect, it } from 'vitest';
import { GAUGES_NAMED_LIKE_COUNTERS, Metrics } from '../../../src/telemetry/metrics.js';
import type { Decision } from '../../../src/vocabulary/index.js';

/** One family as `label=value,…` → value, from what a scrape would read. */
async function family(metrics: Metrics, name: string, suffix = ''): Promise<Record<string, number>> {
  const found = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  const out: Record<string, number> = {};
  // Histograms name each value's series (`_bucket`, `_sum`, `_count`); prom-client's type leaves it out.
  for (const { labels, value, metricName } of (found?.values ?? []) as Array<{
    labels: Record<string, string | number>;
    value: number;
    metricName?: string;
  }>) {
    if (suffix !== '' && metricName !== `${name}${suffix}`) continue;
    const key = Object.entries(labels)
      .map(([label, v]) => `${label}=${v}`)
      .join(',');
    out[key] = value;
  }
  return out;
}

const allowed: Decision = {
  reason: 'allowed',
  detail: 'allowed',
  policy: 'inventory',
  revision: 'r1',
  route: 'list_transactions',
};
const scopeMissing: Decision = {
  reason: 'scope_missing',
  detail: 'route create_transaction requires INV_TRANSACTION_READ',
  policy: 'inventory',
  revision: 'r1',
  route: 'create_transaction',
  missingBySource: [
    { permission: 'INV_TRANSACTION_READ', source: 'scope' },
    { permission: 'INV_TRANSACTION_CREATE', source: 'role' },
  ],
};
const tokenMissing: Decision = {
  reason: 'token_missing',
  detail: 'no token',
  policy: 'inventory',
  revision: 'r1',
};
const noPolicy: Decision = { reason: 'policy_unknown', detail: 'no policy owns it', revision: '' };

describe('before any traffic', () => {
  it('the fail-closed denials (they page someone) are series at 0 under no policy; reloads wait for a policy', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    expect(await family(metrics, 'scopegate_decisions_total')).toEqual({
      'decision=deny,reason=keys_unavailable,route=,policy=,transport=grpc': 0,
      'decision=deny,reason=internal_error,route=,policy=,transport=grpc': 0,
    });
    expect(await family(metrics, 'scopegate_policy_reloads_total')).toEqual({});
  });
});

describe('recordDecision', () => {
  it('counts by decision label, reason, route and policy; no route or no policy counts under ""', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    for (let i = 0; i < 3; i++) metrics.recordDecision(allowed, 'allow', 0.0002);
    metrics.recordDecision({ ...allowed, policy: 'shipments' }, 'allow', 0.0002);
    metrics.recordDecision(scopeMissing, 'deny', 0.0004);
    metrics.recordDecision({ ...scopeMissing, dryRun: true }, 'dry_run_deny', 0.0004);
    metrics.recordDecision(tokenMissing, 'deny', 0.00003);
    metrics.recordDecision({ ...tokenMissing, reason: 'internal_error' }, 'deny', 0.00003);
    metrics.recordDecision(noPolicy, 'deny', 0.00001);
    expect(await family(metrics, 'scopegate_decisions_total')).toEqual({
      'decision=deny,reason=keys_unavailable,route=,policy=,transport=grpc': 0,
      'decision=deny,reason=internal_error,route=,policy=,transport=grpc': 0,
      'decision=allow,reason=allowed,route=list_transactions,policy=inventory,transport=grpc': 3,
      'decision=allow,reason=allowed,route=list_transactions,policy=shipments,transport=grpc': 1,
      'decision=deny,reason=scope_missing,route=create_transaction,policy=inventory,transport=grpc': 1,
      'decision=dry_run_deny,reason=scope_missing,route=create_transaction,policy=inventory,transport=grpc': 1,
      'decision=deny,reason=token_missing,route=,policy=inventory,transport=grpc': 1,
      'decision=deny,reason=internal_error,route=,policy=inventory,transport=grpc': 1,
      'decision=deny,reason=policy_unknown,route=,policy=,transport=grpc': 1,
    });
  });

  it('counts each missing permission by route and by where it should have come from', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.recordDecision(scopeMissing, 'deny', 0.0004);
    metrics.recordDecision(scopeMissing, 'deny', 0.0004);
    expect(await family(metrics, 'scopegate_missing_permissions_total')).toEqual({
      'policy=inventory,route=create_transaction,permission=INV_TRANSACTION_READ,source=scope': 2,
      'policy=inventory,route=create_transaction,permission=INV_TRANSACTION_CREATE,source=role': 2,
    });
  });

  it('times each check in the histogram of its decision label', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.recordDecision(allowed, 'allow', 0.00004);
    metrics.recordDecision(allowed, 'allow', 0.003);
    metrics.recordDecision(scopeMissing, 'deny', 0.0004);
    expect(await family(metrics, 'scopegate_check_duration_seconds', '_count')).toEqual({
      'decision=allow,transport=grpc': 2,
      'decision=deny,transport=grpc': 1,
    });
    const buckets = await family(metrics, 'scopegate_check_duration_seconds', '_bucket');
    expect(buckets['le=0.00005,decision=allow,transport=grpc']).toBe(1);
    expect(buckets['le=0.0025,decision=allow,transport=grpc']).toBe(1);
    expect(buckets['le=0.005,decision=allow,transport=grpc']).toBe(2);
    expect(buckets['le=0.0005,decision=deny,transport=grpc']).toBe(1);
  });

  it('hands each count to the scrape once: nothing lost between scrapes, nothing counted twice', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    const allows = async () =>
      (await family(metrics, 'scopegate_decisions_total'))[
        'decision=allow,reason=allowed,route=list_transactions,policy=inventory,transport=grpc'
      ];
    metrics.recordDecision(allowed, 'allow', 0.0002);
    metrics.recordDecision(allowed, 'allow', 0.0002);
    expect(await allows()).toBe(2);
    expect(await allows()).toBe(2);
    metrics.recordDecision(allowed, 'allow', 0.0002);
    expect(await allows()).toBe(3);
    expect(await metrics.registry.metrics()).toContain(
      'scopegate_decisions_total{decision="allow",reason="allowed",route="list_transactions",policy="inventory",transport="grpc"} 3',
    );
  });
});

describe('recordCacheLookup', () => {
  it('counts lookups by cache and result, across scrapes', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.recordCacheLookup('token', 'hit');
    metrics.recordCacheLookup('token', 'hit');
    metrics.recordCacheLookup('decision', 'miss');
    expect(await family(metrics, 'scopegate_cache_lookups_total')).toEqual({
      'cache=token,result=hit': 2,
      'cache=decision,result=miss': 1,
    });
    metrics.recordCacheLookup('token', 'miss');
    metrics.recordCacheLookup('token', 'hit');
    expect(await family(metrics, 'scopegate_cache_lookups_total')).toEqual({
      'cache=token,result=hit': 3,
      'cache=decision,result=miss': 1,
      'cache=token,result=miss': 1,
    });
  });
});

describe('policyServed and policyRemoved', () => {
  it('name only the revision each policy serves', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.policyServed('inventory', 'aaa111');
    metrics.policyServed('shipments', 'ccc333');
    metrics.policyServed('inventory', 'bbb222');
    expect(await family(metrics, 'scopegate_policy_revision_info')).toEqual({
      'policy=inventory,revision=bbb222': 1,
      'policy=shipments,revision=ccc333': 1,
    });
  });

  it("a policy's reload and fail-closed series are there at 0 from its first revision", async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.policyServed('inventory', 'aaa111');
    expect(await family(metrics, 'scopegate_policy_reloads_total')).toEqual({
      'policy=inventory,result=success': 0,
      'policy=inventory,result=error': 0,
    });
    expect(await family(metrics, 'scopegate_decisions_total')).toEqual({
      'decision=deny,reason=keys_unavailable,route=,policy=,transport=grpc': 0,
      'decision=deny,reason=internal_error,route=,policy=,transport=grpc': 0,
      'decision=deny,reason=keys_unavailable,route=,policy=inventory,transport=grpc': 0,
      'decision=deny,reason=internal_error,route=,policy=inventory,transport=grpc': 0,
    });
  });

  it('a removed policy takes every series of its own along, and leaves the others', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    for (const policy of ['inventory', 'shipments']) {
      metrics.policyServed(policy, `${policy}-1`);
      metrics.policyReloads.inc({ policy, result: 'success' });
      metrics.recordPolicyChanges(policy, [{ kind: 'locations', policy, what: 'x', says: 'x' }]);
      const missingBySource = [{ permission: 'P', source: 'scope' as const }];
      metrics.recordDecision(
        { reason: 'scope_missing', detail: '', policy, revision: '1', route: 'r', missingBySource },
        'deny',
        0.001,
      );
    }
    metrics.policyRemoved('shipments');
    const text = await metrics.registry.metrics();
    expect(text).toContain('policy="inventory"');
    expect(text).not.toContain('policy="shipments"');
    expect(await family(metrics, 'scopegate_missing_permissions_total')).toEqual({
      'policy=inventory,route=r,permission=P,source=scope': 1,
    });
    expect(await family(metrics, 'scopegate_policy_changes_total')).toEqual({
      'policy=inventory,kind=locations': 1,
    });
  });
});

describe('default metrics', () => {
  it('the runtime collectors are there, less the gauges named like counters promtool rejects', async () => {
    const names = (await new Metrics().registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names).toContain('process_cpu_seconds_total');
    expect(names).toContain('nodejs_active_handles');
    for (const name of GAUGES_NAMED_LIKE_COUNTERS) expect(names).not.toContain(name);
    const none = (await new Metrics({ defaultMetrics: false }).registry.getMetricsAsJSON()).map(
      (m) => m.name,
    );
    expect(none.filter((name) => !name.startsWith('scopegate_'))).toEqual([]);
  });
});
