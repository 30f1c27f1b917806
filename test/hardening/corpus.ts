// The bad-input corpus (issue 7, item 1): every hostile or odd input we know of for an ext_authz JWT service,
// as one table of CheckRequests with the exact reason DESIGN.md's table says each must get. The corpus test
// replays it over real gRPC; the property and replay (resource-bound) tests import it. Valid-but-harmless
// variants (lowercase `bearer`, a genuine token carrying an ignored `jku`, …) expect `allowed`, so the table
// also proves we do not refuse what is fine.
//
// Contract for importers (keep stable):
//   - Start scopegate on the example policy with `startHarness()` (test/support/scopegate.ts), then
//     `const ctx = await corpusContext(harness.key)`; each `vector.request(ctx)` builds a fresh CheckRequest.
//   - Build each request once and replay it as often as you like: requests are plain data, never mutated, and
//     tokens in them stay valid for an hour after `corpusContext` was called (`ctx.now`).
//   - `expectedReasons(vector)` is the list of acceptable reasons (one, for almost every vector).
//   - Vector names are unique; groups are 'token' | 'header' | 'path' | 'body' | 'request' | 'peer'.
//
// Defects this corpus found, and where they were fixed (each with a unit test next to that phase's tests):
//   1. Duplicate keys in a JWT's header or payload were accepted (jose reads them with JSON.parse, which keeps
//      the last): `{"sub":"svc-stock-report",…,"sub":"svc-inventory-sync"}` verified as the second subject,
//      while any other reader could take the first. Fixed in src/identity/verify.ts: the header and payload
//      are read with the strict JSON reader (src/request/json.ts) before jose, and refused (token_invalid)
//      on duplicate keys, out-of-range numbers (`"exp":1e400` read as Infinity, a token that never expires),
//      lone surrogates or a byte order mark.
//   2. Non-canonical base64url was accepted: `=` padding on the signature, stray bits in its last character,
//      so one signed token had many spellings (each a separate token- and decision-cache entry). Fixed in
//      src/identity/verify.ts: every segment must be canonical unpadded base64url (token_invalid).
//   3. `nbf` or `iat` of the wrong type (`"nbf":"0"`) were reported as token_not_yet_valid ("issued in the
//      future"), sending the caller after a clock problem they do not have. Fixed in verify.ts's one
//      jose-error translation: a time claim that is not a number is token_invalid.
//   4. A `b64` header without `crit` was ignored (jose honours `b64` only when it is critical), so the same
//      token means something else to an RFC 7797 reader. JWTs never use `b64`; verify.ts now refuses it.
//   5. A CheckRequest with both `body` and `raw_body` was decided on `body` alone: the location checked could
//      differ from the bytes forwarded. Envoy fills exactly one; src/request/facts.ts now refuses both
//      (request_malformed), as it already did for `headers` plus `header_map`.
//   6. A `kid` that is not a string (a number, an object) was looked up anyway and answered key_unknown, and
//      triggered a JWKS refresh. verify.ts now refuses it as token_invalid before any key work.
// And from the identity-integrity review (issue 16), each class with vectors here and a property in
// ./identities.test.ts:
//   7. A `client_id` of `stock-report` plus a NUL was decided as an unlisted client (skipping the client's
//      scope and grant-type limits) and reached the upstream as `stock-report`; a `sub` with surrounding
//      whitespace or a control character likewise. src/identity/claims.ts now refuses such claims.
//   8. A token with no client, or an unlisted one, skipped every client rule: now client_unknown.
//   9. A location query parameter or header sent under a second spelling (`Location`, `location[]`,
//      `x_location`) was ignored while some upstreams bind it: now request_malformed (src/request/locations.ts).
//  10. A body with a byte that is not UTF-8 was allowed: Envoy writes '!' in its place in the text `body`
//      field; the shipped configs now send bytes (pack_as_bytes), and a '!' in a text body is body_unreadable.
//  11. A bearer token that alone made the headers too large was a 400: now 401 token_invalid.
// And peers (issue 20): a calling workload is exactly a SPIFFE ID the policy lists, or under a `…/*` it
// lists; look-alikes (case, a trailing slash, dot segments, percent-encoding, another trust domain, a port,
// user info, a query) are peer_not_allowed, and a forwarded-client-cert header is no peer at all.
import { createHmac, createPublicKey, type JsonWebKey, randomUUID, webcrypto } from 'node:crypto';
import type { Reason } from '../../src/vocabulary/index.js';
import { checkRequestFor } from '../../src/wire/check-request.js';
import type { CheckRequest, HttpRequestAttrs } from '../../src/wire/types.js';
import { EXAMPLE_AUDIENCE, EXAMPLE_ISSUER } from '../support/policies.js';
import { b64url, newSigningKey, type SigningKey } from '../support/tokens.js';

export type CorpusGroup = 'token' | 'header' | 'path' | 'body' | 'request' | 'peer';

/** What a vector needs to build its request: the published key, a stranger's key and a fixed clock. */
export interface CorpusContext {
  /** The RS256 key the example issuer publishes (the harness key). */
  readonly key: SigningKey;
  /** An RS256 key the issuer never published. */
  readonly stranger: SigningKey;
  readonly issuer: string;
  readonly audience: string;
  /** Seconds since the epoch when the context was made; tokens expire an hour later. */
  readonly now: number;
}

export interface CorpusVector {
  /** Unique, says what is odd about the input. */
  readonly name: string;
  readonly group: CorpusGroup;
  readonly request: (ctx: CorpusContext) => CheckRequest | Promise<CheckRequest>;
  /** The reason DESIGN.md's table gives; a list when more than one answer is equally right. */
  readonly expect: Reason | Reason[];
  /** For an allowed vector, the subject the upstream must receive (default: the support thread's account). */
  readonly allowedAs?: string;
  /** For an allowed peer-only vector: the peer the upstream must receive (and no subject). */
  readonly allowedAsPeer?: string;
}

/** A context for the example policy's issuer, signing with `key` (the harness key). */
export async function corpusContext(key: SigningKey): Promise<CorpusContext> {
  if (key.alg !== 'RS256') throw new Error('the corpus signs its hand-built tokens with an RS256 key');
  return {
    key,
    stranger: await newSigningKey('RS256'),
    issuer: EXAMPLE_ISSUER,
    audience: EXAMPLE_AUDIENCE,
    now: Math.floor(Date.now() / 1000),
  };
}

export function expectedReasons(vector: CorpusVector): readonly Reason[] {
  return Array.isArray(vector.expect) ? vector.expect : [vector.expect];
}

// ---- building blocks ------------------------------------------------------------------------------------

const LIST = '/api/inventory/transactions';
const JSON_TYPE: [string, string] = ['content-type', 'application/json'];
const WH01 = '{"location":"WH01","item":"ITEM001","quantity":10}';

/** The support thread's service account with both scopes: allowed on every route at WH01. */
function claims(ctx: CorpusContext, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ctx.issuer,
    aud: ctx.audience,
    sub: 'svc-inventory-sync',
    client_id: 'inventory-sync',
    gty: 'client_credentials',
    scope: 'inventory.read inventory.write',
    iat: ctx.now,
    exp: ctx.now + 3600,
    ...extra,
  };
}

/** A JSON-serialisable header or payload, or its exact text (for duplicate keys and other odd JSON). */
type Json = Record<string, unknown> | unknown[] | string;

const text = (value: Json) => (typeof value === 'string' ? value : JSON.stringify(value));

