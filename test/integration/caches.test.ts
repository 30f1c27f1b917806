// The caches over real gRPC and a real JWKS endpoint: a cached answer is the answer a fresh check gives, a new
// policy revision is never answered from the old one's cache, and requests whose decision depends on more
// than the token, route and locations are never cached.
import { readFileSync, writeFileSync } from 'node:fs';
import type { JWTPayload } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedCheckResponse } from '../../src/wire/proto.js';
import { type JwksServer, startJwksServer } from '../support/jwks-server.js';
import { EXAMPLE_AUDIENCE, EXAMPLE_ISSUER } from '../support/policies.js';
import { type Harness, type HttpLike, JSON_BODY, startHarness, transaction } from '../support/scopegate.js';
import { mintToken, newSigningKey, type SigningKey } from '../support/tokens.js';

let key: SigningKey;
let jwks: JwksServer;
let cached: Harness;
let uncached: Harness;

beforeAll(async () => {
  key = await newSigningKey('RS256');
  jwks = await startJwksServer([key.publicJwk]);
  [cached, uncached] = await Promise.all([
    startHarness(undefined, { jwks }),
    startHarness(undefined, { jwks, flags: ['--token-cache-size', '0', '--decision-cache-size', '0'] }),
  ]);
});
afterAll(async () => {
  await Promise.all([cached?.close(), uncached?.close()]);
  await jwks?.close();
});

const token = (claims: JWTPayload, lifetime = 300) =>
  mintToken(key, { iss: EXAMPLE_ISSUER, aud: EXAMPLE_AUDIENCE, ...claims }, { lifetime });
const account = (sub: string, client: string, scope: string, more: JWTPayload = {}) =>
  token({ sub, client_id: client, gty: 'client_credentials', scope, ...more });

const DECISION_HITS = 'scopegate_cache_lookups_total{cache="decision",result="hit"}';
const DECISION_MISSES = 'scopegate_cache_lookups_total{cache="decision",result="miss"}';
const TOKEN_HITS = 'scopegate_cache_lookups_total{cache="token",result="hit"}';

/** The response as Envoy gets it, minus the request id (each Check has its own). */
function comparable(raw: ReceivedCheckResponse): unknown {
  const copy = structuredClone(raw);
  if (copy.denied_response?.body) {
    const body = JSON.parse(copy.denied_response.body) as Record<string, unknown>;
    expect(typeof body.request_id).toBe('string');
    delete body.request_id;
    copy.denied_response.body = JSON.stringify(body);
  }
  return copy;
}

