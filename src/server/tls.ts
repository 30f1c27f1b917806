// The certificate files of `--tls-cert`, `--tls-key` and `--tls-client-ca`, kept current: re-read every minute,
// so a rotated certificate (cert-manager, an updated Secret) is served without a restart. A new set is taken
// only whole and usable (the key matches the certificate, every file parses): a half-written or mismatched
// update is reported once and the listeners keep the last good set, rather than refusing every handshake.
// Every listener (gRPC on node:http2, the HTTPS front doors) takes a change through `onChange`.

import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import { type TlsContents, type TlsSettings, tlsReason } from '../config/tls.js';

/** How often the files are read again. */
export const TLS_REFRESH_MS = 60_000;

/** node:tls server options for the files in force: a client CA means every client must present a certificate it signed. */
export function tlsServerOptions({ cert, key, ca }: TlsContents) {
  return { cert, key, ...(ca !== undefined && { ca, requestCert: true, rejectUnauthorized: true }) };
}

export class CertificateFiles {
  private contents: TlsContents;
  private readonly changeListeners = new Set<(contents: TlsContents) => void>();
  private readonly timer: NodeJS.Timeout;
  private reading = false;
  private lastProblem = '';

  /** Starts from the contents checked at start-up (config/tls.ts); the files are read again only to refresh. */
  constructor(
    private readonly settings: TlsSettings,
    private readonly onProblem: (message: string) => void,
    refreshMs = TLS_REFRESH_MS,
  ) {
    this.contents = settings.contents;
    this.timer = setInterval(() => void this.refresh(), refreshMs);
    this.timer.unref();
  }

  get current(): TlsContents {
    return this.contents;
  }

  /**
   * Hears every change taken (a TLS server's setSecureContext). Returns what stops it: a server that closes
   * removes its listener, so files shared by servers do not keep closed ones alive or keep updating them.
   */
  onChange(listener: (contents: TlsContents) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Listeners registered (servers still open). */
  get listenerCount(): number {
    return this.changeListeners.size;
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

  private tellAll(): void {
    for (const listener of this.changeListeners) listener(this.contents);
  }
}

function sameContents(a: TlsContents, b: TlsContents): boolean {
  return (
    a.cert.equals(b.cert) && a.key.equals(b.key) && (a.ca ?? Buffer.alloc(0)).equals(b.ca ?? Buffer.alloc(0))
  );
}