/** Signs header.payload with an RS256 key exactly as given: no library in between to tidy the input. */
async function signed(key: SigningKey, header: Json, payload: Json): Promise<string> {
  const input = `${b64url(text(header))}.${b64url(text(payload))}`;
  const signature = await webcrypto.subtle.sign(
    { name: 'RSASSA-PKCS1-v1_5' },
    key.privateKey as webcrypto.CryptoKey,
    Buffer.from(input),
  );
  return `${input}.${b64url(new Uint8Array(signature))}`;
}

const rs256 = (key: SigningKey, extra: Record<string, unknown> = {}) => ({
  alg: 'RS256',
  typ: 'JWT',
  kid: key.kid,
  ...extra,
});

/** A genuine token from the published key, with claims and header parameters changed as given. */
function token(
  ctx: CorpusContext,
  extraClaims: Record<string, unknown> = {},
  extraHeader: Record<string, unknown> = {},
): Promise<string> {
  return signed(ctx.key, rs256(ctx.key, extraHeader), claims(ctx, extraClaims));
}

/** A token that is not signed at all (alg none and friends). */
function unsigned(ctx: CorpusContext, header: Record<string, unknown>): string {
  return `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims(ctx)))}.`;
}

interface HttpShape {
  readonly method?: string;
  readonly path?: string;
  /** The exact Authorization value; undefined sends none. */
  readonly authorization?: string;
  readonly headers?: ReadonlyArray<readonly [string, string]>;
  readonly body?: string;
}

/** The CheckRequest Envoy builds for this HTTP request (map header mode). */
function http(shape: HttpShape = {}): CheckRequest {
  const headers = [...(shape.headers ?? [])];
  if (shape.authorization !== undefined) headers.push(['authorization', shape.authorization]);
  return checkRequestFor({
    method: shape.method ?? 'GET',
    path: shape.path ?? LIST,
    headers,
    ...(shape.body !== undefined && { body: shape.body }),
  });
}

/** GET /api/inventory/transactions with `Bearer <token>`. */
const listWith = async (made: string | Promise<string>): Promise<CheckRequest> =>
  http({ authorization: `Bearer ${await made}` });

/** GET of `path` with a valid token. */
const getPath = async (ctx: CorpusContext, path: string): Promise<CheckRequest> =>
  http({ path, authorization: `Bearer ${await token(ctx)}` });

/** POST /api/inventory/transactions with a valid token and the given body and headers. */
const post = async (
  ctx: CorpusContext,
  body: string | undefined,
  headers: ReadonlyArray<readonly [string, string]> = [JSON_TYPE],
): Promise<CheckRequest> =>
  http({
    method: 'POST',
    authorization: `Bearer ${await token(ctx)}`,
    headers,
    ...(body !== undefined && { body }),
  });

function httpOf(request: CheckRequest): HttpRequestAttrs {
  const attrs = request.attributes?.request?.http;
  if (attrs === undefined) throw new Error('the corpus built a CheckRequest without http attributes');
  return attrs;
}

/** The same request in raw header mode (`encode_raw_headers: true`): header_map with raw_value bytes. */
function asHeaderMap(request: CheckRequest, extra: Array<[string, string | Buffer]> = []): CheckRequest {
  const attrs = httpOf(request);
  const entries: Array<[string, string | Buffer]> = [...Object.entries(attrs.headers ?? {}), ...extra];
  delete attrs.headers;
  attrs.header_map = {
    headers: entries.map(([key, value]) => ({ key, raw_value: Buffer.from(value) })),
  };
  return request;
}

/** A body sent as bytes (`pack_as_bytes: true`), in place of the string `body`. */
function asRawBody(request: CheckRequest, bytes: Buffer): CheckRequest {
  const attrs = httpOf(request);
  delete attrs.body;
  attrs.raw_body = bytes;
  attrs.size = String(bytes.length);
  return request;
}

/** A claims text with one key duplicated: `{…,"name":first,…,"name":second}`. */
function withDuplicate(base: Record<string, unknown>, name: string, first: unknown, second: unknown): string {
  const rest = JSON.stringify({ ...base, [name]: undefined }).slice(1, -1);
  return `{${JSON.stringify(name)}:${JSON.stringify(first)},${rest},${JSON.stringify(name)}:${JSON.stringify(second)}}`;
}

