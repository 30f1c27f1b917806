// Certificate files shared by several listeners: each listener hears rotations while it is open and stops
// hearing them once it closes (or fails to listen), so closed servers are neither updated nor kept alive.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Snapshot } from '../../../src/check/decide.js';
import { tlsSettings } from '../../../src/config/tls.js';
import { PolicySet } from '../../../src/policy/set.js';
import { listenHttp } from '../../../src/server/admin.js';
import { H2GrpcServer } from '../../../src/server/h2-grpc.js';
import { createHttpFront } from '../../../src/server/http-front.js';
import { CertificateFiles } from '../../../src/server/tls.js';
import { createLogger } from '../../../src/telemetry/log.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import {
  type CertifiedKey,
  makePki,
  opensslSuiteName,
  type Pki,
  skipWithoutOpenssl,
} from '../../support/certs.js';

describe.skipIf(skipWithoutOpenssl)(opensslSuiteName('certificate files shared by listeners'), () => {
  let pki: Pki;
  let first: CertifiedKey;
  let second: CertifiedKey;
  beforeAll(async () => {
    pki = await makePki();
    const ca = await pki.authority('listeners-ca');
    first = await ca.server('first');
    second = await ca.server('second');
  }, 30_000);
  afterAll(() => pki?.remove());

  /** Certificate files holding `first`, checked as at start-up; `rotate` writes `second` and refreshes. */
  const sharedFiles = (name: string) => {
    const cert = join(pki.dir, `${name}.crt`);
    const key = join(pki.dir, `${name}.key`);
    writeFileSync(cert, first.cert);
    writeFileSync(key, first.key);
    const settings = tlsSettings((flag) => ({ 'tls-cert': cert, 'tls-key': key })[flag as string]);
    if (typeof settings !== 'object') throw new Error(`not usable: ${settings}`);
    const files = new CertificateFiles(settings, () => {}, 3_600_000);
    const rotate = async () => {
      writeFileSync(cert, second.cert);
      writeFileSync(key, second.key);
      await files.refresh();
      expect(files.current.cert.toString()).toBe(second.cert);
    };
    return { files, rotate };
  };

  it('onChange returns what stops the listener', async () => {
    const { files, rotate } = sharedFiles('unsubscribe');
    try {
      const heard = vi.fn();
      const stop = files.onChange(heard);
      expect(files.listenerCount).toBe(1);
      stop();
      expect(files.listenerCount).toBe(0);
      await rotate();
      expect(heard).not.toHaveBeenCalled();
    } finally {
      files.close();
    }
  });

  it('an HTTPS front door that closes stops hearing rotations; one still open keeps hearing them', async () => {
    const { files, rotate } = sharedFiles('fronts');
    const deps = {
      current: () => new PolicySet<Snapshot>([], false),
      metrics: new Metrics(),
      log: createLogger('silent'),
    };
    const [closing, staying] = (['http', 'forward_auth'] as const).map((transport) =>
      createHttpFront(deps, { transport, tls: files }),
    );
    try {
      for (const front of [closing!, staying!]) await listenHttp(front.server, '127.0.0.1', 0);
      expect(files.listenerCount).toBe(2);
      await closing!.close(0);
      expect(files.listenerCount).toBe(1);

      const closedUpdated = vi.spyOn(
        closing!.server as unknown as { setSecureContext: () => void },
        'setSecureContext',
      );
      const openUpdated = vi.spyOn(
        staying!.server as unknown as { setSecureContext: () => void },
        'setSecureContext',
      );
      await rotate();
      expect(closedUpdated).not.toHaveBeenCalled();
      expect(openUpdated).toHaveBeenCalledOnce();
    } finally {
      files.close();
      await staying!.close(0);
    }
    expect(files.listenerCount).toBe(0);
  });

  it('a gRPC listener stops hearing rotations once closed, or destroyed, or when it could not listen', async () => {
    const { files } = sharedFiles('grpc');
    const server = () => new H2GrpcServer({ methods: new Map() });
    try {
      const drained = server();
      await drained.listen('127.0.0.1', 0, files);
      const cut = server();
      const port = await cut.listen('127.0.0.1', 0, files);
      expect(files.listenerCount).toBe(2);
      await drained.close();
      expect(files.listenerCount).toBe(1);

      // The port is taken: the listener added for a server that never listened goes with the failure.
      await expect(server().listen('127.0.0.1', port, files)).rejects.toMatchObject({ code: 'EADDRINUSE' });
      expect(files.listenerCount).toBe(1);

      cut.destroy();
      await new Promise((resolve) => setImmediate(resolve));
      expect(files.listenerCount).toBe(0);
    } finally {
      files.close();
    }
  });
});