describe('a cached answer is identical to a fresh one', () => {
  it('many mixed requests, repeated, answered the same with caches on and with caches off', async () => {
    const readWrite = await account('svc-inventory-sync', 'inventory-sync', 'inventory.read inventory.write');
    const tokens = {
      readWrite,
      // The thread's token: only inventory.write → scope_missing naming inventory.read.
      writeOnly: await account('svc-inventory-sync', 'inventory-sync', 'inventory.write'),
      // The client was never granted inventory.write → client_scope_not_allowed.
      stockReport: await account('svc-stock-report', 'stock-report', 'inventory.read inventory.write'),
      // The account lacks the role → role_missing.
      newIntegration: await account(
        'svc-new-integration',
        'inventory-sync',
        'inventory.read inventory.write',
      ),
      authorizationCode: await account('svc-inventory-sync', 'inventory-sync', 'inventory.read', {
        gty: 'authorization_code',
      }),
      tokenLocations: await account('svc-new-integration', 'new-integration', 'inventory.read', {
        locations: ['WH09'],
      }),
      wrongAudience: await token({ sub: 'svc-inventory-sync', aud: 'https://elsewhere.example' }),
      expired: await account('svc-inventory-sync', 'inventory-sync', 'inventory.read', {
        exp: Math.floor(Date.now() / 1000) - 3600,
      }),
    };
    const distinct = await Promise.all(
      Array.from({ length: 12 }, (_, n) =>
        account('svc-inventory-sync', 'inventory-sync', 'inventory.read inventory.write', { n }),
      ),
    );

    const requests: HttpLike[] = [];
    for (const bearer of [...Object.values(tokens), ...distinct.slice(0, 3)]) {
      requests.push(
        { method: 'GET', path: '/api/inventory/transactions', token: bearer },
        { method: 'GET', path: '/api/inventory/transactions/42', token: bearer },
        { method: 'GET', path: '/api/inventory/locations/WH01/items', token: bearer },
        { method: 'GET', path: '/api/inventory/locations/WH09/items', token: bearer },
        { method: 'GET', path: '/api/inventory/unknown', token: bearer },
        ...['WH01', 'WH03', 'EU-WEST-1'].map((location) => ({
          method: 'POST',
          path: '/api/inventory/transactions',
          token: bearer,
          headers: JSON_BODY,
          body: transaction(location),
        })),
        {
          method: 'PUT',
          path: '/api/inventory/transactions/7',
          token: bearer,
          headers: JSON_BODY,
          body: transaction('WH02'),
        },
        // Never cached: an unreadable body, a duplicate key, no location, no body where one is read.
        { method: 'POST', path: '/api/inventory/transactions', token: bearer, headers: JSON_BODY, body: '{' },
        {
          method: 'POST',
          path: '/api/inventory/transactions',
          token: bearer,
          headers: JSON_BODY,
          body: '{"location":"WH01","location":"WH03"}',
        },
        {
          method: 'POST',
          path: '/api/inventory/transactions',
          token: bearer,
          headers: JSON_BODY,
          body: '{"item":"ITEM001","quantity":1}',
        },
        { method: 'POST', path: '/api/inventory/transactions', token: bearer },
      );
    }
    for (const bearer of distinct) {
      requests.push({ method: 'GET', path: '/api/inventory/transactions', token: bearer });
    }
    requests.push(
      { method: 'GET', path: '/api/inventory/transactions' },
      { method: 'GET', path: '/api/inventory//transactions', token: readWrite },
      {
        method: 'GET',
        path: '/api/inventory/transactions',
        headers: [['authorization', `Bearer ${readWrite}, Bearer ${readWrite}`]],
      },
    );
    // Every request three times, interleaved in a fixed shuffled order, so repeats meet warm caches.
    const order = [...requests, ...requests, ...requests]
      .map((request, i) => ({ request, rank: (i * 7919) % 1009 }))
      .sort((a, b) => a.rank - b.rank)
      .map((entry) => entry.request);

    const hitsBefore = await cached.sample(DECISION_HITS);
    const reasons = new Set<string>();
    for (const request of order) {
      const [fromCache, fresh] = await Promise.all([cached.send(request), uncached.send(request)]);
      expect(comparable(fromCache.raw)).toEqual(comparable(fresh.raw));
      reasons.add(fresh.reason ?? '');
    }

    // The comparison covered allows and many kinds of deny…
    for (const reason of [
      'allowed',
      'scope_missing',
      'client_scope_not_allowed',
      'role_missing',
      'grant_type_not_allowed',
      'location_denied',
      'route_unknown',
      'body_unreadable',
      'location_missing',
      'audience_mismatch',
      'token_expired',
      'token_missing',
      'request_malformed',
    ]) {
      expect(reasons).toContain(reason);
    }
    // …and the cached server really answered from its caches, while the other had none to ask.
    expect((await cached.sample(DECISION_HITS)) - hitsBefore).toBeGreaterThan(100);
    expect(await cached.sample(TOKEN_HITS)).toBeGreaterThan(0);
    expect(await uncached.sample(DECISION_HITS)).toBe(0);
    expect(await uncached.sample(DECISION_MISSES)).toBe(0);
    expect(await uncached.sample(TOKEN_HITS)).toBe(0);
  });
});