/** The issuer's public key as PEM: the secret an HS256 "algorithm confusion" forger would use. */
function publicKeyPem(key: SigningKey): string {
  return createPublicKey({ key: key.publicJwk as JsonWebKey, format: 'jwk' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
}

function hs256(ctx: CorpusContext, secret: string): string {
  const input = `${b64url(JSON.stringify(rs256(ctx.key, { alg: 'HS256' })))}.${b64url(JSON.stringify(claims(ctx)))}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

/** Replaces the signature's last character with one that decodes to the same bytes (unused low bits set). */
function strayBits(jwt: string): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const last = jwt.at(-1) ?? 'A';
  // An RS256 signature is 256 bytes: 342 characters whose last one carries 2 data bits and 4 unused bits.
  const index = alphabet.indexOf(last);
  return jwt.slice(0, -1) + alphabet[(index & ~0x0f) | 0x0f];
}

function nested(open: string, close: string, inner: string, depth: number): string {
  return open.repeat(depth) + inner + close.repeat(depth);
}

// ---- the corpus -----------------------------------------------------------------------------------------

const tokens: CorpusVector[] = [
  {
    name: 'baseline: a genuine token is allowed',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c)),
  },
  ...['none', 'None', 'NONE', 'nOnE'].map(
    (alg): CorpusVector => ({
      name: `alg "${alg}" with no signature`,
      group: 'token',
      expect: 'token_invalid',
      request: (c) => listWith(unsigned(c, { alg, typ: 'JWT', kid: c.key.kid })),
    }),
  ),
  {
    name: 'alg none with a copied genuine signature',
    group: 'token',
    expect: 'token_invalid',
    request: async (c) => {
      const genuine = (await token(c)).split('.')[2];
      return listWith(`${unsigned(c, { alg: 'none', typ: 'JWT' })}${genuine}`);
    },
  },
  {
    name: "HS256 signed with the issuer's public key (PEM) as the secret",
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(hs256(c, publicKeyPem(c.key))),
  },
  {
    name: "HS256 signed with the issuer's public JWK text as the secret",
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(hs256(c, JSON.stringify(c.key.publicJwk))),
  },
  {
    name: 'a valid signature from a key the issuer never published (its own kid)',
    group: 'token',
    expect: 'key_unknown',
    request: (c) => listWith(signed(c.stranger, rs256(c.stranger), claims(c))),
  },
  {
    name: 'a valid signature from an unpublished key claiming the published kid',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(signed(c.stranger, rs256(c.key), claims(c))),
  },
  {
    name: 'a valid signature from an unpublished key, no kid',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(signed(c.stranger, { alg: 'RS256', typ: 'JWT' }, claims(c))),
  },
  ...[
    ['path traversal', '../../../../etc/passwd'],
    ['an absolute path', '/dev/zero'],
    ['an encoded traversal', '..%2F..%2Fjwks.json'],
    ['SQL', "' OR '1'='1' --"],
    ['a URL', 'http://127.0.0.1:1/jwks.json'],
    ['a NUL byte', 'key\u0000'],
  ].map(
    ([what, kid]): CorpusVector => ({
      name: `kid is ${what}`,
      group: 'token',
      expect: 'key_unknown',
      request: (c) => listWith(signed(c.stranger, rs256(c.stranger, { kid }), claims(c))),
    }),
  ),
  {
    name: 'kid is 10 KB long (the token passes the 8 KiB cap)',
    group: 'token',
    expect: 'token_invalid',
    request: (c) =>
      listWith(signed(c.stranger, rs256(c.stranger, { kid: 'k'.repeat(10 * 1024) }), claims(c))),
  },
  ...[
    ['a number', 42],
    ['an object', { $ne: null }],
    ['an array', ['a', 'b']],
  ].map(
    ([what, kid]): CorpusVector => ({
      name: `kid is ${what}`,
      group: 'token',
      expect: 'token_invalid',
      request: (c) => listWith(signed(c.stranger, rs256(c.stranger, { kid }), claims(c))),
    }),
  ),
  {
    name: "an embedded jwk of the forger's key, under the published kid",
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(signed(c.stranger, rs256(c.key, { jwk: c.stranger.publicJwk }), claims(c))),
  },
  {
    name: "an embedded jwk of the forger's key, no kid",
    group: 'token',
    expect: 'token_invalid',
    request: (c) =>
      listWith(signed(c.stranger, { alg: 'RS256', typ: 'JWT', jwk: c.stranger.publicJwk }, claims(c))),
  },
  ...(['jku', 'x5u'] as const).map(
    (param): CorpusVector => ({
      name: `a ${param} header pointing at the forger's key set`,
      group: 'token',
      expect: 'key_unknown',
      request: (c) =>
        listWith(
          signed(c.stranger, rs256(c.stranger, { [param]: 'http://127.0.0.1:1/forger.json' }), claims(c)),
        ),
    }),
  ),
  {
    name: 'an x5c chain in the header of a forged token',
    group: 'token',
    expect: 'token_invalid',
    request: (c) =>
      listWith(signed(c.stranger, rs256(c.key, { x5c: [b64url('not a certificate')] }), claims(c))),
  },
  {
    name: 'a genuine token carrying jwk, jku, x5u and x5c headers (ignored, never trusted)',
    group: 'token',
    expect: 'allowed',
    request: (c) =>
      listWith(
        token(
          c,
          {},
          {
            jwk: c.stranger.publicJwk,
            jku: 'http://127.0.0.1:1/jwks.json',
            x5u: 'http://127.0.0.1:1/cert.pem',
            x5c: [b64url('not a certificate')],
          },
        ),
      ),
  },
  {
    name: 'an unknown critical header',
    group: 'token',
    expect: 'token_invalid',
    request: (c) =>
      listWith(token(c, {}, { crit: ['urn:example:must-understand'], 'urn:example:must-understand': 1 })),
  },
  {
    name: 'crit naming a header that is absent',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, {}, { crit: ['exp'] })),
  },
  {
    name: 'crit that is empty',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, {}, { crit: [] })),
  },
  {
    name: 'b64 false, critical (an unencoded payload)',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, {}, { b64: false, crit: ['b64'] })),
  },
  {
    name: 'b64 false, not critical',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, {}, { b64: false })),
  },
  {
    name: 'typ JWE',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, {}, { typ: 'JWE' })),
  },
  {
    name: 'typ at+jwt (RFC 9068 access token)',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, {}, { typ: 'at+jwt' })),
  },
  {
    name: 'a JWE (five segments)',
    group: 'token',
    expect: 'token_invalid',
    request: (c) =>
      listWith(
        [
          b64url(JSON.stringify({ alg: 'RSA-OAEP-256', enc: 'A256GCM', kid: c.key.kid })),
          'a',
          'b',
          'c',
          'd',
        ].join('.'),
      ),
  },
  {
    name: 'two segments (no signature part)',
    group: 'token',
    expect: 'token_invalid',
    request: async (c) => listWith((await token(c)).split('.').slice(0, 2).join('.')),
  },
  {
    name: 'four segments',
    group: 'token',
    expect: 'token_invalid',
    request: async (c) => listWith(`${await token(c)}.${b64url('extra')}`),
  },
  {
    name: 'one segment',
    group: 'token',
    expect: 'token_invalid',
    request: () => listWith(b64url('{"alg":"RS256"}')),
  },
  {
    name: 'empty segments (..)',
    group: 'token',
    expect: 'token_invalid',
    request: () => listWith('..'),
  },
  {
    name: 'standard base64 (+ and /) instead of base64url in the payload',
    group: 'token',
    expect: 'token_invalid',
    request: async (c) => {
      const [header, payload, signature] = (await token(c)).split('.');
      return listWith(`${header}.${payload?.replaceAll('-', '+').replaceAll('_', '/')}+/.${signature}`);
    },
  },
  {
    name: 'a character outside base64url (~) in the signature',
    group: 'token',
    expect: 'token_invalid',
    request: async (c) => listWith(`${await token(c)}~`),
  },
  {
    name: '= padding on the signature of a genuine token',
    group: 'token',
    expect: 'token_invalid',
    request: async (c) => listWith(`${await token(c)}==`),
  },
  {
    name: 'stray low bits in the last signature character of a genuine token',
    group: 'token',
    expect: 'token_invalid',
    request: async (c) => listWith(strayBits(await token(c))),
  },
  {
    name: '= padding inside the token (not at its end)',
    group: 'token',
    expect: 'request_malformed',
    request: async (c) => {
      const [header, payload, signature] = (await token(c)).split('.');
      return listWith(`${header}==.${payload}.${signature}`);
    },
  },
  {
    name: 'whitespace inside the token',
    group: 'token',
    expect: 'request_malformed',
    request: async (c) => listWith((await token(c)).replace('.', '. ')),
  },
  {
    name: 'a header that is not JSON',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(signed(c.key, '{"alg":"RS256",', claims(c))),
  },
  {
    name: 'a payload that is a JSON array',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(signed(c.key, rs256(c.key), [claims(c)])),
  },
  {
    name: 'a payload that is JSON null',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(signed(c.key, rs256(c.key), 'null')),
  },
  {
    name: 'a payload with a byte order mark',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(signed(c.key, rs256(c.key), `\ufeff${JSON.stringify(claims(c))}`)),
  },
  {
    name: 'a payload that is not UTF-8',
    group: 'token',
    expect: 'token_invalid',
    request: async (c) => {
      const input = `${b64url(JSON.stringify(rs256(c.key)))}.${b64url(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))}`;
      const signature = await webcrypto.subtle.sign(
        { name: 'RSASSA-PKCS1-v1_5' },
        c.key.privateKey as webcrypto.CryptoKey,
        Buffer.from(input),
      );
      return listWith(`${input}.${b64url(new Uint8Array(signature))}`);
    },
  },
  // Time claims: wrong types are broken tokens (token_invalid), not clock problems.
  {
    name: 'exp as a string',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { exp: String(c.now + 3600) })),
  },
  {
    name: 'exp as null',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { exp: null })),
  },
  {
    name: 'exp as a float',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { exp: c.now + 3600.5 })),
  },
  {
    name: 'exp negative',
    group: 'token',
    expect: 'token_expired',
    request: (c) => listWith(token(c, { exp: -1 })),
  },
  {
    name: 'exp zero',
    group: 'token',
    expect: 'token_expired',
    request: (c) => listWith(token(c, { exp: 0 })),
  },
  {
    name: 'exp huge (1e20)',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { exp: 1e20 })),
  },
  {
    name: 'exp out of range (1e400, Infinity to JSON.parse)',
    group: 'token',
    expect: 'token_invalid',
    request: (c) =>
      listWith(signed(c.key, rs256(c.key), JSON.stringify(claims(c)).replace(/"exp":\d+/, '"exp":1e400'))),
  },
  {
    name: 'exp missing',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { exp: undefined })),
  },
  {
    name: 'nbf as a string',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { nbf: '0' })),
  },
  {
    name: 'nbf as a float in the past',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { nbf: c.now - 0.5 })),
  },
  {
    name: 'nbf negative',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { nbf: -1 })),
  },
  {
    name: 'nbf huge',
    group: 'token',
    expect: 'token_not_yet_valid',
    request: (c) => listWith(token(c, { nbf: 1e15 })),
  },
  {
    name: 'iat as a string',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { iat: String(c.now) })),
  },
  {
    name: 'iat as a float',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { iat: c.now - 0.25 })),
  },
  {
    name: 'iat negative',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { iat: -1 })),
  },
  {
    name: 'iat huge',
    group: 'token',
    expect: 'token_not_yet_valid',
    request: (c) => listWith(token(c, { iat: 1e15 })),
  },
  // Audience and issuer.
  {
    name: 'aud as a string',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { aud: c.audience })),
  },
  {
    name: 'aud as an array holding ours',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { aud: ['https://other.example.com', c.audience] })),
  },
  {
    name: 'aud as an array without ours',
    group: 'token',
    expect: 'audience_mismatch',
    request: (c) => listWith(token(c, { aud: ['https://other.example.com'] })),
  },
  {
    name: 'aud missing',
    group: 'token',
    expect: 'audience_mismatch',
    request: (c) => listWith(token(c, { aud: undefined })),
  },
  {
    name: 'aud with a trailing slash added',
    group: 'token',
    expect: 'audience_mismatch',
    request: (c) => listWith(token(c, { aud: `${c.audience}/` })),
  },
  {
    name: 'iss exactly as configured (trailing slash)',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { iss: c.issuer })),
  },
  {
    name: 'iss without the trailing slash',
    group: 'token',
    expect: 'issuer_untrusted',
    request: (c) => listWith(token(c, { iss: c.issuer.replace(/\/$/, '') })),
  },
  {
    name: 'iss with a second trailing slash',
    group: 'token',
    expect: 'issuer_untrusted',
    request: (c) => listWith(token(c, { iss: `${c.issuer}/` })),
  },
  {
    name: 'iss in upper case',
    group: 'token',
    expect: 'issuer_untrusted',
    request: (c) => listWith(token(c, { iss: c.issuer.toUpperCase() })),
  },
  {
    name: 'iss as an array',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { iss: [c.issuer] })),
  },
  // Duplicate keys: JSON.parse keeps the last one, another reader may keep the first.
  {
    name: 'duplicate alg in the header (none first, RS256 last)',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(signed(c.key, withDuplicate(rs256(c.key), 'alg', 'none', 'RS256'), claims(c))),
  },
  {
    name: 'duplicate kid in the header',
    group: 'token',
    expect: 'token_invalid',
    request: (c) =>
      listWith(signed(c.key, withDuplicate(rs256(c.key), 'kid', 'other', c.key.kid), claims(c))),
  },
  {
    name: 'duplicate sub in the payload',
    group: 'token',
    expect: 'token_invalid',
    request: (c) =>
      listWith(
        signed(
          c.key,
          rs256(c.key),
          withDuplicate(claims(c), 'sub', 'svc-stock-report', 'svc-inventory-sync'),
        ),
      ),
  },
  {
    name: 'duplicate scope in the payload',
    group: 'token',
    expect: 'token_invalid',
    request: (c) =>
      listWith(
        signed(c.key, rs256(c.key), withDuplicate(claims(c), 'scope', 'inventory.read', 'inventory.read')),
      ),
  },
  {
    name: 'duplicate key in a nested payload object',
    group: 'token',
    expect: 'token_invalid',
    request: (c) =>
      listWith(signed(c.key, rs256(c.key), JSON.stringify(claims(c)).replace(/}$/, ',"ext":{"a":1,"a":2}}'))),
  },
  // Scope claim shapes.
  {
    name: 'scope as a space-separated string',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { scope: 'inventory.read' })),
  },
  {
    name: 'scope as an array',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { scope: ['inventory.read'] })),
  },
  {
    name: 'scp as an array (no scope claim)',
    group: 'token',
    expect: 'allowed',
    request: (c) => listWith(token(c, { scope: undefined, scp: ['inventory.read'] })),
  },
  {
    name: 'scope as a number',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { scope: 42 })),
  },
  {
    name: 'scope as an object',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { scope: { 'inventory.read': true } })),
  },
  {
    name: 'scope as an array holding a number',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { scope: ['inventory.read', 1] })),
  },
  {
    name: 'scope as null (treated as absent)',
    group: 'token',
    expect: 'scope_missing',
    request: (c) => listWith(token(c, { scope: null })),
  },
  {
    name: 'scope empty',
    group: 'token',
    expect: 'scope_missing',
    request: (c) => listWith(token(c, { scope: '' })),
  },
  {
    name: 'sub as a number',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { sub: 7 })),
  },
  {
    name: 'sub missing',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { sub: undefined })),
  },
  {
    name: 'a 1 MB token (beyond the 64 KiB header block): a malformed token, 401',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { pad: 'x'.repeat(1024 * 1024) })),
  },
  {
    name: 'a 9 KB token (within the header block, over the 8 KiB token cap)',
    group: 'token',
    expect: 'token_invalid',
    request: (c) => listWith(token(c, { pad: 'x'.repeat(9 * 1024) })),
  },
  // Identity values are exact or refused (issue 16, class 1): a name a header cannot carry as it is would be
  // decided as one identity and reach the upstream as another.
  ...(
    [
      ['client_id with a NUL after a listed client', { client_id: 'stock-report\u0000' }],
      ['client_id with a trailing space', { client_id: 'inventory-sync ' }],
      ['sub with a trailing space', { sub: 'svc-inventory-sync ' }],
      ['sub with a leading tab', { sub: '\tsvc-inventory-sync' }],
      ['sub with a trailing no-break space', { sub: 'svc-inventory-sync\u00a0' }],
      ['sub with a CR LF and a header after it', { sub: 'svc-inventory-sync\r\nx-scopegate-subject: admin' }],
      ['sub with an escape sequence', { sub: 'svc\u001b[2J-inventory-sync' }],
      ['sub with DEL', { sub: 'svc-inventory-sync\u007f' }],
      ['sub with a C1 control (NEL)', { sub: 'svc-inventory-sync\u0085' }],
      ['gty with a trailing newline', { gty: 'client_credentials\n' }],
      ['a role with a NUL', { roles: ['Inventory Data Reader\u0000'] }],
      ['a location claim with a trailing space', { locations: ['WH01 '] }],
      ['scopes separated by a tab', { scope: 'inventory.read\tinventory.write' }],
    ] as const
  ).map(
    ([what, extra]): CorpusVector => ({
      name: `${what} is refused, never trimmed into another name`,
      group: 'token',
      expect: 'token_invalid',
      request: (c) => listWith(token(c, extra)),
    }),
  ),
  {
    name: 'a printable non-ASCII subject (josé) holding the reader role by its token is allowed',
    group: 'token',
    expect: 'allowed',
    allowedAs: 'josé',
    request: (c) => listWith(token(c, { sub: 'josé', roles: ['Inventory Data Reader'] })),
  },
  // A policy that lists clients means its client rules (issue 16, class 10).
  {
    name: 'a client the policy does not list',
    group: 'token',
    expect: 'client_unknown',
    request: (c) => listWith(token(c, { client_id: 'partner-app' })),
  },
  {
    name: 'no client claim at all',
    group: 'token',
    expect: 'client_unknown',
    request: (c) => listWith(token(c, { client_id: undefined })),
  },
];

