#!/usr/bin/env node
// Writes deploy/kubernetes/components/prometheus-operator/prometheus-rule.yaml, the Prometheus Operator
// PrometheusRule, from deploy/prometheus/alerts.yaml: the alert rules have one source of truth (the file
// promtool tests), and Kubernetes gets the same groups wrapped in a custom resource.
//
//   node scripts/prometheus-rule.mjs            # regenerate after editing deploy/prometheus/alerts.yaml
//   node scripts/prometheus-rule.mjs --check    # exit 1 when the generated file is out of date (run by npm test)
//   [--alerts FILE] [--out FILE]                # other paths (the tests use them)
import { readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parse, stringify } from 'yaml';

const root = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    check: { type: 'boolean', default: false },
    alerts: { type: 'string', default: `${root}deploy/prometheus/alerts.yaml` },
    out: {
      type: 'string',
      default: `${root}deploy/kubernetes/components/prometheus-operator/prometheus-rule.yaml`,
    },
  },
});

/** The PrometheusRule text for the alert rules file's text: deterministic, so --check can compare bytes. */
function prometheusRule(alertsText) {
  const { groups } = parse(alertsText);
  if (!Array.isArray(groups) || groups.length === 0) throw new Error('the alerts file has no rule groups');
  const rule = {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'scopegate', labels: { 'app.kubernetes.io/name': 'scopegate' } },
    spec: { groups },
  };
  const header = [
    '# GENERATED from deploy/prometheus/alerts.yaml by scripts/prometheus-rule.mjs: do not edit by hand.',
    '# Edit the alerts file (and its promtool tests), then run `node scripts/prometheus-rule.mjs`.',
  ];
  return `${header.join('\n')}\n${stringify(rule, { lineWidth: 0 })}`;
}

const wanted = prometheusRule(readFileSync(values.alerts, 'utf8'));
const shown = relative(process.cwd(), values.out) || values.out;
if (values.check) {
  let current = '';
  try {
    current = readFileSync(values.out, 'utf8');
  } catch {
    // A missing file is out of date like any other.
  }
  if (current !== wanted) {
    console.error(
      `${shown} is out of date with ${relative(process.cwd(), values.alerts)}: run node scripts/prometheus-rule.mjs`,
    );
    process.exit(1);
  }
  console.log(`${shown} is up to date`);
} else {
  writeFileSync(values.out, wanted);
  console.log(`wrote ${shown}`);
}
