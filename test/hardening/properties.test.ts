// Property-based hardening (issue 7, item 2): thousands of generated CheckRequests, most of them one or two
// hostile changes away from a request the support thread's service account really sends, run through the
// real `answerCheck` (and a share of them over real gRPC) against the example policy and a real key set
// served over HTTP. Invariants:
//   (a) never an allow unless an independent model of the policy (./oracle.ts, written from the README's
//       rules, not from src/) says a valid credential grants every permission and location of the route;
//   (b) never a thrown error or rejected promise, and never a hang;
//   (c) always a CheckResponse, never a gRPC error;
//   (d) a deny always carries a reason from the REASONS table, with the status, gRPC code and challenge the
//       table gives it.
// Runs are bounded and seeded (a fixed seed by default, so CI is deterministic): a failure prints the seed and
// path; rerun with FC_SEED=<seed> to reproduce, or try other seeds to explore. FC_VERBOSE=1 prints the tally.
import { createHmac, constants as cryptoConstants, KeyObject, sign, type webcrypto } from 'node:crypto';
import fc from 'fast-check';
import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckDeps } from '../../src/check/handle.js';
import { answerCheck } from '../../src/server/grpc.js';
import { createLogger } from '../../src/telemetry/log.js';
import { isReason, REASONS } from '../../src/vocabulary/index.js';
import { httpStatusNumber, type ReceivedCheckResponse } from '../../src/wire/proto.js';
import type { CheckRequest, HeaderValue, ProtoStruct, ProtoValue } from '../../src/wire/types.js';
import { EXAMPLE_AUDIENCE, EXAMPLE_ISSUER, examplePolicyText } from '../support/policies.js';
import { type Harness, onlySnapshot, setOf, startHarness } from '../support/scopegate.js';
import { b64url, newSigningKey, type SigningKey } from '../support/tokens.js';
import { mayAllow, policyData } from './oracle.js';

const SEED = process.env.FC_SEED === undefined ? 0x5c09e : Number(process.env.FC_SEED);
const RUNS = { hostile: 1000, wellFormed: 500, overTheWire: 300 } as const;
/** Longest any one check may take before it counts as a hang (the machine is shared and busy). */
const HANG_MS = 5_000;

const POLICY = policyData(examplePolicyText());

let h: Harness;
let deps: CheckDeps;
let rogue: SigningKey;
let realPrivate: KeyObject;
let roguePrivate: KeyObject;

beforeAll(async () => {
  h = await startHarness();
  deps = { current: h.running.current, metrics: h.metrics, log: createLogger('silent') };
  rogue = await newSigningKey('RS256');
  // Node's own signer, not jose: tokens are built byte for byte, including ones no library would produce.
  realPrivate = KeyObject.from(h.key.privateKey as webcrypto.CryptoKey);
  roguePrivate = KeyObject.from(rogue.privateKey as webcrypto.CryptoKey);
});
afterAll(async () => h?.close());

// ---------------------------------------------------------------------------------------------------------
// What a generated request is made of: plain data, turned into a CheckRequest (and a token) at run time so
// time claims are relative to the moment of the check.

const ABSENT = 'ABSENT' as const;
type Maybe<T> = T | typeof ABSENT;
/** A time claim: seconds from now, or a literal value of whatever type. */
type Time = { rel: number } | { literal: unknown } | typeof ABSENT;

interface TokenSpec {
  alg: string;
  kid: Maybe<string>;
  typ: Maybe<string>;
  extraHeader: Record<string, unknown>;
  signer: 'real' | 'rogue' | 'hmac-with-public-key';
  claims: Record<string, unknown>;
  times: { exp: Time; nbf: Time; iat: Time };
  mutation: Mutation;
}

type Mutation =
  | { kind: 'none' }
  | { kind: 'flip'; segment: number; at: number; char: string }
  | { kind: 'segments'; count: number }
  | { kind: 'pad' }
  | { kind: 'whitespace'; at: number }
  | { kind: 'truncate'; cut: number }
  | { kind: 'resign-claims'; claims: Record<string, unknown> }
  | { kind: 'huge'; bytes: number };

type Placement =
  | 'header'
  | 'header_map'
  | 'header_map_raw'
  | 'lowercase-scheme'
  | 'two-spaces'
  | 'tab'
  | 'joined-twice'
  | 'two-entries'
  | 'also-in-query'
  | 'query-only'
  | 'none'
  | 'empty'
  | 'basic';

interface RequestSpec {
  method: string;
  pseudoMethod: 'same' | 'none' | 'other';
  path: string;
  pseudoPath: 'same' | 'none' | 'other';
  headersAs: 'map' | 'raw';
  extraHeaders: Array<[string, string]>;
  contentType: Maybe<string>;
  partial: Maybe<string>;
  body: Maybe<string | { bytes: number[] }>;
  bodyAs: 'body' | 'raw_body';
  token: TokenSpec;
  placement: Placement;
  metadata:
    | { kind: 'none' }
    | { kind: 'other' }
    | { kind: 'jwt_authn'; claims: Record<string, unknown>; exp: Time }
    | { kind: 'jwt_authn_scalar' };
  shape: 'whole' | 'no-attributes' | 'no-request' | 'no-http' | 'empty-http';
}