const STOCK = '/api/inventory/stock';
const STOCK_SUMMARY = '/api/inventory/stock/summary';

/** GET of a stock route with a valid token and the given headers. */
const stock = async (
  ctx: CorpusContext,
  path: string,
  headers: ReadonlyArray<readonly [string, string]> = [],
) => http({ path, authorization: `Bearer ${await token(ctx)}`, headers });

const headers: CorpusVector[] = [
  // A second spelling never hides a location (issue 16, class 3): CGI-style upstreams read x_location as x-location.
  {
    name: 'the location header once: read',
    group: 'header',
    expect: 'allowed',
    request: (c) => stock(c, STOCK_SUMMARY, [['x-location', 'WH01']]),
  },
  {
    name: 'the location header as x-location and as x_location',
    group: 'header',
    expect: 'request_malformed',
    request: (c) =>
      stock(c, STOCK_SUMMARY, [
        ['x-location', 'WH01'],
        ['x_location', 'WH99'],
      ]),
  },
  {
    name: 'the location header only as x_location',
    group: 'header',
    expect: 'request_malformed',
    request: (c) => stock(c, STOCK_SUMMARY, [['x_location', 'WH99']]),
  },
  {
    name: 'the location header as x-location and X_LOCATION in raw header lines',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) =>
      asHeaderMap(await stock(c, STOCK_SUMMARY, [['x-location', 'WH01']]), [['X_LOCATION', 'WH99']]),
  },
  {
    name: 'two Authorization values (Envoy joins them with ", ")',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) => http({ authorization: `Bearer ${await token(c)}, Bearer ${await token(c)}` }),
  },
  {
    name: 'two Authorization values as two header lines',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) =>
      http({
        headers: [
          ['authorization', `Bearer ${await token(c)}`],
          ['authorization', `Bearer ${await token(c)}`],
        ],
      }),
  },
  {
    name: 'lowercase bearer',
    group: 'header',
    expect: 'allowed',
    request: async (c) => http({ authorization: `bearer ${await token(c)}` }),
  },
  {
    name: 'upper-case BEARER',
    group: 'header',
    expect: 'allowed',
    request: async (c) => http({ authorization: `BEARER ${await token(c)}` }),
  },
  {
    name: 'two spaces after Bearer',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) => http({ authorization: `Bearer  ${await token(c)}` }),
  },
  {
    name: 'a trailing space after the token',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) => http({ authorization: `Bearer ${await token(c)} ` }),
  },
  {
    name: 'a leading space before Bearer',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) => http({ authorization: ` Bearer ${await token(c)}` }),
  },
  {
    name: 'a tab after Bearer',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) => http({ authorization: `Bearer\t${await token(c)}` }),
  },
  {
    name: 'Bearer with an empty token',
    group: 'header',
    expect: 'request_malformed',
    request: () => http({ authorization: 'Bearer ' }),
  },
  {
    name: 'Bearer with no token at all',
    group: 'header',
    expect: 'request_malformed',
    request: () => http({ authorization: 'Bearer' }),
  },
  {
    name: 'an empty Authorization header',
    group: 'header',
    expect: 'request_malformed',
    request: () => http({ authorization: '' }),
  },
  {
    name: 'Basic credentials',
    group: 'header',
    expect: 'request_malformed',
    request: () => http({ authorization: `Basic ${b64url('inventory-sync:secret')}` }),
  },
  { name: 'no Authorization header', group: 'header', expect: 'token_missing', request: () => http() },
  {
    name: 'the token also in the query string',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) => {
      const t = await token(c);
      return http({ path: `${LIST}?access_token=${t}`, authorization: `Bearer ${t}` });
    },
  },
  {
    name: 'the token only in the query string',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) => http({ path: `${LIST}?access_token=${await token(c)}` }),
  },
  {
    name: 'an empty access_token query parameter',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) => http({ path: `${LIST}?access_token=`, authorization: `Bearer ${await token(c)}` }),
  },
  {
    name: 'spoofed x-scopegate-* headers with a valid token (removed before the upstream)',
    group: 'header',
    expect: 'allowed',
    request: async (c) =>
      http({
        authorization: `Bearer ${await token(c)}`,
        headers: [
          ['x-scopegate-subject', 'admin'],
          ['X-Scopegate-Client', 'root'],
          ['x-scopegate-reason', 'allowed'],
        ],
      }),
  },
  {
    name: 'spoofed x-scopegate-subject without a token',
    group: 'header',
    expect: 'token_missing',
    request: () => http({ headers: [['x-scopegate-subject', 'svc-inventory-sync']] }),
  },
  {
    name: 'raw headers (header_map) instead of the headers map',
    group: 'header',
    expect: 'allowed',
    request: async (c) => asHeaderMap(await listWith(token(c))),
  },
  {
    name: 'raw headers with the name spelled Authorization',
    group: 'header',
    expect: 'allowed',
    request: async (c) => {
      const request = asHeaderMap(http(), [['Authorization', `Bearer ${await token(c)}`]]);
      return request;
    },
  },
  {
    name: 'raw headers with two Authorization lines',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) =>
      asHeaderMap(http(), [
        ['authorization', `Bearer ${await token(c)}`],
        ['Authorization', `Bearer ${await token(c)}`],
      ]),
  },
  {
    name: 'raw headers with an Authorization value that is not UTF-8',
    group: 'header',
    expect: 'request_malformed',
    request: () =>
      asHeaderMap(http(), [['authorization', Buffer.from([0x42, 0x65, 0x61, 0x72, 0x65, 0x72, 0x20, 0xff])]]),
  },
  {
    name: 'headers map and header_map both filled',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) => {
      const request = await listWith(token(c));
      const attrs = httpOf(request);
      attrs.header_map = { headers: [{ key: 'authorization', raw_value: Buffer.from('Bearer x.y.z') }] };
      return request;
    },
  },
  {
    name: 'a header with an empty name (header_map)',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) => asHeaderMap(await listWith(token(c)), [['', 'x']]),
  },
  {
    name: 'a 70 KB header value',
    group: 'header',
    expect: 'request_malformed',
    request: async (c) =>
      http({ authorization: `Bearer ${await token(c)}`, headers: [['x-filler', 'x'.repeat(70 * 1024)]] }),
  },
];

