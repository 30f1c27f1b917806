// Identity-provider faults over real gRPC and a real JWKS endpoint: outages, slow or broken answers, key
// rotation and a flood of junk `kid`s. Whatever the IdP does, scopegate keeps its last good keys, answers
// every Check quickly, never lets a removed key's tokens through (cached or not) and never floods the IdP.
import { randomUUID } from 'node:crypto';
import type { JWTPayload } from 'jose';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type JwksServer, startJwksServer } from '../support/jwks-server.js';
import { EXAMPLE_AUDIENCE, EXAMPLE_ISSUER } from '../support/policies.js';
import type { HttpAnswer } from '../support/scopegate.js';
import { type Harness, startHarness } from '../support/scopegate.js';
import { handBuiltToken, mintToken, newSigningKey, type SigningKey } from '../support/tokens.js';

/** Well below Envoy's 250 ms in envoy/envoy.yaml, with room for a busy test machine. */
const JWKS_TIMEOUT_MS = 150;
/** "Bounded latency": every Check, whatever the IdP does, within this (generous for a shared 2-core box). */
const CHECK_BOUND_MS = 900;
const REFRESH_ERRORS = `scopegate_jwks_refreshes_total{issuer="${EXAMPLE_ISSUER}",result="error"}`;
const REFRESH_SUCCESSES = `scopegate_jwks_refreshes_total{issuer="${EXAMPLE_ISSUER}",result="success"}`;

let current: SigningKey;
let rotated: SigningKey;
let jwks: JwksServer;
let served: Harness | undefined;

beforeAll(async () => {
  [current, rotated] = await Promise.all([newSigningKey('RS256'), newSigningKey('RS256')]);
});
beforeEach(async () => {
  jwks = await startJwksServer([current.publicJwk]);
});
afterEach(async () => {
  await served?.close();
  served = undefined;
  await jwks.close();
});

async function serve(): Promise<Harness> {
  served = await startHarness(undefined, { jwks, flags: ['--jwks-timeout-ms', String(JWKS_TIMEOUT_MS)] });
  return served;
}

const syncClaims = (more: JWTPayload = {}): JWTPayload => ({
  iss: EXAMPLE_ISSUER,
  aud: EXAMPLE_AUDIENCE,
  sub: 'svc-inventory-sync',
  client_id: 'inventory-sync',
  gty: 'client_credentials',
  scope: 'inventory.read',
  ...more,
});
/** A fresh token (never seen, so never cached) signed by `key`. */
const freshToken = (key: SigningKey) => mintToken(key, syncClaims({ jti: randomUUID() }));

async function timedList(server: Harness, token: string): Promise<HttpAnswer & { ms: number }> {
  const started = performance.now();
  const answer = await server.send({ method: 'GET', path: '/api/inventory/transactions', token });
  return { ...answer, ms: performance.now() - started };
}

describe('the IdP goes down after start', () => {
  it('tokens keep verifying with the last good keys, and the failed refreshes are counted', async () => {
    const server = await serve();
    expect((await timedList(server, await freshToken(current))).status).toBe(200);

    jwks.setAvailable(false);
    // A token naming a key we do not have asks for a refresh; the IdP answers 503.
    const unknown = await timedList(server, await freshToken(rotated));
    expect(unknown.reason).toBe('key_unknown');
    expect(await server.sample(REFRESH_ERRORS)).toBe(1);

    // New tokens from the key we already hold still verify: last-good keys, not "no keys".
    for (let i = 0; i < 3; i++) {
      const answer = await timedList(server, await freshToken(current));
      expect(answer.status).toBe(200);
      expect(answer.ms).toBeLessThan(CHECK_BOUND_MS);
    }
  });
});

