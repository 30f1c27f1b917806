// Replay (src/review/replay.ts): a decision record re-decided under a candidate policy gives what a fresh
// Check of the same request under that candidate gives. The records are the ones the Check path writes
// (handleCheck with a record sink), read back from their JSON line as `scopegate replay` reads them.
// The property: for random policies P and P′ and random requests, replaying the record P produced against P′
// equals a fresh check against P′ (decision, reason, missing), or says it cannot be replayed, and then only for
// a reason the record cannot answer (the candidate's route reads a location source or a token the record
// does not hold, or verifies tokens differently). Against P itself every record replays to what it recorded.
// Identity runs on Envoy's jwt_authn payload (no signatures), so every identity reason but the key ones is
// exercised synchronously; the random requests also carry broken paths, missing tokens, bad claims and peers.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { decide, type Snapshot } from '../../../src/check/decide.js';
import { handleCheck } from '../../../src/check/handle.js';
import { Authenticator } from '../../../src/identity/authenticate.js';
import type { KeyRegistry } from '../../../src/identity/key-registry.js';
import { PolicySet } from '../../../src/policy/set.js';
import type { CompiledPolicy } from '../../../src/policy/types.js';
import { tokenBasis } from '../../../src/record/basis.js';
import { readRecordLine } from '../../../src/record/read.js';
import type { DecisionRecord } from '../../../src/record/types.js';
import { replayRecord } from '../../../src/review/replay.js';
import { createLogger } from '../../../src/telemetry/log.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { type Decision, decisionLabel, REASON_CODES } from '../../../src/vocabulary/index.js';
import { checkRequestFor } from '../../../src/wire/check-request.js';
import type { CheckRequest, ProtoValue } from '../../../src/wire/types.js';
import { compile, examplePolicyText } from '../../support/policies.js';

const ISSUER = 'https://idp.example.com/';
const PERMISSIONS = ['P_READ', 'P_WRITE', 'P_ADMIN'];
const SCOPES = ['read', 'write', 'admin'];
const ROLES = ['Reader', 'Writer'];
const CLIENTS = ['app-a', 'app-b'];
const SUBJECTS = ['svc-a', 'svc-b', 'svc-c'];
const PEERS = ['spiffe://td/ns/a/sa/api', 'spiffe://td/ns/b/sa/*'];
const LOCATIONS = ['WH01', 'WH02', 'WH03', 'EU-1'];
const GRANTS = ['WH01', 'WH02', 'EU-*', '*'];

const some = <T>(items: readonly T[], min = 0) =>
  fc.subarray([...items], { minLength: min }).map((xs) => [...xs]);
const maybe = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const source = fc.constantFrom(
  undefined,
  { body: 'location' },
  { query: 'location' },
  { header: 'x-location' },
);