// ---------------------------------------------------------------------------------------------------------
// Arbitraries. Each field is usually what the thread's service account sends, sometimes something hostile,
// so that combinations of one or two hostile changes are common and plain allows still happen.

const weighted = <T>(usual: fc.Arbitrary<T>, hostile: fc.Arbitrary<T>, usualWeight = 9) =>
  fc.oneof({ weight: usualWeight, arbitrary: usual }, { weight: 1, arbitrary: hostile });
const odd = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.constant(null),
  fc.constant({}),
  fc.boolean(),
  fc.string({ maxLength: 6 }),
);

const SUBJECTS = ['svc-inventory-sync', 'svc-stock-report', 'svc-new-integration', 'svc-unknown'];
const CLIENTS = ['inventory-sync', 'stock-report', 'new-integration', 'rogue-client'];
const SCOPES = ['inventory.read', 'inventory.write', 'inventory.admin'];
const ROLES = ['Inventory Transaction Manager', 'Inventory Data Reader', 'Auditor'];
const LOCATION_GRANTS = ['WH01', 'WH03', '*', 'EU-*', 'W*1', '', 'EU-DE1'];
const LOCATIONS = ['WH01', 'WH02', 'WH03', 'EU-DE1', 'EU-', 'eu-de1', 'XX9'];
const HOSTILE_LOCATIONS = [
  '*',
  'WH*',
  'WH01 ',
  'W H',
  '',
  'WH01,WH03',
  '\u0000',
  'WH01\u2028',
  'x'.repeat(300),
];

const claimList = (pool: string[], spaceJoined: boolean) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.subarray(pool).map((xs) => (spaceJoined ? xs.join(' ') : xs)) },
    { weight: 2, arbitrary: fc.subarray(pool) },
    { weight: 1, arbitrary: fc.constantFrom(...pool) },
    { weight: 1, arbitrary: odd },
  );
const time = (usual: Time, ...others: Time[]): fc.Arbitrary<Time> =>
  weighted(fc.constant(usual), fc.constantFrom<Time>(...others), 12);

/** Mostly the thread's service account (pool[0]), often another known one, sometimes something hostile. */
const threadOr = (pool: unknown[], hostile: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.constant(pool[0]) },
    { weight: 3, arbitrary: fc.constantFrom(...pool) },
    { weight: 1, arbitrary: hostile },
  );

const claimsArb = fc
  .record({
    iss: weighted(
      fc.constant<unknown>(EXAMPLE_ISSUER),
      fc.oneof(
        fc.constantFrom<unknown>(
          EXAMPLE_ISSUER.slice(0, -1),
          EXAMPLE_ISSUER.toUpperCase(),
          'https://evil.example/',
          ABSENT,
        ),
        odd,
      ),
      14,
    ),
    aud: weighted(
      fc.constantFrom<unknown>(EXAMPLE_AUDIENCE, [EXAMPLE_AUDIENCE, 'https://other.example']),
      fc.oneof(fc.constantFrom<unknown>('https://other.example', [], ABSENT, `${EXAMPLE_AUDIENCE}/`), odd),
      14,
    ),
    sub: threadOr(SUBJECTS, fc.oneof(fc.constantFrom<unknown>(ABSENT, ''), odd)),
    client_id: threadOr(CLIENTS, fc.oneof(fc.constant<unknown>(ABSENT), odd)),
    azp: fc.oneof(
      { weight: 8, arbitrary: fc.constant<unknown>(ABSENT) },
      { weight: 1, arbitrary: fc.constantFrom<unknown>(...CLIENTS) },
    ),
    gty: weighted(
      fc.constant<unknown>('client_credentials'),
      fc.constantFrom<unknown>('authorization_code', ABSENT, 7, null),
      6,
    ),
    scope: weighted(
      fc.oneof(fc.constant<unknown>('inventory.read inventory.write'), claimList(SCOPES, true)),
      fc.constantFrom<unknown>(ABSENT, null, 'inventory.read  inventory.write ', 'INVENTORY.READ'),
      8,
    ),
    scp: fc.oneof(
      { weight: 6, arbitrary: fc.constant<unknown>(ABSENT) },
      { weight: 1, arbitrary: claimList(SCOPES, false) },
    ),
    roles: fc.oneof(
      { weight: 5, arbitrary: fc.constant<unknown>(ABSENT) },
      { weight: 2, arbitrary: claimList(ROLES, false) },
    ),
    locations: fc.oneof(
      { weight: 5, arbitrary: fc.constant<unknown>(ABSENT) },
      { weight: 2, arbitrary: claimList(LOCATION_GRANTS, false) },
    ),
  })
  .map((claims) => Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== ABSENT)));

