// The deploy checks as pure functions from rendered objects to a list of problems (empty: fine), so each test
// can assert both that the shipped manifests pass and that a manifest broken on purpose does not.
import { isDeepStrictEqual } from 'node:util';
import type { IContainer, IPodSpec, IPodTemplateSpec, IVolume } from 'kubernetes-models/v1';
import { parse } from 'yaml';
import type { K8sObject } from './kustomize.js';

/**
 * Where the official schemas for each API group live (the kubernetes-models packages, Kubernetes' own and the
 * projects' generated from their API types: Istio, Prometheus Operator, the Gateway API, Envoy Gateway).
 */
const SCHEMA_PACKAGES: Record<string, string> = {
  '': 'kubernetes-models',
  apps: 'kubernetes-models',
  policy: 'kubernetes-models',
  autoscaling: 'kubernetes-models',
  'networking.k8s.io': 'kubernetes-models',
  'security.istio.io': '@kubernetes-models/istio',
  'networking.istio.io': '@kubernetes-models/istio',
  'install.istio.io': '@kubernetes-models/istio',
  'telemetry.istio.io': '@kubernetes-models/istio',
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
  'gateway.networking.k8s.io': '@kubernetes-models/gateway-api',
  'gateway.envoyproxy.io': '@kubernetes-models/envoy-gateway',
};

interface Model {
  validate(): void;
}
type ModelClass = new (data: object) => Model;

/** Validates one object against the schema of its apiVersion and kind; an unknown kind is a problem too. */
export async function schemaProblems(object: K8sObject): Promise<string[]> {
  const where = `${object.kind}/${object.metadata?.name}`;
  const [group, version] = object.apiVersion.includes('/')
    ? object.apiVersion.split('/')
    : ['', object.apiVersion];
  const pkg = SCHEMA_PACKAGES[group ?? ''];
  if (pkg === undefined) return [`${where}: no schema known for apiVersion ${object.apiVersion}`];
  const module: Record<string, unknown> = await import(
    group ? `${pkg}/${group}/${version}` : `${pkg}/${version}`
  );
  const Class = module[object.kind] as ModelClass | undefined;
  if (typeof Class !== 'function') return [`${where}: ${object.apiVersion} has no kind ${object.kind}`];
  try {
    new Class(object).validate();
    return [];
  } catch (error) {
    return [`${where}: ${(error as Error).message}`];
  }
}

/** Workloads: every object with a pod template. */
export function podTemplates(
  objects: readonly K8sObject[],
): { owner: K8sObject; template: IPodTemplateSpec }[] {
  return objects.flatMap((owner) => {
    const template = (owner.spec as { template?: IPodTemplateSpec } | undefined)?.template;
    return template?.spec ? [{ owner, template }] : [];
  });
}

export function allContainers(spec: IPodSpec): IContainer[] {
  return [...(spec.initContainers ?? []), ...spec.containers];
}

/**
 * The security settings every container must run with: the restricted Pod Security Standard, plus a
 * read-only root filesystem, numeric non-root user, resource requests and a memory limit.
 */
export function containerSecurityProblems(spec: IPodSpec): string[] {
  const problems: string[] = [];
  const pod = spec.securityContext ?? {};
  if (spec.hostNetwork || spec.hostPID || spec.hostIPC) problems.push('pod shares a host namespace');
  if (spec.automountServiceAccountToken !== false) problems.push('pod mounts a service account token');
  for (const volume of spec.volumes ?? [])
    if (volume.hostPath) problems.push(`volume ${volume.name} is a hostPath`);
  for (const c of allContainers(spec)) {
    const own = c.securityContext ?? {};
    const say = (what: string) => problems.push(`container ${c.name}: ${what}`);
    if ((own.runAsNonRoot ?? pod.runAsNonRoot) !== true) say('runAsNonRoot is not true');
    const user = own.runAsUser ?? pod.runAsUser;
    if (typeof user !== 'number' || user === 0) say('runAsUser is not a numeric non-root user');
    if (own.allowPrivilegeEscalation !== false) say('allowPrivilegeEscalation is not false');
    if (own.privileged === true) say('is privileged');
    if (own.readOnlyRootFilesystem !== true) say('readOnlyRootFilesystem is not true');
    if (!own.capabilities?.drop?.includes('ALL')) say('capabilities do not drop ALL');
    if ((own.capabilities?.add ?? []).length > 0) say('adds capabilities');
    if ((own.seccompProfile ?? pod.seccompProfile)?.type !== 'RuntimeDefault')
      say('seccompProfile is not RuntimeDefault');
    if (!c.resources?.requests?.cpu || !c.resources.requests.memory) say('has no cpu and memory requests');
    if (!c.resources?.limits?.memory) say('has no memory limit');
  }
  return problems;
}