const PATHS_MALFORMED: ReadonlyArray<readonly [string, string]> = [
  ['an encoded slash %2F', '/api/inventory%2Ftransactions'],
  ['an encoded slash %2f', '/api/inventory%2ftransactions'],
  ['an encoded backslash %5C', '/api/inventory%5Ctransactions'],
  ['an encoded backslash %5c', '/api/inventory%5ctransactions'],
  ['a backslash', '/api/inventory\\transactions'],
  ['a dot segment /./', '/api/inventory/./transactions'],
  ['a dot-dot segment /../', '/api/inventory/x/../transactions'],
  ['a trailing /.', '/api/inventory/transactions/.'],
  ['a trailing /..', '/api/inventory/transactions/x/..'],
  ['an encoded dot segment %2e', '/api/inventory/%2e/transactions'],
  ['an encoded dot-dot %2e%2e', '/api/inventory/x/%2e%2e/transactions'],
  ['an encoded dot-dot %2E%2E', '/api/inventory/x/%2E%2E/transactions'],
  ['a half-encoded dot-dot .%2e', '/api/inventory/x/.%2e/transactions'],
  ['a double-encoded slash %252F', '/api/inventory%252Ftransactions'],
  ['a double-encoded dot-dot %252e%252e', '/api/inventory/x/%252e%252e/transactions'],
  ['overlong UTF-8 slash %C0%AF', '/api/inventory%C0%AFtransactions'],
  ['overlong UTF-8 dot-dot %C0%AE%C0%AE', '/api/inventory/x/%C0%AE%C0%AE/transactions'],
  ['overlong three-byte slash %E0%80%AF', '/api/inventory%E0%80%AFtransactions'],
  ['an invalid UTF-8 byte %FF', '/api/inventory/transactions/%FF'],
  ['an encoded NUL %00', '/api/inventory/transactions%00'],
  ['an encoded NUL before .json', '/api/inventory/transactions/1%00.json'],
  ['a raw NUL', '/api/inventory/transactions\u0000'],
  ['an encoded newline %0A', '/api/inventory/transactions%0A'],
  ['a raw tab', '/api/inventory/\ttransactions'],
  ['an encoded C1 control %C2%85', '/api/inventory/transactions/%C2%85'],
  ['an empty segment //', '/api/inventory//transactions'],
  ['a leading // (a host to URL parsers)', '//api/inventory/transactions'],
  ['a leading ///', '///api/inventory/transactions'],
  [';jsessionid=', '/api/inventory/transactions;jsessionid=ABC'],
  ['a ; parameter mid-path', '/api/inventory;x=1/transactions'],
  ['an encoded ; %3B', '/api/inventory/transactions%3Bjsessionid=ABC'],
  ['an encoded ? %3F', '/api/inventory/transactions%3Fx=1'],
  ['a fragment', '/api/inventory/transactions#top'],
  ['an encoded fragment %23', '/api/inventory/transactions%23top'],
  ['a fragment after the query', '/api/inventory/transactions?x=1#top'],
  ['a trailing slash', '/api/inventory/transactions/'],
  ['bad percent-encoding %ZZ', '/api/inventory/%ZZtransactions'],
  ['a cut percent-encoding %2', '/api/inventory/transactions%2'],
  ['a raw space', '/api/inventory/ transactions'],
  ['no leading slash', 'api/inventory/transactions'],
  ['absolute form', 'http://inventory.local/api/inventory/transactions'],
  ['asterisk form', '*'],
  ['a 64 KB path', `/api/inventory/transactions/${'a'.repeat(64 * 1024)}`],
  ['a 9 KB path (over the 8 KiB path cap)', `/api/inventory/transactions/${'a'.repeat(9 * 1024)}`],
  ['a * location in the path', '/api/inventory/locations/*/items'],
  ['an encoded * location %2A', '/api/inventory/locations/%2A/items'],
  ['a query with bad percent-encoding', '/api/inventory/transactions?x=%ZZ'],
  ['a query with an encoded NUL', '/api/inventory/transactions?x=%00'],
];

