// The container image (Dockerfile), `scopegate serve`'s own defaults and the manifests must tell the same
// story: the entrypoint the manifests rely on, the ports they open and probe, the policy path, the drain time
// the grace period has to outlast, the user runAsNonRoot checks. This test reads all three, and parses each
// container's args and SCOPEGATE_* env with the very settings parser `scopegate serve` uses.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IContainer, IPodSpec } from 'kubernetes-models/v1';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { envTwin, SERVE_FLAGS, type ServeSettings, serveSettings } from '../../src/config/settings.js';
import { allContainers, copy, podTemplates } from './checks.js';
import {
  KUBERNETES_OVERLAYS,
  kustomizeSuiteName,
  render,
  repoRoot,
  skipWithoutKustomize,
} from './kustomize.js';

const read = (path: string) => readFileSync(join(repoRoot, path), 'utf8');

/** The final stage of the Dockerfile: what the image runs. */
function finalStage(dockerfile: string) {
  const stage = dockerfile.split(/^FROM /m).at(-1)!;
  const instruction = (name: string) =>
    [...stage.matchAll(new RegExp(`^${name}\\s+(.+)$`, 'gm'))].map((m) => m[1]!.trim()).at(-1);
  return {
    from: stage.split('\n')[0]!.split(/\s+/)[0]!,
    user: instruction('USER'),
    entrypoint: JSON.parse(instruction('ENTRYPOINT') ?? 'null') as string[] | null,
    cmd: JSON.parse(instruction('CMD') ?? 'null') as string[] | null,
    expose: (instruction('EXPOSE') ?? '').split(/\s+/).filter(Boolean).map(Number),
  };
}

const image = finalStage(read('Dockerfile'));
const version = (JSON.parse(read('package.json')) as { version: string }).version;
const pinnedEnvoy = /ENVOY_VERSION="([\d.]+)"/.exec(read('scripts/install-envoy.sh'))?.[1];
/** The official node images create their `node` user with this uid. */
const NODE_IMAGE_NODE_UID = 1000;
const SCOPEGATE_IMAGE = 'ghcr.io/example/scopegate';

/** `scopegate serve` as the image runs it with no args (its CMD): the defaults the manifests must agree with. */
const imageDefaults: ServeSettings = serveSettings(image.cmd!.slice(1), {});

function sleepSeconds(c: IContainer): number {
  const command = c.lifecycle?.preStop?.exec?.command ?? [];
  return command[0] === 'sleep' ? Number(command[1]) : 0;
}

/**
 * What each overlay serves: the sidecar shape the image's one policy file, the central shape a directory of
 * policies (one ConfigMap per owning team, projected into it).
 */
const POLICY_OF: Record<string, string> = {
  'deploy/kubernetes/overlays/central': '/etc/scopegate/policies',
  'deploy/kubernetes/overlays/sidecar': imageDefaults.policy,
};

/** Where the scopegate container of a pod disagrees with the image and with `scopegate serve`. */
function agreementProblems(spec: IPodSpec, policy: string): string[] {
  const problems: string[] = [];
  const c = allContainers(spec).find((x) => x.args?.[0] === 'serve');
  if (!c) return ['no container runs `scopegate serve`'];
  if (c.command) problems.push('overrides the image ENTRYPOINT');
  const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
  const twins = Object.keys(SERVE_FLAGS).map(envTwin);
  for (const name of Object.keys(env))
    if (name.startsWith('SCOPEGATE_') && !twins.includes(name)) problems.push(`${name} is no serve setting`);
  let settings: ServeSettings;
  try {
    settings = serveSettings(c.args!.slice(1), env);
  } catch (error) {
    return [...problems, `scopegate serve would refuse its args: ${(error as Error).message}`];
  }
  if (env.SCOPEGATE_WORKERS === undefined && !c.args!.some((a) => a.startsWith('--workers')))
    problems.push("SCOPEGATE_WORKERS is unset: the default is the node's CPU count, not the pod's");
  const portNamed = (name: string) => c.ports?.find((p) => p.name === name)?.containerPort;
  if (settings.policy !== policy) problems.push(`--policy ${settings.policy} is not ${policy}`);
  if (settings.listen.host !== '0.0.0.0')
    problems.push('gRPC does not listen on every interface (kubelet probes the pod IP)');
  if (portNamed('grpc') !== settings.listen.port)
    problems.push('containerPort grpc is not the gRPC listen port');
  if (portNamed('admin') !== settings.admin.port)
    problems.push('containerPort admin is not the admin listen port');
  if (c.livenessProbe?.grpc?.port !== settings.listen.port)
    problems.push('liveness does not probe the gRPC port');
  const ready = c.readinessProbe?.httpGet?.port;
  if ((typeof ready === 'string' ? portNamed(ready) : ready) !== settings.admin.port)
    problems.push('readiness does not probe the admin port');
  const needed = sleepSeconds(c) + settings.drainSeconds;
  if ((spec.terminationGracePeriodSeconds ?? 30) <= needed)
    problems.push(`terminationGracePeriodSeconds is not longer than preStop + drain (${needed} s)`);
  if ((c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser) !== NODE_IMAGE_NODE_UID)
    problems.push(`does not run as the image's node user (uid ${NODE_IMAGE_NODE_UID})`);
  return problems;
}

