// Identity integrity as properties (issue 16): generated identities, issuers and spellings through the real
// pipeline (src/pipeline.ts with a real Authenticator over real JWKS endpoints), each checked against what the
// README says, never against src/:
//   (a) an identity claim with a control character or whitespace at either end is token_invalid, whatever
//       else the token says, and one without is decided by exactly its name;
//   (b) with two issuers, a subject or client name means only its own issuer's entry: a token from one issuer
//       never gets what the policy gave the other issuer's account of the same name;
//   (c) a location query parameter or header sent under a second spelling is request_malformed.
// Seeded and bounded like properties.test.ts (FC_SEED to reproduce or explore).
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecisionCache } from '../../src/cache/decisions.js';
import { decide, type Snapshot } from '../../src/check/decide.js';
import { Authenticator } from '../../src/identity/authenticate.js';
import { KeyRegistry } from '../../src/identity/key-registry.js';
import { spiffeIdProblem } from '../../src/vocabulary/index.js';
import { checkRequestFor } from '../../src/wire/check-request.js';
import type { CheckRequest } from '../../src/wire/types.js';
import { type JwksServer, startJwksServer } from '../support/jwks-server.js';
import { compile, EXAMPLE_AUDIENCE, EXAMPLE_ISSUER, examplePolicy } from '../support/policies.js';
import { mintToken, newSigningKey, type SigningKey } from '../support/tokens.js';

const SEED = process.env.FC_SEED === undefined ? 0x1d16 : Number(process.env.FC_SEED);
const RUNS = 200;

const registry = new KeyRegistry({ fetchTimeoutMs: 2000 });
const servers: JwksServer[] = [];
afterAll(async () => {
  registry.close();
  await Promise.all(servers.map((s) => s.close()));
});

async function snapshotFor(policyText: string | undefined, keys: SigningKey[]): Promise<Snapshot> {
  const server = await startJwksServer(keys.map((k) => k.publicJwk));
  servers.push(server);
  const policy =
    policyText === undefined
      ? examplePolicy(server.uri)
      : compile(policyText.replaceAll('JWKS_URI', server.uri));
  await registry.start(policy.issuers);
  return { policy, authenticator: new Authenticator(policy, registry), decisions: new DecisionCache() };
}

function get(path: string, token: string, headers: Record<string, string> = {}): CheckRequest {
  return {
    attributes: {
      request: { http: { method: 'GET', path, headers: { ...headers, authorization: `Bearer ${token}` } } },
    },
  };
}

const decisionOf = async (snapshot: Snapshot, request: CheckRequest) =>
  (await decide(request, snapshot)).decision;

// ---- (a) identities a header cannot carry as they are ----------------------------------------------------

/** Characters that no header value carries verbatim: C0, DEL, C1, and (at either end) Unicode whitespace. */
const CONTROL = fc.constantFrom('\u0000', '\t', '\n', '\r', '\u001b', '\u007f', '\u0085', '\u009b');
const WHITESPACE = fc.constantFrom(' ', '\t', '\u00a0', '\u2003', '\u3000', '\u2028', '\ufeff');

/** A name spoiled by a control character anywhere, or whitespace at one end. */
const spoiled = (name: string) =>
  fc.oneof(
    fc.tuple(CONTROL, fc.nat(name.length)).map(([c, at]) => name.slice(0, at) + c + name.slice(at)),
    WHITESPACE.map((w) => `${name}${w}`),
    WHITESPACE.map((w) => `${w}${name}`),
  );

