// TLS on the Check listeners (`--tls-cert`, `--tls-key`, `--tls-client-ca`) with certificates this test makes
// with openssl: a client that trusts the CA is answered, a plaintext client is not; with a client CA, only
// clients holding a certificate it signed; on the gRPC, --http and --forward-auth listeners alike. Rotated files
// are served without a restart (gRPC and HTTPS), and a bad update keeps the last good certificate. Unusable
// files are usage errors that name the flag and the file.
import { writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Snapshot } from '../../src/check/decide.js';
import { formatHostPort, SettingsError, serveSettings } from '../../src/config/settings.js';
import { type TlsSettings, tlsSettings } from '../../src/config/tls.js';
import { PolicySet } from '../../src/policy/set.js';
import { listenHttp } from '../../src/server/admin.js';
import { bindGrpc, createGrpcServer, HealthStatus } from '../../src/server/grpc.js';
import { createHttpFront } from '../../src/server/http-front.js';
import { CertificateFiles } from '../../src/server/tls.js';
import { createLogger } from '../../src/telemetry/log.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { checkRequestFor } from '../../src/wire/check-request.js';
import { loadClients } from '../../src/wire/proto.js';
import {
  type CertificateAuthority,
  type CertifiedKey,
  makePki,
  opensslSuiteName,
  type Pki,
  skipWithoutOpenssl,
} from '../support/certs.js';
import { connectAuthorization } from '../support/grpc-client.js';
import { type Harness, startHarness } from '../support/scopegate.js';

const request = checkRequestFor({ method: 'GET', path: '/api/inventory/items', headers: [] });

