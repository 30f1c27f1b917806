// The example dev OAuth2 issuer (src/dev/issuer.ts) started for a test, and asking it for a token over real
// HTTP as a client would: HTTP Basic credentials and a form-encoded body. Shared by its unit test and the
// integration tests that put its tokens in front of a real scopegate.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type DevClient, loadDevIssuerConfig, startDevIssuer } from '../../src/dev/issuer.js';

export const EXAMPLE_DEV_ISSUER_FILE = fileURLToPath(
  new URL('../../examples/inventory/dev-issuer.yaml', import.meta.url),
);

/** The example issuer's file, and the issuer on 127.0.0.1 at a free port with fresh keys (and more clients). */
export async function startExampleIssuer(moreClients: readonly DevClient[] = []) {
  const loaded = await loadDevIssuerConfig(EXAMPLE_DEV_ISSUER_FILE);
  if (!loaded.ok) throw new Error(loaded.problems.join('\n'));
  const config = loaded.config;
  const keysDir = join(mkdtempSync(join(tmpdir(), 'scopegate-issuer-')), 'dev-keys');
  const issuer = await startDevIssuer({ ...config, clients: [...config.clients, ...moreClients], keysDir });
  return { config, keysDir, issuer };
}

/** RFC 6749 §2.3.1: the form-encoded id and secret, joined by ":", base64 — the way clients send them. */
export const basic = (id: string, secret: string): string =>
  'Basic ' + Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64');

/** The fields a token answer (RFC 6749 §5.1) or error (§5.2) carries. */
export interface TokenJson {
  access_token?: string;
  token_type?: string;
  expires_in?: number;
  scope?: string;
  error?: string;
  error_description?: string;
}

/** POSTs the form to the token endpoint; the answer's status, headers and JSON. */
export async function requestToken(
  tokenUrl: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
) {
  const response = await fetch(tokenUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(form).toString(),
  });
  return { status: response.status, headers: response.headers, json: (await response.json()) as TokenJson };
}
