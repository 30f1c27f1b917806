// One Check, phase by phase (src/check/decide.ts), against the example policy and a real JWKS endpoint: the
// order of the phases is part of the contract. The caller is identified before the body is read (security
// rule 10), the permissions decide before the locations do, and a repeat is answered from the decision cache.
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { DecisionCache } from '../../../src/cache/decisions.js';
import { type Checked, type CheckStatus, decide, type Snapshot } from '../../../src/check/decide.js';
import { Authenticator } from '../../../src/identity/authenticate.js';
import { KeyRegistry } from '../../../src/identity/key-registry.js';
import { JsonScanner } from '../../../src/request/json.js';
import { readLocations } from '../../../src/request/locations.js';
import { checkRequestFor } from '../../../src/wire/check-request.js';
import type { CheckRequest } from '../../../src/wire/types.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import { compile, examplePolicy, examplePolicyText, supportThreadClaims } from '../../support/policies.js';
import { mintToken, newSigningKey, type SigningKey } from '../../support/tokens.js';

// The location phase, watched: a call is the body being read (decoded, scanned).
vi.mock('../../../src/request/locations.js', async (original) => {
  const actual = await original<typeof import('../../../src/request/locations.js')>();
  return { ...actual, readLocations: vi.fn(actual.readLocations) };
});

let key: SigningKey;
let stranger: SigningKey;
let jwks: JwksServer;
let registry: KeyRegistry;
let snapshot: Snapshot;

beforeAll(async () => {
  key = await newSigningKey('RS256');
  stranger = await newSigningKey('RS256');
  jwks = await startJwksServer([key.publicJwk]);
  registry = new KeyRegistry({ fetchTimeoutMs: 2000 });
  const policy = examplePolicy(jwks.uri);
  await registry.start(policy.issuers);
  snapshot = {
    policy,
    authenticator: new Authenticator(policy, registry),
    decisions: new DecisionCache(),
  };
});
afterAll(async () => {
  registry.close();
  await jwks.close();
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.mocked(readLocations).mockClear();
});

function post(token: string, body: string | Buffer): CheckRequest {
  return {
    attributes: {
      request: {
        http: {
          method: 'POST',
          path: '/api/inventory/transactions',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body,
        },
      },
    },
  };
}

const decided = async (request: CheckRequest): Promise<Checked> => await decide(request, snapshot);
const bigBody = (location: string) =>
  `{"location":"${location}","lines":[${'{"item":"ITEM001","quantity":10},'.repeat(4000)}{}]}`;

describe('the caller is identified before the body is read (no work for strangers)', () => {
  it('a forged token with a large body is token_invalid, and its body is never read', async () => {
    // The issuer's kid and claims, another key's signature.
    const [header, payload] = (await mintToken(key, supportThreadClaims())).split('.');
    const signature = (await mintToken(stranger, supportThreadClaims())).split('.')[2];
    const { decision } = await decided(post(`${header}.${payload}.${signature}`, bigBody('WH01')));
    expect(decision.reason).toBe('token_invalid');
    expect(readLocations).not.toHaveBeenCalled();
  });

  it('an expired token is token_expired before its body is read, even when the body is broken', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await mintToken(key, { ...supportThreadClaims(), iat: now - 120, exp: now - 60 });
    const { decision } = await decided(post(expired, Buffer.from([0x7b, 0xff])));
    expect(decision.reason).toBe('token_expired');
    expect(readLocations).not.toHaveBeenCalled();
  });

  it('the same large body with a verified token is read, in slices, and allowed', async () => {
    const scan = vi.spyOn(JsonScanner.prototype, 'run');
    const token = await mintToken(key, supportThreadClaims());
    const pending = decide(post(token, bigBody('WH01')), snapshot);
    expect(pending).toBeInstanceOf(Promise);
    const { decision } = await pending;
    expect(decision.reason).toBe('allowed');
    expect(readLocations).toHaveBeenCalledTimes(1);
    // More than one slice of the body scan (the token's own header and payload are scanned once each).
    const bodySlices = scan.mock.contexts.filter(
      (scanner) => (scanner as unknown as { text: string }).text.length > 100_000,
    );
    expect(bodySlices.length).toBeGreaterThan(1);
  });
});

