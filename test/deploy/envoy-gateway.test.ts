// deploy/envoy-gateway checked without a cluster: `kustomize build`, then every object against the models of
// Envoy Gateway's SecurityPolicy and the Gateway API's Gateway, HTTPRoute and ReferenceGrant
// (@kubernetes-models/envoy-gateway and gateway-api, as schemas.test.ts checks the other manifests: types, enums,
// required fields). Like the API server's OpenAPI schema, the models do not refuse an unknown field name, so
// the extAuth fields are checked against Envoy Gateway's ExtAuth one by one, and the settings that matter are
// asserted with how the pieces fit: each SecurityPolicy sends checks to the central Service (gRPC, granted,
// fail closed, envoy.yaml's timeout, body size and error status) and names a policy of the central set that
// claims the route's hosts. Each check is also shown failing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { copy, schemaProblems, servedPolicies } from './checks.js';
import { type K8sObject, kustomizeSuiteName, render, repoRoot, skipWithoutKustomize } from './kustomize.js';

/**
 * The fields of Envoy Gateway's ExtAuth (v1.9, the release deploy/envoy-gateway needs) and of the parts this
 * example sets. `statusOnError` and `includeRouteMetadata` came after the API that
 * @kubernetes-models/envoy-gateway 2.0.0 models, so for them this list is the only check of the name, and the
 * wiring check below holds statusOnError to envoy.yaml's.
 */
const EXT_AUTH_FIELDS: Readonly<Record<string, readonly string[]>> = {
  extAuth: [
    'grpc',
    'http',
    'headersToExtAuth',
    'bodyToExtAuth',
    'timeout',
    'failOpen',
    'recomputeRoute',
    'includeRouteMetadata',
    'contextExtensions',
    'statusOnError',
  ],
  grpc: ['backendRef', 'backendRefs', 'backendSettings'],
  bodyToExtAuth: ['maxRequestBytes'],
  contextExtension: ['name', 'type', 'value', 'valueRef'],
};

/** Field names in a SecurityPolicy's extAuth that Envoy Gateway's ExtAuth does not have (it would refuse them). */
function extAuthFieldProblems(policy: K8sObject): string[] {
  const where = `SecurityPolicy/${policy.metadata.name}`;
  const ext = (policy.spec as { extAuth?: Record<string, unknown> }).extAuth ?? {};
  const unknown = (path: string, value: unknown, known: readonly string[]) =>
    Object.keys((value ?? {}) as object)
      .filter((field) => !known.includes(field))
      .map((field) => `${where}: unknown field ${path}.${field}`);
  return [
    ...unknown('extAuth', ext, EXT_AUTH_FIELDS.extAuth!),
    ...unknown('extAuth.grpc', ext.grpc, EXT_AUTH_FIELDS.grpc!),
    ...unknown('extAuth.bodyToExtAuth', ext.bodyToExtAuth, EXT_AUTH_FIELDS.bodyToExtAuth!),
    ...((ext.contextExtensions ?? []) as object[]).flatMap((c, i) =>
      unknown(`extAuth.contextExtensions[${i}]`, c, EXT_AUTH_FIELDS.contextExtension!),
    ),
  ];
}

// biome-ignore lint/suspicious/noExplicitAny: rendered objects, read field by field.
type Any = any;

/** The central scopegate as the SecurityPolicies must reach it: its gRPC Service and the policies it serves. */
interface Central {
  readonly namespace: string;
  readonly service: string;
  readonly port: number;
  /** Policy name → the hosts it claims. */
  readonly policies: ReadonlyMap<string, readonly string[]>;
}

/** Envoy's ext_authz settings of envoy/envoy.yaml, which every front door keeps. */
const extAuthz = parse(readFileSync(join(repoRoot, 'envoy/envoy.yaml'), 'utf8')).static_resources.listeners[0]
  .filter_chains[0].filters[0].typed_config.http_filters[0].typed_config;

