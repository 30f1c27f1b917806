// scopegate's HTTP door in Kubernetes and Istio: the http-door component (deploy/kubernetes/components/http-door)
// on the central overlay, as a user adds it, serves `--http` through its environment twin on a named port both
// Services expose and the gRPC port's callers may reach; Istio's `envoyExtAuthzHttp` provider
// (deploy/istio/mesh-config-http.yaml) points at that port and asks scopegate as envoy/envoy-http.yaml does.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { envTwin } from '../../src/config/settings.js';
import { doorPortProblems } from './checks.js';
import { type K8sObject, kustomizeSuiteName, render, repoRoot, skipWithoutKustomize } from './kustomize.js';

// biome-ignore lint/suspicious/noExplicitAny: rendered objects, read field by field.
type Any = any;

const yaml = (file: string): Any => parse(readFileSync(join(repoRoot, file), 'utf8'));
const named = (objects: readonly K8sObject[], kind: string, name: string): Any =>
  objects.find((o) => o.kind === kind && o.metadata.name === name);
const containerOf = (objects: readonly K8sObject[]): Any =>
  named(objects, 'Deployment', 'scopegate').spec.template.spec.containers.find(
    (c: Any) => c.name === 'scopegate',
  );

describe.skipIf(skipWithoutKustomize)(kustomizeSuiteName('the http-door component'), () => {
  let plain: K8sObject[];
  let http: K8sObject[];
  beforeAll(() => {
    plain = render('deploy/kubernetes/overlays/central');
    http = render('test/deploy/fixtures/central-with-http');
  });

  it('serves --http on 9192 through its environment twin, on a named container port', () => {
    const container = containerOf(http);
    const env = Object.fromEntries(container.env.map((e: Any) => [e.name, e.value]));
    expect(env[envTwin('http')]).toBe('0.0.0.0:9192');
    expect(container.ports).toContainEqual({ name: 'http-authz', containerPort: 9192, protocol: 'TCP' });
    expect(containerOf(plain).env.map((e: Any) => e.name)).not.toContain(envTwin('http'));
  });

  it('both Services expose it as HTTP, and everything else stays as the overlay has it', () => {
    expect(doorPortProblems(plain, http, { name: 'http-authz', port: 9192 })).toEqual([]);
  });

  it('lets exactly the gRPC port’s callers reach it', () => {
    const rules = named(http, 'NetworkPolicy', 'scopegate').spec.ingress;
    const plainRules = named(plain, 'NetworkPolicy', 'scopegate').spec.ingress;
    expect(rules[0].ports).toEqual([...plainRules[0].ports, { port: 'http-authz', protocol: 'TCP' }]);
    expect(rules[0].from).toEqual(plainRules[0].from);
    expect(rules.slice(1)).toEqual(plainRules.slice(1));
  });
});

describe("Istio's envoyExtAuthzHttp provider (deploy/istio/mesh-config-http.yaml)", () => {
  const provider = yaml('deploy/istio/mesh-config-http.yaml').spec.meshConfig.extensionProviders[0];
  const http = provider.envoyExtAuthzHttp;
  const grpc = yaml('deploy/istio/mesh-config.yaml').spec.meshConfig.extensionProviders[0].envoyExtAuthzGrpc;
  const extAuthz =
    yaml('envoy/envoy-http.yaml').static_resources.listeners[0].filter_chains[0].filters[0].typed_config
      .http_filters[0].typed_config;
  /** An Envoy ListStringMatcher in Istio's spelling: exact names, `prefix*`. */
  const istioNames = (list: Any): string[] =>
    list.patterns.map((p: Any) => (p.exact !== undefined ? p.exact : `${p.prefix}*`));

  it('points at the same Service as the gRPC provider, on the component’s port', () => {
    expect(http.service).toBe(grpc.service);
    const services = parseAllDocuments(
      readFileSync(join(repoRoot, 'deploy/kubernetes/components/http-door/service-http.yaml'), 'utf8'),
    ).map((d) => d.toJS());
    const service = services.find((s) => s.metadata.name === http.service.split('.')[0]);
    expect(http.port).toBe(service.spec.ports.find((p: Any) => p.name === 'http-authz').port);
    expect(provider.name).not.toBe(
      yaml('deploy/istio/mesh-config.yaml').spec.meshConfig.extensionProviders[0].name,
    );
  });

  it('fails closed with the timeout and body size of the gRPC provider and envoy/envoy-http.yaml', () => {
    expect(http.failOpen).toBe(false);
    expect(http.statusOnError).toBe(grpc.statusOnError);
    expect(http.timeout).toBe(extAuthz.http_service.server_uri.timeout);
    expect(http.includeRequestBodyInCheck).toEqual({
      maxRequestBytes: extAuthz.with_request_body.max_request_bytes,
      allowPartialMessage: extAuthz.with_request_body.allow_partial_message,
    });
  });

  it('sends, forwards and answers the headers envoy/envoy-http.yaml does', () => {
    const response = extAuthz.http_service.authorization_response;
    expect(http.includeRequestHeadersInCheck.sort()).toEqual(istioNames(extAuthz.allowed_headers).sort());
    expect(http.headersToUpstreamOnAllow).toEqual(istioNames(response.allowed_upstream_headers));
    expect(http.headersToDownstreamOnDeny).toEqual(istioNames(response.allowed_client_headers));
  });
});
