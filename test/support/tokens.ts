// Fresh signing keys and tokens for tests: a new key pair per call (never a committed private key), tokens
// minted with jose's SignJWT, and hand-built tokens for the shapes no honest signer produces (`alg: none`).
import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';

export type TestAlgorithm = 'RS256' | 'ES256' | 'ES384' | 'PS256' | 'EdDSA';

export interface SigningKey {
  readonly alg: TestAlgorithm;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  /** The public half as published in a JWKS (with kid, alg and use). */
  readonly publicJwk: JWK;
}

type CryptoKey = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

export async function newSigningKey(
  alg: TestAlgorithm = 'RS256',
  kid: string = randomUUID(),
): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { alg, kid, privateKey, publicJwk };
}

export interface MintOptions {
  /** Seconds since the epoch used for the default iat/exp (default: now). */
  readonly now?: number;
  /** Lifetime in seconds for the default exp (default 300). */
  readonly lifetime?: number;
  /** Extra or replacement protected header parameters (kid, typ, crit, …). */
  readonly header?: Record<string, unknown>;
  /** Leave `exp` out (to test that it is required). */
  readonly omitExp?: boolean;
  /** Critical header names the signer should accept (to mint tokens with `crit`). */
  readonly crit?: Record<string, boolean>;
}

/** A signed JWT: `iat` and `exp` filled in unless the claims give them. */
export async function mintToken(
  key: SigningKey,
  claims: JWTPayload,
  options: MintOptions = {},
): Promise<string> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const body: JWTPayload = {
    iat: now,
    ...(options.omitExp ? {} : { exp: now + (options.lifetime ?? 300) }),
    ...claims,
  };
  return new SignJWT(body)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...options.header })
    .sign(key.privateKey, options.crit ? { crit: options.crit } : undefined);
}

/** A compact JWT assembled by hand with the given signature (default empty, as `alg: none` has). */
export function handBuiltToken(header: Record<string, unknown>, payload: JWTPayload, signature = ''): string {
  return `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}.${signature}`;
}

export function b64url(data: string | Uint8Array): string {
  return Buffer.from(data).toString('base64url');
}