describe('(a) an identity claim is exact or refused', () => {
  let key: SigningKey;
  let snapshot: Snapshot;
  beforeAll(async () => {
    key = await newSigningKey('RS256');
    snapshot = await snapshotFor(undefined, [key]);
  });

  const thread = {
    iss: EXAMPLE_ISSUER,
    aud: EXAMPLE_AUDIENCE,
    sub: 'svc-inventory-sync',
    client_id: 'inventory-sync',
    gty: 'client_credentials',
    scope: 'inventory.read inventory.write',
  };

  it('a spoiled subject, client, grant type, role, location or scope is token_invalid, never decided as a name', async () => {
    const claimArb = fc.oneof(
      spoiled('svc-inventory-sync').map((sub) => ({ sub })),
      // stock-report may not use inventory.write: read as "unlisted", its spoiled name would skip that rule.
      spoiled('stock-report').map((client_id) => ({ client_id })),
      spoiled('inventory-sync').map((client_id) => ({ client_id })),
      spoiled('client_credentials').map((gty) => ({ gty })),
      spoiled('Inventory Data Reader').map((role) => ({ roles: [role] })),
      spoiled('WH01').map((location) => ({ locations: [location] })),
      spoiled('inventory.read').map((scope) => ({ scope: undefined, scp: [scope] })),
    );
    await fc.assert(
      fc.asyncProperty(claimArb, async (changed) => {
        const token = await mintToken(key, { ...thread, ...changed });
        const decision = await decisionOf(snapshot, get('/api/inventory/transactions', token));
        expect(decision.reason).toBe('token_invalid');
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('printable names, non-ASCII included, are decided by exactly that name', async () => {
    const printable = fc
      .string({
        unit: fc.constantFrom('a', 'z', '-', '.', 'é', 'ß', 'ü', '中', ' '),
        minLength: 1,
        maxLength: 12,
      })
      .filter((name) => name.trim() === name && name !== '');
    await fc.assert(
      fc.asyncProperty(printable, async (sub) => {
        const token = await mintToken(key, { ...thread, sub, roles: ['Inventory Data Reader'] });
        const decision = await decisionOf(snapshot, get('/api/inventory/transactions', token));
        expect(decision).toMatchObject({ reason: 'allowed', subject: sub, issuer: EXAMPLE_ISSUER });
      }),
      { seed: SEED, numRuns: 50 },
    );
  });
});

// ---- (b) two issuers, one name -----------------------------------------------------------------------------

const PARTNER = 'https://partner-idp.example/';
const NAMES = ['svc-inventory-sync', 'svc-stock-report', 'svc-partner', 'josé'];

describe('(b) subjects and clients belong to an issuer', () => {
  let ours: SigningKey;
  let partners: SigningKey;
  beforeAll(async () => {
    ours = await newSigningKey('RS256');
    partners = await newSigningKey('ES256');
  });

  /** Which issuer's entries give a name its roles (the name is the entry's `subject`). */
  const assignments = fc.array(fc.tuple(fc.constantFrom(...NAMES), fc.constantFrom('ours', 'partner')), {
    maxLength: 6,
  });

  it("a token never gets what the policy gave another issuer's account of the same name", async () => {
    await fc.assert(
      fc.asyncProperty(
        assignments,
        fc.constantFrom(...NAMES),
        fc.constantFrom('ours' as const, 'partner' as const),
        async (entries, sub, from) => {
          const unique = [
            ...new Map(entries.map(([name, owner]) => [`${owner}/${name}`, { name, owner }])).values(),
          ];
          const issuerOf = (owner: string) => (owner === 'ours' ? EXAMPLE_ISSUER : PARTNER);
          const subjects = unique
            .map(
              ({ name, owner }, i) =>
                `  entry-${i}: { issuer: ${issuerOf(owner)}, subject: ${JSON.stringify(name)}, roles: [Reader], locations: [WH01] }`,
            )
            .join('\n');
          const snapshot = await snapshotFor(twoIssuerPolicy(subjects), [ours, partners]);
          const token = await mintToken(from === 'ours' ? ours : partners, {
            iss: issuerOf(from),
            aud: EXAMPLE_AUDIENCE,
            sub,
            client_id: 'app',
            scope: 'inventory.read',
          });
          const decision = await decisionOf(snapshot, get('/api/inventory/locations/WH01/items', token));
          // The README's rule, directly: roles and locations come from the entry for (token issuer, sub) only.
          const own = unique.some(({ name, owner }) => name === sub && owner === from);
          expect(decision.reason).toBe(own ? 'allowed' : 'role_missing');
          expect(decision.issuer).toBe(issuerOf(from));
        },
      ),
      { seed: SEED, numRuns: 60 },
    );
  });
});

function twoIssuerPolicy(subjects: string): string {
  return `version: 1
authentication:
  unlistedClients: allow
  issuers:
    - issuer: ${EXAMPLE_ISSUER}
      audiences: [${EXAMPLE_AUDIENCE}]
      jwks: { uri: "JWKS_URI" }
      algorithms: [RS256]
    - issuer: ${PARTNER}
      audiences: [${EXAMPLE_AUDIENCE}]
      jwks: { uri: "JWKS_URI" }
      algorithms: [ES256]
scopes:
  inventory.read: [READ]
roles:
  Reader: [READ]
subjects:
${subjects || '  {}'}
routes:
  - name: list_location_items
    method: GET
    path: /api/inventory/locations/{location}/items
    permissions: [READ]
    location: { path: location }
`;
}

// ---- (c) a second spelling of a location source ------------------------------------------------------------

describe('(c) a location sent under a second spelling is refused', () => {
  let key: SigningKey;
  let snapshot: Snapshot;
  let token: string;
  beforeAll(async () => {
    key = await newSigningKey('RS256');
    snapshot = await snapshotFor(undefined, [key]);
    token = await mintToken(key, {
      iss: EXAMPLE_ISSUER,
      aud: EXAMPLE_AUDIENCE,
      sub: 'svc-inventory-sync',
      client_id: 'inventory-sync',
      gty: 'client_credentials',
      scope: 'inventory.read',
    });
  });

  /** `location` as some framework binds it too: another case, an array suffix, full-width letters. */
  const querySpelling = fc
    .tuple(
      fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }),
      fc.constantFrom('', '[]', '[0]', '%5B%5D', '[x]'),
      fc.boolean(),
    )
    .map(([upper, suffix, wide]) => {
      const letters = [...'location'].map((ch, i) => (upper[i] ? ch.toUpperCase() : ch));
      if (wide) letters[0] = encodeURIComponent(String.fromCodePoint(0xff41 + 'l'.charCodeAt(0) - 0x61));
      return letters.join('') + suffix;
    })
    .filter((spelling) => spelling !== 'location');

  it('a query with location and a look-alike of it is request_malformed, whatever the values', async () => {
    await fc.assert(
      fc.asyncProperty(querySpelling, fc.boolean(), async (twin, twinFirst) => {
        const parts = ['location=WH01', `${twin}=WH99`];
        const query = (twinFirst ? parts.reverse() : parts).join('&');
        const decision = await decisionOf(snapshot, get(`/api/inventory/stock?${query}`, token));
        expect(decision.reason).toBe('request_malformed');
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it('x-location with a look-alike header (case and _ for -) is request_malformed; repeats of one name are read', async () => {
    const headerSpelling = fc
      .array(fc.constantFrom('-', '_'), { minLength: 1, maxLength: 1 })
      .chain(([sep]) => fc.constantFrom(`x${sep}location`, `X${sep}Location`, `x${sep}LOCATION`))
      .filter((name) => name.toLowerCase() !== 'x-location');
    await fc.assert(
      fc.asyncProperty(headerSpelling, async (twin) => {
        const request = get('/api/inventory/stock/summary', token, { 'x-location': 'WH01', [twin]: 'WH99' });
        expect((await decisionOf(snapshot, request)).reason).toBe('request_malformed');
      }),
      { seed: SEED, numRuns: 50 },
    );
    const repeated = get('/api/inventory/stock?location=WH01&location=WH02', token);
    expect((await decisionOf(snapshot, repeated)).reason).toBe('allowed');
  });
});

// ---- (d) a peer is exactly a SPIFFE ID the policy lists ----------------------------------------------------

describe('(d) a calling workload is exactly a listed SPIFFE ID, or one under a listed …/*', () => {
  let snapshot: Snapshot;
  beforeAll(async () => {
    snapshot = await snapshotFor(undefined, [await newSigningKey('RS256')]);
  });

  // The example lists `spiffe://cluster.local/ns/reporting/sa/*` (readers) for the peer-only route
  // stock_report; anything near it is generated: other spellings of the scheme and trust domain, and last
  // segments from an alphabet that includes every character a look-alike needs.
  const prefix = fc.constantFrom(
    'spiffe://cluster.local/ns/reporting/sa/',
    'spiffe://cluster.local/ns/reporting/sa/x/',
    'spiffe://cluster.local/ns/reporting/',
    'SPIFFE://cluster.local/ns/reporting/sa/',
    'spiffe://Cluster.local/ns/reporting/sa/',
    'spiffe://cluster.local.evil/ns/reporting/sa/',
    'spiffe://cluster.local:8443/ns/reporting/sa/',
    'spiffe://cluster.local//ns/reporting/sa/',
  );
  const segment = fc.string({
    unit: fc.constantFrom(...'aZ09.-_/%*?#@: \u0000\u00e9'.split('')),
    maxLength: 12,
  });
  const READER = /^spiffe:\/\/cluster\.local\/ns\/reporting\/sa\/[A-Za-z0-9._-]+$/;

  it('allowed exactly when the ID is a reporting workload: valid, and one segment under the …/*', async () => {
    await fc.assert(
      fc.asyncProperty(prefix, segment, async (start, rest) => {
        const id = `${start}${rest}`;
        const request = checkRequestFor({
          method: 'GET',
          path: '/api/inventory/reports/stock',
          headers: [],
          peer: id,
        });
        const decision = await decisionOf(snapshot, request);
        const expected = READER.test(id) && spiffeIdProblem(id) === undefined;
        expect(decision.reason, id).toBe(expected ? 'allowed' : 'peer_not_allowed');
        if (expected) expect(decision.peer).toBe(id);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });
});
