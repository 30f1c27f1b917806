// One source of truth for what the manifests repeat: the alert rules (PrometheusRule generated from
// deploy/prometheus/alerts.yaml), the sidecar's Envoy config (envoy/envoy.yaml with only the addresses
// changed), the policy in the ConfigMap (the example policy with a real issuer), and the Istio provider
// (the same timeout, body size and port as envoy/envoy.yaml and the central Service). Plain files: no
// kustomize needed.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { findEnvoy, INSTALL_HINT } from '../../src/dev/envoy.js';
import { loadCasesFile, runCases } from '../../src/explain/cases.js';
import { loadPolicyFile } from '../../src/policy/load.js';
import { loadPolicySet } from '../../src/policy/source.js';
import { copy } from './checks.js';
import { repoRoot } from './kustomize.js';

const path = (file: string) => join(repoRoot, file);
const read = (file: string) => readFileSync(path(file), 'utf8');
// biome-ignore lint/suspicious/noExplicitAny: YAML documents are read field by field, and every read is asserted.
const yaml = (file: string): any => parse(read(file));
const scratch = mkdtempSync(join(tmpdir(), 'scopegate-deploy-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('the PrometheusRule is generated from deploy/prometheus/alerts.yaml', () => {
  const generator = path('scripts/prometheus-rule.mjs');
  const check = (...args: string[]) =>
    spawnSync(process.execPath, [generator, '--check', ...args], { encoding: 'utf8', timeout: 10_000 });

  it('the committed PrometheusRule is what the generator writes today', () => {
    const result = check();
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('carries exactly the rule groups promtool tests', () => {
    expect(yaml('deploy/kubernetes/components/prometheus-operator/prometheus-rule.yaml').spec.groups).toEqual(
      yaml('deploy/prometheus/alerts.yaml').groups,
    );
  });

  it('the check can fail: an alert edited in alerts.yaml makes the generated file out of date', () => {
    const edited = join(scratch, 'alerts.yaml');
    writeFileSync(edited, read('deploy/prometheus/alerts.yaml').replace('for: 2m', 'for: 3m'));
    const result = check('--alerts', edited);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(
      /prometheus-rule\.yaml is out of date .* run node scripts\/prometheus-rule\.mjs/,
    );
  });

  it('scrapes under the job name the alerts ask for', () => {
    const jobs = new Set(
      [...read('deploy/prometheus/alerts.yaml').matchAll(/job="([^"]+)"/g)].map((m) => m[1]),
    );
    const monitor = yaml('deploy/kubernetes/components/prometheus-operator/servicemonitor.yaml');
    const relabel = monitor.spec.endpoints[0].relabelings.find(
      (r: { targetLabel: string }) => r.targetLabel === 'job',
    );
    expect([...jobs]).toEqual([relabel.replacement]);
  });
});

describe("the sidecar's Envoy config is envoy/envoy.yaml with only its addresses changed", () => {
  // biome-ignore lint/suspicious/noExplicitAny: an Envoy bootstrap, read field by field.
  type Bootstrap = any;
  /** The documented changes: both clusters are containers of the same pod, the admin API stays on loopback. */
  function inPod(config: Bootstrap): Bootstrap {
    const result = copy(config);
    for (const cluster of result.static_resources.clusters) {
      cluster.type = 'STATIC';
      for (const group of cluster.load_assignment.endpoints)
        for (const { endpoint } of group.lb_endpoints) endpoint.address.socket_address.address = '127.0.0.1';
    }
    result.admin.address.socket_address.address = '127.0.0.1';
    return result;
  }
  const sidecarFile = 'deploy/kubernetes/overlays/sidecar/envoy.yaml';

  it('equals envoy/envoy.yaml after exactly those changes', () => {
    expect(yaml(sidecarFile)).toEqual(inPod(yaml('envoy/envoy.yaml')));
  });

  it('the check can fail: a sidecar config that drifted (fail open) differs', () => {
    const drifted = yaml(sidecarFile);
    drifted.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.failure_mode_allow = true;
    expect(drifted).not.toEqual(inPod(yaml('envoy/envoy.yaml')));
  });

  const envoy = findEnvoy();
  const skip = envoy === undefined && process.env.CI !== 'true';
  it.skipIf(skip)(
    skip
      ? `passes envoy --mode validate (skipped: Envoy not found; ${INSTALL_HINT})`
      : 'passes envoy --mode validate',
    () => {
      if (envoy === undefined)
        throw new Error(`Envoy not found (ENVOY_BIN, .venv/bin/envoy, PATH): ${INSTALL_HINT}`);
      const output = execFileSync(
        envoy,
        ['--mode', 'validate', '-c', path(sidecarFile), '--disable-hot-restart'],
        {
          encoding: 'utf8',
          timeout: 20_000,
        },
      );
      expect(output).toMatch(/configuration .* OK/);
    },
  );
});

describe('the policies in the ConfigMaps', () => {
  const inventory = 'deploy/kubernetes/base/policy.yaml';
  const shipments = 'deploy/kubernetes/overlays/central/policies/shipments.yaml';
  /** What a deployed policy keeps of the example it comes from: everything but how keys are found. */
  const SECTIONS = ['name', 'match', 'scopes', 'roles', 'clients', 'subjects', 'peers', 'routes'];

  it.each([inventory, shipments])(
    '%s is a policy scopegate serves (the same loader and validation as `scopegate validate`)',
    async (file) => {
      const result = await loadPolicyFile(path(file));
      expect(result.ok ? [] : result.problems).toEqual([]);
    },
  );

  it.each([
    [inventory, 'examples/inventory/policy.yaml'],
    [shipments, 'examples/mesh/shipments.yaml'],
  ])('%s is %s, but for an issuer whose keys come from its JWKS URI', (file, exampleFile) => {
    const deployed = yaml(file);
    const example = yaml(exampleFile);
    for (const section of SECTIONS)
      expect({ [section]: deployed[section] }).toEqual({ [section]: example[section] });
    // A pod has no dev key file: every issuer's keys are fetched (and kept fresh) from its JWKS URI.
    for (const issuer of deployed.authentication.issuers) expect(Object.keys(issuer.jwks)).toEqual(['uri']);
  });

  // What docs/kubernetes.md has an operator run before deploying: the example's cases, the calling workloads'
  // (peers, in Istio's SPIFFE form) among them, decided by the deployed policy as by the example.
  const CASES = 'examples/inventory/policy.test.yaml';
  async function failedCases(policyFile: string): Promise<string[]> {
    const { set, problems } = await loadPolicySet(policyFile);
    expect(problems).toEqual([]);
    const loaded = await loadCasesFile(path(CASES));
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.problems));
    const results = await runCases(set, loaded.cases);
    return results
      .filter((r) => r.failures.length > 0)
      .map((r) => `${r.case.name}: ${r.failures.join('; ')}`);
  }

  it(`${inventory} passes ${CASES}, its peer cases included`, async () => {
    const cases = yaml(CASES).cases as { request: { peer?: string }; expect: { reason?: string } }[];
    const peerCases = cases.filter((c) => c.request.peer !== undefined);
    expect(peerCases.length).toBeGreaterThanOrEqual(3);
    for (const { request } of peerCases)
      expect(request.peer).toMatch(/^spiffe:\/\/cluster\.local\/ns\/[^/]+\/sa\/[^/]+$/);
    expect(cases.map((c) => c.expect.reason)).toEqual(
      expect.arrayContaining(['peer_missing', 'peer_not_allowed']),
    );
    expect(await failedCases(path(inventory))).toEqual([]);
  });

  it('the check can fail: a deployed policy without the orders service among its peers fails its cases', async () => {
    const edited = join(scratch, 'no-orders-peer.yaml');
    const text = read(inventory);
    const dropped = text.replace(
      'spiffe://cluster.local/ns/orders/sa/orders-api:',
      'spiffe://cluster.local/ns/orders/sa/orders-web:',
    );
    expect(dropped).not.toBe(text);
    writeFileSync(edited, dropped);
    expect(await failedCases(edited)).toEqual([
      'the orders service reserves stock at WH02 for a user who may write inventory: expected allow, got deny (peer_not_allowed)',
      'a warehouse the user may use but the orders service may not is location_denied: expected reason location_denied, got peer_not_allowed; expected missing locations to include EU-BER, got (none)',
    ]);
  });

  it('the check can fail: a deployed policy whose match drifted from its example differs', () => {
    const drifted = yaml(shipments);
    drifted.match.hosts.push('shipments.internal');
    expect({ match: drifted.match }).not.toEqual({ match: yaml('examples/mesh/shipments.yaml').match });
  });

  it('the base mounts the inventory policy under the file name --policy names in the image', () => {
    const base = yaml('deploy/kubernetes/base/kustomization.yaml');
    const generator = base.configMapGenerator.find((g: { name: string }) => g.name === 'scopegate-policy');
    expect(generator.files).toEqual(['policy.yaml']);
    expect(generator.options.disableNameSuffixHash).toBe(true);
  });

  it("the central overlay generates each team's ConfigMap from its file, without a hash suffix", () => {
    const central = yaml('deploy/kubernetes/overlays/central/kustomization.yaml');
    expect(central.configMapGenerator).toEqual([
      expect.objectContaining({ name: 'scopegate-policy-shipments', files: ['policies/shipments.yaml'] }),
    ]);
    for (const generator of central.configMapGenerator)
      expect(generator.options.disableNameSuffixHash).toBe(true);
  });
});