/** Envoy's HTTP status names (envoy.type.v3.StatusCode) as numbers, for the ones envoy.yaml uses. */
const HTTP_STATUS: Readonly<Record<string, number>> = { ServiceUnavailable: 503, Forbidden: 403 };

/** How the Envoy Gateway objects fit together and with the central scopegate. */
function wiringProblems(objects: readonly K8sObject[], central: Central): string[] {
  const problems: string[] = [];
  const of = (kind: string) => objects.filter((o) => o.kind === kind) as Any[];
  const policies = of('SecurityPolicy');
  if (policies.length === 0) problems.push('no SecurityPolicy');
  for (const policy of policies) {
    const where = `SecurityPolicy ${policy.metadata.namespace}/${policy.metadata.name}`;
    const ext = policy.spec.extAuth;
    if (!ext?.grpc || ext.http) problems.push(`${where}: extAuth is not gRPC`);
    // A misspelt `backendRefs` would leave nothing to check below: say so.
    if ((ext?.grpc?.backendRefs ?? []).length === 0)
      problems.push(`${where}: sends checks nowhere (no backendRefs)`);
    for (const ref of ext?.grpc?.backendRefs ?? []) {
      if ((ref.kind ?? 'Service') !== 'Service' || (ref.group ?? '') !== '')
        problems.push(`${where}: sends checks to a ${ref.kind}, not a Service`);
      if (ref.name !== central.service || ref.namespace !== central.namespace || ref.port !== central.port)
        problems.push(
          `${where}: sends checks to ${ref.namespace}/${ref.name}:${ref.port}, not scopegate's gRPC`,
        );
    }
    const granted = of('ReferenceGrant').some(
      (g) =>
        g.metadata.namespace === central.namespace &&
        g.spec.from.some(
          (f: Any) =>
            f.group === 'gateway.envoyproxy.io' &&
            f.kind === 'SecurityPolicy' &&
            f.namespace === policy.metadata.namespace,
        ) &&
        g.spec.to.some((t: Any) => t.kind === 'Service' && (t.name ?? central.service) === central.service),
    );
    if (!granted)
      problems.push(`${where}: no ReferenceGrant lets it reach ${central.namespace}/${central.service}`);
    if (ext?.failOpen !== false) problems.push(`${where}: does not fail closed`);
    if (`${Number.parseFloat(extAuthz.grpc_service.timeout) * 1000}ms` !== ext?.timeout)
      problems.push(`${where}: timeout ${ext?.timeout} is not envoy.yaml's ${extAuthz.grpc_service.timeout}`);
    if (ext?.bodyToExtAuth?.maxRequestBytes !== extAuthz.with_request_body.max_request_bytes)
      problems.push(`${where}: body size is not envoy.yaml's`);
    // Unreachable or too slow: 503, which a client may retry, as envoy.yaml (Envoy Gateway's default is 403).
    if (ext?.statusOnError !== HTTP_STATUS[extAuthz.status_on_error.code])
      problems.push(
        `${where}: statusOnError ${ext?.statusOnError} is not envoy.yaml's ${extAuthz.status_on_error.code}`,
      );
    const named = (ext?.contextExtensions ?? []).filter((c: Any) => c.name === 'scopegate_policy');
    const name = named[0]?.value;
    if (named.length !== 1 || named[0].type !== 'Value')
      problems.push(`${where}: names no policy (scopegate_policy)`);
    else if (!central.policies.has(name))
      problems.push(`${where}: names ${name}, which no policy of the set is`);
    for (const target of policy.spec.targetRefs ?? []) {
      const route = of(target.kind).find(
        (r) => r.metadata.name === target.name && r.metadata.namespace === policy.metadata.namespace,
      );
      if (!route) {
        problems.push(`${where}: targets ${target.kind}/${target.name}, which is not rendered here`);
        continue;
      }
      // The same policy whether Envoy Gateway names it or scopegate falls back to the host.
      for (const host of route.spec.hostnames ?? [])
        if (central.policies.has(name) && !central.policies.get(name)!.includes(host))
          problems.push(`${where}: ${host} is not in the ${name} policy's match.hosts`);
      for (const parent of route.spec.parentRefs ?? []) {
        const gateway = of('Gateway').find(
          (g) => g.metadata.name === parent.name && g.metadata.namespace === parent.namespace,
        );
        const admitted = gateway?.spec.listeners.some((l: Any) =>
          l.allowedRoutes?.namespaces?.selector?.matchExpressions?.some(
            (e: Any) =>
              e.key === 'kubernetes.io/metadata.name' &&
              e.operator === 'In' &&
              e.values.includes(route.metadata.namespace),
          ),
        );
        if (!admitted)
          problems.push(`${where}: its route's Gateway ${parent.namespace}/${parent.name} does not admit it`);
      }
    }
  }
  return problems;
}