/** A random policy over a small universe (names collide often, so grants and routes matter). */
const policyDoc = fc
  .record({
    mode: fc.constantFrom('enforce', 'enforce', 'dry_run'),
    identity: fc.constantFrom('token', 'token', 'token', 'peer', 'token_and_peer'),
    audiences: fc.constantFrom(['aud-1'], ['aud-1', 'aud-2']),
    unlistedClients: fc.constantFrom('deny', 'allow'),
    scopes: fc.tuple(...SCOPES.map(() => some(PERMISSIONS, 1))),
    roles: maybe(fc.tuple(...ROLES.map(() => some(PERMISSIONS, 1)))),
    clients: maybe(
      fc.tuple(
        ...CLIENTS.map(() =>
          maybe(
            fc.record({
              scopes: some(SCOPES, 1),
              grantTypes: maybe(some(['client_credentials', 'password'], 1)),
            }),
          ),
        ),
      ),
    ),
    subjects: fc.tuple(
      ...SUBJECTS.map(() => maybe(fc.record({ roles: some(ROLES), locations: some(GRANTS) }))),
    ),
    peers: fc.tuple(...PEERS.map(() => maybe(fc.record({ roles: some(ROLES), locations: some(GRANTS) })))),
    routes: fc.tuple(
      fc.record({
        permissions: some(PERMISSIONS, 1),
        mode: maybe(fc.constantFrom('enforce', 'dry_run')),
        identity: maybe(fc.constantFrom('token', 'peer', 'token_and_peer')),
      }),
      fc.record({
        permissions: some(PERMISSIONS, 1),
        location: source,
        mode: maybe(fc.constantFrom('enforce', 'dry_run')),
      }),
      fc.record({
        permissions: some(PERMISSIONS, 1),
        path: fc.constantFrom('/locations/{location}/items', '/locations/{id}/items'),
      }),
    ),
    reversed: fc.boolean(),
  })
  .map((p) => {
    const entries = <T>(names: readonly string[], values: ReadonlyArray<T | undefined>) =>
      Object.fromEntries(names.flatMap((name, i) => (values[i] === undefined ? [] : [[name, values[i]]])));
    const [list, write, located] = p.routes;
    const routes = [
      { name: 'list_items', method: 'GET', path: '/items', ...list },
      {
        name: 'write_item',
        method: ['POST', 'PUT'],
        path: '/items',
        ...write,
        ...(write.location ? {} : { location: undefined }),
      },
      {
        name: 'location_items',
        method: 'GET',
        path: located.path,
        permissions: located.permissions,
        location: { path: located.path.includes('{id}') ? 'id' : 'location' },
      },
    ].map((r) => JSON.parse(JSON.stringify(r)));
    const roles = p.roles && entries(ROLES, p.roles);
    const peers = roles ? entries(PEERS, p.peers) : {};
    // A route a peer opens needs a peers section (and peers need roles).
    const peerless = Object.keys(peers).length === 0;
    if (peerless) for (const route of routes) delete route.identity;
    return {
      version: 1,
      name: 'candidate',
      mode: p.mode,
      identity: peerless ? 'token' : p.identity,
      authentication: {
        envoyJwtAuthn: { metadataKey: 'jwt_payload' },
        unlistedClients: p.unlistedClients,
        issuers: [
          {
            issuer: ISSUER,
            audiences: p.audiences,
            jwks: { uri: 'http://127.0.0.1:9/jwks' },
            algorithms: ['RS256'],
          },
        ],
      },
      // `everything` makes every permission known, whatever the random scopes grant.
      scopes: { ...entries(SCOPES, p.scopes), everything: PERMISSIONS },
      ...(roles && { roles }),
      ...(p.clients && { clients: entries(CLIENTS, p.clients) }),
      subjects: roles
        ? entries(SUBJECTS, p.subjects)
        : entries(
            SUBJECTS,
            p.subjects.map((s) => s && { locations: s.locations }),
          ),
      ...(Object.keys(peers).length > 0 && { peers }),
      routes: p.reversed ? routes.reverse() : routes,
    };
  });

/** A JSON value as Envoy's metadata Struct carries it. */
function protoValue(value: unknown): ProtoValue {
  if (typeof value === 'string') return { string_value: value };
  if (typeof value === 'number') return { number_value: value };
  if (Array.isArray(value)) return { list_value: { values: value.map(protoValue) } };
  return { null_value: 'NULL_VALUE' } as ProtoValue;
}

const now = () => Math.floor(Date.now() / 1000);
const claims = fc.record({
  iss: fc.constantFrom(ISSUER, ISSUER, ISSUER, 'https://elsewhere/'),
  aud: fc.constantFrom('aud-1', 'aud-1', 'aud-2'),
  sub: fc.constantFrom(...SUBJECTS),
  client_id: maybe(fc.constantFrom(...CLIENTS, 'app-unlisted')),
  gty: maybe(fc.constantFrom('client_credentials', 'password')),
  scope: fc.oneof(
    some(SCOPES).map((s) => s.join(' ')),
    fc.constant(7),
  ),
  roles: maybe(some(ROLES)),
  locations: maybe(some(GRANTS)),
  expired: fc.boolean().map((b) => b && Math.random() < 0.2),
});