const paths: CorpusVector[] = [
  ...PATHS_MALFORMED.map(
    ([what, path]): CorpusVector => ({
      name: `path with ${what}`,
      group: 'path',
      expect: 'request_malformed',
      request: (c) => getPath(c, path),
    }),
  ),
  {
    name: 'path in upper case',
    group: 'path',
    expect: 'route_unknown',
    request: (c) => getPath(c, '/API/INVENTORY/TRANSACTIONS'),
  },
  {
    name: 'path with one segment capitalised',
    group: 'path',
    expect: 'route_unknown',
    request: (c) => getPath(c, '/api/Inventory/transactions'),
  },
  {
    name: 'path with a fullwidth slash (U+FF0F) is one segment',
    group: 'path',
    expect: 'route_unknown',
    request: (c) => getPath(c, '/api/inventory%EF%BC%8Ftransactions'),
  },
  {
    name: 'path the policy does not know',
    group: 'path',
    expect: 'route_unknown',
    request: (c) => getPath(c, '/admin'),
  },
  { name: 'the root path', group: 'path', expect: 'route_unknown', request: (c) => getPath(c, '/') },
  {
    name: 'path with an encoded unreserved letter (%74 = t)',
    group: 'path',
    expect: 'allowed',
    request: (c) => getPath(c, '/api/inventory/%74ransactions'),
  },
  {
    name: 'path with an empty query',
    group: 'path',
    expect: 'allowed',
    request: (c) => getPath(c, `${LIST}?`),
  },
  {
    name: 'path with a harmless query',
    group: 'path',
    expect: 'allowed',
    request: (c) => getPath(c, `${LIST}?page=2&size=10`),
  },
  {
    name: 'path parameter location WH01',
    group: 'path',
    expect: 'allowed',
    request: (c) => getPath(c, '/api/inventory/locations/WH01/items'),
  },
  {
    name: 'path parameter location encoded (WH%30%31)',
    group: 'path',
    expect: 'allowed',
    request: (c) => getPath(c, '/api/inventory/locations/WH%30%31/items'),
  },
  {
    name: 'path parameter location not granted',
    group: 'path',
    expect: 'location_denied',
    request: (c) => getPath(c, '/api/inventory/locations/WH03/items'),
  },
  {
    name: 'path parameter location in lower case (not WH01)',
    group: 'path',
    expect: 'location_denied',
    request: (c) => getPath(c, '/api/inventory/locations/wh01/items'),
  },
  {
    name: 'path parameter location under a prefix grant (EU-*)',
    group: 'path',
    expect: 'allowed',
    request: (c) => getPath(c, '/api/inventory/locations/EU-DE1/items'),
  },
];

