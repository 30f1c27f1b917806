// The key registry: one store per issuer configuration, reused across policy reloads, dropped when no issuer
// uses it any more, and readiness that names each issuer's problem without its JWKS URL.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { KeyRegistry } from '../../../src/identity/key-registry.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import { newSigningKey } from '../../support/tokens.js';
import { ISSUER, issuerConfig } from './fixtures.js';

const OTHER_ISSUER = 'https://other-idp.example.test/';

let server: JwksServer;
let dir: string;
beforeAll(async () => {
  server = await startJwksServer([(await newSigningKey('ES256')).publicJwk]);
  dir = await mkdtemp(join(tmpdir(), 'scopegate-keys-'));
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

let registry: KeyRegistry;
beforeEach(() => {
  server.resetFetches();
  registry = new KeyRegistry({ fetchTimeoutMs: 2000 });
});
afterEach(() => registry.close());

describe('one store per issuer configuration', () => {
  it('a reload with unchanged issuers reuses the stores and fetches nothing', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await registry.start([issuer]);
    const store = registry.storeFor(issuer);
    const reloaded = { ...issuer, audiences: [...issuer.audiences] };
    await registry.start([reloaded]);
    expect(registry.storeFor(reloaded)).toBe(store);
    expect(server.fetches).toBe(1);
  });

  it('a reload that moves the JWKS gets a new store; the old one is dropped from readiness', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await registry.start([issuer]);
    const moved = issuerConfig({ file: join(dir, 'absent.json') });
    await registry.start([moved]);
    expect(registry.storeFor(moved)).not.toBe(registry.storeFor(issuer));
    registry.retainOnly([moved]);
    expect(registry.ready()).toBe(false);
    expect(registry.problems()).toHaveLength(1);
  });

  it('two issuers sharing one JWKS URL get a store each', async () => {
    const first = issuerConfig({ uri: server.uri });
    const second = issuerConfig({ uri: server.uri }, { issuer: OTHER_ISSUER });
    await registry.start([first, second]);
    expect(registry.storeFor(first)).not.toBe(registry.storeFor(second));
    expect(registry.status().map((s) => s.issuer)).toEqual([ISSUER, OTHER_ISSUER]);
  });

  it('a store dropped by retainOnly is closed: it fetches nothing any more', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await registry.start([issuer]);
    const dropped = registry.storeFor(issuer);
    registry.retainOnly([]);
    expect(await dropped.refresh()).toBe(false);
    expect(server.fetches).toBe(1);
    expect(registry.status()).toEqual([]);
  });

  it('a store first asked for after start() loads its keys on its own', async () => {
    await registry.start([]);
    const store = registry.storeFor(issuerConfig({ uri: server.uri }));
    await vi.waitFor(() => expect(store.hasKeys()).toBe(true), { timeout: 2000, interval: 5 });
  });

  it('before start(), a store asked for loads nothing', async () => {
    const store = registry.storeFor(issuerConfig({ uri: server.uri }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(store.hasKeys()).toBe(false);
    expect(server.fetches).toBe(0);
  });
});

describe('readiness', () => {
  it('ready only while every issuer has keys; the problem names the issuer and why', async () => {
    const good = issuerConfig({ uri: server.uri });
    const absent = issuerConfig({ file: join(dir, 'absent.json') }, { issuer: OTHER_ISSUER });
    await registry.start([good, absent]);
    expect(registry.ready()).toBe(false);
    expect(registry.problems()).toEqual([
      `issuer ${OTHER_ISSUER}: no usable signing keys (the JWKS file could not be read (ENOENT))`,
    ]);
    expect(registry.problems([good])).toEqual([]);
    registry.retainOnly([good]);
    expect(registry.ready()).toBe(true);
  });

  it('an issuer the registry holds no store for is "key store not started"', () => {
    expect(registry.problems([issuerConfig({ uri: server.uri })])).toEqual([
      `issuer ${ISSUER}: key store not started`,
    ]);
  });

  it('status lists each issuer with its key count and last error, never the JWKS URL', async () => {
    const secretUri = `${server.uri}?access_token=s3cret`;
    await registry.start([
      issuerConfig({ uri: server.uri }),
      issuerConfig({ uri: secretUri }, { issuer: OTHER_ISSUER }),
    ]);
    const status = registry.status();
    expect(status).toEqual([
      { issuer: ISSUER, keys: 1 },
      { issuer: OTHER_ISSUER, keys: 0, error: 'the JWKS endpoint answered HTTP 404' },
    ]);
    const shown = JSON.stringify([status, registry.problems()]);
    expect(shown).not.toContain('s3cret');
    expect(shown).not.toContain('127.0.0.1');
  });

  it('close() closes and forgets every store', async () => {
    const issuer = issuerConfig({ uri: server.uri });
    await registry.start([issuer]);
    const store = registry.storeFor(issuer);
    registry.close();
    expect(registry.status()).toEqual([]);
    expect(await store.refresh()).toBe(false);
  });
});
