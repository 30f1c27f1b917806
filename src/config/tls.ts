// `--tls-cert`, `--tls-key` and `--tls-client-ca`: TLS for the listeners that take Checks, for central
// deployments outside a mesh (tokens and bodies must not cross a network in plaintext). Read and tried once at
// start-up, so a missing file, a key that does not match its certificate or a file that is not PEM is a usage
// error naming the flag and the file, never a server that starts and refuses every handshake. Only file names
// and the TLS library's own reason appear in messages, never file contents.
import { readFileSync } from 'node:fs';
import { createSecureContext } from 'node:tls';

export interface TlsSettings {
  /** PEM certificate chain the listeners present. */
  readonly cert: string;
  /** PEM private key of `cert`. */
  readonly key: string;
  /** PEM CA bundle: when set, every client must present a certificate it signed. */
  readonly clientCa?: string;
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
  const pem: Record<string, string> = {};
  for (const [flag, file] of [
    ['tls-cert', cert],
    ['tls-key', key],
    ['tls-client-ca', clientCa],
  ] as const) {
    if (file === undefined) continue;
    try {
      pem[flag] = readFileSync(file, 'utf8');
    } catch (err) {
      return `--${flag} ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
    }
  }
  try {
    createSecureContext({ cert: pem['tls-cert'], key: pem['tls-key'], ca: pem['tls-client-ca'] });
  } catch (err) {
    return `--tls-cert ${cert}, --tls-key ${key}${clientCa ? `, --tls-client-ca ${clientCa}` : ''}: not usable (${tlsReason(err)})`;
  }
  return Object.freeze({ cert, key, ...(clientCa !== undefined && { clientCa }) });
}

/**
 * Why TLS files could not be used: OpenSSL's reason (e.g. "key values mismatch", "no start line") or a read
 * error's code, one line, without anything read from the files.
 */
export function tlsReason(err: unknown): string {
  const { reason, code, message } = err as { reason?: string; code?: string; message?: string };
  return (reason ?? code ?? message ?? 'unknown error').split('\n')[0]!.slice(0, 200);
}
