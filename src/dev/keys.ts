// Development signing keys and tokens, so the example policy runs with no outside identity provider.
// Keys are generated on first use into a git-ignored folder, never shipped: DIR/signing-key.jwk (private,
// mode 0600) and DIR/jwks.json (public, what the policy's `jwks: { file }` points at).
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';

export const SIGNING_KEY_FILE = 'signing-key.jwk';
export const JWKS_FILE = 'jwks.json';

async function exists(file: string): Promise<boolean> {
  return readFile(file).then(
    () => true,
    () => false,
  );
}

/** Creates an RS256 dev key pair in `dir` unless one is already there. */
export async function ensureDevKeys(
  dir: string,
): Promise<{ created: boolean; keyFile: string; jwksFile: string }> {
  const keyFile = join(dir, SIGNING_KEY_FILE);
  const jwksFile = join(dir, JWKS_FILE);
  if ((await exists(keyFile)) && (await exists(jwksFile))) return { created: false, keyFile, jwksFile };
  await mkdir(dir, { recursive: true });
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  const meta = { kid, alg: 'RS256', use: 'sig' };
  await writeFile(keyFile, JSON.stringify({ ...(await exportJWK(privateKey)), ...meta }, null, 2) + '\n', {
    mode: 0o600,
  });
  await chmod(keyFile, 0o600);
  await writeFile(jwksFile, JSON.stringify({ keys: [{ ...publicJwk, ...meta }] }, null, 2) + '\n');
  return { created: true, keyFile, jwksFile };
}

export interface TokenRequest {
  readonly keyFile: string;
  readonly issuer: string;
  readonly audience: string;
  readonly subject: string;
  readonly client?: string;
  readonly scope?: string;
  readonly roles?: string[];
  readonly locations?: string[];
  readonly grantType?: string;
  /** Lifetime; negative mints an already-expired token (for demos of token_expired). */
  readonly ttlSeconds: number;
  readonly extraClaims?: Record<string, unknown>;
  readonly now?: number;
}

export async function mintToken(request: TokenRequest): Promise<string> {
  const jwk = JSON.parse(await readFile(request.keyFile, 'utf8')) as JWK;
  const key = await importJWK(jwk, jwk.alg ?? 'RS256');
  const now = Math.floor((request.now ?? Date.now()) / 1000);
  const claims: Record<string, unknown> = {
    ...request.extraClaims,
    ...(request.client !== undefined && { client_id: request.client }),
    ...(request.scope !== undefined && { scope: request.scope }),
    ...(request.roles !== undefined && { roles: request.roles }),
    ...(request.locations !== undefined && { locations: request.locations }),
    ...(request.grantType !== undefined && { gty: request.grantType }),
  };
  const iat = request.ttlSeconds < 0 ? now + request.ttlSeconds - 60 : now;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: jwk.alg ?? 'RS256', typ: 'at+jwt', ...(jwk.kid && { kid: jwk.kid }) })
    .setIssuer(request.issuer)
    .setAudience(request.audience)
    .setSubject(request.subject)
    .setIssuedAt(iat)
    .setExpirationTime(now + request.ttlSeconds)
    .setJti(crypto.randomUUID())
    .sign(key);
}
