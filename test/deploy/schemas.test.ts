// Every object `kubectl apply -k` would send, after `kustomize build` of each overlay and Istio variant, is
// valid against the official Kubernetes, Istio and Prometheus Operator schemas (the kubernetes-models
// packages); an object broken on purpose is not. No cluster needed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { copy, schemaProblems } from './checks.js';
import {
  ISTIO_VARIANTS,
  type K8sObject,
  KUBERNETES_OVERLAYS,
  kustomizeSuiteName,
  render,
  repoRoot,
  skipWithoutKustomize,
  WITH_COMPONENTS,
} from './kustomize.js';

describe.skipIf(skipWithoutKustomize)(
  kustomizeSuiteName('kustomize build, then the official schemas'),
  () => {
    const rendered = new Map<string, K8sObject[]>();
    beforeAll(() => {
      for (const dir of [...KUBERNETES_OVERLAYS, ...WITH_COMPONENTS, ...ISTIO_VARIANTS])
        rendered.set(dir, render(dir));
    });

    it.each([...KUBERNETES_OVERLAYS, ...WITH_COMPONENTS, ...ISTIO_VARIANTS])(
      '%s: every rendered object is valid',
      async (dir) => {
        const objects = rendered.get(dir)!;
        expect(objects.length).toBeGreaterThan(0);
        const problems = (await Promise.all(objects.map(schemaProblems))).flat();
        expect(problems).toEqual([]);
      },
    );

    it('the central overlay renders the whole central service', () => {
      const kinds = rendered
        .get('deploy/kubernetes/overlays/central')!
        .map((o) => `${o.kind}/${o.metadata.name}`);
      expect(kinds).toEqual(
        expect.arrayContaining([
          'Namespace/scopegate',
          'ServiceAccount/scopegate',
          'ConfigMap/scopegate-policy-inventory',
          'ConfigMap/scopegate-policy-shipments',
          'Deployment/scopegate',
          'Service/scopegate',
          'PodDisruptionBudget/scopegate',
          'HorizontalPodAutoscaler/scopegate',
          'NetworkPolicy/scopegate',
          'ServiceMonitor/scopegate',
          'PrometheusRule/scopegate',
        ]),
      );
    });

    it('the sidecar overlay renders the app pod, its Envoy config and its Service', () => {
      const kinds = rendered
        .get('deploy/kubernetes/overlays/sidecar')!
        .map((o) => `${o.kind}/${o.metadata.name}`);
      expect(kinds).toEqual(
        expect.arrayContaining([
          'ConfigMap/scopegate-policy',
          'Deployment/inventory',
          'Service/inventory',
          'NetworkPolicy/inventory',
          'ServiceMonitor/scopegate',
          'PrometheusRule/scopegate',
        ]),
      );
      expect(kinds.some((k) => k.startsWith('ConfigMap/inventory-envoy-'))).toBe(true);
      // The base's scopegate Deployment became the app's pod: no second, app-less scopegate Deployment.
      expect(kinds).not.toContain('Deployment/scopegate');
    });

    describe('the check can fail: objects broken on purpose are rejected', () => {
      const central = () => rendered.get('deploy/kubernetes/overlays/central')!;
      const named = (objects: K8sObject[], kind: string) => objects.find((o) => o.kind === kind)!;

      it('a Deployment with replicas "two"', async () => {
        const deployment = copy(named(central(), 'Deployment'));
        (deployment.spec as { replicas: unknown }).replicas = 'two';
        expect((await schemaProblems(deployment)).join('\n')).toMatch(/replicas must be integer/);
      });

      it('a container without a name', async () => {
        const deployment = copy(named(central(), 'Deployment'));
        const spec = deployment.spec as { template: { spec: { containers: { name?: string }[] } } };
        delete spec.template.spec.containers[0]!.name;
        expect((await schemaProblems(deployment)).join('\n')).toMatch(/must have required property name/);
      });

      it('a gRPC liveness probe naming its port instead of numbering it (gRPC probes take numbers only)', async () => {
        const deployment = copy(named(central(), 'Deployment'));
        const spec = deployment.spec as { template: { spec: { containers: { livenessProbe: object }[] } } };
        spec.template.spec.containers[0]!.livenessProbe = { grpc: { port: 'grpc' } };
        expect((await schemaProblems(deployment)).join('\n')).toMatch(
          /livenessProbe\/grpc\/port must be integer/,
        );
      });

      it('an AuthorizationPolicy action Istio does not have', async () => {
        const policy = copy(named(rendered.get('deploy/istio/scopegate-verifies')!, 'AuthorizationPolicy'));
        (policy.spec as { action: string }).action = 'EXTERNAL';
        expect((await schemaProblems(policy)).join('\n')).toMatch(
          /action must be equal to one of the allowed values/,
        );
      });

      it('a PeerAuthentication mode Istio does not have', async () => {
        const peerAuthentication = copy(
          named(rendered.get('deploy/istio/scopegate-verifies')!, 'PeerAuthentication'),
        );
        (peerAuthentication.spec as { mtls: { mode: string } }).mtls.mode = 'MUTUAL';
        expect((await schemaProblems(peerAuthentication)).join('\n')).toMatch(
          /mode must be equal to one of the allowed values/,
        );
      });

      it('a ServiceMonitor endpoint with a string interval of the wrong shape', async () => {
        const monitor = copy(named(central(), 'ServiceMonitor'));
        (monitor.spec as { endpoints: { interval: string }[] }).endpoints[0]!.interval = 'every 15 seconds';
        expect((await schemaProblems(monitor)).join('\n')).toMatch(/interval must match pattern/);
      });

      it('a kind no schema knows', async () => {
        const problems = await schemaProblems({
          apiVersion: 'apps/v1',
          kind: 'Deploymnet',
          metadata: { name: 'x' },
        });
        expect(problems).toEqual(['Deploymnet/x: apps/v1 has no kind Deploymnet']);
      });
    });
  },
);