const bodies: CorpusVector[] = [
  {
    name: 'baseline: a JSON body at WH01 is allowed',
    group: 'body',
    expect: 'allowed',
    request: (c) => post(c, WH01),
  },
  {
    name: 'a location not granted',
    group: 'body',
    expect: 'location_denied',
    request: (c) => post(c, '{"location":"WH03"}'),
  },
  {
    name: 'duplicate location (granted first, not granted last)',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":"WH01","item":"ITEM001","location":"WH99"}'),
  },
  {
    name: 'duplicate location (not granted first, granted last)',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":"WH99","location":"WH01"}'),
  },
  {
    name: 'location twice, spelled Location',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":"WH01","Location":"WH99"}'),
  },
  {
    name: 'location twice, one with an escaped letter',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":"WH01","locati\\u006fn":"WH99"}'),
  },
  {
    name: 'location as a nested object',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":{"code":"WH01"}}'),
  },
  {
    name: 'location as an array',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":["WH01","WH99"]}'),
  },
  {
    name: 'location as a number',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":1}'),
  },
  {
    name: 'location as a boolean',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":true}'),
  },
  {
    name: 'location as null',
    group: 'body',
    expect: 'location_missing',
    request: (c) => post(c, '{"location":null,"item":"ITEM001"}'),
  },
  {
    name: 'location empty',
    group: 'body',
    expect: 'location_missing',
    request: (c) => post(c, '{"location":""}'),
  },
  {
    name: 'no location field',
    group: 'body',
    expect: 'location_missing',
    request: (c) => post(c, '{"item":"ITEM001"}'),
  },
  { name: 'an empty JSON object', group: 'body', expect: 'location_missing', request: (c) => post(c, '{}') },
  {
    name: 'location "*"',
    group: 'body',
    expect: 'request_malformed',
    request: (c) => post(c, '{"location":"*"}'),
  },
  {
    name: 'location with a prefix wildcard "WH*"',
    group: 'body',
    expect: 'request_malformed',
    request: (c) => post(c, '{"location":"WH*"}'),
  },
  {
    name: 'location in fullwidth letters',
    group: 'body',
    expect: 'request_malformed',
    request: (c) => post(c, '{"location":"\uff37\uff28\uff10\uff11"}'),
  },
  {
    name: 'location with a trailing NUL escape',
    group: 'body',
    expect: 'request_malformed',
    request: (c) => post(c, '{"location":"WH01\\u0000"}'),
  },
  {
    name: 'location spelled with escapes (WH\\u0030\\u0031)',
    group: 'body',
    expect: 'allowed',
    request: (c) => post(c, '{"location":"WH\\u0030\\u0031"}'),
  },
  {
    name: 'a __proto__ key holding another location',
    group: 'body',
    expect: 'allowed',
    request: (c) => post(c, '{"__proto__":{"location":"WH99"},"location":"WH01"}'),
  },
  { name: 'an empty body', group: 'body', expect: 'body_unreadable', request: (c) => post(c, '') },
  { name: 'no body sent', group: 'body', expect: 'body_unreadable', request: (c) => post(c, undefined) },
  {
    name: 'a body that is JSON null',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, 'null'),
  },
  {
    name: 'a body that is a JSON array',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, `[${WH01}]`),
  },
  {
    name: 'a body that is a JSON string',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '"WH01"'),
  },
  {
    name: 'a body with a byte order mark',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, `\ufeff${WH01}`),
  },
  {
    name: 'a raw body with a UTF-8 byte order mark',
    group: 'body',
    expect: 'body_unreadable',
    request: async (c) =>
      asRawBody(await post(c, WH01), Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(WH01)])),
  },
  {
    name: 'a raw body that is not UTF-8',
    group: 'body',
    expect: 'body_unreadable',
    request: async (c) => asRawBody(await post(c, WH01), Buffer.from([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x7d])),
  },
  {
    name: "a body in Envoy's text field with a byte that is not UTF-8 (Envoy sends it as '!')",
    group: 'body',
    expect: 'body_unreadable',
    request: async (c) => {
      const request = await post(c, WH01);
      httpOf(request).body = Buffer.from('{"location":"WH01","note":"!"}');
      return request;
    },
  },
  {
    name: "a body in Envoy's text field without a '!' (nothing was replaced): read",
    group: 'body',
    expect: 'allowed',
    request: async (c) => {
      const request = await post(c, WH01);
      httpOf(request).body = Buffer.from(WH01);
      return request;
    },
  },
  {
    name: 'an object with 10,001 keys',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) =>
      post(c, `{"location":"WH01",${Array.from({ length: 10_000 }, (_, i) => `"k${i}":1`).join(',')}}`),
  },
  {
    name: 'a string longer than 256 Ki characters',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, `{"location":"WH01","note":"${'x'.repeat(256 * 1024 + 1)}"}`),
  },
  {
    name: 'a raw body in UTF-16',
    group: 'body',
    expect: 'body_unreadable',
    request: async (c) => asRawBody(await post(c, WH01), Buffer.from(`\ufeff${WH01}`, 'utf16le')),
  },
  {
    name: 'a raw body that is valid JSON (pack_as_bytes)',
    group: 'body',
    expect: 'allowed',
    request: async (c) => asRawBody(await post(c, WH01), Buffer.from(WH01)),
  },
  {
    name: 'body and raw_body both sent, naming different locations',
    group: 'body',
    expect: 'request_malformed',
    request: async (c) => {
      const request = await post(c, WH01);
      httpOf(request).raw_body = Buffer.from('{"location":"WH03"}');
      return request;
    },
  },
  {
    name: 'body and raw_body both sent, the same text',
    group: 'body',
    expect: 'request_malformed',
    request: async (c) => {
      const request = await post(c, WH01);
      httpOf(request).raw_body = Buffer.from(WH01);
      return request;
    },
  },
  {
    name: '100,000-deep array nesting',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, nested('[', ']', '1', 100_000)),
  },
  {
    name: '100,000-deep object nesting',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, `{"location":"WH01","x":${nested('{"a":', '}', '1', 100_000)}}`),
  },
  {
    name: '100,000 opening brackets, never closed',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '['.repeat(100_000)),
  },
  {
    name: 'a number out of range (1e400)',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":"WH01","quantity":1e400}'),
  },
  {
    name: 'a 100-digit number',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, `{"location":"WH01","quantity":${'9'.repeat(100)}}`),
  },
  {
    name: 'a 20-digit number (harmless)',
    group: 'body',
    expect: 'allowed',
    request: (c) => post(c, `{"location":"WH01","quantity":${'9'.repeat(20)}}`),
  },
  {
    name: 'a number with a leading zero',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":"WH01","quantity":010}'),
  },
  {
    name: 'NaN',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":"WH01","quantity":NaN}'),
  },
  {
    name: 'text after the JSON value',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, `${WH01} {"location":"WH99"}`),
  },
  {
    name: 'a trailing comma',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":"WH01",}'),
  },
  {
    name: 'a comment',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":"WH01" /* ,"location":"WH99" */}'),
  },
  {
    name: 'single quotes',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, "{'location':'WH01'}"),
  },
  {
    name: 'a lone surrogate escape',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, '{"location":"WH01","note":"\\ud800"}'),
  },
  {
    name: 'a body cut short',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, WH01.slice(0, 12)),
  },
  {
    name: 'content-type text/plain',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, WH01, [['content-type', 'text/plain']]),
  },
  {
    name: 'content-type form-urlencoded',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, 'location=WH01', [['content-type', 'application/x-www-form-urlencoded']]),
  },
  { name: 'no content-type', group: 'body', expect: 'body_unreadable', request: (c) => post(c, WH01, []) },
  {
    name: 'content-type JSON in UTF-16',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, WH01, [['content-type', 'application/json; charset=utf-16']]),
  },
  {
    name: 'two content-type values',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, WH01, [JSON_TYPE, ['content-type', 'text/plain']]),
  },
  {
    name: 'content-type with charset=UTF-8',
    group: 'body',
    expect: 'allowed',
    request: (c) => post(c, WH01, [['content-type', 'application/json; charset=UTF-8']]),
  },
  {
    name: 'content-type application/merge-patch+json',
    group: 'body',
    expect: 'allowed',
    request: (c) => post(c, WH01, [['content-type', 'application/merge-patch+json']]),
  },
  {
    name: 'content-type in upper case',
    group: 'body',
    expect: 'allowed',
    request: (c) => post(c, WH01, [['content-type', 'APPLICATION/JSON']]),
  },
  {
    name: 'the partial-body flag (Envoy cut the body)',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, WH01, [JSON_TYPE, ['x-envoy-auth-partial-body', 'true']]),
  },
  {
    name: 'the partial-body flag with an odd value',
    group: 'body',
    expect: 'body_unreadable',
    request: (c) => post(c, WH01, [JSON_TYPE, ['x-envoy-auth-partial-body', 'yes']]),
  },
  {
    name: 'the partial-body flag false',
    group: 'body',
    expect: 'allowed',
    request: (c) => post(c, WH01, [JSON_TYPE, ['x-envoy-auth-partial-body', 'false']]),
  },
];

/** The http attributes of a valid GET, changed by `edit`. */
async function editedHttp(
  ctx: CorpusContext,
  edit: (attrs: HttpRequestAttrs) => void,
): Promise<CheckRequest> {
  const request = await listWith(token(ctx));
  edit(httpOf(request));
  return request;
}