describe('a broken or slow JWKS answer keeps the last good keys, and Checks stay fast', () => {
  const faults: Array<[string, (server: JwksServer) => void]> = [
    ['slower than the fetch timeout', (s) => s.setDelay(2_000)],
    ['an HTML error page', (s) => s.setRawBody('<html><body><h1>502 Bad Gateway</h1></body></html>')],
    ['garbage', (s) => s.setRawBody('\u0000\u00ff{{{ not json')],
    ['an empty key set', (s) => s.setRawBody('{"keys":[]}')],
    [
      'a 10 MB document',
      (s) => s.setRawBody(JSON.stringify({ keys: [], pad: 'x'.repeat(10 * 1024 * 1024) })),
    ],
  ];

  it.each(faults)('JWKS returning %s', async (_, breakIt) => {
    const server = await serve();
    const fetchesAtStart = jwks.fetches;
    expect(await server.sample(REFRESH_SUCCESSES)).toBe(1);
    breakIt(jwks);

    // The token asks for a refresh (unknown kid); the refresh fails, the Check still answers promptly.
    const unknown = await timedList(server, await freshToken(rotated));
    expect(unknown.reason).toBe('key_unknown');
    expect(unknown.ms).toBeLessThan(CHECK_BOUND_MS);
    expect(jwks.fetches).toBe(fetchesAtStart + 1);

    const known = await timedList(server, await freshToken(current));
    expect(known.status).toBe(200);
    expect(known.ms).toBeLessThan(CHECK_BOUND_MS);
    // The slow fetch is abandoned at the timeout, so its failure may be counted a moment later.
    await expect.poll(() => server.sample(REFRESH_ERRORS), { timeout: 3_000 }).toBe(1);
    expect(await server.sample(REFRESH_SUCCESSES)).toBe(1);
  });
});

describe('key rotation', () => {
  it("a new key's first token is accepted via one refresh; the removed key's tokens are refused, cached ones too", async () => {
    const server = await serve();
    const old = await freshToken(current);
    // Seen twice: now in the token cache and the decision cache.
    expect((await timedList(server, old)).status).toBe(200);
    expect((await timedList(server, old)).status).toBe(200);
    const hits = 'scopegate_cache_lookups_total{cache="decision",result="hit"}';
    expect(await server.sample(hits)).toBe(1);

    // The IdP rotates: publishes the new key, drops the old one.
    jwks.setKeys([rotated.publicJwk]);
    const fetches = jwks.fetches;
    const first = await timedList(server, await freshToken(rotated));
    expect(first.status).toBe(200);
    expect(jwks.fetches).toBe(fetches + 1);

    // The old key left the JWKS with that refresh: its tokens are refused, the cached one included.
    const cached = await timedList(server, old);
    expect(cached.status).toBe(401);
    expect(cached.reason).toBe('key_unknown');
    expect(await server.sample(hits)).toBe(1);
    expect((await timedList(server, await freshToken(current))).reason).toBe('key_unknown');
    // And the new key keeps working without another fetch.
    expect((await timedList(server, await freshToken(rotated))).status).toBe(200);
    expect(jwks.fetches).toBe(fetches + 1);
  });
});

describe('junk kids cannot flood the IdP', () => {
  it('10,000 tokens with random kids cause at most one fetch per on-demand interval (5 s)', async () => {
    const server = await serve();
    const started = performance.now();
    const fetchesAtStart = jwks.fetches;
    const exp = Math.floor(Date.now() / 1000) + 300;
    const junk = () =>
      handBuiltToken(
        { alg: 'RS256', typ: 'JWT', kid: randomUUID() },
        { ...syncClaims(), exp },
        'c2lnbmF0dXJl',
      );

    const total = 10_000;
    const concurrency = 50;
    let sent = 0;
    const reasons = new Map<string, number>();
    let slowest = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (sent < total) {
          sent += 1;
          const answer = await timedList(server, junk());
          reasons.set(answer.reason ?? '', (reasons.get(answer.reason ?? '') ?? 0) + 1);
          slowest = Math.max(slowest, answer.ms);
        }
      }),
    );
    expect(reasons).toEqual(new Map([['key_unknown', total]]));
    const intervals = Math.floor((performance.now() - started) / 5_000) + 1;
    expect(jwks.fetches - fetchesAtStart).toBeGreaterThanOrEqual(1);
    expect(jwks.fetches - fetchesAtStart).toBeLessThanOrEqual(intervals);
    expect(slowest).toBeLessThan(CHECK_BOUND_MS * 2);
  }, 120_000);
});