/** A random request, near what the random policies route: sometimes broken, sometimes without a token. */
const request = fc
  .record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
    path: fc.constantFrom(
      '/items',
      '/items',
      '/locations/WH01/items',
      '/locations/WH03/items',
      '/locations/EU-1/items',
      '/elsewhere',
      '/items/../x',
    ),
    location: maybe(fc.constantFrom(...LOCATIONS)),
    where: some(['body', 'query', 'header']),
    badBody: fc.boolean().map((b) => b && Math.random() < 0.1),
    claims: maybe(claims),
    junkToken: fc.boolean().map((b) => b && Math.random() < 0.1),
    peer: maybe(
      fc.constantFrom(PEERS[0]!, 'spiffe://td/ns/b/sa/batch', 'spiffe://td/ns/c/sa/x', 'not a spiffe id'),
    ),
  })
  .map((r): CheckRequest => {
    const query = r.location && r.where.includes('query') ? `?location=${r.location}` : '';
    const headers: Array<[string, string]> = [['content-type', 'application/json']];
    if (r.location && r.where.includes('header')) headers.push(['x-location', r.location]);
    const body = r.badBody
      ? '{"location":'
      : r.location && r.where.includes('body')
        ? JSON.stringify({ location: r.location })
        : undefined;
    const check = checkRequestFor({
      method: r.method,
      path: `${r.path}${query}`,
      headers,
      ...(body !== undefined && { body }),
      // Beside Envoy's payload (which wins); alone it would reach key stores this test does not have.
      ...(r.junkToken && r.claims && { token: 'junk' }),
      ...(r.peer !== undefined && { peer: r.peer }),
    });
    if (r.claims) {
      const { expired, ...payload } = r.claims;
      const fields: Record<string, ProtoValue> = {};
      for (const [key, value] of Object.entries({ ...payload, exp: now() + (expired ? -600 : 600) })) {
        if (value !== undefined) fields[key] = protoValue(value);
      }
      check.attributes!.metadata_context = {
        filter_metadata: {
          'envoy.filters.http.jwt_authn': { fields: { jwt_payload: { struct_value: { fields } } } },
        },
      };
    }
    return check;
  });

/** No key is ever fetched: identity comes from Envoy's payload (or a junk token no key could verify). */
const NO_KEYS = { storeFor: () => ({}) } as unknown as KeyRegistry;

function snapshotOf(policy: CompiledPolicy): Snapshot {
  return { policy, authenticator: new Authenticator(policy, NO_KEYS, { tokenCacheSize: 0 }) };
}

/** The record the Check path writes for this request under this policy, as a JSON line read back. */
async function recordFor(request: CheckRequest, policy: CompiledPolicy): Promise<DecisionRecord> {
  const written: DecisionRecord[] = [];
  const snapshot = snapshotOf(policy);
  await handleCheck(request, {
    current: () => new PolicySet([{ owns: policy.owns, value: snapshot }], true),
    metrics: new Metrics({ defaultMetrics: false }),
    log: createLogger('silent'),
    records: {
      sample: () => 1,
      write: (record) => void written.push(record),
      failed: (err) => {
        throw err;
      },
    },
  });
  expect(written).toHaveLength(1);
  const read = readRecordLine(JSON.stringify(written[0]));
  if (!read.ok) throw new Error(`${read.problem}: ${read.detail}: ${JSON.stringify(written[0])}`);
  return read.record;
}

const outcome = (d: Pick<Decision, 'reason' | 'dryRun' | 'missing'>) => ({
  decision: decisionLabel(d),
  reason: d.reason,
  missing: d.missing ?? null,
});
const recorded = (r: DecisionRecord) => ({
  decision: r.decision,
  reason: r.reason,
  missing: r.missing ?? null,
});
const only = (policy: CompiledPolicy) => new PolicySet([{ owns: policy.owns, value: policy }], true);

describe('replay: the property', () => {
  it('replaying the record P wrote against P′ is a fresh check against P′, or says why it cannot be', async () => {
    const tally = { runs: 0, replayed: 0, cannot: 0, reasons: new Set<string>() };
    await fc.assert(
      fc.asyncProperty(policyDoc, policyDoc, request, async (docP, docQ, check) => {
        const p = compile(stringify(docP));
        const q = compile(stringify(docQ));
        const record = await recordFor(check, p);
        tally.runs++;
        tally.reasons.add(record.reason);
        // Against P itself: what was recorded, always.
        const same = replayRecord(record, only(p));
        expect(same.ok ? outcome(same.decision) : same.why).toEqual(recorded(record));
        // Against P′: a fresh check's answer, or an honest "cannot".
        const replayed = replayRecord(record, only(q));
        if (!replayed.ok) {
          tally.cannot++;
          expect(replayed.why).toMatch(
            /reads the token, and the record has none|verifies tokens|reads locations from/,
          );
          return;
        }
        tally.replayed++;
        const fresh = (await decide(check, snapshotOf(q))).decision;
        expect(outcome(replayed.decision)).toEqual(outcome(fresh));
        expect(replayed.decision.route).toBe(fresh.route);
      }),
      {
        numRuns: Number(process.env.FC_RUNS ?? 400),
        ...(process.env.FC_SEED && { seed: Number(process.env.FC_SEED) }),
      },
    );
    if (process.env.FC_VERBOSE) console.log(tally);
    // Not vacuous: most records replay, and many reasons were seen.
    expect(tally.replayed).toBeGreaterThan(tally.runs * 0.5);
    expect(tally.reasons.size).toBeGreaterThanOrEqual(10);
    expect(tally.reasons).not.toContain('internal_error');
  });
});

