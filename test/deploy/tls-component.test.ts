// The TLS component (deploy/kubernetes/components/tls) on the central overlay, as a user adds it: scopegate
// gets its TLS settings from the mounted Secret, through the same SCOPEGATE_* twins `serve` reads, the files
// where the Secret puts them, and a liveness probe kubelet can still make (its gRPC probe cannot speak TLS).
// Everything else of the overlay is left as it was.
import { beforeAll, describe, expect, it } from 'vitest';
import { envTwin } from '../../src/config/settings.js';
import { type K8sObject, kustomizeSuiteName, render, skipWithoutKustomize } from './kustomize.js';

// biome-ignore lint/suspicious/noExplicitAny: rendered objects, read field by field.
type Any = any;

const deploymentOf = (objects: readonly K8sObject[]): Any =>
  objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'scopegate');

describe.skipIf(skipWithoutKustomize)(kustomizeSuiteName('the TLS component'), () => {
  let plain: Any;
  let tls: Any;
  beforeAll(() => {
    plain = deploymentOf(render('deploy/kubernetes/overlays/central'));
    tls = deploymentOf(render('test/deploy/fixtures/central-with-tls'));
  });

  it('points scopegate at the Secret through the serve flags’ environment twins', () => {
    const container = tls.spec.template.spec.containers.find((c: Any) => c.name === 'scopegate');
    const env = Object.fromEntries(container.env.map((e: Any) => [e.name, e.value]));
    const mount = container.volumeMounts.find((m: Any) => m.name === 'tls');
    expect(mount).toEqual({ name: 'tls', mountPath: '/etc/scopegate/tls', readOnly: true });
    expect(env[envTwin('tls-cert')]).toBe('/etc/scopegate/tls/tls.crt');
    expect(env[envTwin('tls-key')]).toBe('/etc/scopegate/tls/tls.key');
    expect(env[envTwin('tls-client-ca')]).toBe('/etc/scopegate/tls/ca.crt');
    const volume = tls.spec.template.spec.volumes.find((v: Any) => v.name === 'tls');
    expect(volume.secret.secretName).toBe('scopegate-tls');
  });

  it('moves liveness off the TLS port to the admin port, and keeps everything else', () => {
    const container = (d: Any) => d.spec.template.spec.containers.find((c: Any) => c.name === 'scopegate');
    expect(container(plain).livenessProbe.grpc).toEqual({ port: 9191 });
    expect(container(tls).livenessProbe).toEqual({
      httpGet: { path: '/healthz', port: 'admin' },
      periodSeconds: 10,
      timeoutSeconds: 2,
      failureThreshold: 3,
    });
    expect(container(tls).readinessProbe).toEqual(container(plain).readinessProbe);
    const { env: _e, livenessProbe: _l, volumeMounts: _m, ...rest } = container(tls);
    const { env: _pe, livenessProbe: _pl, volumeMounts: _pm, ...plainRest } = container(plain);
    expect(rest).toEqual(plainRest);
    const others = (d: Any) => d.spec.template.spec.volumes.filter((v: Any) => v.name !== 'tls');
    expect(others(tls)).toEqual(plain.spec.template.spec.volumes);
  });
});
