// Certificates for mTLS on loopback (`npm run demo`'s peer step and the e2e tests), made fresh per run with
// the openssl CLI (EC P-256 keys, valid for a day): a CA, a server certificate for Envoy's listener, and client
// certificates, each naming the SPIFFE IDs it is given as URI SANs, as an X.509-SVID does. Everything lives in
// one temp directory, removed by `remove()`.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { onPath } from './envoy.js';

const run = promisify(execFile);

export const OPENSSL_INSTALL_HINT =
  'install it with `apt-get install -y openssl` (Debian/Ubuntu) or set OPENSSL_BIN to its path';

/** `OPENSSL_BIN` when set (and executable), else `openssl` on the PATH. */
export function findOpenssl(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const given = env.OPENSSL_BIN;
  if (!given) return onPath('openssl', env);
  try {
    accessSync(given, constants.X_OK);
    return given;
  } catch {
    return undefined;
  }
}

/** A certificate and its key, as files (for Envoy) and as PEM text (for node:https). */
export interface CertifiedKey {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
}

export interface CertificateAuthority extends CertifiedKey {
  /** A client certificate signed by this CA; `uris` are its URI SANs (none: a DNS SAN only). */
  client(name: string, uris: readonly string[]): Promise<CertifiedKey>;
  /** A server certificate for 127.0.0.1 and localhost, signed by this CA. */
  server(name: string): Promise<CertifiedKey>;
}

export interface Pki {
  readonly dir: string;
  /** A new CA (its own key) in the directory: the mesh's, or a stranger's. */
  authority(name: string): Promise<CertificateAuthority>;
  remove(): Promise<void>;
}

/** Each openssl call is bounded: a hung one fails the demo or the test instead of stalling it. */
const OPENSSL_TIMEOUT_MS = 10_000;

/** `openssl req`'s own config, so no system openssl.cnf adds or changes extensions. */
const REQ_CONFIG = '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\n';

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** A new, empty PKI directory; `opensslBin` is the openssl that makes its keys and certificates. */
export async function makePki(opensslBin: string): Promise<Pki> {
  const openssl = async (args: readonly string[]) => {
    await run(opensslBin, args, { timeout: OPENSSL_TIMEOUT_MS });
  };
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-pki-'));
  const files = (name: string) => ({
    certFile: join(dir, `${name}.crt`),
    keyFile: join(dir, `${name}.key`),
    csrFile: join(dir, `${name}.csr`),
    configFile: join(dir, `${name}.cnf`),
  });
  const loaded = async (certFile: string, keyFile: string): Promise<CertifiedKey> => ({
    certFile,
    keyFile,
    cert: await readFile(certFile, 'utf8'),
    key: await readFile(keyFile, 'utf8'),
  });
  let serial = 1;

  async function authority(caName: string): Promise<CertificateAuthority> {
    const { certFile, keyFile, configFile } = files(caName);
    await writeFile(
      configFile,
      `${REQ_CONFIG}CN = ${caName}\n[ca]\nbasicConstraints = critical, CA:TRUE\n` +
        'keyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\n',
    );
    await openssl([
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      keyFile,
      '-out',
      certFile,
      '-days',
      '1',
      '-config',
      configFile,
      '-extensions',
      'ca',
    ]);
    const ca = await loaded(certFile, keyFile);

    /** A leaf certificate signed by this CA, with the given extension lines. */
    async function leaf(name: string, extensions: readonly string[]): Promise<CertifiedKey> {
      const leafFiles = files(name);
      await writeFile(
        leafFiles.configFile,
        `${REQ_CONFIG}CN = ${name}\n[leaf]\n` +
          ['basicConstraints = critical, CA:FALSE', 'keyUsage = critical, digitalSignature', ...extensions]
            .map((line) => `${line}\n`)
            .join(''),
      );
      await openssl([
        'req',
        '-new',
        ...EC_KEY,
        '-keyout',
        leafFiles.keyFile,
        '-out',
        leafFiles.csrFile,
        '-config',
        leafFiles.configFile,
      ]);
      await openssl([
        'x509',
        '-req',
        '-in',
        leafFiles.csrFile,
        '-CA',
        ca.certFile,
        '-CAkey',
        ca.keyFile,
        '-set_serial',
        String(serial++),
        '-days',
        '1',
        '-extfile',
        leafFiles.configFile,
        '-extensions',
        'leaf',
        '-out',
        leafFiles.certFile,
      ]);
      return loaded(leafFiles.certFile, leafFiles.keyFile);
    }

    return {
      ...ca,
      client: (name, uris) => {
        const names = uris.length > 0 ? uris.map((uri) => `URI:${uri}`) : [`DNS:${name}.example`];
        return leaf(name, ['extendedKeyUsage = clientAuth', `subjectAltName = ${names.join(', ')}`]);
      },
      server: (name) =>
        leaf(name, ['extendedKeyUsage = serverAuth', 'subjectAltName = DNS:localhost, IP:127.0.0.1']),
    };
  }

  return { dir, authority, remove: () => rm(dir, { recursive: true, force: true }) };
}