describe.skipIf(skipWithoutKustomize)(kustomizeSuiteName('deploy/envoy-gateway'), () => {
  let objects: K8sObject[];
  let central: Central;
  beforeAll(() => {
    objects = render('deploy/envoy-gateway');
    const rendered = render('deploy/kubernetes/overlays/central');
    const service = rendered.find((o) => o.kind === 'Service' && o.metadata.name === 'scopegate') as Any;
    central = {
      namespace: service.metadata.namespace,
      service: service.metadata.name,
      port: service.spec.ports.find((p: Any) => p.name === 'grpc').port,
      policies: new Map([...servedPolicies(rendered)].map(([name, claims]) => [name, claims.hosts])),
    };
  });
  const securityPolicies = () => objects.filter((o) => o.kind === 'SecurityPolicy');

  it('renders the Gateway, a route and a SecurityPolicy per API, and the grant', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`).sort()).toEqual([
      'Gateway/envoy-gateway-system/apis',
      'HTTPRoute/inventory/inventory',
      'HTTPRoute/shipments/shipments',
      'ReferenceGrant/scopegate/scopegate-ext-auth',
      'SecurityPolicy/inventory/inventory-scopegate',
      'SecurityPolicy/shipments/shipments-scopegate',
    ]);
  });

  it('every object is valid against the Gateway API and Envoy Gateway models', async () => {
    expect((await Promise.all(objects.map(schemaProblems))).flat()).toEqual([]);
  });

  it("each SecurityPolicy's extAuth uses only fields Envoy Gateway's ExtAuth has", () => {
    expect(securityPolicies().flatMap(extAuthFieldProblems)).toEqual([]);
  });

  it('each SecurityPolicy sends its route to the central scopegate, granted, naming a policy of its set', () => {
    expect(wiringProblems(objects, central)).toEqual([]);
  });

  describe('each check can fail', () => {
    const securityPolicy = () => copy(securityPolicies()[0]!) as Any;
    const named = (kind: string) => copy(objects.find((o) => o.kind === kind)!) as Any;

    it('a SecurityPolicy with a context extension type Envoy Gateway does not have, and a size as text', async () => {
      const broken = securityPolicy();
      broken.spec.extAuth.contextExtensions[0].type = 'Literal';
      broken.spec.extAuth.bodyToExtAuth.maxRequestBytes = '64k';
      const problems = (await schemaProblems(broken)).join('\n');
      expect(problems).toMatch(
        /extAuth\/contextExtensions\/0\/type must be equal to one of the allowed values/,
      );
      expect(problems).toMatch(/extAuth\/bodyToExtAuth\/maxRequestBytes must be integer/);
    });

    it('a Gateway listener without a protocol, hostnames as one string, a ReferenceGrant without `to`', async () => {
      const gateway = named('Gateway');
      delete gateway.spec.listeners[0].protocol;
      expect((await schemaProblems(gateway)).join('\n')).toMatch(
        /listeners\/0 must have required property protocol/,
      );
      const route = named('HTTPRoute');
      route.spec.hostnames = 'inventory.example.com';
      expect((await schemaProblems(route)).join('\n')).toMatch(/hostnames must be array/);
      const grant = named('ReferenceGrant');
      delete grant.spec.to;
      expect((await schemaProblems(grant)).join('\n')).toMatch(/spec must have required property to/);
    });

    it('a kind no schema knows', async () => {
      expect(await schemaProblems({ ...securityPolicy(), kind: 'SecurityPolicies' })).toEqual([
        'SecurityPolicies/inventory-scopegate: gateway.envoyproxy.io/v1alpha1 has no kind SecurityPolicies',
      ]);
    });

    it('a misspelt extAuth field, and misspelt fields inside it', () => {
      const broken = securityPolicy();
      broken.spec.extAuth.failopen = false;
      broken.spec.extAuth.grpc.backendRefz = broken.spec.extAuth.grpc.backendRefs;
      broken.spec.extAuth.contextExtensions[0].val = 'inventory';
      expect(extAuthFieldProblems(broken)).toEqual([
        'SecurityPolicy/inventory-scopegate: unknown field extAuth.failopen',
        'SecurityPolicy/inventory-scopegate: unknown field extAuth.grpc.backendRefz',
        'SecurityPolicy/inventory-scopegate: unknown field extAuth.contextExtensions[0].val',
      ]);
    });

    it('a policy name no file has, a host its policy does not claim, fail open, no grant, another port', () => {
      const broken = copy(objects) as Any[];
      const inventory = broken.find(
        (o) => o.kind === 'SecurityPolicy' && o.metadata.namespace === 'inventory',
      );
      inventory.spec.extAuth.contextExtensions[0].value = 'inventroy';
      inventory.spec.extAuth.failOpen = true;
      const shipments = broken.find(
        (o) => o.kind === 'SecurityPolicy' && o.metadata.namespace === 'shipments',
      );
      shipments.spec.extAuth.grpc.backendRefs[0].port = 9464;
      broken
        .find((o) => o.kind === 'HTTPRoute' && o.metadata.namespace === 'shipments')
        .spec.hostnames.push('parcels.example.com');
      const grant = broken.find((o) => o.kind === 'ReferenceGrant');
      grant.spec.from = grant.spec.from.filter((f: Any) => f.namespace !== 'inventory');
      expect(wiringProblems(broken, central)).toEqual([
        'SecurityPolicy inventory/inventory-scopegate: no ReferenceGrant lets it reach scopegate/scopegate',
        'SecurityPolicy inventory/inventory-scopegate: does not fail closed',
        'SecurityPolicy inventory/inventory-scopegate: names inventroy, which no policy of the set is',
        "SecurityPolicy shipments/shipments-scopegate: sends checks to scopegate/scopegate:9464, not scopegate's gRPC",
        "SecurityPolicy shipments/shipments-scopegate: parcels.example.com is not in the shipments policy's match.hosts",
      ]);
    });

    it('no backendRefs (misspelt, say), another timeout, the default error status', () => {
      const broken = copy(objects) as Any[];
      const ext = broken.find((o) => o.kind === 'SecurityPolicy').spec.extAuth;
      ext.grpc = { backendRefz: ext.grpc.backendRefs };
      ext.timeout = '10s';
      delete ext.statusOnError;
      expect(wiringProblems(broken, central)).toEqual([
        'SecurityPolicy inventory/inventory-scopegate: sends checks nowhere (no backendRefs)',
        "SecurityPolicy inventory/inventory-scopegate: timeout 10s is not envoy.yaml's 0.25s",
        "SecurityPolicy inventory/inventory-scopegate: statusOnError undefined is not envoy.yaml's ServiceUnavailable",
      ]);
    });
  });
});