const requests: CorpusVector[] = [
  {
    name: 'the location query parameter once: read',
    group: 'request',
    expect: 'allowed',
    request: (c) => stock(c, `${STOCK}?location=WH01`),
  },
  ...[
    ['in another case', 'location=WH01&Location=WH99'],
    ['as an array (PHP, Rails, qs)', 'location=WH01&location[]=WH99'],
    ['as an indexed array', 'location=WH01&location%5B0%5D=WH99'],
    ['only in another case', 'LOCATION=WH99'],
    ['in full-width letters that fold to it', 'location=WH01&%EF%BD%8Cocation=WH99'],
  ].map(
    ([what, query]): CorpusVector => ({
      name: `the location query parameter again ${what}`,
      group: 'request',
      expect: 'request_malformed',
      request: (c) => stock(c, `${STOCK}?${query}`),
    }),
  ),
  { name: 'an empty CheckRequest', group: 'request', expect: 'request_malformed', request: () => ({}) },
  {
    name: 'attributes without request',
    group: 'request',
    expect: 'request_malformed',
    request: () => ({ attributes: {} }),
  },
  {
    name: 'request without http',
    group: 'request',
    expect: 'request_malformed',
    request: () => ({ attributes: { request: {} } }),
  },
  {
    name: 'http with nothing in it',
    group: 'request',
    expect: 'request_malformed',
    request: () => ({ attributes: { request: { http: {} } } }),
  },
  {
    name: 'an empty method',
    group: 'request',
    expect: 'request_malformed',
    request: (c) =>
      editedHttp(c, (h) => {
        h.method = '';
        delete h.headers?.[':method'];
      }),
  },
  {
    name: 'an unknown method (BREW)',
    group: 'request',
    expect: 'route_unknown',
    request: async (c) => http({ method: 'BREW', authorization: `Bearer ${await token(c)}` }),
  },
  {
    name: 'a lower-case method',
    group: 'request',
    expect: 'request_malformed',
    request: (c) =>
      editedHttp(c, (h) => {
        h.method = 'get';
        if (h.headers) h.headers[':method'] = 'get';
      }),
  },
  {
    name: 'a method with a space',
    group: 'request',
    expect: 'request_malformed',
    request: (c) =>
      editedHttp(c, (h) => {
        h.method = 'GET ';
        delete h.headers?.[':method'];
      }),
  },
  {
    name: 'a 17-letter method',
    group: 'request',
    expect: 'request_malformed',
    request: (c) =>
      editedHttp(c, (h) => {
        h.method = 'G'.repeat(17);
        delete h.headers?.[':method'];
      }),
  },
  {
    name: 'method attribute and :method disagree',
    group: 'request',
    expect: 'request_malformed',
    request: (c) =>
      editedHttp(c, (h) => {
        if (h.headers) h.headers[':method'] = 'POST';
      }),
  },
  {
    name: 'path attribute and :path disagree',
    group: 'request',
    expect: 'request_malformed',
    request: (c) =>
      editedHttp(c, (h) => {
        if (h.headers) h.headers[':path'] = '/admin';
      }),
  },
  {
    name: 'no path at all',
    group: 'request',
    expect: 'request_malformed',
    request: (c) =>
      editedHttp(c, (h) => {
        delete h.path;
        delete h.headers?.[':path'];
      }),
  },
  {
    name: 'only the :method and :path pseudo-headers (no attributes)',
    group: 'request',
    expect: 'allowed',
    request: (c) =>
      editedHttp(c, (h) => {
        delete h.method;
        delete h.path;
      }),
  },
  {
    name: '10,000 headers',
    group: 'request',
    expect: 'request_malformed',
    request: async (c) =>
      http({
        authorization: `Bearer ${await token(c)}`,
        headers: Array.from({ length: 10_000 }, (_, i): [string, string] => [`x-h${i}`, 'v']),
      }),
  },
  {
    name: '10,000 headers in header_map',
    group: 'request',
    expect: 'request_malformed',
    request: async (c) =>
      asHeaderMap(
        await listWith(token(c)),
        Array.from({ length: 10_000 }, (_, i): [string, string] => [`x-h${i}`, 'v']),
      ),
  },
  {
    name: '150 headers (under the cap)',
    group: 'request',
    expect: 'allowed',
    request: async (c) =>
      http({
        authorization: `Bearer ${await token(c)}`,
        headers: Array.from({ length: 150 }, (_, i): [string, string] => [`x-h${i}`, 'v']),
      }),
  },
  {
    name: '1,000 query parameters',
    group: 'request',
    expect: 'request_malformed',
    request: (c) => getPath(c, `${LIST}?${Array.from({ length: 1000 }, (_, i) => `p${i}=1`).join('&')}`),
  },
  {
    name: 'a 100 KB x-request-id (over the 64 KiB header block)',
    group: 'request',
    expect: 'request_malformed',
    request: (c) =>
      editedHttp(c, (h) => {
        if (h.headers) h.headers['x-request-id'] = 'r'.repeat(100 * 1024);
      }),
  },
  {
    name: 'a 10 KB x-request-id (only a short, clean id is echoed)',
    group: 'request',
    expect: 'allowed',
    request: (c) =>
      editedHttp(c, (h) => {
        if (h.headers) h.headers['x-request-id'] = 'r'.repeat(10 * 1024);
      }),
  },
  {
    name: 'an x-request-id with control characters and quotes',
    group: 'request',
    expect: 'allowed',
    request: (c) =>
      editedHttp(c, (h) => {
        if (h.headers) h.headers['x-request-id'] = `"\u0001</script>${randomUUID()}`;
      }),
  },
];

/** The example policy's peer-only route (stock_report), called by a workload Envoy names `principal`. */
const REPORT = '/api/inventory/reports/stock';
const byPeer = (principal: string | undefined, headers: Array<[string, string]> = []) =>
  checkRequestFor({
    method: 'GET',
    path: REPORT,
    headers,
    ...(principal !== undefined && { peer: principal }),
  });
const REPORTING = 'spiffe://cluster.local/ns/reporting/sa';

const peers: CorpusVector[] = [
  {
    name: 'a reporting workload (listed under …/reporting/sa/*)',
    group: 'peer',
    expect: 'allowed',
    allowedAsPeer: `${REPORTING}/nightly`,
    request: () => byPeer(`${REPORTING}/nightly`),
  },
  ...(
    [
      ['the scheme in capitals', `SPIFFE://cluster.local/ns/reporting/sa/nightly`],
      ['the trust domain in capitals', 'spiffe://Cluster.Local/ns/reporting/sa/nightly'],
      ['a look-alike trust domain', 'spiffe://cluster.local.evil/ns/reporting/sa/nightly'],
      ['a trust domain with a port', 'spiffe://cluster.local:443/ns/reporting/sa/nightly'],
      ['user info before the trust domain', 'spiffe://reporting@cluster.local/ns/reporting/sa/nightly'],
      ['a trailing slash (the …/* entry with an empty name)', `${REPORTING}/`],
      ['dot segments climbing out of the namespace', `${REPORTING}/x/../../../orders/sa/orders-api`],
      ['a percent-encoded dot segment', `${REPORTING}/%2e%2e`],
      ['a percent-encoded slash', `${REPORTING}/a%2Fb`],
      ['a query', `${REPORTING}/nightly?admin=1`],
      ['a fragment', `${REPORTING}/nightly#x`],
      ['a NUL inside', `${REPORTING}/night\u0000ly`],
      ['a segment deeper than the …/* covers', `${REPORTING}/nightly/extra`],
      ['the namespace itself, not a workload in it', 'spiffe://cluster.local/ns/reporting'],
      ['a literal * as the workload', `${REPORTING}/*`],
      ['an ID longer than 2,048 bytes', `${REPORTING}/${'a'.repeat(2100)}`],
      ['a DNS name instead of a SPIFFE ID', 'nightly.reporting.svc.cluster.local'],
      [
        'a listed peer not granted this route (orders: no reader role)',
        'spiffe://cluster.local/ns/orders/sa/orders-api',
      ],
    ] as const
  ).map(
    ([what, principal]): CorpusVector => ({
      name: `a peer ID with ${what}`.replace('with a listed', 'that is a listed'),
      group: 'peer',
      expect: 'peer_not_allowed',
      request: () => byPeer(principal),
    }),
  ),
  {
    name: 'no peer, but an x-forwarded-client-cert header naming a listed one',
    group: 'peer',
    expect: 'peer_missing',
    request: () =>
      byPeer(undefined, [['x-forwarded-client-cert', `By=${REPORTING}/x;URI=${REPORTING}/nightly`]]),
  },
  {
    name: 'an empty principal (no mTLS on the hop)',
    group: 'peer',
    expect: 'peer_missing',
    request: () => byPeer(''),
  },
];

/** Every vector, in group order. Names are unique. */
export const CORPUS: ReadonlyArray<CorpusVector> = Object.freeze([
  ...tokens,
  ...headers,
  ...paths,
  ...bodies,
  ...requests,
  ...peers,
]);