const timesArb = fc.record({
  exp: time(
    { rel: 300 },
    { rel: -600 },
    { rel: 3e9 },
    ABSENT,
    { literal: '9999999999' },
    { literal: 1e308 },
    { rel: 300.5 },
  ),
  nbf: fc.oneof(
    { weight: 6, arbitrary: fc.constant<Time>(ABSENT) },
    { weight: 1, arbitrary: fc.constantFrom<Time>({ rel: -60 }, { rel: 600 }, { literal: 'soon' }) },
  ),
  iat: time({ rel: 0 }, ABSENT, { rel: 600 }, { literal: 'now' }, { rel: -1e6 }),
});

const mutationArb: fc.Arbitrary<Mutation> = weighted(
  fc.constant<Mutation>({ kind: 'none' }),
  fc.oneof(
    fc.record({
      kind: fc.constant('flip' as const),
      segment: fc.nat(2),
      at: fc.nat(400),
      char: fc.constantFrom('A', 'b', '-', '_', '0', '+', '/', '='),
    }),
    fc.record({ kind: fc.constant('segments' as const), count: fc.constantFrom(1, 2, 4, 5) }),
    fc.constant<Mutation>({ kind: 'pad' }),
    fc.record({ kind: fc.constant('whitespace' as const), at: fc.nat(400) }),
    fc.record({ kind: fc.constant('truncate' as const), cut: fc.integer({ min: 1, max: 40 }) }),
    claimsArb.map((claims): Mutation => ({ kind: 'resign-claims', claims })),
    fc.constantFrom<Mutation>({ kind: 'huge', bytes: 9_000 }, { kind: 'huge', bytes: 1_000_000 }),
  ),
  6,
);

const tokenArb: fc.Arbitrary<TokenSpec> = fc.record({
  alg: weighted(
    fc.constant('RS256'),
    fc.constantFrom('none', 'None', 'NONE', 'HS256', 'RS512', 'PS256', 'ES256', ''),
  ),
  kid: weighted(
    fc.constant('real'),
    fc.constantFrom<Maybe<string>>('rogue', ABSENT, '../../../etc/passwd', "' OR 1=1 --", 'k'.repeat(10_240)),
  ),
  typ: weighted(
    fc.constantFrom<Maybe<string>>('JWT', ABSENT, 'at+jwt'),
    fc.constantFrom<Maybe<string>>('JOSE', 'application/jwk+json', 'jwt '),
  ),
  extraHeader: weighted(
    fc.constant({}),
    fc.constantFrom<Record<string, unknown>>(
      { jku: 'http://127.0.0.1:1/jwks.json' },
      { jwk: 'ROGUE_JWK' },
      { x5u: 'http://127.0.0.1:1/cert.pem' },
      { x5c: ['MIIB'] },
      { crit: ['exp'] },
      { crit: ['b64'], b64: false },
      { b64: false },
      { zip: 'DEF' },
    ),
  ),
  signer: weighted(
    fc.constant('real' as const),
    fc.constantFrom('rogue' as const, 'hmac-with-public-key' as const),
    12,
  ),
  claims: claimsArb,
  times: timesArb,
  mutation: mutationArb,
});

const ID_SEGMENTS = ['T1', '123', '%54%31', 'ü', '%C3%BC', 'a-b_c.d~'];
const HOSTILE_SEGMENTS = [
  '..',
  '%2e%2e',
  '%2E.',
  '.',
  'a%2Fb',
  'a%2fb',
  'a%5Cb',
  'a\\b',
  '%00',
  '%C0%AF',
  'a;b',
  ';jsessionid=1',
  '%252F',
  '%FF',
  ' ',
  'a#b',
  '',
  '%',
  '%zz',
];
const PATH_INSERTS = [
  '/./',
  '/../',
  '//',
  '/%2e%2e/',
  '/%2F',
  '\\',
  ';jsessionid=9',
  '#frag',
  '%00',
  '/',
  '%C0%AF',
  '?',
  '%3F',
  '\t',
  '\u0085',
  '\r\n',
];

/** A method and path the policy has a route for: what the thread's clients send. */
const routeCall = fc.oneof(
  fc.constant(['GET', '/api/inventory/transactions'] as const),
  fc.constantFrom(...ID_SEGMENTS).map((id) => ['GET', `/api/inventory/transactions/${id}`] as const),
  fc.constant(['POST', '/api/inventory/transactions'] as const),
  fc.constantFrom(...ID_SEGMENTS).map((id) => ['PUT', `/api/inventory/transactions/${id}`] as const),
  fc
    .constantFrom(...LOCATIONS, '%57%48%30%31')
    .map((loc) => ['GET', `/api/inventory/locations/${loc}/items`] as const),
);

/** What happens to the route's path: usually nothing; else one hostile rewrite of it, or another path. */
type PathChange =
  | { kind: 'keep' }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'replace'; path: string };
