// The Check path's histogram must read exactly like prom-client's own: same text lines for the same
// observations (so dashboards, promtool and the workers' aggregation cannot tell them apart).
import { AggregatorRegistry, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotHistogram } from '../../../src/telemetry/hot-histogram.js';
import { CHECK_DURATION_BUCKETS } from '../../../src/telemetry/metrics.js';

const NAME = 'scopegate_check_duration_seconds';
const HELP = 'Time from receiving a Check to answering it.';
// Below, on and between the bounds, and past the last one.
const VALUES = [0, 0.00001, 0.00005, 0.00007, 0.0001, 0.0003, 0.002, 0.0099, 0.01, 0.7, 1, 3, 120];

function observed(decisions: readonly string[]) {
  const ours = new Registry();
  const theirs = new Registry();
  const hot = new HotHistogram(NAME, HELP, CHECK_DURATION_BUCKETS, ours);
  const reference = new Histogram({
    name: NAME,
    help: HELP,
    labelNames: ['decision'],
    buckets: CHECK_DURATION_BUCKETS,
    registers: [theirs],
  });
  decisions.forEach((decision, d) => {
    const series = hot.seriesFor(decision, { decision });
    for (const value of VALUES.slice(d)) {
      series.observe(value);
      reference.observe({ decision }, value);
    }
  });
  return { ours, theirs, hot };
}

describe('HotHistogram', () => {
  it('prints what prom-client prints for the same observations', async () => {
    const { ours, theirs } = observed(['allow', 'deny', 'dry_run_deny']);
    const text = await ours.metrics();
    expect(text).toBe(await theirs.metrics());
    expect(text).toContain(`${NAME}_bucket{le="+Inf",decision="deny"} ${VALUES.length - 1}`);
  });

  it('adds up across workers like prom-client histograms', async () => {
    const a = observed(['allow', 'deny']);
    const b = observed(['allow']);
    const ours = await AggregatorRegistry.aggregate([
      await a.ours.getMetricsAsJSON(),
      await b.ours.getMetricsAsJSON(),
    ]).metrics();
    const theirs = await AggregatorRegistry.aggregate([
      await a.theirs.getMetricsAsJSON(),
      await b.theirs.getMetricsAsJSON(),
    ]).metrics();
    expect(ours).toBe(theirs);
    expect(ours).toContain(`${NAME}_count{decision="allow"} ${2 * VALUES.length}`);
  });

  it('reset zeroes the series its callers hold, and they keep counting', async () => {
    const { ours, hot } = observed(['allow']);
    const series = hot.seriesFor('allow', { decision: 'allow' });
    ours.resetMetrics();
    series.observe(0.0002);
    const text = await ours.metrics();
    expect(text).toContain(`${NAME}_count{decision="allow"} 1`);
    expect(text).toContain(`${NAME}_bucket{le="0.0001",decision="allow"} 0`);
    expect(text).toContain(`${NAME}_bucket{le="0.00025",decision="allow"} 1`);
  });
});