describe('the order of the phases', () => {
  it('permissions decide before locations: a token lacking a scope is scope_missing, even with a body that cannot be read', async () => {
    const writeOnly = await mintToken(key, supportThreadClaims('inventory.write'));
    const { decision } = await decided(post(writeOnly, '{"location":'));
    expect(decision.reason).toBe('scope_missing');
  });

  it('a permitted caller with a body that cannot be read is body_unreadable, never allowed', async () => {
    const token = await mintToken(key, supportThreadClaims());
    for (const body of ['{"location":', Buffer.from('{"location":"WH01","note":"\xff"}', 'latin1')]) {
      expect((await decided(post(token, body))).decision.reason).toBe('body_unreadable');
    }
  });

  it('a repeat is answered from the decision cache, synchronously, by the kept decision (with room for its answer)', async () => {
    const token = await mintToken(key, supportThreadClaims());
    const first = await decided(post(token, '{"location":"WH01"}'));
    const again = decide(post(token, '{"location":"WH01"}'), snapshot);
    expect(again).not.toBeInstanceOf(Promise);
    expect((again as Checked).decision).toBe(first.decision);
    expect((again as Checked).decision.kept).toBeDefined();
  });

  it('a repeat under dry_run is a dry-run deny too: the decision cache keeps the decision as answered', async () => {
    const policy = compile(
      examplePolicyText(jwks.uri).replace('name: inventory\n', 'name: inventory\nmode: dry_run\n'),
    );
    const dryRun: Snapshot = {
      policy,
      authenticator: new Authenticator(policy, registry),
      decisions: new DecisionCache(),
    };
    const token = await mintToken(key, supportThreadClaims('inventory.write'));
    const first = await decide(post(token, '{"location":"WH01"}'), dryRun);
    const again = await decide(post(token, '{"location":"WH01"}'), dryRun);
    expect(again.decision).toBe(first.decision);
    expect([first.decision.reason, first.decision.dryRun, again.decision.dryRun]).toEqual([
      'scope_missing',
      true,
      true,
    ]);
  });

  it('every decision under dry_run says so, an allow too; under enforce none does', async () => {
    const dryRunPolicy = compile(
      examplePolicyText(jwks.uri).replace('name: inventory\n', 'name: inventory\nmode: dry_run\n'),
    );
    const dryRun: Snapshot = {
      policy: dryRunPolicy,
      authenticator: new Authenticator(dryRunPolicy, registry),
    };
    const reader = await mintToken(key, supportThreadClaims('inventory.read'));
    const read = (token: string | undefined) =>
      checkRequestFor({
        method: 'GET',
        path: '/api/inventory/transactions',
        headers: [],
        ...(token !== undefined && { token }),
      });
    const seen = async (request: CheckRequest, under: Snapshot) => {
      const { decision } = await decide(request, under);
      return [decision.reason, decision.underDryRun === true, decision.dryRun === true];
    };
    expect(await seen(read(reader), dryRun)).toEqual(['allowed', true, false]);
    expect(await seen(read(undefined), dryRun)).toEqual(['token_missing', true, true]);
    expect(await seen(read(reader), snapshot)).toEqual(['allowed', false, false]);
    expect(await seen(read(undefined), snapshot)).toEqual(['token_missing', false, false]);
  });

  it('says what it read, for a decision record: the identity, and the locations with their source', async () => {
    const token = await mintToken(key, supportThreadClaims('inventory.write'));
    const { gathered } = await decided(post(token, '{"location":"WH03"}'));
    expect(gathered?.identity).toMatchObject({ ok: true, value: { subject: 'svc-inventory-sync' } });
    expect(gathered?.locations).toEqual({
      source: { body: 'location', steps: [{ key: 'location', each: false }] },
      found: { ok: true, value: ['WH03'] },
    });
    expect(gathered?.peer).toBeUndefined();
  });
});