/** The port number a probe or rule names (a number, or the name of one of the container's ports). */
export function portNumber(
  port: number | string | undefined,
  containers: readonly IContainer[],
): number | undefined {
  if (typeof port === 'number') return port;
  for (const c of containers) for (const p of c.ports ?? []) if (p.name === port) return p.containerPort;
  return undefined;
}

export function labelsMatch(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
) {
  return Object.entries(selector ?? {}).every(([key, value]) => labels?.[key] === value);
}

interface PeerSelector {
  podSelector?: { matchLabels?: Record<string, string> };
  namespaceSelector?: { matchLabels?: Record<string, string> };
  ipBlock?: { cidr: string };
}
interface IngressRule {
  ports?: { port?: number | string }[];
  from?: PeerSelector[];
}

/** Labels a peer must carry to call scopegate's gRPC port: an Envoy marked as a client, or the Istio mesh. */
const GRPC_CALLERS: Record<string, string>[] = [
  { 'scopegate/client': 'true' },
  { 'security.istio.io/tlsMode': 'istio' },
  { istio: 'ingressgateway' },
  { 'app.kubernetes.io/managed-by': 'envoy-gateway', 'app.kubernetes.io/component': 'proxy' },
];
const PROMETHEUS = { 'app.kubernetes.io/name': 'prometheus' };

/**
 * The NetworkPolicy checks for the pods holding a scopegate container: a policy selects them and restricts
 * ingress; no rule admits every port; the gRPC port is admitted only from Envoys/the mesh (or not at all, when
 * Envoy is in the same pod), the admin port only from Prometheus.
 */
export function networkProblems(
  objects: readonly K8sObject[],
  grpcPort: number,
  adminPort: number,
): string[] {
  const problems: string[] = [];
  const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
  for (const { owner, template } of podTemplates(objects)) {
    const containers = allContainers(template.spec!);
    const selecting = policies.filter((p) => {
      const spec = p.spec as {
        podSelector?: { matchLabels?: Record<string, string> };
        policyTypes?: string[];
      };
      return (
        labelsMatch(spec.podSelector?.matchLabels, template.metadata?.labels) &&
        spec.policyTypes?.includes('Ingress')
      );
    });
    if (selecting.length === 0) {
      problems.push(`${owner.kind}/${owner.metadata.name}: no NetworkPolicy restricts its ingress`);
      continue;
    }
    for (const policy of selecting) {
      const rules = ((policy.spec as { ingress?: IngressRule[] }).ingress ?? []) as IngressRule[];
      rules.forEach((rule, i) => {
        const where = `NetworkPolicy/${policy.metadata.name} ingress[${i}]`;
        if (!rule.ports || rule.ports.length === 0) {
          problems.push(`${where}: admits every port`);
          return;
        }
        const ports = rule.ports.map((p) => portNumber(p.port, containers));
        const peers = rule.from ?? [];
        const onlyFrom = (allowed: Record<string, string>[], what: string) => {
          if (peers.length === 0) problems.push(`${where}: admits anyone to the ${what} port`);
          for (const peer of peers) {
            const labels = peer.podSelector?.matchLabels;
            if (peer.ipBlock || !labels || !allowed.some((a) => labelsMatch(a, labels)))
              problems.push(`${where}: admits ${JSON.stringify(peer)} to the ${what} port`);
          }
        };
        if (ports.includes(grpcPort)) onlyFrom(GRPC_CALLERS, 'gRPC');
        if (ports.includes(adminPort)) onlyFrom([PROMETHEUS], 'admin');
      });
    }
  }
  return problems;
}

/** The named port an HTTP door component (http-door, forward-auth) adds to scopegate and its Services. */
export interface DoorPort {
  readonly name: string;
  readonly port: number;
}

/**
 * What a door component changes beyond its own port, the overlay with it (`withDoor`) against the overlay alone
 * (`plain`): both Services (`scopegate`, `scopegate-pods`) expose the port as HTTP and keep every other port as
 * they were, and the scopegate container is the same but for its environment and ports.
 */
