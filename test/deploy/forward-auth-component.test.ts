// scopegate's forward-auth door in Kubernetes: the forward-auth component
// (deploy/kubernetes/components/forward-auth) on the central overlay, as a user adds it, serves `--forward-auth`
// through its environment twin on port 9193, a named port both Services expose and only proxies (Traefik's pods,
// pods labelled scopegate/client) may reach; beside the http-door component each door keeps a port of its own.
// Traefik's Middleware (proxies/traefik/middleware.yaml) asks that Service port, not the `--http` door's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { envTwin } from '../../src/config/settings.js';
import { copy, doorPortProblems } from './checks.js';
import { type K8sObject, kustomizeSuiteName, render, repoRoot, skipWithoutKustomize } from './kustomize.js';

// biome-ignore lint/suspicious/noExplicitAny: rendered objects, read field by field.
type Any = any;

const named = (objects: readonly K8sObject[], kind: string, name: string): Any =>
  objects.find((o) => o.kind === kind && o.metadata.name === name);
const containerOf = (objects: readonly K8sObject[]): Any =>
  named(objects, 'Deployment', 'scopegate').spec.template.spec.containers.find(
    (c: Any) => c.name === 'scopegate',
  );
const envOf = (objects: readonly K8sObject[]): Record<string, string> =>
  Object.fromEntries(containerOf(objects).env.map((e: Any) => [e.name, e.value]));

/** The rule the component adds: proxies only, to the forward-auth port only. */
const PROXIES_RULE = {
  ports: [{ port: 'forward-auth', protocol: 'TCP' }],
  from: [
    { namespaceSelector: {}, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'traefik' } } },
    { namespaceSelector: {}, podSelector: { matchLabels: { 'scopegate/client': 'true' } } },
  ],
};

describe.skipIf(skipWithoutKustomize)(kustomizeSuiteName('the forward-auth component'), () => {
  let plain: K8sObject[];
  let forwardAuth: K8sObject[];
  let both: K8sObject[];
  beforeAll(() => {
    plain = render('deploy/kubernetes/overlays/central');
    forwardAuth = render('test/deploy/fixtures/central-with-forward-auth');
    both = render('test/deploy/fixtures/central-with-both-doors');
  });

  it('serves --forward-auth on 9193 through its environment twin, on a named container port', () => {
    expect(envOf(forwardAuth)[envTwin('forward-auth')]).toBe('0.0.0.0:9193');
    expect(containerOf(forwardAuth).ports).toContainEqual({
      name: 'forward-auth',
      containerPort: 9193,
      protocol: 'TCP',
    });
    expect(Object.keys(envOf(plain))).not.toContain(envTwin('forward-auth'));
  });

  it('both Services expose it as HTTP, and everything else stays as the overlay has it', () => {
    expect(doorPortProblems(plain, forwardAuth, { name: 'forward-auth', port: 9193 })).toEqual([]);
  });

  it('the check can fail: another port number, a second door’s port beside it, a container changed', () => {
    expect(doorPortProblems(plain, forwardAuth, { name: 'forward-auth', port: 9192 })).toEqual([
      expect.stringMatching(/^Service\/scopegate: port forward-auth is .*"port":9193.* not .*"port":9192/),
      expect.stringMatching(/^Service\/scopegate-pods: port forward-auth is /),
    ]);
    expect(doorPortProblems(plain, both, { name: 'forward-auth', port: 9193 })).toEqual([
      'Service/scopegate: its other ports changed',
      'Service/scopegate-pods: its other ports changed',
    ]);
    const probed = copy(forwardAuth);
    containerOf(probed).readinessProbe.periodSeconds += 1;
    expect(doorPortProblems(plain, probed, { name: 'forward-auth', port: 9193 })).toEqual([
      'the scopegate container changed beyond its env and ports',
    ]);
  });

  it('lets only proxies reach it, in a rule of its own: Envoy’s callers get no forward-auth port', () => {
    const rules = named(forwardAuth, 'NetworkPolicy', 'scopegate').spec.ingress;
    const plainRules = named(plain, 'NetworkPolicy', 'scopegate').spec.ingress;
    expect(rules).toEqual([...plainRules, PROXIES_RULE]);
  });

  it('beside the http-door component, one scopegate serves each door on its own port', () => {
    const env = envOf(both);
    expect([env[envTwin('http')], env[envTwin('forward-auth')]]).toEqual(['0.0.0.0:9192', '0.0.0.0:9193']);
    const containerPorts = containerOf(both).ports.map((p: Any) => `${p.name}:${p.containerPort}`);
    expect(containerPorts).toEqual(
      expect.arrayContaining(['grpc:9191', 'http-authz:9192', 'forward-auth:9193']),
    );
    expect(new Set(containerPorts.map((p: string) => p.split(':')[1])).size).toBe(containerPorts.length);
    for (const name of ['scopegate', 'scopegate-pods']) {
      const ports = named(both, 'Service', name).spec.ports.map((p: Any) => `${p.name}:${p.port}`);
      expect(ports).toEqual(expect.arrayContaining(['http-authz:9192', 'forward-auth:9193']));
      expect(new Set(ports.map((p: string) => p.split(':')[1])).size).toBe(ports.length);
    }
    const rules = named(both, 'NetworkPolicy', 'scopegate').spec.ingress;
    expect(rules[0].ports).toContainEqual({ port: 'http-authz', protocol: 'TCP' });
    expect(rules.at(-1)).toEqual(PROXIES_RULE);
  });
});

