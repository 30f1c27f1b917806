// What the issue asks of every rendered workload, checked on the output of `kustomize build`: the locked-down
// security context on every container, the policy mounted as a directory (live reload), the gRPC liveness and
// /readyz readiness probes, termination longer than the drain, a NetworkPolicy, and for the central shape
// replicas spread over nodes with a PDB and an HPA. Each check is shown failing on a manifest broken on purpose.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, sep } from 'node:path';
import type { IContainer, IPodSpec, IVolume, IVolumeMount } from 'kubernetes-models/v1';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { formatProblem } from '../../src/policy/index.js';
import { loadPolicySet } from '../../src/policy/source.js';
import {
  allContainers,
  containerSecurityProblems,
  copy,
  labelsMatch,
  networkProblems,
  type PolicyFile,
  podTemplates,
  policyFiles,
} from './checks.js';
import {
  type K8sObject,
  KUBERNETES_OVERLAYS,
  kustomizeSuiteName,
  render,
  skipWithoutKustomize,
} from './kustomize.js';

const GRPC_PORT = 9191;
const ADMIN_PORT = 9464;

function scopegateContainer(spec: IPodSpec): IContainer {
  const found = allContainers(spec).find((c) => c.args?.[0] === 'serve');
  if (!found) throw new Error('no container runs `scopegate serve`');
  return found;
}

/** The pod spec of the one workload in an overlay. */
function podSpecOf(objects: readonly K8sObject[]): IPodSpec {
  const [workload, ...more] = podTemplates(objects);
  if (!workload || more.length > 0) throw new Error('expected exactly one workload');
  return workload.template.spec!;
}

/** Where `--policy` points and the volume mounted there: a file's directory, or the policy set's directory. */
function policyMount(spec: IPodSpec): { policy?: string; mount?: IVolumeMount; volume?: IVolume } {
  const c = scopegateContainer(spec);
  const policy = c.args?.find((a) => a.startsWith('--policy='))?.slice('--policy='.length);
  if (!policy) return {};
  // A file (policy.yaml) is served from the directory mounted above it; a directory of policies is the mount.
  const dir = /\.ya?ml$/.test(policy) ? policy.slice(0, policy.lastIndexOf('/')) : policy;
  const mount = c.volumeMounts?.find((m) => m.mountPath === dir);
  return { policy, mount, volume: spec.volumes?.find((v) => v.name === mount?.name) };
}

/** Problems with how the policy reaches scopegate: ConfigMaps mounted as a whole directory. */
function policyMountProblems(spec: IPodSpec): string[] {
  const { policy, mount, volume } = policyMount(spec);
  if (!policy) return ['scopegate has no --policy=FILE|DIR'];
  if (!mount) return [`nothing is mounted at the directory of --policy ${policy}`];
  const problems: string[] = [];
  if (mount.subPath || mount.subPathExpr)
    problems.push('the policy is mounted with subPath: kubelet never updates it');
  const configMaps = volume?.configMap
    ? [volume.configMap]
    : (volume?.projected?.sources ?? []).map((s) => s.configMap);
  if (configMaps.length === 0 || configMaps.some((c) => c === undefined))
    problems.push('the policy volume is not a ConfigMap, nor ConfigMaps projected into one directory');
  return problems;
}

/**
 * The policy set a volume's files make, as scopegate would load it at start-up: the files written into one
 * directory as the projected volume lays them out, then read by the core's own `loadPolicySet` (every file
 * loads; no two claim one name, host, principal or the default; one key source per issuer). Problems say
 * `FILE:LINE:COL: …` with the files named by their path in that directory.
 */