describe('the Dockerfile and `scopegate serve` defaults', () => {
  it('the image runs scopegate as the node user, serving the policy at /etc/scopegate/policy.yaml', () => {
    expect(image.from).toMatch(/^node:/);
    expect(image.user).toBe('node');
    expect(image.entrypoint).toEqual(['node', 'bin/scopegate.js']);
    expect(image.cmd?.[0]).toBe('serve');
    expect(imageDefaults.policy).toBe('/etc/scopegate/policy.yaml');
  });

  it("the image keeps V8's young generation at Node.js 20's size (the manifests' memory limit assumes it)", () => {
    expect(read('Dockerfile')).toMatch(/^ENV NODE_OPTIONS=--max-semi-space-size=16$/m);
  });

  it('the image exposes exactly the ports serve binds by default, and the HTTP doors’ ports the shipped configs use', () => {
    expect(imageDefaults.listen).toEqual({ host: '0.0.0.0', port: 9191 });
    expect(imageDefaults.admin).toEqual({ host: '0.0.0.0', port: 9464 });
    // The HTTP doors are off by default; docker-compose.yml serves them (as the Kubernetes components do).
    const { SCOPEGATE_HTTP, SCOPEGATE_FORWARD_AUTH } = (
      parse(read('docker-compose.yml')) as {
        services: { scopegate: { environment: Record<string, string> } };
      }
    ).services.scopegate.environment;
    const doors = serveSettings(['--policy', 'p.yaml'], { SCOPEGATE_HTTP, SCOPEGATE_FORWARD_AUTH });
    expect([doors.http?.port, doors.forwardAuth?.port]).toEqual([9192, 9193]);
    expect(image.expose.toSorted()).toEqual(
      [
        imageDefaults.listen.port,
        imageDefaults.admin.port,
        doors.http!.port,
        doors.forwardAuth!.port,
      ].toSorted(),
    );
  });
});

describe.skipIf(skipWithoutKustomize)(
  kustomizeSuiteName('the manifests agree with the image and serve'),
  () => {
    const specs = new Map<string, IPodSpec>();
    beforeAll(() => {
      for (const dir of KUBERNETES_OVERLAYS) specs.set(dir, podTemplates(render(dir))[0]!.template.spec!);
    });

    it.each(KUBERNETES_OVERLAYS)(
      '%s: entrypoint, ports, probes, policy path, grace period and user',
      (dir) => {
        expect(agreementProblems(specs.get(dir)!, POLICY_OF[dir]!)).toEqual([]);
      },
    );

    it.each(KUBERNETES_OVERLAYS)(
      '%s: images are this version of scopegate and the Envoy the tests run',
      (dir) => {
        for (const c of allContainers(specs.get(dir)!)) {
          if (c.name === 'envoy') expect(c.image).toBe(`envoyproxy/envoy:v${pinnedEnvoy}`);
          else expect(c.image).toBe(`${SCOPEGATE_IMAGE}:${version}`);
        }
      },
    );

    describe('each check can fail', () => {
      const central = () => copy(specs.get('deploy/kubernetes/overlays/central')!);
      const centralPolicy = POLICY_OF['deploy/kubernetes/overlays/central']!;
      const scopegate = (spec: IPodSpec) => spec.containers.find((c) => c.name === 'scopegate')!;

      it('a drain longer than the grace period allows, a misspelt env twin, workers left to the node', () => {
        const spec = central();
        scopegate(spec).env = [
          { name: 'SCOPEGATE_DRAIN_SECONDS', value: '40' },
          { name: 'SCOPEGATE_LOGLEVEL', value: 'debug' },
        ];
        expect(agreementProblems(spec, centralPolicy)).toEqual([
          'SCOPEGATE_LOGLEVEL is no serve setting',
          "SCOPEGATE_WORKERS is unset: the default is the node's CPU count, not the pod's",
          'terminationGracePeriodSeconds is not longer than preStop + drain (45 s)',
        ]);
      });

      it('scopegate moved to another port while the probes and container ports stayed', () => {
        const spec = central();
        scopegate(spec).args = ['serve', '--policy=/etc/scopegate/policies', '--listen=0.0.0.0:9292'];
        expect(agreementProblems(spec, centralPolicy)).toEqual([
          'containerPort grpc is not the gRPC listen port',
          'liveness does not probe the gRPC port',
        ]);
      });

      it('a loopback listen address, a policy elsewhere and a replaced entrypoint', () => {
        const spec = central();
        scopegate(spec).command = ['node', 'dist/src/cli.js'];
        scopegate(spec).args = ['serve', '--policy=/config/policy.yaml', '--listen=127.0.0.1:9191'];
        expect(agreementProblems(spec, centralPolicy)).toEqual([
          'overrides the image ENTRYPOINT',
          '--policy /config/policy.yaml is not /etc/scopegate/policies',
          'gRPC does not listen on every interface (kubelet probes the pod IP)',
        ]);
      });

      it('args serve would refuse', () => {
        const spec = central();
        scopegate(spec).args = ['serve', '--policy=/etc/scopegate/policies', '--drain-seconds=soon'];
        expect(agreementProblems(spec, centralPolicy)).toEqual([
          'scopegate serve would refuse its args: --drain-seconds: expected an integer 0..3600, got "soon"',
        ]);
      });
    });
  },
);
