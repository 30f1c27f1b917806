// Every Istio variant makes the workloads it sends to scopegate take mTLS only: a PeerAuthentication STRICT
// applies to each of them, as Istio picks it (the one selecting the workload in its namespace, else the
// namespace-wide one), with no port left PERMISSIVE. That is what makes `source.principal`, the calling
// workload of the policy's `peers`, trustworthy: a plaintext caller never reaches the sidecar. And the variants
// make nothing else STRICT: not scopegate's own namespace (plain Envoys and Envoy Gateway call it without mesh
// certificates), not the mesh.
import { beforeAll, describe, expect, it } from 'vitest';
import { copy, labelsMatch } from './checks.js';
import {
  ISTIO_VARIANTS,
  type K8sObject,
  kustomizeSuiteName,
  render,
  skipWithoutKustomize,
} from './kustomize.js';

// biome-ignore lint/suspicious/noExplicitAny: rendered objects, read field by field.
type Any = any;

const selectorOf = (o: Any): Record<string, string> | undefined => o.spec?.selector?.matchLabels;

/** What is wrong with the mTLS of the workloads a variant sends to scopegate, one sentence each. */
function mtlsProblems(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const peerAuthentications = objects.filter((o) => o.kind === 'PeerAuthentication') as Any[];
  const sent = (objects as Any[]).filter(
    (o) =>
      o.kind === 'AuthorizationPolicy' && o.spec.action === 'CUSTOM' && o.spec.provider?.name === 'scopegate',
  );
  for (const authorization of sent) {
    const namespace = authorization.metadata.namespace;
    const labels = selectorOf(authorization);
    const where = `workload ${namespace}/${JSON.stringify(labels)}`;
    const inNamespace = peerAuthentications.filter((p) => p.metadata.namespace === namespace);
    // Istio's precedence: a policy selecting the workload, else the namespace's policy without a selector.
    const selecting = inNamespace.filter((p) => selectorOf(p) && labelsMatch(selectorOf(p), labels));
    const applied = selecting.length > 0 ? selecting : inNamespace.filter((p) => !selectorOf(p));
    if (applied.length === 0)
      problems.push(`${where}: no PeerAuthentication, so Istio's PERMISSIVE default lets plaintext in`);
    if (applied.length > 1) problems.push(`${where}: ${applied.length} PeerAuthentications apply`);
    for (const policy of applied) {
      const name = `PeerAuthentication ${policy.metadata.name}`;
      if (policy.spec.mtls?.mode !== 'STRICT')
        problems.push(`${where}: ${name} mode is ${policy.spec.mtls?.mode ?? 'unset'}, not STRICT`);
      for (const [port, setting] of Object.entries((policy.spec.portLevelMtls ?? {}) as Record<string, Any>))
        if (setting?.mode !== 'STRICT')
          problems.push(`${where}: ${name} leaves port ${port} ${setting?.mode}`);
    }
  }
  for (const policy of peerAuthentications) {
    const selects = (a: Any) =>
      a.metadata.namespace === policy.metadata.namespace &&
      selectorOf(policy) !== undefined &&
      labelsMatch(selectorOf(policy), selectorOf(a));
    if (!sent.some(selects))
      problems.push(
        `PeerAuthentication ${policy.metadata.namespace}/${policy.metadata.name}: selects more than the workloads sent to scopegate`,
      );
  }
  return problems;
}

describe.skipIf(skipWithoutKustomize)(kustomizeSuiteName('Istio variants: mTLS into the workloads'), () => {
  const rendered = new Map<string, K8sObject[]>();
  beforeAll(() => {
    for (const dir of ISTIO_VARIANTS) rendered.set(dir, render(dir));
  });

  it.each(ISTIO_VARIANTS)(
    '%s: each workload sent to scopegate takes mTLS only, and nothing else is made STRICT',
    (dir) => {
      const objects = rendered.get(dir)!;
      expect(objects.filter((o) => o.kind === 'PeerAuthentication').length).toBeGreaterThan(0);
      expect(mtlsProblems(objects)).toEqual([]);
    },
  );

  it('two-services: one PeerAuthentication STRICT per workload, in its namespace', () => {
    const strict = rendered
      .get('deploy/istio/two-services')!
      .filter((o) => o.kind === 'PeerAuthentication')
      .map((o: Any) => `${o.metadata.namespace}/${JSON.stringify(selectorOf(o))}/${o.spec.mtls.mode}`);
    expect(strict).toEqual([
      'inventory/{"app.kubernetes.io/name":"inventory"}/STRICT',
      'shipments/{"app.kubernetes.io/name":"shipments"}/STRICT',
    ]);
  });

  describe('the check can fail', () => {
    const broken = () => copy(rendered.get('deploy/istio/two-services')!) as Any[];
    const peerAuthentication = (objects: Any[], namespace: string) =>
      objects.find((o) => o.kind === 'PeerAuthentication' && o.metadata.namespace === namespace);

    it('PERMISSIVE, and a port left plaintext', () => {
      const objects = broken();
      peerAuthentication(objects, 'inventory').spec.mtls.mode = 'PERMISSIVE';
      peerAuthentication(objects, 'shipments').spec.portLevelMtls = { 8080: { mode: 'DISABLE' } };
      expect(mtlsProblems(objects)).toEqual([
        'workload inventory/{"app.kubernetes.io/name":"inventory"}: PeerAuthentication inventory-mtls mode is PERMISSIVE, not STRICT',
        'workload shipments/{"app.kubernetes.io/name":"shipments"}: PeerAuthentication shipments-mtls leaves port 8080 DISABLE',
      ]);
    });

    it('a PeerAuthentication in another namespace than its workload', () => {
      const objects = broken();
      peerAuthentication(objects, 'shipments').metadata.namespace = 'scopegate';
      expect(mtlsProblems(objects)).toEqual([
        `workload shipments/{"app.kubernetes.io/name":"shipments"}: no PeerAuthentication, so Istio's PERMISSIVE default lets plaintext in`,
        'PeerAuthentication scopegate/shipments-mtls: selects more than the workloads sent to scopegate',
      ]);
    });

    it('a namespace-wide PeerAuthentication selecting a workload more specific than it, left PERMISSIVE', () => {
      const objects = broken();
      objects.push({
        apiVersion: 'security.istio.io/v1',
        kind: 'PeerAuthentication',
        metadata: { name: 'default', namespace: 'inventory' },
        spec: { mtls: { mode: 'STRICT' } },
      });
      // The workload's own policy wins over the namespace's, so the namespace-wide STRICT does not help.
      peerAuthentication(objects, 'inventory').spec.mtls.mode = 'PERMISSIVE';
      expect(mtlsProblems(objects)).toEqual([
        'workload inventory/{"app.kubernetes.io/name":"inventory"}: PeerAuthentication inventory-mtls mode is PERMISSIVE, not STRICT',
        'PeerAuthentication inventory/default: selects more than the workloads sent to scopegate',
      ]);
    });
  });
});