async function loadedPolicySet(
  files: readonly PolicyFile[],
): Promise<{ names: string[]; problems: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-policy-set-'));
  try {
    for (const file of files) writeFileSync(join(dir, file.path), file.text);
    const { policies, problems } = await loadPolicySet(dir);
    return {
      names: policies.map((p) => p.name),
      problems: problems.map((p) => formatProblem(p).replaceAll(`${dir}${sep}`, '')),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.skipIf(skipWithoutKustomize)(kustomizeSuiteName('rendered workloads'), () => {
  const rendered = new Map<string, K8sObject[]>();
  beforeAll(() => {
    for (const dir of KUBERNETES_OVERLAYS) rendered.set(dir, render(dir));
  });
  const central = () => rendered.get('deploy/kubernetes/overlays/central')!;
  const sidecar = () => rendered.get('deploy/kubernetes/overlays/sidecar')!;

  describe.each(KUBERNETES_OVERLAYS)('%s', (dir) => {
    const objects = () => rendered.get(dir)!;

    it('every container is non-root, read-only, unprivileged, seccomp RuntimeDefault, with resources', () => {
      const templates = podTemplates(objects());
      expect(templates.length).toBe(1);
      for (const { template } of templates) expect(containerSecurityProblems(template.spec!)).toEqual([]);
    });

    it('mounts the policy ConfigMaps as a directory and points --policy into it (or at it)', () => {
      expect(policyMountProblems(podSpecOf(objects()))).toEqual([]);
    });

    it('probes liveness over gRPC health on 9191 and readiness on /readyz on the admin port', () => {
      const c = scopegateContainer(podSpecOf(objects()));
      expect(c.livenessProbe?.grpc?.port).toBe(GRPC_PORT);
      expect(c.readinessProbe?.httpGet?.path).toBe('/readyz');
      const readyPort = c.readinessProbe?.httpGet?.port;
      expect(c.ports?.find((p) => p.name === readyPort || p.containerPort === readyPort)?.containerPort).toBe(
        ADMIN_PORT,
      );
    });

    it('a NetworkPolicy admits only Envoy/the mesh to gRPC and only Prometheus to the admin port', () => {
      expect(networkProblems(objects(), GRPC_PORT, ADMIN_PORT)).toEqual([]);
    });

    it('the ServiceMonitor scrapes the admin port of a Service in front of the scopegate pods', () => {
      const monitor = objects().find((o) => o.kind === 'ServiceMonitor')!;
      const spec = monitor.spec as {
        selector: { matchLabels: Record<string, string> };
        endpoints: { port: string }[];
      };
      const services = objects().filter(
        (o) => o.kind === 'Service' && labelsMatch(spec.selector.matchLabels, o.metadata.labels),
      );
      expect(services.length).toBe(1);
      const ports = (services[0]!.spec as { ports: { name: string; port: number }[] }).ports;
      expect(ports.find((p) => p.name === spec.endpoints[0]!.port)?.port).toBe(ADMIN_PORT);
      const selector = (services[0]!.spec as { selector: Record<string, string> }).selector;
      expect(labelsMatch(selector, podTemplates(objects())[0]!.template.metadata?.labels)).toBe(true);
    });
  });

  describe('the central service', () => {
    const deployment = () => central().find((o) => o.kind === 'Deployment')!;
    const podLabels = () => podTemplates([deployment()])[0]!.template.metadata!.labels!;

    it('runs 2+ replicas, never two on one node while another can take one, and never below capacity on upgrade', () => {
      const spec = deployment().spec as {
        replicas: number;
        strategy: { rollingUpdate: { maxUnavailable: number } };
        template: { spec: IPodSpec };
      };
      expect(spec.replicas).toBeGreaterThanOrEqual(2);
      expect(spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
      const byNode = spec.template.spec.topologySpreadConstraints?.find(
        (t) => t.topologyKey === 'kubernetes.io/hostname',
      );
      expect(byNode?.whenUnsatisfiable).toBe('DoNotSchedule');
      expect(labelsMatch(byNode?.labelSelector?.matchLabels, podLabels())).toBe(true);
    });

    it('has a PodDisruptionBudget and an HPA that never go below one and two pods', () => {
      const pdb = central().find((o) => o.kind === 'PodDisruptionBudget')!.spec as {
        maxUnavailable: number;
        selector: { matchLabels: Record<string, string> };
      };
      expect(labelsMatch(pdb.selector.matchLabels, podLabels())).toBe(true);
      expect(pdb.maxUnavailable).toBe(1);
      const hpa = central().find((o) => o.kind === 'HorizontalPodAutoscaler')!.spec as {
        scaleTargetRef: { kind: string; name: string };
        minReplicas: number;
      };
      expect(hpa.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: deployment().metadata.name });
      expect(hpa.minReplicas).toBeGreaterThanOrEqual(2);
    });

    it('serves a directory of policies: one ConfigMap per team, projected into the directory --policy names', () => {
      const spec = podSpecOf(central());
      const { policy, volume } = policyMount(spec);
      expect(policy).toBe('/etc/scopegate/policies');
      const { files, problems } = policyFiles(central(), volume!);
      expect(problems).toEqual([]);
      expect(files.map((f) => [f.configMap, f.path])).toEqual([
        ['scopegate-policy-inventory', 'inventory.yaml'],
        ['scopegate-policy-shipments', 'shipments.yaml'],
      ]);
      // Stable names (no hash suffix): an edit updates the same ConfigMap and kubelet swaps it in live.
      for (const name of ['scopegate-policy-inventory', 'scopegate-policy-shipments'])
        expect(central().find((o) => o.kind === 'ConfigMap' && o.metadata.name === name)).toBeDefined();
    });

    it('every policy in that directory loads, named after its file, and no two claim one name, host or principal', async () => {
      const { files } = policyFiles(central(), policyMount(podSpecOf(central())).volume!);
      const { names, problems } = await loadedPolicySet(files);
      expect(problems).toEqual([]);
      expect(names).toEqual(['inventory', 'shipments']);
      for (const file of files)
        expect((parse(file.text) as { name: string }).name).toBe(file.path.replace(/\.yaml$/, ''));
    });

    it('its Service speaks gRPC on 9191 (appProtocol grpc) and serves the admin port on 9464', () => {
      const service = central().find((o) => o.kind === 'Service' && o.metadata.name === 'scopegate')!;
      const spec = service.spec as {
        selector: Record<string, string>;
        ports: { name: string; port: number; appProtocol?: string }[];
      };
      expect(labelsMatch(spec.selector, podLabels())).toBe(true);
      expect(spec.ports.find((p) => p.port === GRPC_PORT)?.appProtocol).toBe('grpc');
      expect(spec.ports.find((p) => p.port === ADMIN_PORT)?.name).toBe('admin');
    });
  });

  describe('the sidecar shape', () => {
    it('runs scopegate, then Envoy, as sidecar containers that outlive the app, and the app as the main one', () => {
      const spec = podSpecOf(sidecar());
      expect(spec.initContainers?.map((c) => [c.name, c.restartPolicy])).toEqual([
        ['scopegate', 'Always'],
        ['envoy', 'Always'],
      ]);
      expect(spec.containers.map((c) => c.name)).toEqual(['inventory']);
    });

    it("mounts an Envoy config whose scopegate cluster is this pod's scopegate on 127.0.0.1:9191", async () => {
      const { parse } = await import('yaml');
      const spec = podSpecOf(sidecar());
      const envoy = spec.initContainers!.find((c) => c.name === 'envoy')!;
      const mount = envoy.volumeMounts!.find((m) => m.mountPath === '/etc/envoy')!;
      const configMapName = spec.volumes!.find((v) => v.name === mount.name)!.configMap!.name;
      const configMap = sidecar().find((o) => o.kind === 'ConfigMap' && o.metadata.name === configMapName)!;
      const config = parse((configMap.data as Record<string, string>)['envoy.yaml']!);
      const cluster = config.static_resources.clusters.find((c: { name: string }) => c.name === 'scopegate');
      expect(cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address).toEqual({
        address: '127.0.0.1',
        port_value: GRPC_PORT,
      });
    });
  });

  describe('each check can fail', () => {
    const spec = () => copy(podSpecOf(central()));

    it('a container that may escalate, writes its root filesystem and keeps its capabilities', () => {
      const broken = spec();
      const c = broken.containers[0]!;
      c.securityContext = {
        ...c.securityContext,
        allowPrivilegeEscalation: true,
        readOnlyRootFilesystem: false,
      };
      delete c.securityContext.capabilities;
      expect(containerSecurityProblems(broken)).toEqual([
        'container scopegate: allowPrivilegeEscalation is not false',
        'container scopegate: readOnlyRootFilesystem is not true',
        'container scopegate: capabilities do not drop ALL',
      ]);
    });

    it('a pod run as root, unconfined, without resources', () => {
      const broken = spec();
      broken.securityContext = {};
      const c = broken.containers[0]!;
      c.securityContext = {
        ...c.securityContext,
        runAsNonRoot: undefined,
        seccompProfile: { type: 'Unconfined' },
      };
      delete c.resources;
      expect(containerSecurityProblems(broken)).toEqual([
        'container scopegate: runAsNonRoot is not true',
        'container scopegate: runAsUser is not a numeric non-root user',
        'container scopegate: seccompProfile is not RuntimeDefault',
        'container scopegate: has no cpu and memory requests',
        'container scopegate: has no memory limit',
      ]);
    });

    it('a policy mounted with subPath', () => {
      const broken = spec();
      broken.containers[0]!.volumeMounts!.find((m) => m.name === 'policies')!.subPath = 'inventory.yaml';
      expect(policyMountProblems(broken)).toEqual([
        'the policy is mounted with subPath: kubelet never updates it',
      ]);
    });

    it('a policy volume that is not made of ConfigMaps', () => {
      const broken = spec();
      broken.volumes!.find((v) => v.name === 'policies')!.projected!.sources!.push({ secret: { name: 'x' } });
      expect(policyMountProblems(broken)).toEqual([
        'the policy volume is not a ConfigMap, nor ConfigMaps projected into one directory',
      ]);
    });

    it('projected ConfigMaps that are missing, lack a key, or land on one path', () => {
      const volume = copy(policyMount(podSpecOf(central())).volume!);
      volume.projected!.sources!.push(
        { configMap: { name: 'scopegate-policy-billing' } },
        {
          configMap: { name: 'scopegate-policy-shipments', items: [{ key: 'billing.yaml', path: 'b.yaml' }] },
        },
        {
          configMap: {
            name: 'scopegate-policy-shipments',
            items: [{ key: 'shipments.yaml', path: 'inventory.yaml' }],
          },
        },
        {
          configMap: {
            name: 'scopegate-policy-shipments',
            items: [{ key: 'shipments.yaml', path: 'shipments.json' }],
          },
        },
      );
      expect(policyFiles(central(), volume).problems).toEqual([
        'ConfigMap scopegate-policy-billing is not rendered by the overlay',
        'ConfigMap scopegate-policy-shipments has no key billing.yaml',
        'two ConfigMaps put inventory.yaml in the directory',
        'shipments.json is not a *.yaml file: scopegate would not read it',
      ]);
    });

    it('two policies claiming one host, a file that does not load, another key source for an issuer', async () => {
      const { files } = policyFiles(central(), policyMount(podSpecOf(central())).volume!);
      const shipments = files.find((f) => f.path === 'shipments.yaml')!;
      const added = (text: string, path: string) => ({ ...shipments, key: path, path, text });
      // returns.yaml: a copy of shipments that also claims inventory's host and names other keys for its issuer.
      const returns = shipments.text
        .replace('name: shipments', 'name: returns')
        .replace('shipments.example.com,', 'inventory.example.com,')
        .replace(
          'spiffe://cluster.local/ns/shipments/sa/shipments',
          'spiffe://cluster.local/ns/returns/sa/returns',
        )
        .replace('shipments.shipments.svc', 'returns.returns.svc')
        .replace('https://idp.example.com/.well-known/jwks.json', 'https://idp.example.com/keys');
      expect(parse(returns)).toMatchObject({
        name: 'returns',
        match: { hosts: ['inventory.example.com', 'returns.returns.svc.cluster.local'] },
      });
      const { names, problems } = await loadedPolicySet([
        ...files,
        added(returns, 'returns.yaml'),
        added('version: 1\nname: broken\n', 'broken.yaml'),
      ]);
      // At start-up nothing serves yet, so every side of a clash is refused, each naming the other; only the
      // places (LINE:COL) are left out here, as comments above them may move.
      expect(names).toEqual([]);
      expect(problems.map((p) => p.replace(/:\d+:\d+/g, ':L:C'))).toEqual([
        'broken.yaml:L:C: authentication: required key "authentication" is missing',
        'broken.yaml:L:C: scopes: required key "scopes" is missing',
        'broken.yaml:L:C: routes: required key "routes" is missing',
        'inventory.yaml:L:C: match.hosts[0]: host "inventory.example.com" is also claimed by returns.yaml:L:C (policy "returns"); a request belongs to one policy',
        'inventory.yaml:L:C: authentication.issuers[0].jwks: issuer "https://idp.example.com/" gets its keys from another JWKS in returns.yaml:L:C (policy "returns"); an issuer has one key source in a policy set',
        'returns.yaml:L:C: match.hosts[0]: host "inventory.example.com" is also claimed by inventory.yaml:L:C (policy "inventory"); a request belongs to one policy',
        'returns.yaml:L:C: authentication.issuers[0].jwks: issuer "https://idp.example.com/" gets its keys from another JWKS in inventory.yaml:L:C (policy "inventory"); an issuer has one key source in a policy set',
        'returns.yaml:L:C: authentication.issuers[0].jwks: issuer "https://idp.example.com/" gets its keys from another JWKS in shipments.yaml:L:C (policy "shipments"); an issuer has one key source in a policy set',
        'shipments.yaml:L:C: authentication.issuers[0].jwks: issuer "https://idp.example.com/" gets its keys from another JWKS in returns.yaml:L:C (policy "returns"); an issuer has one key source in a policy set',
      ]);
    });

    it('a NetworkPolicy rule that admits every port, and one that admits anyone to gRPC', () => {
      const objects = copy(central());
      const policy = objects.find((o) => o.kind === 'NetworkPolicy')!;
      const ingress = (policy.spec as { ingress: object[] }).ingress;
      ingress.push({}, { ports: [{ port: 'grpc' }] });
      expect(networkProblems(objects, GRPC_PORT, ADMIN_PORT)).toEqual([
        'NetworkPolicy/scopegate ingress[2]: admits every port',
        'NetworkPolicy/scopegate ingress[3]: admits anyone to the gRPC port',
      ]);
    });

    it('pods that no NetworkPolicy selects', () => {
      const objects = copy(central()).filter((o) => o.kind !== 'NetworkPolicy');
      expect(networkProblems(objects, GRPC_PORT, ADMIN_PORT)).toEqual([
        'Deployment/scopegate: no NetworkPolicy restricts its ingress',
      ]);
    });
  });
});