describe('the Istio extension provider and policies', () => {
  const provider = yaml('deploy/istio/mesh-config.yaml').spec.meshConfig.extensionProviders[0];
  const grpc = provider.envoyExtAuthzGrpc;
  const extAuthz =
    yaml('envoy/envoy.yaml').static_resources.listeners[0].filter_chains[0].filters[0].typed_config
      .http_filters[0].typed_config;

  it('points at the central Service on its gRPC port', () => {
    const namespace = yaml('deploy/kubernetes/overlays/central/kustomization.yaml').namespace;
    const services = parseAllDocuments(read('deploy/kubernetes/overlays/central/service.yaml')).map((d) =>
      d.toJS(),
    );
    const service = services.find((s) =>
      s.spec.ports.some((p: { appProtocol: string }) => p.appProtocol === 'grpc'),
    );
    expect(grpc.service).toBe(`${service.metadata.name}.${namespace}.svc.cluster.local`);
    expect(service.spec.ports.find((p: { name: string }) => p.name === 'grpc').port).toBe(grpc.port);
  });

  it('fails closed with the timeout and body size of envoy/envoy.yaml', () => {
    expect(grpc.failOpen).toBe(false);
    expect(grpc.timeout).toBe(extAuthz.grpc_service.timeout);
    expect(grpc.includeRequestBodyInCheck).toEqual({
      maxRequestBytes: extAuthz.with_request_body.max_request_bytes,
      allowPartialMessage: extAuthz.with_request_body.allow_partial_message,
      packAsBytes: extAuthz.with_request_body.pack_as_bytes,
    });
    expect(grpc.includeRequestBodyInCheck.packAsBytes).toBe(true);
  });

  it('the AuthorizationPolicy sends every request of the inventory workload to that provider', () => {
    const policy = yaml('deploy/istio/scopegate-verifies/authorization-policy.yaml');
    expect(policy.spec.action).toBe('CUSTOM');
    expect(policy.spec.provider.name).toBe(provider.name);
    expect(policy.spec.rules).toEqual([{}]);
    expect(policy.spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'inventory' });
  });

  it("Istio's RequestAuthentication keeps the token for scopegate and trusts the policy's issuer", () => {
    const rules = yaml('deploy/istio/istio-verifies/request-authentication.yaml').spec.jwtRules;
    const issuers = yaml('deploy/kubernetes/base/policy.yaml').authentication.issuers;
    expect(rules).toEqual(
      issuers.map((i: { issuer: string; audiences: string[]; jwks: { uri: string } }) => ({
        issuer: i.issuer,
        audiences: i.audiences,
        jwksUri: i.jwks.uri,
        forwardOriginalToken: true,
      })),
    );
  });

  it('the tracing mesh config registers that same provider, and the Telemetry turns on its tracing provider', () => {
    const [scopegate, tracer] = yaml('deploy/istio/mesh-config-tracing.yaml').spec.meshConfig
      .extensionProviders;
    expect(scopegate).toEqual(provider);
    const telemetry = yaml('deploy/istio/telemetry-tracing.yaml');
    expect(telemetry.spec.tracing.map((t: { providers: object[] }) => t.providers)).toEqual([
      [{ name: tracer.name }],
    ]);
  });
});
