// `--tls-cert`, `--tls-key` and `--tls-client-ca`: TLS for the listeners that take Checks, for central
// deployments outside a mesh (tokens and bodies must not cross a network in plaintext). Read and tried once at
// start-up, so a missing file, a key that does not match its certificate or a file that is not PEM is a usage
// error naming the flag and the file, never a server that starts and refuses every handshake. Only file names
// and the TLS library's own reason appear in messages, never file contents. The contents checked are the ones
// served first (server/tls.ts): read again, a file changed since the check would be served unchecked.
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

export interface TlsSettings {
  /** PEM certificate chain the listeners present. */
  readonly cert: string;
  /** PEM private key of `cert`. */
  readonly key: string;
  /** PEM CA bundle: when set, every client must present a certificate it signed. */
  readonly clientCa?: string;
  /** What the files held when they were checked: the listeners start with these, not with a second read. */
  readonly contents: TlsContents;
}

/** PEM contents of the TLS files, usable together. */
export interface TlsContents {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
}

export type TlsFlag = 'tls-cert' | 'tls-key' | 'tls-client-ca';

/** The TLS settings the flags give, or why they cannot be used; undefined: plaintext. */
export function tlsSettings(given: (flag: TlsFlag) => string | undefined): TlsSettings | string | undefined {
  const cert = given('tls-cert') || undefined;
  const key = given('tls-key') || undefined;
  const clientCa = given('tls-client-ca') || undefined;
  if (cert === undefined && key === undefined) {
    return clientCa === undefined ? undefined : '--tls-client-ca needs --tls-cert and --tls-key';
  }
  if (cert === undefined || key === undefined) return '--tls-cert and --tls-key go together';
  const pem: Record<string, Buffer> = {};
  for (const [flag, file] of [
    ['tls-cert', cert],
    ['tls-key', key],
    ['tls-client-ca', clientCa],
  ] as const) {
    if (file === undefined) continue;
    try {
      pem[flag] = readFileSync(file);
    } catch (err) {
      return `--${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    }
  }
  const ca = pem['tls-client-ca'];
  const contents: TlsContents = {
    cert: pem['tls-cert']!,
    key: pem['tls-key']!,
    ...(ca !== undefined && { ca }),
  };
  try {
    createSecureContext(contents);
  } catch (err) {
    return `--tls-cert ${cert}, --tls-key ${key}${clientCa ? `, --tls-client-ca ${clientCa}` : ''}: not usable (${tlsReason(err)})`;
  }
  return Object.freeze({
    cert,
    key,
    ...(clientCa !== undefined && { clientCa }),
    contents: Object.freeze(contents),
  });
}

/**
 * Why TLS files could not be used: OpenSSL's reason (e.g. "key values mismatch", "no start line") or a read
 * error's code, one line, without anything read from the files.
 */
export function tlsReason(err: unknown): string {
  const { reason, code, message } = err as { reason?: string; code?: string; message?: string };
  return (reason ?? code ?? message ?? 'unknown error').split('\n')[0]!.slice(0, 200);
}