export function doorPortProblems(
  plain: readonly K8sObject[],
  withDoor: readonly K8sObject[],
  door: DoorPort,
): string[] {
  const problems: string[] = [];
  const expected = {
    name: door.name,
    port: door.port,
    targetPort: door.name,
    protocol: 'TCP',
    appProtocol: 'http',
  };
  const servicePorts = (objects: readonly K8sObject[], name: string) =>
    ((objects.find((o) => o.kind === 'Service' && o.metadata.name === name)?.spec as { ports?: unknown[] })
      ?.ports ?? []) as Array<{ name?: string }>;
  for (const name of ['scopegate', 'scopegate-pods']) {
    const ports = servicePorts(withDoor, name);
    const own = ports.filter((p) => p.name === door.name);
    if (own.length !== 1 || !isDeepStrictEqual(own[0], expected))
      problems.push(
        `Service/${name}: port ${door.name} is ${JSON.stringify(own)}, not ${JSON.stringify(expected)}`,
      );
    const others = ports.filter((p) => p.name !== door.name);
    if (!isDeepStrictEqual(others, servicePorts(plain, name)))
      problems.push(`Service/${name}: its other ports changed`);
  }
  const scopegate = (objects: readonly K8sObject[]) => {
    const {
      env: _env,
      ports: _ports,
      ...rest
    } = podTemplates(objects)
      .flatMap(({ template }) => allContainers(template.spec!))
      .find((c) => c.name === 'scopegate') ?? {};
    return rest;
  };
  if (!isDeepStrictEqual(scopegate(withDoor), scopegate(plain)))
    problems.push('the scopegate container changed beyond its env and ports');
  return problems;
}

/** A deep copy to break on purpose. */
export function copy<T>(value: T): T {
  return structuredClone(value);
}

/** One file of a policy directory, as kubelet lays out a ConfigMap volume: where it lands and what it holds. */
export interface PolicyFile {
  readonly path: string;
  readonly configMap: string;
  readonly key: string;
  readonly text: string;
}

interface ConfigMapSource {
  name?: string;
  items?: { key: string; path: string }[];
}

/**
 * The policy files a volume puts in its directory: a ConfigMap volume, or ConfigMaps projected into one
 * directory (one per owning team). Problems: a source that is not a ConfigMap, a ConfigMap the overlay does
 * not render, a key it does not have, two files landing on one path, a file that is not YAML.
 */
export function policyFiles(
  objects: readonly K8sObject[],
  volume: IVolume,
): { files: PolicyFile[]; problems: string[] } {
  const problems: string[] = [];
  const sources: (ConfigMapSource | undefined)[] = volume.configMap
    ? [volume.configMap]
    : (volume.projected?.sources ?? []).map((s) => s.configMap);
  if (sources.length === 0)
    problems.push(`volume ${volume.name} is not a ConfigMap, nor ConfigMaps projected`);
  const files: PolicyFile[] = [];
  sources.forEach((source, i) => {
    if (source?.name === undefined) {
      problems.push(`volume ${volume.name} source ${i} is not a ConfigMap`);
      return;
    }
    const configMap = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === source.name);
    if (!configMap) {
      problems.push(`ConfigMap ${source.name} is not rendered by the overlay`);
      return;
    }
    const data = (configMap.data ?? {}) as Record<string, string>;
    const items = source.items ?? Object.keys(data).map((key) => ({ key, path: key }));
    for (const { key, path } of items) {
      if (data[key] === undefined) problems.push(`ConfigMap ${source.name} has no key ${key}`);
      else files.push({ path, configMap: source.name, key, text: data[key] });
    }
  });
  const paths = files.map((f) => f.path);
  for (const path of new Set(paths)) {
    if (paths.indexOf(path) !== paths.lastIndexOf(path))
      problems.push(`two ConfigMaps put ${path} in the directory`);
    if (!/\.ya?ml$/.test(path)) problems.push(`${path} is not a *.yaml file: scopegate would not read it`);
  }
  return { files, problems };
}

/** What a policy of a set claims (its `name` and `match`), as read from its file. */
export interface PolicyClaims {
  readonly hosts: readonly string[];
  readonly destinationPrincipals: readonly string[];
}

/** The policies the one workload of an overlay serves from its policy volume, by name. */
export function servedPolicies(objects: readonly K8sObject[]): Map<string, PolicyClaims> {
  const [workload] = podTemplates(objects);
  const volume = workload?.template.spec?.volumes?.find((v) => v.projected ?? v.configMap);
  const policies = new Map<string, PolicyClaims>();
  if (!volume) return policies;
  for (const file of policyFiles(objects, volume).files) {
    const { name, match } = parse(file.text) as { name?: string; match?: Partial<PolicyClaims> };
    policies.set(name ?? file.path.replace(/\.ya?ml$/, ''), {
      hosts: match?.hosts ?? [],
      destinationPrincipals: match?.destinationPrincipals ?? [],
    });
  }
  return policies;
}
