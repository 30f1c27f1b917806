// deploy/envoy-gateway checked without a cluster: `kustomize build`, then every object against the CRDs Envoy
// Gateway is released with (its SecurityPolicy, the Gateway API's Gateway, HTTPRoute and ReferenceGrant;
// pinned and hash-checked by scripts/install-envoy-gateway-crds.sh), with unknown fields refused as `kubectl
// apply` refuses them. The CRDs' CEL rules (x-kubernetes-validations) are not evaluated here; the ones that
// matter (gRPC, backendRefs to a Service) are asserted below, with how the pieces fit: each SecurityPolicy
// sends checks to the central Service, granted, and names a policy of the central set that claims the route's
// hosts. Each check is also shown failing.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { requiredTool } from '../support/tools.js';
import { copy, servedPolicies } from './checks.js';
import { type K8sObject, kustomizeSuiteName, render, repoRoot, skipWithoutKustomize } from './kustomize.js';

const INSTALL_SCRIPT = 'scripts/install-envoy-gateway-crds.sh';
const install = readFileSync(join(repoRoot, INSTALL_SCRIPT), 'utf8');
const EG_VERSION = /^EG_VERSION="(v[\d.]+)"$/m.exec(install)?.[1];
const CRD_DIR = /^CRD_DIR="([^"]+)"$/m.exec(install)?.[1];

/** ENVOY_GATEWAY_CRDS when set, else where `go mod download` left the pinned module in Go's module cache. */
function findCrds(): string | undefined {
  if (process.env.ENVOY_GATEWAY_CRDS) return process.env.ENVOY_GATEWAY_CRDS;
  let cache: string;
  try {
    cache = execFileSync('go', ['env', 'GOMODCACHE'], { encoding: 'utf8', timeout: 10_000 }).trim();
  } catch {
    return undefined;
  }
  const dir = join(cache, `github.com/envoyproxy/gateway@${EG_VERSION}`, CRD_DIR ?? '');
  return existsSync(join(dir, 'gatewayapi-crds.yaml')) ? dir : undefined;
}

const crds = requiredTool(
  `Envoy Gateway ${EG_VERSION} CRDs`,
  findCrds(),
  `run \`bash ${INSTALL_SCRIPT}\` (needs Go; the module comes from the Go module proxy) or set ENVOY_GATEWAY_CRDS`,
);
const skip = skipWithoutKustomize || crds.skip;
const suiteName = (name: string) => crds.suiteName(kustomizeSuiteName(name));

type Schema = Record<string, unknown>;

/**
 * A CRD schema as `kubectl apply` enforces it: an object schema that lists its properties and keeps no unknown
 * fields (x-kubernetes-preserve-unknown-fields) refuses any other field, as strict field validation does.
 */
function strict(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strict);
  if (typeof node !== 'object' || node === null) return node;
  const schema = Object.fromEntries(
    Object.entries(node).map(([key, value]) =>
      key === 'properties'
        ? [key, Object.fromEntries(Object.entries(value as Schema).map(([name, s]) => [name, strict(s)]))]
        : [key, key === 'x-kubernetes-validations' ? value : strict(value)],
    ),
  ) as Schema;
  if (
    schema.properties !== undefined &&
    schema.additionalProperties === undefined &&
    schema['x-kubernetes-preserve-unknown-fields'] !== true
  )
    schema.additionalProperties = false;
  return schema;
}

/** One validator per `group/version kind` of the CRDs in the pinned module. */
function crdValidators(dir: string): Map<string, ValidateFunction> {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const validators = new Map<string, ValidateFunction>();
  for (const file of ['generated/gateway.envoyproxy.io_securitypolicies.yaml', 'gatewayapi-crds.yaml']) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      const crd = doc.toJS();
      if (crd?.kind !== 'CustomResourceDefinition') continue;
      for (const version of crd.spec.versions)
        validators.set(
          `${crd.spec.group}/${version.name} ${crd.spec.names.kind}`,
          ajv.compile(strict(version.schema.openAPIV3Schema) as Schema),
        );
    }
  }
  return validators;
}

function crdProblems(validators: Map<string, ValidateFunction>, object: K8sObject): string[] {
  const where = `${object.kind}/${object.metadata.name}`;
  const validate = validators.get(`${object.apiVersion} ${object.kind}`);
  if (!validate) return [`${where}: no CRD for ${object.apiVersion} ${object.kind}`];
  if (validate(object)) return [];
  return (validate.errors ?? []).map(
    (e) =>
      `${where}: ${e.instancePath} ${e.message}${e.params.additionalProperty ? ` (${e.params.additionalProperty})` : ''}`,
  );
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

describe.skipIf(skip)(suiteName('deploy/envoy-gateway'), () => {
  let objects: K8sObject[];
  let validators: Map<string, ValidateFunction>;
  let central: Central;
  beforeAll(() => {
    objects = render('deploy/envoy-gateway');
    validators = crdValidators(crds.require());
    const rendered = render('deploy/kubernetes/overlays/central');
    const service = rendered.find((o) => o.kind === 'Service' && o.metadata.name === 'scopegate') as Any;
    central = {
      namespace: service.metadata.namespace,
      service: service.metadata.name,
      port: service.spec.ports.find((p: Any) => p.name === 'grpc').port,
      policies: new Map([...servedPolicies(rendered)].map(([name, claims]) => [name, claims.hosts])),
    };
  });

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

  it(`every object is valid against Envoy Gateway ${EG_VERSION}'s CRDs, unknown fields refused`, () => {
    expect(objects.flatMap((o) => crdProblems(validators, o))).toEqual([]);
  });

  it('each SecurityPolicy sends its route to the central scopegate, granted, naming a policy of its set', () => {
    expect(wiringProblems(objects, central)).toEqual([]);
  });

  describe('each check can fail', () => {
    const securityPolicy = () => copy(objects.find((o) => o.kind === 'SecurityPolicy')!) as Any;

    it('a misspelt field, a value outside an enum, a wrong type', () => {
      const broken = securityPolicy();
      broken.spec.extAuth.grpc.backendRefz = broken.spec.extAuth.grpc.backendRefs;
      broken.spec.extAuth.contextExtensions[0].type = 'Literal';
      broken.spec.extAuth.bodyToExtAuth.maxRequestBytes = '64k';
      expect(crdProblems(validators, broken)).toEqual([
        'SecurityPolicy/inventory-scopegate: /spec/extAuth/bodyToExtAuth/maxRequestBytes must be integer',
        'SecurityPolicy/inventory-scopegate: /spec/extAuth/contextExtensions/0/type must be equal to one of the allowed values',
        'SecurityPolicy/inventory-scopegate: /spec/extAuth/grpc must NOT have additional properties (backendRefz)',
      ]);
    });

    it('a kind no CRD has', () => {
      expect(crdProblems(validators, { ...securityPolicy(), kind: 'SecurityPolicies' })).toEqual([
        'SecurityPolicies/inventory-scopegate: no CRD for gateway.envoyproxy.io/v1alpha1 SecurityPolicies',
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
  });
});