const pathChangeArb: fc.Arbitrary<PathChange> = weighted(
  fc.constant<PathChange>({ kind: 'keep' }),
  fc.oneof(
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(60),
      text: fc.constantFrom(...PATH_INSERTS),
    }),
    fc
      .constantFrom(...HOSTILE_SEGMENTS, ...HOSTILE_LOCATIONS)
      .chain((s) =>
        fc.constantFrom<PathChange>(
          { kind: 'replace', path: `/api/inventory/transactions/${s}` },
          { kind: 'replace', path: `/api/inventory/locations/${s}/items` },
        ),
      ),
    fc.constantFrom<PathChange>(
      ...[
        '/API/inventory/transactions',
        '/api/Inventory/Transactions',
        '/api/inventory/transactions/',
        'api/inventory/transactions',
        '*',
        '//api/inventory/transactions',
        `/${'a/'.repeat(40_000)}`,
      ].map((path) => ({ kind: 'replace' as const, path })),
    ),
    fc
      .oneof(fc.string({ maxLength: 40 }), fc.webPath())
      .map((path): PathChange => ({ kind: 'replace', path })),
  ),
  4,
);
const queryArb = weighted(
  fc.constant(''),
  fc.constantFrom('?a=b', '?access_token=x', '?location=WH03', '?acc%65ss_token=x', '?a=%zz', '?x#y'),
  6,
);

function changedPath(base: string, change: PathChange, query: string): string {
  if (change.kind === 'replace') return change.path + query;
  if (change.kind === 'keep') return base + query;
  const at = change.at % (base.length + 1);
  return base.slice(0, at) + change.text + base.slice(at) + query;
}

const bodyArb = (location: fc.Arbitrary<string>) =>
  weighted(
    location.map((loc) => JSON.stringify({ location: loc, item: 'ITEM001', quantity: 10 })),
    fc.oneof(
      fc.constantFrom<Maybe<string | { bytes: number[] }>>(
        ABSENT,
        '',
        '{"location":"WH01","location":"WH03"}',
        '{"location":"WH03","Location":"WH01"}',
        '{"loc\\u0061tion":"WH03","location":"WH01"}',
        '{"location":{"code":"WH01"}}',
        '{"location":["WH01"]}',
        '{"location":1}',
        '{"location":null}',
        '{"location":""}',
        '{}',
        '[]',
        'null',
        '"WH01"',
        '\uFEFF{"location":"WH01"}',
        '{"location":"WH01"',
        '{"location":"WH01"}x',
        '{"location":"WH01","n":1e999999}',
        '{"location":"WH01","n":123456789012345678901234567890123456789012345678901234567890123456789}',
        '{"__proto__":{"location":"WH03"},"location":"WH01"}',
        'location=WH01',
        { bytes: [...Buffer.from('{"location":"WH01","x":"'), 0xff, 0xfe, ...Buffer.from('"}')] },
        { bytes: [...Buffer.from('{"location":"WH01","x":"'), 0xc0, 0xaf, ...Buffer.from('"}')] },
      ),
      fc.constantFrom(...HOSTILE_LOCATIONS).map((loc) => JSON.stringify({ location: loc })),
      // Bodies that name no location at all, or hide it where the route does not look.
      fc.constantFrom(
        '{}',
        '{"item":"ITEM001","quantity":10}',
        '{"location":null}',
        '{"warehouse":{"location":"WH01"}}',
      ),
      fc
        .integer({ min: 10, max: 100_000 })
        .map((depth) => `{"location":"WH01","deep":${'['.repeat(depth)}${']'.repeat(depth)}}`),
      fc.json({ maxDepth: 3 }),
      fc.string({ maxLength: 30 }),
    ),
    4,
  );

const headerPairs = fc.array(
  fc.oneof(
    fc.constantFrom<[string, string]>(
      ['x-scopegate-subject', 'svc-stock-report'],
      ['X-Scopegate-Route', 'admin'],
      ['x_scopegate_client', 'inventory-sync'],
      ['location', 'WH03'],
      ['x-request-id', '"><script>'],
      ['cookie', 'access_token=x'],
    ),
    fc.tuple(fc.string({ minLength: 0, maxLength: 8 }), fc.string({ maxLength: 12 })),
  ),
  { maxLength: 3 },
);

