// Development keys and tokens: a key pair made once into a folder (private key 0600, a public JWKS beside it)
// and tokens signed with it that the JWKS verifies, with exactly the claims asked for.
import { readFileSync, rmSync, statSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  calculateJwkThumbprint,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  type JWK,
  jwtVerify,
} from 'jose';
import { describe, expect, it } from 'vitest';
import { ensureDevKeys, JWKS_FILE, mintToken, SIGNING_KEY_FILE } from '../../../src/dev/keys.js';

const freshDir = async () => join(await mkdtemp(join(tmpdir(), 'scopegate-keys-')), 'dev-keys');
const jwksOf = (dir: string) => JSON.parse(readFileSync(join(dir, JWKS_FILE), 'utf8')) as { keys: JWK[] };

describe('ensureDevKeys', () => {
  it('creates a private key (mode 0600) and a public JWKS naming it by its RFC 7638 thumbprint', async () => {
    const dir = await freshDir();
    const made = await ensureDevKeys(dir);
    expect(made).toEqual({
      created: true,
      keyFile: join(dir, SIGNING_KEY_FILE),
      jwksFile: join(dir, JWKS_FILE),
    });
    expect(statSync(made.keyFile).mode & 0o777).toBe(0o600);
    const { keys } = jwksOf(dir);
    expect(keys).toHaveLength(1);
    const [published] = keys;
    expect(published).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    expect(published).not.toHaveProperty('d');
    expect(published!.kid).toBe(await calculateJwkThumbprint(published!));
    const priv = JSON.parse(readFileSync(made.keyFile, 'utf8')) as JWK;
    expect(priv).toMatchObject({ kid: published!.kid, alg: 'RS256', n: published!.n });
    expect(priv.d).toBeTypeOf('string');
  });

  it('keeps the keys it finds: a second run changes nothing', async () => {
    const dir = await freshDir();
    await ensureDevKeys(dir);
    const key = readFileSync(join(dir, SIGNING_KEY_FILE), 'utf8');
    const jwks = readFileSync(join(dir, JWKS_FILE), 'utf8');
    expect((await ensureDevKeys(dir)).created).toBe(false);
    expect(readFileSync(join(dir, SIGNING_KEY_FILE), 'utf8')).toBe(key);
    expect(readFileSync(join(dir, JWKS_FILE), 'utf8')).toBe(jwks);
  });

  it('a pair with a half missing is made again, so the JWKS always matches the key', async () => {
    const dir = await freshDir();
    await ensureDevKeys(dir);
    const before = jwksOf(dir).keys[0]!.kid;
    rmSync(join(dir, SIGNING_KEY_FILE));
    expect((await ensureDevKeys(dir)).created).toBe(true);
    const after = jwksOf(dir).keys[0]!.kid;
    expect(after).not.toBe(before);
    expect(JSON.parse(readFileSync(join(dir, SIGNING_KEY_FILE), 'utf8')).kid).toBe(after);
  });
});

describe('mintToken', () => {
  it('signs an at+jwt with the dev key that its JWKS verifies, carrying the claims asked for', async () => {
    const dir = await freshDir();
    const { keyFile } = await ensureDevKeys(dir);
    const token = await mintToken({
      keyFile,
      issuer: 'https://dev-issuer.scopegate.local/',
      audience: 'https://gateway.example.com',
      subject: 'svc-inventory-sync',
      client: 'inventory-sync',
      scope: 'inventory.read',
      roles: ['Inventory Data Reader'],
      locations: ['WH01'],
      grantType: 'client_credentials',
      ttlSeconds: 300,
    });
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(jwksOf(dir)), {
      issuer: 'https://dev-issuer.scopegate.local/',
      audience: 'https://gateway.example.com',
      typ: 'at+jwt',
    });
    expect(protectedHeader).toEqual({ alg: 'RS256', typ: 'at+jwt', kid: jwksOf(dir).keys[0]!.kid });
    expect(payload).toMatchObject({
      sub: 'svc-inventory-sync',
      client_id: 'inventory-sync',
      scope: 'inventory.read',
      roles: ['Inventory Data Reader'],
      locations: ['WH01'],
      gty: 'client_credentials',
    });
    expect(payload.exp! - payload.iat!).toBe(300);
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('leaves out every optional claim not asked for; explicit ones win over extraClaims', async () => {
    const { keyFile } = await ensureDevKeys(await freshDir());
    const bare = decodeJwt(
      await mintToken({ keyFile, issuer: 'i', audience: 'a', subject: 's', ttlSeconds: 60 }),
    );
    expect(Object.keys(bare).sort()).toEqual(['aud', 'exp', 'iat', 'iss', 'jti', 'sub']);
    const extra = decodeJwt(
      await mintToken({
        keyFile,
        issuer: 'i',
        audience: 'a',
        subject: 's',
        client: 'inventory-sync',
        ttlSeconds: 60,
        extraClaims: { client_id: 'someone-else', azp: 'web' },
      }),
    );
    expect(extra).toMatchObject({ client_id: 'inventory-sync', azp: 'web' });
  });

  it('a negative lifetime mints a token already expired, issued before it expired', async () => {
    const { keyFile } = await ensureDevKeys(await freshDir());
    const now = Date.UTC(2026, 0, 1);
    const token = await mintToken({
      keyFile,
      issuer: 'i',
      audience: 'a',
      subject: 's',
      ttlSeconds: -60,
      now,
    });
    const payload = decodeJwt(token);
    expect(payload.exp).toBe(now / 1000 - 60);
    expect(payload.iat).toBe(now / 1000 - 120);
    expect(decodeProtectedHeader(token).alg).toBe('RS256');
  });
});
