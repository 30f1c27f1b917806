// The certificate files of `--tls-cert`, `--tls-key` and `--tls-client-ca`, kept current: re-read every minute,
// so a rotated certificate (cert-manager, an updated Secret) is served without a restart. A new set is taken
// only whole and usable (the key matches the certificate, every file parses): a half-written or mismatched
// update is reported once and the listeners keep the last good set, rather than refusing every handshake.
// gRPC takes it through grpc-js's certificate-provider interface; an HTTPS listener through `onChange`.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { type TlsSettings, tlsReason } from '../config/tls.js';

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = Parameters<CertificateProvider['addCaCertificateListener']>[0];
type IdentityListener = Parameters<CertificateProvider['addIdentityCertificateListener']>[0];

/** How often the files are read again. */
export const TLS_REFRESH_MS = 60_000;

/** The PEM contents in force. */
export interface TlsContents {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
}

export class CertificateFiles implements CertificateProvider {
  private contents: TlsContents;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly changeListeners = new Set<(contents: TlsContents) => void>();
  private readonly timer: NodeJS.Timeout;
  private reading = false;
  private lastProblem = '';

  /** `settings` were checked at start-up (config/tls.ts), so the first read is a good one. */
  constructor(
    private readonly settings: TlsSettings,
    private readonly onProblem: (message: string) => void,
    refreshMs = TLS_REFRESH_MS,
  ) {
    const read = (file: string) => readFileSync(file);
    this.contents = {
      cert: read(settings.cert),
      key: read(settings.key),
      ...(settings.clientCa !== undefined && { ca: read(settings.clientCa) }),
    };
    this.timer = setInterval(() => void this.refresh(), refreshMs);
    this.timer.unref();
  }

  get current(): TlsContents {
    return this.contents;
  }

  /** Hears every change taken (an HTTPS server's setSecureContext). */
  onChange(listener: (contents: TlsContents) => void): void {
    this.changeListeners.add(listener);
  }

  close(): void {
    clearInterval(this.timer);
  }

  /** Reads the files again; takes them when they changed and are usable together. */
  async refresh(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      const { cert, key, clientCa } = this.settings;
      const [certPem, keyPem, caPem] = await Promise.all([
        readFile(cert),
        readFile(key),
        clientCa === undefined ? undefined : readFile(clientCa),
      ]);
      const next: TlsContents = { cert: certPem, key: keyPem, ...(caPem !== undefined && { ca: caPem }) };
      if (sameContents(next, this.contents)) return;
      createSecureContext(next);
      this.contents = next;
      this.lastProblem = '';
      this.tellAll();
    } catch (err) {
      const problem = `TLS files not taken, the last good ones stay in use (${tlsReason(err)})`;
      if (problem !== this.lastProblem) this.onProblem(problem);
      this.lastProblem = problem;
    } finally {
      this.reading = false;
    }
  }

  // grpc-js's interface. Listeners hear the current files on the next tick (grpc-js registers its own
  // watcher only after adding these), then every change.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    process.nextTick(() => this.caListeners.has(listener) && listener(this.caUpdate()));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    process.nextTick(() => this.identityListeners.has(listener) && listener(this.identityUpdate()));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  /** gRPC credentials presenting these files, requiring a client certificate when a client CA is set. */
  grpcCredentials(): grpc.ServerCredentials {
    const requireClients = this.settings.clientCa !== undefined;
    // grpc-js's parameter names are swapped: the first provider gives the server's own certificate.
    return grpc.experimental.createCertificateProviderServerCredentials(
      this,
      requireClients ? this : null,
      requireClients,
    );
  }

  private caUpdate() {
    return this.contents.ca === undefined ? null : { caCertificate: this.contents.ca };
  }

  private identityUpdate() {
    return { certificate: this.contents.cert, privateKey: this.contents.key };
  }

  private tellAll(): void {
    for (const listener of this.identityListeners) listener(this.identityUpdate());
    for (const listener of this.caListeners) listener(this.caUpdate());
    for (const listener of this.changeListeners) listener(this.contents);
  }
}

function sameContents(a: TlsContents, b: TlsContents): boolean {
  return (
    a.cert.equals(b.cert) && a.key.equals(b.key) && (a.ca ?? Buffer.alloc(0)).equals(b.ca ?? Buffer.alloc(0))
  );
}