const requestArb: fc.Arbitrary<RequestSpec> = fc
  .tuple(
    routeCall,
    weighted(
      fc.constant<Maybe<string>>(ABSENT),
      fc.oneof(
        fc.constantFrom(
          'GET',
          'POST',
          'PUT',
          'DELETE',
          'post',
          '',
          'G ET',
          'PATCH',
          'GET\u0000',
          'X'.repeat(20),
        ),
        fc.string({ maxLength: 5 }),
      ),
      12,
    ),
    pathChangeArb,
    queryArb,
  )
  .chain(([[method, path], otherMethod, change, query]) =>
    fc.record({
      method: fc.constant(otherMethod === ABSENT ? method : otherMethod),
      pseudoMethod: weighted(
        fc.constantFrom('same' as const, 'none' as const),
        fc.constant('other' as const),
        12,
      ),
      path: fc.constant(changedPath(path, change, query)),
      pseudoPath: weighted(
        fc.constantFrom('same' as const, 'none' as const),
        fc.constant('other' as const),
        12,
      ),
      headersAs: fc.constantFrom('map' as const, 'raw' as const),
      extraHeaders: weighted(fc.constant([]), headerPairs, 3),
      contentType: weighted(
        fc.constantFrom<Maybe<string>>('application/json', 'application/json; charset=utf-8'),
        fc.constantFrom<Maybe<string>>(
          ABSENT,
          'text/plain',
          'application/x-www-form-urlencoded',
          'application/merge-patch+json',
          'application/json; charset=latin1',
        ),
      ),
      partial: weighted(
        fc.constantFrom<Maybe<string>>(ABSENT, 'false'),
        fc.constantFrom<Maybe<string>>('true', 'FALSE ', '1', ''),
      ),
      body: bodyArb(
        fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom('WH01', 'WH02', 'EU-DE1') },
          { weight: 1, arbitrary: fc.constantFrom(...LOCATIONS) },
        ),
      ),
      bodyAs: weighted(fc.constant('body' as const), fc.constant('raw_body' as const), 4),
      token: tokenArb,
      placement: weighted(
        fc.constantFrom<Placement>('header', 'header_map', 'header_map_raw'),
        fc.constantFrom<Placement>(
          'lowercase-scheme',
          'two-spaces',
          'tab',
          'joined-twice',
          'two-entries',
          'also-in-query',
          'query-only',
          'none',
          'empty',
          'basic',
        ),
        12,
      ),
      metadata: fc.oneof(
        { weight: 14, arbitrary: fc.constant({ kind: 'none' as const }) },
        { weight: 1, arbitrary: fc.constant({ kind: 'other' as const }) },
        {
          weight: 3,
          arbitrary: fc.record({
            kind: fc.constant('jwt_authn' as const),
            claims: claimsArb,
            exp: timesArb.map((t) => t.exp),
          }),
        },
        { weight: 1, arbitrary: fc.constant({ kind: 'jwt_authn_scalar' as const }) },
      ),
      shape: weighted(
        fc.constant('whole' as const),
        fc.constantFrom(
          'no-attributes' as const,
          'no-request' as const,
          'no-http' as const,
          'empty-http' as const,
        ),
        40,
      ),
    }),
  );

/** Only what the support thread's clients really send: for checking the model agrees with scopegate. */
const wellFormedArb: fc.Arbitrary<RequestSpec> = routeCall.chain(([method, path]) =>
  fc.record({
    method: fc.constant(method),
    pseudoMethod: fc.constantFrom('same' as const, 'none' as const),
    path: fc.constant(path),
    pseudoPath: fc.constantFrom('same' as const, 'none' as const),
    headersAs: fc.constantFrom('map' as const, 'raw' as const),
    extraHeaders: fc.constant([]),
    contentType: fc.constant('application/json'),
    partial: fc.constant(ABSENT),
    body: fc
      .constantFrom(...LOCATIONS)
      .map((loc) => JSON.stringify({ location: loc, item: 'ITEM001', quantity: 10 })),
    bodyAs: fc.constantFrom('body' as const, 'raw_body' as const),
    token: fc.record({
      alg: fc.constant('RS256'),
      kid: fc.constant('real'),
      typ: fc.constant('JWT'),
      extraHeader: fc.constant({}),
      signer: fc.constant('real' as const),
      claims: claimsArb,
      times: fc.record({
        exp: fc.constantFrom<Time>({ rel: 300 }, { rel: -600 }),
        nbf: fc.constant<Time>(ABSENT),
        iat: fc.constant<Time>({ rel: 0 }),
      }),
      mutation: fc.constant({ kind: 'none' as const }),
    }),
    placement: fc.constantFrom<Placement>('header', 'header_map', 'header_map_raw'),
    metadata: fc.constant({ kind: 'none' as const }),
    shape: fc.constant('whole' as const),
  }),
);

// ---------------------------------------------------------------------------------------------------------
// Building tokens and CheckRequests from specs

function materialise(time: Time, now: number): unknown {
  if (time === ABSENT) return ABSENT;
  return 'rel' in time ? now + time.rel : time.literal;
}

function signWith(alg: string, signer: TokenSpec['signer'], input: string): Buffer {
  if (alg.toLowerCase() === 'none' || alg === '') return Buffer.alloc(0);
  if (signer === 'hmac-with-public-key' || alg === 'HS256') {
    // The classic confusion: the issuer's public key used as an HMAC secret.
    return createHmac('sha256', JSON.stringify(h.key.publicJwk)).update(input).digest();
  }
  const key = signer === 'real' ? realPrivate : roguePrivate;
  if (alg === 'PS256')
    return sign('sha256', Buffer.from(input), { key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING });
  return sign(alg === 'RS512' ? 'sha512' : 'sha256', Buffer.from(input), key);
}