describe('replay: records of every reason in the table', () => {
  const example = compile(examplePolicyText('https://idp.example.com/jwks'));
  const EXAMPLE_ISS = 'https://dev-issuer.scopegate.local/';
  const viaEnvoy = (call: Parameters<typeof checkRequestFor>[0], payload?: Record<string, unknown>) => {
    const check = checkRequestFor(call);
    if (payload) {
      const fields: Record<string, ProtoValue> = {};
      for (const [key, value] of Object.entries(payload)) fields[key] = protoValue(value);
      check.attributes!.metadata_context = {
        filter_metadata: {
          'envoy.filters.http.jwt_authn': { fields: { jwt_payload: { struct_value: { fields } } } },
        },
      };
    }
    return check;
  };
  const sync = (scope: string, more: Record<string, unknown> = {}) => ({
    iss: EXAMPLE_ISS,
    aud: 'https://gateway.example.com',
    sub: 'svc-inventory-sync',
    client_id: 'inventory-sync',
    gty: 'client_credentials',
    scope,
    exp: now() + 600,
    ...more,
  });
  const post = (location: string | undefined, body?: string) => ({
    method: 'POST',
    path: '/api/inventory/transactions',
    headers: [['content-type', 'application/json']] as Array<[string, string]>,
    body: body ?? JSON.stringify(location === undefined ? { item: 'I' } : { location }),
  });
  const GET = { method: 'GET', path: '/api/inventory/transactions', headers: [] };
  const ORDERS = 'spiffe://cluster.local/ns/orders/sa/orders-api';
  const requests: Array<[string, CheckRequest]> = [
    ['allowed', viaEnvoy(GET, sync('inventory.read'))],
    ['token_missing', viaEnvoy(GET)],
    ['request_malformed', viaEnvoy({ ...GET, path: '/api/%2e%2e/x' }, sync('inventory.read'))],
    ['token_invalid', viaEnvoy(GET, sync('inventory.read', { exp: 'soon' }))],
    ['token_expired', viaEnvoy(GET, sync('inventory.read', { exp: now() - 600 }))],
    ['issuer_untrusted', viaEnvoy(GET, sync('inventory.read', { iss: 'https://elsewhere/' }))],
    ['audience_mismatch', viaEnvoy(GET, sync('inventory.read', { aud: 'other' }))],
    ['scope_missing', viaEnvoy(post('WH01'), sync('inventory.write'))],
    [
      'client_scope_not_allowed',
      viaEnvoy(
        post('WH01'),
        sync('inventory.read inventory.write', { client_id: 'stock-report', sub: 'svc-stock-report' }),
      ),
    ],
    ['client_unknown', viaEnvoy(GET, sync('inventory.read', { client_id: 'nobody' }))],
    ['grant_type_not_allowed', viaEnvoy(GET, sync('inventory.read', { gty: 'password' }))],
    [
      'role_missing',
      viaEnvoy(
        post('WH01'),
        sync('inventory.read inventory.write', { sub: 'svc-new-integration', client_id: 'new-integration' }),
      ),
    ],
    ['peer_missing', viaEnvoy({ method: 'GET', path: '/api/inventory/reports/stock', headers: [] })],
    [
      'peer_not_allowed',
      viaEnvoy({
        method: 'GET',
        path: '/api/inventory/reports/stock',
        headers: [],
        peer: 'spiffe://cluster.local/ns/x/sa/y',
      }),
    ],
    ['location_denied', viaEnvoy(post('WH03'), sync('inventory.read inventory.write'))],
    ['location_missing', viaEnvoy(post(undefined), sync('inventory.read inventory.write'))],
    ['body_unreadable', viaEnvoy(post('WH01', '{"location":'), sync('inventory.read inventory.write'))],
    ['route_unknown', viaEnvoy({ ...GET, method: 'DELETE' }, sync('inventory.read'))],
    [
      'allowed',
      viaEnvoy(
        { ...post('WH01'), path: '/api/inventory/reservations', peer: ORDERS },
        sync('inventory.read inventory.write'),
      ),
    ],
  ];

  it('each replays to what it recorded under the same policy; internal_error is re-decided, not reproduced', async () => {
    const records: DecisionRecord[] = [];
    for (const [reason, check] of requests) {
      const record = await recordFor(check, example);
      expect(record.reason, reason).toBe(reason);
      records.push(record);
    }
    // Decided by the key stores, which a record stands in for: the token's outcome as recorded.
    const base = records[0]!;
    const refused = (reason: 'key_unknown' | 'keys_unavailable' | 'token_not_yet_valid'): DecisionRecord => ({
      ...base,
      token: { basis: tokenBasis(example), reason, detail: reason },
      decision: 'deny',
      reason,
      route: 'list_transactions',
    });
    records.push(refused('key_unknown'), refused('keys_unavailable'), refused('token_not_yet_valid'));
    // No policy owned the request: a set whose policies own other hosts.
    const hosted = compile(
      examplePolicyText('https://idp.example.com/jwks').replace('match:\n', 'match:\n  default: false\n'),
    );
    const owned = new PolicySet([{ owns: hosted.owns, value: hosted }]);
    const unowned = await (async () => {
      const written: DecisionRecord[] = [];
      const snapshot = snapshotOf(hosted);
      await handleCheck(viaEnvoy({ ...GET, host: 'unknown.example.com' }, sync('inventory.read')), {
        current: () => new PolicySet([{ owns: hosted.owns, value: snapshot }]),
        metrics: new Metrics({ defaultMetrics: false }),
        log: createLogger('silent'),
        records: { sample: () => 1, write: (r) => void written.push(r), failed: () => {} },
      });
      return written[0]!;
    })();
    expect(unowned.reason).toBe('policy_unknown');
    expect(replayRecord(unowned, owned)).toMatchObject({ ok: true, decision: { reason: 'policy_unknown' } });
    // A fault is not a decision the policy made: replay decides the inputs the record holds.
    const fault: DecisionRecord = { ...records[0]!, reason: 'internal_error', decision: 'deny' };
    expect(replayRecord(fault, only(example))).toMatchObject({ ok: true, decision: { reason: 'allowed' } });

    const covered = new Set([...records.map((r) => r.reason), 'policy_unknown', 'internal_error']);
    expect([...covered].sort()).toEqual([...REASON_CODES].sort());
    for (const record of records) {
      const replayed = replayRecord(record, only(example));
      expect(replayed.ok ? outcome(replayed.decision) : replayed.why, record.reason).toEqual(
        recorded(record),
      );
    }
  });

  it('a record from an HTTP door is chosen for as that door would: a set it refuses is policy_unknown', async () => {
    // The example claims hosts and a destination principal: over gRPC its host chooses it, over HTTP the set
    // is refused whole (check/choose.ts), since the destination it chooses by cannot come through that door.
    const set = new PolicySet([{ owns: example.owns, value: example }]);
    const allowed = await recordFor(viaEnvoy(GET, sync('inventory.read')), example);
    const keyed = { ...allowed, policy_keys: { host: 'inventory.example.com' } };
    expect(replayRecord({ ...keyed, transport: 'grpc' }, set)).toMatchObject({
      decision: { reason: 'allowed' },
    });
    expect(replayRecord(keyed, set)).toMatchObject({ decision: { reason: 'allowed' } });
    for (const transport of ['http', 'forward_auth'] as const)
      expect(replayRecord({ ...keyed, transport }, set)).toMatchObject({
        ok: true,
        decision: { reason: 'policy_unknown', detail: expect.stringMatching(/destination principal/) },
      });
  });
});