describe('what the decision cache keeps', () => {
  it('a repeated POST is answered from the cache; an unreadable body is never looked up nor kept', async () => {
    const bearer = await account('svc-inventory-sync', 'inventory-sync', 'inventory.read inventory.write');
    const post = (body: string) => ({
      method: 'POST',
      path: '/api/inventory/transactions',
      token: bearer,
      headers: JSON_BODY,
      body,
    });
    const hits = await cached.sample(DECISION_HITS);
    const misses = await cached.sample(DECISION_MISSES);

    for (let i = 0; i < 3; i++)
      expect((await cached.send(post('{"location":'))).reason).toBe('body_unreadable');
    expect(await cached.sample(DECISION_HITS)).toBe(hits);
    expect(await cached.sample(DECISION_MISSES)).toBe(misses);

    for (let i = 0; i < 3; i++) expect((await cached.send(post(transaction('WH01')))).status).toBe(200);
    expect(await cached.sample(DECISION_MISSES)).toBe(misses + 1);
    expect(await cached.sample(DECISION_HITS)).toBe(hits + 2);
    // Another location is another decision: WH03 is not granted, whatever WH01's cached answer says.
    expect((await cached.send(post(transaction('WH03')))).reason).toBe('location_denied');
  });

  it('a spoofed x-scopegate-* header is stripped even when the same allow was answered before', async () => {
    const bearer = await account('svc-stock-report', 'stock-report', 'inventory.read');
    const get = (headers: Array<[string, string]> = []) =>
      cached.send({ method: 'GET', path: '/api/inventory/transactions/7', token: bearer, headers });
    const plain = await get();
    expect(plain.status).toBe(200);
    expect(plain.headersToRemove).toEqual([]);
    // The same decision, from the decision cache, for a request that tries to pass its own identity.
    const spoofed = await get([
      ['x-scopegate-client', 'inventory-sync'],
      ['x_scopegate_roles', 'admin'],
    ]);
    expect(spoofed.status).toBe(200);
    expect(spoofed.headers.get('x-scopegate-client')).toBe('stock-report');
    expect(spoofed.headersToRemove).toEqual(['x_scopegate_roles']);
    // And the plain answer is not changed by having answered the spoofed one.
    expect((await get()).raw).toEqual(plain.raw);
    // A lone spoofed header, in either spelling, is the first (and only) one the answer must remove.
    for (const name of ['x_scopegate_subject', 'x-scopegate-roles']) {
      const lone = await get([[name, 'admin']]);
      expect(lone.status).toBe(200);
      expect(lone.headersToRemove, name).toEqual([name]);
    }
  });

  it('a new policy revision is never answered from the old one', async () => {
    const served = await startHarness(undefined, { jwks });
    try {
      const bearer = await account('svc-inventory-sync', 'inventory-sync', 'inventory.read inventory.write');
      const wh03 = {
        method: 'POST',
        path: '/api/inventory/transactions',
        token: bearer,
        headers: JSON_BODY,
        body: transaction('WH03'),
      };
      const before = await served.send(wh03);
      expect(before.reason).toBe('location_denied');
      expect((await served.send(wh03)).reason).toBe('location_denied');
      expect(await served.sample(DECISION_HITS)).toBe(1);

      // The fix from the thread: grant WH03 to the service account, reload, no restart.
      const text = readFileSync(served.policyFile, 'utf8');
      const granted = text.replace(
        'locations: [WH01, WH02, "EU-*"]',
        'locations: [WH01, WH02, WH03, "EU-*"]',
      );
      expect(granted).not.toBe(text);
      writeFileSync(served.policyFile, granted);
      expect(await served.running.reload()).toBe(true);

      const after = await served.send(wh03);
      expect(after.status).toBe(200);
      const revisionOf = (answer: typeof after) =>
        answer.raw.dynamic_metadata?.fields?.policy_revision?.string_value;
      expect(revisionOf(after)).not.toBe(revisionOf(before));
      expect(revisionOf(after)).toBe(served.running.policies()[0]!.revision);
    } finally {
      await served.close();
    }
  });
});