function tokenFor(spec: TokenSpec, now: number): string {
  const header: Record<string, unknown> = { alg: spec.alg };
  if (spec.kid !== ABSENT)
    header.kid = spec.kid === 'real' ? h.key.kid : spec.kid === 'rogue' ? rogue.kid : spec.kid;
  if (spec.typ !== ABSENT) header.typ = spec.typ;
  for (const [name, value] of Object.entries(spec.extraHeader))
    header[name] = value === 'ROGUE_JWK' ? rogue.publicJwk : value;
  const payload = (claims: Record<string, unknown>) => {
    const out = { ...claims };
    for (const name of ['exp', 'nbf', 'iat'] as const) {
      const value = materialise(spec.times[name], now);
      if (value !== ABSENT) out[name] = value;
    }
    return out;
  };
  const signed = (claims: Record<string, unknown>) => {
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload(claims)))}`;
    return `${input}.${signWith(spec.alg, spec.signer, input).toString('base64url')}`;
  };
  const token = signed(spec.claims);
  const m = spec.mutation;
  switch (m.kind) {
    case 'none':
      return token;
    case 'flip': {
      const parts = token.split('.');
      const part = parts[m.segment]!;
      const at = part.length === 0 ? 0 : m.at % part.length;
      parts[m.segment] = part.slice(0, at) + m.char + part.slice(at + 1);
      return parts.join('.');
    }
    case 'segments': {
      const parts = token.split('.');
      return (m.count < 3 ? parts.slice(0, m.count) : [...parts, ...parts.slice(0, m.count - 3)]).join('.');
    }
    case 'pad':
      return `${token}==`;
    case 'whitespace':
      return `${token.slice(0, m.at % token.length)} ${token.slice(m.at % token.length)}`;
    case 'truncate':
      return token.slice(0, -m.cut);
    case 'resign-claims': {
      // A real signature over other claims: the payload swapped under it must not verify.
      const [h0, , s] = token.split('.');
      return `${h0}.${b64url(JSON.stringify(payload(m.claims)))}.${s}`;
    }
    case 'huge':
      return `${token}${'A'.repeat(m.bytes)}`;
  }
}

function toValue(value: unknown): ProtoValue {
  if (value === null) return { null_value: 'NULL_VALUE' };
  if (typeof value === 'string') return { string_value: value };
  if (typeof value === 'number') return { number_value: value };
  if (typeof value === 'boolean') return { bool_value: value };
  if (Array.isArray(value)) return { list_value: { values: value.map(toValue) } };
  return { struct_value: toStruct(value as Record<string, unknown>) };
}
function toStruct(record: Record<string, unknown>): ProtoStruct {
  return { fields: Object.fromEntries(Object.entries(record).map(([k, v]) => [k, toValue(v)])) };
}

function checkRequestOf(spec: RequestSpec, now: number): CheckRequest {
  const token = tokenFor(spec.token, now);
  const headers: Array<[string, string]> = [
    [':authority', 'inventory.local'],
    ['x-request-id', 'prop-1'],
  ];
  if (spec.pseudoMethod !== 'none')
    headers.push([':method', spec.pseudoMethod === 'same' ? spec.method : 'DELETE']);
  let path = spec.path;
  const bearer = (value: string) => headers.push(['authorization', value]);
  switch (spec.placement) {
    case 'header':
    case 'header_map':
    case 'header_map_raw':
      bearer(`Bearer ${token}`);
      break;
    case 'lowercase-scheme':
      bearer(`bearer ${token}`);
      break;
    case 'two-spaces':
      bearer(`Bearer  ${token}`);
      break;
    case 'tab':
      bearer(`Bearer\t${token}`);
      break;
    case 'joined-twice':
      bearer(`Bearer ${token}, Bearer ${token}`);
      break;
    case 'two-entries':
      bearer(`Bearer ${token}`);
      headers.push(['Authorization', `Bearer ${token}`]);
      break;
    case 'also-in-query':
      bearer(`Bearer ${token}`);
      path += `${path.includes('?') ? '&' : '?'}access_token=${token}`;
      break;
    case 'query-only':
      path += `${path.includes('?') ? '&' : '?'}access_token=${token}`;
      break;
    case 'empty':
      bearer('');
      break;
    case 'basic':
      bearer(`Basic ${Buffer.from('inventory-sync:secret').toString('base64')}`);
      break;
    case 'none':
      break;
  }
  if (spec.pseudoPath !== 'none')
    headers.push([':path', spec.pseudoPath === 'same' ? path : '/api/inventory/transactions']);
  if (spec.contentType !== ABSENT) headers.push(['content-type', spec.contentType]);
  if (spec.partial !== ABSENT) headers.push(['x-envoy-auth-partial-body', spec.partial]);
  headers.push(...spec.extraHeaders);

  const raw =
    spec.headersAs === 'raw' || spec.placement === 'header_map' || spec.placement === 'header_map_raw';
  const http: NonNullable<NonNullable<NonNullable<CheckRequest['attributes']>['request']>['http']> = {
    id: 'prop-1',
    method: spec.method,
    path,
    host: 'inventory.local',
    scheme: 'http',
    protocol: 'HTTP/1.1',
  };
  if (raw) {
    const asBytes = spec.placement === 'header_map_raw';
    http.header_map = {
      headers: headers.map(
        ([key, value]): HeaderValue => (asBytes ? { key, raw_value: Buffer.from(value) } : { key, value }),
      ),
    };
  } else {
    const map: Record<string, string> = {};
    for (const [key, value] of headers) map[key] = Object.hasOwn(map, key) ? `${map[key]},${value}` : value;
    http.headers = map;
  }
  if (spec.body !== ABSENT) {
    const bytes = typeof spec.body === 'string' ? Buffer.from(spec.body) : Buffer.from(spec.body.bytes);
    if (spec.bodyAs === 'raw_body' || typeof spec.body !== 'string') http.raw_body = bytes;
    else http.body = spec.body;
    http.size = String(bytes.length);
  }

  const attributes: NonNullable<CheckRequest['attributes']> = { request: { http } };
  const md = spec.metadata;
  if (md.kind === 'other')
    attributes.metadata_context = {
      filter_metadata: { 'envoy.filters.http.rbac': toStruct({ shadow: 'allowed' }) },
    };
  if (md.kind === 'jwt_authn' || md.kind === 'jwt_authn_scalar') {
    const claims = { ...(md.kind === 'jwt_authn' ? md.claims : {}) };
    const exp = md.kind === 'jwt_authn' ? materialise(md.exp, now) : ABSENT;
    if (exp !== ABSENT) claims.exp = exp;
    const payload = md.kind === 'jwt_authn' ? toValue(claims) : { string_value: 'not-an-object' };
    attributes.metadata_context = {
      filter_metadata: { 'envoy.filters.http.jwt_authn': { fields: { jwt_payload: payload } } },
    };
  }
  switch (spec.shape) {
    case 'whole':
      return { attributes };
    case 'no-attributes':
      return {};
    case 'no-request':
      return { attributes: { ...attributes, request: undefined } };
    case 'no-http':
      return { attributes: { ...attributes, request: {} } };
    case 'empty-http':
      return { attributes: { ...attributes, request: { http: {} } } };
  }
}

// ---------------------------------------------------------------------------------------------------------
// The invariants

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${HANG_MS} ms`)), HANG_MS);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