/** The HTTP doors' components and the Service ports they add to the central overlay's `scopegate` Service. */
const DOORS = [
  { component: 'forward-auth', file: 'service-forward-auth.yaml', port: 'forward-auth' },
  { component: 'http-door', file: 'service-http.yaml', port: 'http-authz' },
] as const;

/** The door whose Service port a `forwardAuth.address` asks, as "component (port name)", or what is wrong. */
function doorAsked(address: string): string {
  const url = new URL(address);
  const namespace = parse(
    readFileSync(join(repoRoot, 'deploy/kubernetes/overlays/central/kustomization.yaml'), 'utf8'),
  ).namespace;
  if (url.hostname !== `scopegate.${namespace}.svc.cluster.local`)
    return `${url.hostname} is not the central overlay's scopegate Service`;
  for (const door of DOORS) {
    const service = parseAllDocuments(
      readFileSync(join(repoRoot, 'deploy/kubernetes/components', door.component, door.file), 'utf8'),
    )
      .map((d) => d.toJS())
      .find((s) => s.metadata.name === 'scopegate');
    const port = service.spec.ports.find((p: Any) => p.name === door.port).port;
    if (String(port) === url.port) return `${door.component} (${door.port})`;
  }
  return `port ${url.port} is no door's`;
}

describe("Traefik's forwardAuth Middleware (proxies/traefik/middleware.yaml) in the cluster", () => {
  const middleware = parse(readFileSync(join(repoRoot, 'proxies/traefik/middleware.yaml'), 'utf8'));

  it('asks the forward-auth component’s port on the central scopegate Service', () => {
    expect(doorAsked(middleware.spec.forwardAuth.address)).toBe('forward-auth (forward-auth)');
  });

  it('the check can fail: the --http door’s port, another port, another Service', () => {
    expect(doorAsked('http://scopegate.scopegate.svc.cluster.local:9192/auth')).toBe(
      'http-door (http-authz)',
    );
    expect(doorAsked('http://scopegate.scopegate.svc.cluster.local:9191/auth')).toBe(
      "port 9191 is no door's",
    );
    expect(doorAsked('http://scopegate.other.svc.cluster.local:9193/auth')).toBe(
      "scopegate.other.svc.cluster.local is not the central overlay's scopegate Service",
    );
  });
});