describe('what a Check met on the way, for the Check that asks (its trace span)', () => {
  it('the first time its token is verified now and its decision made (miss, miss); a repeat hits both', async () => {
    const token = await mintToken(key, { ...supportThreadClaims(), jti: 'first-seen-here' });
    const first: CheckStatus = {};
    await decide(post(token, '{"location":"WH01"}'), snapshot, first);
    const again: CheckStatus = {};
    decide(post(token, '{"location":"WH01"}'), snapshot, again);
    expect(first).toEqual({ tokenCache: 'miss', decisionCache: 'miss' });
    expect(again).toEqual({ tokenCache: 'hit', decisionCache: 'hit' });
  });

  it('a cache that was not asked is not named: no token, no lookup', () => {
    const status: CheckStatus = {};
    decide(post('', '{}'), snapshot, status);
    expect(status).toEqual({});
  });
});

describe('the identities a route needs (peers)', () => {
  const ORDERS = 'spiffe://cluster.local/ns/orders/sa/orders-api';
  const REPORTS = 'spiffe://cluster.local/ns/reporting/sa/nightly';
  const reserve = (token: string | undefined, peer: string | undefined, location = 'WH01'): CheckRequest =>
    checkRequestFor({
      method: 'POST',
      path: '/api/inventory/reservations',
      headers: [['content-type', 'application/json']],
      body: JSON.stringify({ location, item: 'ITEM001', quantity: 1 }),
      ...(token !== undefined && { token }),
      ...(peer !== undefined && { peer }),
    });
  const report = (peer: string | undefined, headers: Array<[string, string]> = []): CheckRequest =>
    checkRequestFor({ method: 'GET', path: '/api/inventory/reports/stock', headers, ...(peer && { peer }) });

  it('a peer-only route reads no token: the peer alone decides, and a forwarded header counts for nothing', async () => {
    expect((await decided(report(REPORTS))).decision).toMatchObject({
      reason: 'allowed',
      peer: REPORTS,
      route: 'stock_report',
    });
    expect((await decided(report(REPORTS))).decision.subject).toBeUndefined();
    const forged = [['x-forwarded-client-cert', `By=spiffe://x;URI=${REPORTS}`]] as Array<[string, string]>;
    expect((await decided(report(undefined, forged))).decision).toMatchObject({
      reason: 'peer_missing',
      missing: { peer: null },
    });
    expect((await decided(report('spiffe://cluster.local/ns/elsewhere/sa/x'))).decision.reason).toBe(
      'peer_not_allowed',
    );
  });

  it('token_and_peer: the token first (401s as ever), then the peer, then both hold the permission and location', async () => {
    const writer = await mintToken(key, supportThreadClaims());
    const now = Math.floor(Date.now() / 1000);
    const expired = await mintToken(key, { ...supportThreadClaims(), iat: now - 120, exp: now - 60 });
    expect((await decided(reserve(expired, ORDERS))).decision.reason).toBe('token_expired');
    expect((await decided(reserve(writer, undefined))).decision).toMatchObject({
      reason: 'peer_missing',
      subject: 'svc-inventory-sync',
    });
    expect((await decided(reserve(writer, REPORTS))).decision).toMatchObject({
      reason: 'peer_not_allowed',
      missing: { peer: REPORTS, roles: ['Inventory Transaction Manager'] },
    });
    expect((await decided(reserve(writer, ORDERS))).decision).toMatchObject({
      reason: 'allowed',
      subject: 'svc-inventory-sync',
      peer: ORDERS,
      route: 'reserve_stock',
    });
    // WH02: both may. EU-DE01: the user may (EU-*), the orders service may not.
    expect((await decided(reserve(writer, ORDERS, 'WH02'))).decision.reason).toBe('allowed');
    expect((await decided(reserve(writer, ORDERS, 'EU-DE01'))).decision).toMatchObject({
      reason: 'location_denied',
      missing: { locations: ['EU-DE01'], peer: ORDERS },
    });
    // The user lacks a scope: the token's subject is judged first, whatever the peer.
    const reader = await mintToken(key, supportThreadClaims('inventory.read'));
    expect((await decided(reserve(reader, ORDERS))).decision.reason).toBe('scope_missing');
  });

  it('a kept decision is per peer: the same token through another peer is decided afresh', async () => {
    const writer = await mintToken(key, supportThreadClaims());
    expect((await decided(reserve(writer, ORDERS))).decision.reason).toBe('allowed');
    expect((await decided(reserve(writer, ORDERS))).decision.kept).toBeDefined();
    expect((await decided(reserve(writer, REPORTS))).decision.reason).toBe('peer_not_allowed');
  });
});