const headerOf = (options: Array<{ header: { key: string; value: string } }> | undefined, name: string) =>
  options?.find((o) => o.header.key === name)?.header.value;

/** (c) and (d): a well-formed CheckResponse whose every part agrees with the REASONS table. Returns the reason. */
function reasonOf(response: ReceivedCheckResponse): string {
  expect(typeof response.status?.code).toBe('number');
  const reason = response.dynamic_metadata?.fields?.reason?.string_value ?? '(none)';
  expect(isReason(reason), `reason ${reason} is in the REASONS table`).toBe(true);
  const spec = REASONS[reason as keyof typeof REASONS];
  if (reason === 'allowed') {
    expect(response.status.code).toBe(0);
    expect(response.ok_response).toBeDefined();
    expect(response.denied_response).toBeUndefined();
    return reason;
  }
  const denied = response.denied_response;
  expect(denied, `a ${reason} deny carries a denied_response`).toBeDefined();
  expect(response.ok_response).toBeUndefined();
  expect(response.status.code).toBe(spec.grpc);
  expect(httpStatusNumber(denied!.status?.code)).toBe(spec.http);
  expect(headerOf(denied!.headers, 'x-scopegate-reason')).toBe(reason);
  const challenge = headerOf(denied!.headers, 'www-authenticate');
  if (spec.challenge === null) expect(challenge).toBeUndefined();
  else expect(challenge).toMatch(/^Bearer realm="[^"]*"/);
  const body = JSON.parse(denied!.body ?? '') as { reason?: string; error?: string };
  expect(body.reason).toBe(reason);
  expect(body.error).toBe(spec.error);
  return reason;
}

/** (a): an allow only where the independent model allows, with the identity the model read. */
function expectAllowJustified(check: CheckRequest, response: ReceivedCheckResponse, now: number): void {
  const verdict = mayAllow(POLICY, check, h.key.publicJwk as JWK, now);
  if (!verdict.may) {
    expect.fail(`allowed, but the policy model refuses it: ${verdict.why}`);
    return;
  }
  expect(response.dynamic_metadata?.fields?.route?.string_value).toBe(verdict.route);
  const subject = headerOf(response.ok_response?.headers, 'x-scopegate-subject');
  expect(subject).toBe(verdict.identity.subject);
  // Every client-sent identity header, in either spelling, is removed before the upstream sees it.
  const sent = requestHeaderNames(check).filter((n) => n.replaceAll('_', '-').startsWith('x-scopegate-'));
  const removed = new Set(response.ok_response?.headers_to_remove ?? []);
  const set = new Set((response.ok_response?.headers ?? []).map((o) => o.header.key));
  for (const name of sent) expect(removed.has(name) || set.has(name), `${name} stripped`).toBe(true);
}

function requestHeaderNames(check: CheckRequest): string[] {
  const http = check.attributes?.request?.http;
  return [
    ...Object.keys(http?.headers ?? {}),
    ...(http?.header_map?.headers ?? []).map((x) => x.key ?? ''),
  ].map((n) => n.toLowerCase());
}

