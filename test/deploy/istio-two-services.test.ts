// deploy/istio/two-services with the central scopegate's policy set: Istio tells scopegate which workload is
// called by its SPIFFE ID (`attributes.destination.principal`, from the workload's service account and
// namespace), so every workload the variant sends to scopegate must be the destination principal of exactly
// one policy the central overlay serves, and every policy claiming a principal must have its workload here.
import { beforeAll, describe, expect, it } from 'vitest';
import { copy, type PolicyClaims, servedPolicies } from './checks.js';
import { type K8sObject, kustomizeSuiteName, render, skipWithoutKustomize } from './kustomize.js';

// biome-ignore lint/suspicious/noExplicitAny: rendered objects, read field by field.
type Any = any;

/**
 * The SPIFFE ID Istio gives a workload selected by `app.kubernetes.io/name: APP` in namespace NS, when it runs
 * as the service account named after the app (as the variant's comments ask).
 */
function spiffeId(policy: Any): string {
  const app = policy.spec.selector.matchLabels['app.kubernetes.io/name'];
  return `spiffe://cluster.local/ns/${policy.metadata.namespace}/sa/${app}`;
}

function selectionProblems(
  objects: readonly K8sObject[],
  policies: ReadonlyMap<string, PolicyClaims>,
): string[] {
  const problems: string[] = [];
  const authorizations = objects.filter((o) => o.kind === 'AuthorizationPolicy') as Any[];
  const selected = new Set<string>();
  for (const authorization of authorizations) {
    const where = `AuthorizationPolicy ${authorization.metadata.namespace}/${authorization.metadata.name}`;
    if (authorization.spec.action !== 'CUSTOM' || authorization.spec.provider?.name !== 'scopegate')
      problems.push(`${where}: does not ask the scopegate provider`);
    if (JSON.stringify(authorization.spec.rules) !== '[{}]')
      problems.push(`${where}: does not check every request`);
    const id = spiffeId(authorization);
    selected.add(id);
    const owners = [...policies].filter(([, claims]) => claims.destinationPrincipals.includes(id));
    if (owners.length !== 1)
      problems.push(`${where}: ${owners.length} policies claim ${id} (${owners.map(([n]) => n).join(', ')})`);
  }
  for (const [name, claims] of policies)
    for (const id of claims.destinationPrincipals)
      if (!selected.has(id)) problems.push(`policy ${name} claims ${id}, which no AuthorizationPolicy sends`);
  return problems;
}

describe.skipIf(skipWithoutKustomize)(kustomizeSuiteName('deploy/istio/two-services'), () => {
  let objects: K8sObject[];
  let policies: Map<string, PolicyClaims>;
  beforeAll(() => {
    objects = render('deploy/istio/two-services');
    policies = servedPolicies(render('deploy/kubernetes/overlays/central'));
  });

  it('sends the inventory and the shipments workload, each in its namespace, to the one provider', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.namespace}/${o.metadata.name}`)).toEqual([
      'AuthorizationPolicy/inventory/inventory-scopegate',
      'AuthorizationPolicy/shipments/shipments-scopegate',
      // mTLS only into each (istio-mtls.test.ts): a plaintext caller would bring no destination principal.
      'PeerAuthentication/inventory/inventory-mtls',
      'PeerAuthentication/shipments/shipments-mtls',
    ]);
  });

  it('each workload is the destination principal of exactly one policy of the central set, and back', () => {
    expect([...policies.keys()]).toEqual(['inventory', 'shipments']);
    expect(selectionProblems(objects, policies)).toEqual([]);
  });

  it('the check can fail: a workload no policy claims, a policy whose workload is not sent', () => {
    const broken = copy(objects) as Any[];
    broken[1].metadata.namespace = 'parcels';
    expect(selectionProblems(broken, policies)).toEqual([
      'AuthorizationPolicy parcels/shipments-scopegate: 0 policies claim spiffe://cluster.local/ns/parcels/sa/shipments ()',
      'policy shipments claims spiffe://cluster.local/ns/shipments/sa/shipments, which no AuthorizationPolicy sends',
    ]);
  });

  it('the check can fail: an ALLOW policy, a rule that checks only some requests', () => {
    const broken = copy(objects) as Any[];
    broken[0].spec.action = 'ALLOW';
    broken[1].spec.rules = [{ to: [{ operation: { methods: ['POST'] } }] }];
    expect(selectionProblems(broken, policies)).toEqual([
      'AuthorizationPolicy inventory/inventory-scopegate: does not ask the scopegate provider',
      'AuthorizationPolicy shipments/shipments-scopegate: does not check every request',
    ]);
  });
});