// The mesh configs are not `kubectl apply -k` objects (istioctl or Helm reads them), so they are read directly.
// Istio's schema leaves meshConfig open, so their fields are checked against MeshConfig.ExtensionProvider's
// EnvoyExternalAuthorizationGrpcProvider, EnvoyExternalAuthorizationHttpProvider and
// OpenTelemetryTracingProvider in istio/api (mesh/v1alpha1/config.proto): a misspelt field would be ignored by
// Istio and silently fall back to a default such as the 600 s timeout.
const COMMON_PROVIDER_FIELDS = ['service', 'port', 'timeout', 'failOpen', 'statusOnError'];
const PROVIDER_FIELDS: Record<string, string[]> = {
  envoyExtAuthzGrpc: [...COMMON_PROVIDER_FIELDS, 'includeRequestBodyInCheck'],
  envoyExtAuthzHttp: [
    ...COMMON_PROVIDER_FIELDS,
    'pathPrefix',
    'includeRequestHeadersInCheck',
    'includeAdditionalHeadersInCheck',
    'includeRequestBodyInCheck',
    'headersToUpstreamOnAllow',
    'headersToDownstreamOnDeny',
    'headersToDownstreamOnAllow',
  ],
  opentelemetry: ['service', 'port', 'maxTagLength', 'http', 'resourceDetectors'],
};
const REQUEST_BODY_FIELDS = ['maxRequestBytes', 'allowPartialMessage', 'packAsBytes'];

function fieldProblems(config: K8sObject): string[] {
  const providers = (config.spec as { meshConfig: { extensionProviders: Record<string, unknown>[] } })
    .meshConfig.extensionProviders;
  return providers.flatMap((provider) => {
    const kinds = Object.keys(provider).filter((k) => k !== 'name');
    return kinds.flatMap((kind) => {
      const fields = PROVIDER_FIELDS[kind];
      if (fields === undefined) return [`${provider.name}: unknown field ${kind}`];
      const settings = provider[kind] as Record<string, unknown>;
      const body = (settings.includeRequestBodyInCheck ?? {}) as Record<string, unknown>;
      return [
        ...Object.keys(settings).filter((k) => !fields.includes(k)),
        ...Object.keys(body).filter((k) => !REQUEST_BODY_FIELDS.includes(k)),
      ].map((field) => `${provider.name}: unknown field ${field}`);
    });
  });
}

/** A field each provider does not have, though one might expect it (another product's name for a setting). */
const MISSPELT: Record<string, string> = {
  envoyExtAuthzGrpc: 'failureModeAllow',
  envoyExtAuthzHttp: 'allowedUpstreamHeaders',
  opentelemetry: 'endpoint',
};

describe.each([
  ['deploy/istio/mesh-config.yaml', ['envoyExtAuthzGrpc']],
  ['deploy/istio/mesh-config-http.yaml', ['envoyExtAuthzHttp']],
  ['deploy/istio/mesh-config-tracing.yaml', ['envoyExtAuthzGrpc', 'opentelemetry']],
])('%s', (file, kinds) => {
  const operator = parse(readFileSync(join(repoRoot, file), 'utf8')) as K8sObject;

  it('is a valid IstioOperator', async () => {
    expect(await schemaProblems(operator)).toEqual([]);
  });

  it(`uses only fields the ${kinds.join(' and ')} providers have`, () => {
    const providers = (operator.spec as { meshConfig: { extensionProviders: object[] } }).meshConfig
      .extensionProviders;
    expect(providers.map((p) => Object.keys(p).filter((k) => k !== 'name'))).toEqual(kinds.map((k) => [k]));
    expect(fieldProblems(operator)).toEqual([]);
  });

  it.each(kinds)('the check can fail: a misspelt field of the %s provider is reported', (kind) => {
    const broken = copy(operator);
    const misspelt = MISSPELT[kind]!;
    const provider = (broken.spec as { meshConfig: { extensionProviders: Record<string, object>[] } })
      .meshConfig.extensionProviders[kinds.indexOf(kind)]!;
    provider[kind] = { ...provider[kind], [misspelt]: false };
    const name = (provider as { name?: string }).name;
    expect(fieldProblems(broken)).toEqual([`${name}: unknown field ${misspelt}`]);
  });
});

// The Telemetry resource is applied on its own (kubectl apply -f), so it too is read directly.
describe('deploy/istio/telemetry-tracing.yaml', () => {
  const telemetry = parse(
    readFileSync(join(repoRoot, 'deploy/istio/telemetry-tracing.yaml'), 'utf8'),
  ) as K8sObject;

  it('is a valid Telemetry', async () => {
    expect(await schemaProblems(telemetry)).toEqual([]);
  });

  it('the check can fail: a provider without a name is rejected', async () => {
    const broken = copy(telemetry);
    (broken.spec as { tracing: { providers: object[] }[] }).tracing[0]!.providers = [{}];
    expect((await schemaProblems(broken)).join('\n')).toMatch(
      /providers\/0 must have required property name/,
    );
  });
});