interface Tally {
  runs: number;
  allows: number;
  reasons: Set<string>;
}
const newTally = (): Tally => ({ runs: 0, allows: 0, reasons: new Set() });

async function checkInProcess(spec: RequestSpec, tally: Tally): Promise<{ allowed: boolean; may: boolean }> {
  const nowMs = Date.now();
  const check = checkRequestOf(spec, Math.floor(nowMs / 1000));
  // (b): answerCheck must resolve, quickly; a rejection or a hang fails the property here.
  const response = await withDeadline(answerCheck(check, deps), 'answerCheck');
  const reason = reasonOf(response);
  tally.runs++;
  tally.reasons.add(reason);
  const now = Math.floor(Date.now() / 1000);
  if (reason === 'allowed') {
    tally.allows++;
    expectAllowJustified(check, response, now);
  }
  return { allowed: reason === 'allowed', may: mayAllow(POLICY, check, h.key.publicJwk as JWK, now).may };
}

const params = (numRuns: number) => ({
  numRuns,
  seed: SEED,
  endOnFailure: true,
  interruptAfterTimeLimit: 60_000,
});

describe('generated CheckRequests and tokens against the example policy', () => {
  it('hostile requests: never an allow the policy does not grant, never a throw, always a reason from the table', async () => {
    const tally = newTally();
    await fc.assert(
      fc.asyncProperty(requestArb, async (spec) => {
        await checkInProcess(spec, tally);
      }),
      params(RUNS.hostile),
    );
    if (process.env.FC_VERBOSE)
      console.info(`allows: ${tally.allows}; reasons: ${[...tally.reasons].sort()}`);
    // Not vacuous: the generator reaches real allows and a wide spread of denials.
    expect(tally.runs).toBeGreaterThanOrEqual(RUNS.hostile);
    expect(tally.allows).toBeGreaterThan(RUNS.hostile * 0.02);
    expect(tally.reasons.size).toBeGreaterThanOrEqual(12);
  }, 120_000);

  it('well-formed requests: scopegate allows exactly what the policy grants', async () => {
    const tally = newTally();
    await fc.assert(
      fc.asyncProperty(wellFormedArb, async (spec) => {
        const { allowed, may } = await checkInProcess(spec, tally);
        expect(allowed, 'allowed exactly when the policy model grants it').toBe(may);
      }),
      params(RUNS.wellFormed),
    );
    expect(tally.allows).toBeGreaterThan(RUNS.wellFormed * 0.04);
    expect(tally.allows).toBeLessThan(RUNS.wellFormed * 0.9);
  }, 120_000);

  it('over real gRPC: every generated request gets a CheckResponse, never a gRPC error', async () => {
    const tally = newTally();
    await fc.assert(
      fc.asyncProperty(requestArb, async (spec) => {
        const check = checkRequestOf(spec, Math.floor(Date.now() / 1000));
        // A gRPC error rejects here (the client surfaces it as a ServiceError), failing the property.
        const reason = reasonOf(await h.grpc.check(check, HANG_MS));
        tally.runs++;
        tally.reasons.add(reason);
      }),
      params(RUNS.overTheWire),
    );
    expect(tally.reasons.size).toBeGreaterThanOrEqual(8);
  }, 120_000);
});

describe('security rule 1 when scopegate itself fails', () => {
  it('a check that throws inside the pipeline is answered internal_error (503, UNAVAILABLE), never a rejection', async () => {
    const serving = onlySnapshot(h.running);
    // A fault, not a mock of the behaviour under test: the real answerCheck, pipeline and encoder around an
    // authenticator that fails the way a bug would.
    const broken: CheckDeps = {
      ...deps,
      current: () =>
        setOf({
          ...serving,
          decisions: undefined,
          authenticator: {
            identify: () => Promise.reject(new TypeError('simulated bug')),
          },
        }),
    };
    const token = tokenFor(
      {
        alg: 'RS256',
        kid: 'real',
        typ: 'JWT',
        extraHeader: {},
        signer: 'real',
        claims: {
          iss: EXAMPLE_ISSUER,
          aud: EXAMPLE_AUDIENCE,
          sub: 'svc-inventory-sync',
          scope: 'inventory.read',
        },
        times: { exp: { rel: 300 }, nbf: ABSENT, iat: { rel: 0 } },
        mutation: { kind: 'none' },
      },
      Math.floor(Date.now() / 1000),
    );
    const check: CheckRequest = {
      attributes: {
        request: {
          http: {
            method: 'GET',
            path: '/api/inventory/transactions',
            headers: {
              ':method': 'GET',
              ':path': '/api/inventory/transactions',
              authorization: `Bearer ${token}`,
            },
          },
        },
      },
    };
    const response = await withDeadline(answerCheck(check, broken), 'answerCheck');
    expect(reasonOf(response)).toBe('internal_error');
    expect(httpStatusNumber(response.denied_response?.status?.code)).toBe(503);
    expect(response.denied_response?.body ?? '').not.toContain('simulated bug');
    expect(response.denied_response?.body ?? '').not.toContain(token);
  });
});