describe.skipIf(skipWithoutOpenssl)(opensslSuiteName('TLS on the Check listener'), () => {
  let pki: Pki;
  let ca: CertificateAuthority;
  let server: CertifiedKey;
  let envoy: CertifiedKey;
  let stranger: CertifiedKey;
  beforeAll(async () => {
    pki = await makePki();
    ca = await pki.authority('scopegate-ca');
    server = await ca.server('scopegate');
    envoy = await ca.client('envoy', []);
    stranger = await (await pki.authority('stranger-ca')).client('stranger', []);
  }, 30_000);
  afterAll(() => pki?.remove());

  const trusting = (client?: CertifiedKey) =>
    grpc.credentials.createSsl(
      Buffer.from(ca.cert),
      client ? Buffer.from(client.key) : null,
      client ? Buffer.from(client.cert) : null,
    );
  /** The reason of the answer, or the gRPC status code of the failure. */
  const attempt = async (address: string, credentials?: grpc.ChannelCredentials) => {
    const connection = connectAuthorization(address, {
      ownConnection: true,
      ...(credentials && { credentials }),
    });
    try {
      const answer = await connection.check(request);
      return answer.dynamic_metadata?.fields?.reason?.string_value;
    } catch (err) {
      return `grpc ${(err as grpc.ServiceError).code}`;
    } finally {
      connection.close();
    }
  };
  const UNAVAILABLE = `grpc ${grpc.status.UNAVAILABLE}`;

  describe('with a certificate', () => {
    let harness: Harness;
    beforeAll(async () => {
      harness = await startHarness(undefined, {
        flags: [
          '--tls-cert',
          server.certFile,
          '--tls-key',
          server.keyFile,
          '--http',
          '127.0.0.1:0',
          '--forward-auth',
          '127.0.0.1:0',
        ],
      });
    });
    afterAll(() => harness?.close());

    it('answers a client that trusts its CA, and no plaintext client', async () => {
      const address = harness.running.grpcAddress;
      expect(await attempt(address, trusting())).toBe('token_missing');
      expect(await attempt(address)).toBe(UNAVAILABLE);
    });

    it('serves the HTTP front door over TLS too, and nothing in plaintext there', async () => {
      const address = harness.running.httpAddress!;
      expect(await httpsStatus(address, { ca: ca.cert })).toBe(401);
      expect(await httpsStatus(address, { ca: ca.cert }, 'http')).toBe('refused');
    });

    it('serves the forward-auth door over TLS too, and nothing in plaintext there', async () => {
      const address = harness.running.forwardAuthAddress!;
      expect(await httpsStatus(address, { ca: ca.cert, headers: FORWARDED })).toBe(401);
      expect(await httpsStatus(address, { ca: ca.cert, headers: FORWARDED }, 'http')).toBe('refused');
    });
  });

  describe('with a client CA', () => {
    let harness: Harness;
    beforeAll(async () => {
      harness = await startHarness(undefined, {
        flags: [
          '--tls-cert',
          server.certFile,
          '--tls-key',
          server.keyFile,
          '--tls-client-ca',
          ca.certFile,
          '--http',
          '127.0.0.1:0',
          '--forward-auth',
          '127.0.0.1:0',
        ],
      });
    });
    afterAll(() => harness?.close());

    it('answers only clients holding a certificate the client CA signed', async () => {
      const address = harness.running.grpcAddress;
      expect(await attempt(address, trusting(envoy))).toBe('token_missing');
      expect(await attempt(address, trusting())).toBe(UNAVAILABLE);
      expect(await attempt(address, trusting(stranger))).toBe(UNAVAILABLE);
    });

    it('asks the HTTP front doors’ clients for a certificate the client CA signed as well', async () => {
      for (const address of [harness.running.httpAddress!, harness.running.forwardAuthAddress!]) {
        const tls = { ca: ca.cert, headers: FORWARDED };
        expect(await httpsStatus(address, { ...tls, cert: envoy.cert, key: envoy.key }), address).toBe(401);
        expect(await httpsStatus(address, tls), address).toBe('refused');
        expect(await httpsStatus(address, { ...tls, cert: stranger.cert, key: stranger.key }), address).toBe(
          'refused',
        );
      }
    });
  });

  it('serves rotated files without a restart, and keeps the last good ones when an update is unusable', async () => {
    const cert = join(pki.dir, 'rotating.crt');
    const key = join(pki.dir, 'rotating.key');
    writeFileSync(cert, server.cert);
    writeFileSync(key, server.key);
    const problems: string[] = [];
    const files = new CertificateFiles(checked(cert, key), (problem) => problems.push(problem), 3_600_000);
    const grpcServer = createGrpcServer(
      { current: () => undefined as never, metrics: undefined as never, log: createLogger('silent') },
      new HealthStatus(),
    );
    try {
      const port = await bindGrpc(grpcServer, '127.0.0.1:0', files);
      const address = `127.0.0.1:${port}`;
      const health = () => healthOver(address, grpc.credentials.createSsl(Buffer.from(ca.cert)));
      expect(await health()).toBe('ok');

      // A new certificate from another CA: after a refresh, only clients trusting that CA get through.
      const other = await pki.authority('next-ca');
      const next = await other.server('scopegate-next');
      writeFileSync(cert, next.cert);
      writeFileSync(key, next.key);
      await files.refresh();
      expect(files.current.cert.toString()).toBe(next.cert);
      expect(await healthOver(address, grpc.credentials.createSsl(Buffer.from(other.cert)))).toBe('ok');
      expect(await health()).toBe('refused');

      // Half an update (a key that is not the certificate's): reported once, the last good pair stays.
      writeFileSync(key, server.key);
      await files.refresh();
      await files.refresh();
      expect(problems).toHaveLength(1);
      expect(problems[0]).toMatch(/not taken, the last good ones stay in use/);
      expect(problems[0]).not.toContain('PRIVATE KEY');
      expect(files.current.key.toString()).toBe(next.key);
      expect(await healthOver(address, grpc.credentials.createSsl(Buffer.from(other.cert)))).toBe('ok');
    } finally {
      files.close();
      grpcServer.destroy();
    }
  }, 30_000);

  it('the HTTPS front doors serve rotated files without a restart too', async () => {
    const cert = join(pki.dir, 'rotating-front.crt');
    const key = join(pki.dir, 'rotating-front.key');
    writeFileSync(cert, server.cert);
    writeFileSync(key, server.key);
    const files = new CertificateFiles(checked(cert, key), () => {}, 3_600_000);
    // No policy at all: every request is answered policy_unknown, which is all this test needs.
    const deps = {
      current: () => new PolicySet<Snapshot>([], false),
      metrics: new Metrics(),
      log: createLogger('silent'),
    };
    const fronts = (['http', 'forward_auth'] as const).map((transport) =>
      createHttpFront(deps, { transport, tls: files }),
    );
    try {
      const addresses = await Promise.all(
        fronts.map(async (front) => formatHostPort(await listenHttp(front.server, '127.0.0.1', 0))),
      );
      const status = (address: string, trusted: string) =>
        httpsStatus(address, { ca: trusted, headers: FORWARDED });
      for (const address of addresses) expect(await status(address, ca.cert), address).toBe(403);

      const other = await pki.authority('next-front-ca');
      const next = await other.server('scopegate-next');
      writeFileSync(cert, next.cert);
      writeFileSync(key, next.key);
      await files.refresh();
      for (const address of addresses) {
        expect(await status(address, other.cert), address).toBe(403);
        expect(await status(address, ca.cert), address).toBe('refused');
      }
    } finally {
      files.close();
      await Promise.all(fronts.map((front) => front.close(0)));
    }
  }, 30_000);

  it('refuses unusable files at start-up as usage errors naming the flag and the file', () => {
    const base = ['--policy', 'p.yaml'];
    const refused = (flags: string[]) => {
      try {
        serveSettings([...base, ...flags], {});
      } catch (err) {
        expect(err).toBeInstanceOf(SettingsError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(refused(['--tls-cert', server.certFile])).toBe('--tls-cert and --tls-key go together');
    expect(refused(['--tls-client-ca', ca.certFile])).toBe('--tls-client-ca needs --tls-cert and --tls-key');
    expect(refused(['--tls-cert', server.certFile, '--tls-key', '/nonexistent/key.pem'])).toBe(
      '--tls-key /nonexistent/key.pem: cannot read it (ENOENT)',
    );
    const mismatched = refused(['--tls-cert', server.certFile, '--tls-key', envoy.keyFile]);
    expect(mismatched).toBe(
      `--tls-cert ${server.certFile}, --tls-key ${envoy.keyFile}: not usable (key values mismatch)`,
    );
    expect(mismatched).not.toContain('PRIVATE KEY');
    expect(refused(['--tls-cert', ca.keyFile, '--tls-key', server.keyFile])).toMatch(/not usable/);
    // The environment twins work as the flags do.
    expect(checked(server.certFile, server.keyFile)).toMatchObject({
      cert: server.certFile,
      key: server.keyFile,
    });
    expect(
      serveSettings(base, { SCOPEGATE_TLS_CERT: server.certFile, SCOPEGATE_TLS_KEY: server.keyFile }).tls,
    ).toMatchObject({ cert: server.certFile, key: server.keyFile });
  });

  it('starts serving the contents it checked, not a second read of the files', () => {
    const cert = join(pki.dir, 'replaced.crt');
    const key = join(pki.dir, 'replaced.key');
    writeFileSync(cert, server.cert);
    writeFileSync(key, server.key);
    const settings = checked(cert, key);
    // Replaced after the check, before the listeners start: not taken until a refresh checks it.
    writeFileSync(key, 'not a key');
    const files = new CertificateFiles(settings, () => {}, 3_600_000);
    try {
      expect(files.current.cert.toString()).toBe(server.cert);
      expect(files.current.key.toString()).toBe(server.key);
    } finally {
      files.close();
    }
  });
});

/** The settings of `--tls-cert cert --tls-key key`, checked. */
function checked(cert: string, key: string): TlsSettings {
  const settings = tlsSettings((flag) => ({ 'tls-cert': cert, 'tls-key': key })[flag as string]);
  if (typeof settings !== 'object') throw new Error(`not usable: ${settings}`);
  return settings;
}

/** What a forward-auth proxy says of the original request (the --http door reads them as any header). */
const FORWARDED = { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/api/inventory/items' };

/** The status of a GET through an HTTP front door over TLS ('http': in plaintext), or 'refused'. */
function httpsStatus(
  address: string,
  { headers, ...tls }: { ca: string; cert?: string; key?: string; headers?: Record<string, string> },
  scheme: 'https' | 'http' = 'https',
): Promise<number | 'refused'> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.split(':').pop())];
  return new Promise((resolve) => {
    // A connection of its own (no agent): a kept-alive one would keep the certificate it shook hands with.
    const options = {
      host,
      port,
      path: '/api/inventory/items',
      method: 'GET',
      headers,
      agent: false,
      timeout: 2000,
    };
    const request =
      scheme === 'https'
        ? httpsRequest({ ...options, ...tls, servername: 'localhost' }, (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          })
        : httpRequest(options, (response) => {
            response.resume();
            resolve(response.statusCode ?? 0);
          });
    request.on('error', () => resolve('refused'));
    request.on('timeout', () => request.destroy());
    request.end();
  });
}

/** 'ok' when the health service answers over these credentials, 'refused' when the handshake fails. */
async function healthOver(address: string, credentials: grpc.ChannelCredentials): Promise<string> {
  const client = new (loadClients().HealthClient)(address, credentials, {
    'grpc.use_local_subchannel_pool': 1,
  });
  try {
    return await new Promise((resolve) =>
      client.Check({ service: '' }, new grpc.Metadata(), { deadline: new Date(Date.now() + 2000) }, (err) =>
        resolve(err ? 'refused' : 'ok'),
      ),
    );
  } finally {
    client.close();
  }
}
