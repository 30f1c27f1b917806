// An independent model of what the example policy may allow, for the property tests. It reads the policy's
// YAML as plain data and the request the way Envoy's contract describes it, and never calls scopegate's
// parser, verifier, matcher or evaluator: if both implementations share a mistake, the properties cannot see
// it, so this one is written from the rules in DESIGN.md and the README, not from src/.
//
// It is deliberately an upper bound. `mayAllow` answers "could a correct scopegate allow this?"; wherever the
// request is ambiguous or the model does not understand it, the answer is no, and an allow is a failure.
import { createPublicKey, verify as verifySignature } from 'node:crypto';
import type { JWK } from 'jose';
import { parse as parseYaml } from 'yaml';
import type { CheckRequest, ProtoStruct, ProtoValue } from '../../src/wire/types.js';

// ---------------------------------------------------------------------------------------------------------
// The policy, as data

interface PolicyData {
  issuers: Array<{ issuer: string; audiences: string[]; clockToleranceSeconds?: number }>;
  envoyMetadataKey?: string;
  claims: {
    subject: string[];
    scopes: string[];
    roles: string[];
    client: string[];
    grantType: string[];
    locations: string[];
  };
  scopes: Record<string, string[]>;
  roles?: Record<string, string[]>;
  /** Entries as written: the key names them unless `client`/`subject` does; `issuer` whose they are. */
  clients: Record<string, { issuer?: string; client?: string; scopes: string[]; grantTypes?: string[] }>;
  subjects: Record<string, { issuer?: string; subject?: string; roles?: string[]; locations?: string[] }>;
  /** With a clients section, may a token whose client is not listed go on? (README: default deny) */
  unlistedClientsAllowed: boolean;
  routes: Array<{
    name: string;
    methods: string[];
    segments: string[];
    permissions: string[];
    location?: Record<string, string>;
  }>;
}

export function policyData(yamlText: string): PolicyData {
  // biome-ignore lint/suspicious/noExplicitAny: the YAML is read as untyped data on purpose.
  const doc = parseYaml(yamlText) as any;
  const claims = doc.authentication.claims ?? {};
  return {
    issuers: doc.authentication.issuers ?? [],
    envoyMetadataKey: doc.authentication.envoyJwtAuthn?.metadataKey,
    claims: {
      subject: claims.subject ?? ['sub'],
      scopes: claims.scopes ?? ['scope', 'scp'],
      roles: claims.roles ?? ['roles'],
      client: claims.client ?? ['client_id', 'azp'],
      grantType: claims.grantType ?? ['gty'],
      locations: claims.locations ?? ['locations'],
    },
    scopes: doc.scopes,
    roles: doc.roles,
    clients: doc.clients ?? {},
    subjects: doc.subjects ?? {},
    unlistedClientsAllowed: doc.clients === undefined || doc.authentication.unlistedClients === 'allow',
    routes: doc.routes.map(
      (route: {
        name: string;
        method: string | string[];
        path: string;
        permissions: string[];
        location?: Record<string, string>;
      }) => ({
        name: route.name,
        methods: Array.isArray(route.method) ? route.method : [route.method],
        segments: route.path.split('/').slice(1),
        permissions: route.permissions,
        location: route.location,
      }),
    ),
  };
}

const own = (record: object | undefined, key: string) => record !== undefined && Object.hasOwn(record, key);

// ---------------------------------------------------------------------------------------------------------
// The request, as Envoy describes it

type Verdict = { may: true; identity: Identity; route: string } | { may: false; why: string };
const no = (why: string): Verdict => ({ may: false, why });

/** Header name → every value sent under it (any case), from the map or the raw header_map, never both. */
function headersOf(check: CheckRequest): Map<string, string[]> | undefined {
  const http = check.attributes?.request?.http;
  const map = Object.entries(http?.headers ?? {});
  const raw = http?.header_map?.headers ?? [];
  if (map.length > 0 && raw.length > 0) return undefined;
  const out = new Map<string, string[]>();
  const add = (name: string, value: string) => {
    const key = name.toLowerCase();
    out.set(key, [...(out.get(key) ?? []), value]);
  };
  for (const [name, value] of map) add(name, value);
  for (const h of raw) {
    const bytes = h.raw_value !== undefined && h.raw_value.length > 0 ? h.raw_value : undefined;
    add(h.key ?? '', bytes ? Buffer.from(bytes).toString('utf8') : (h.value ?? ''));
  }
  return out;
}

/** One value per name, the way Envoy joins repeats (`a,b`). */
const joined = (headers: Map<string, string[]>, name: string) => headers.get(name)?.join(',');

/** C0, DEL and C1 controls. */
const hasControl = (text: string) =>
  [...text].some((c) => c.charCodeAt(0) < 0x20 || (c.charCodeAt(0) >= 0x7f && c.charCodeAt(0) <= 0x9f));

/** Decoded path segments, or undefined when the path could be read two ways by two parsers. */
function plainSegments(rawPath: string): string[] | undefined {
  if (!rawPath.startsWith('/') || rawPath === '/') return undefined;
  if (/[\\; #]/.test(rawPath) || hasControl(rawPath)) return undefined;
  const segments: string[] = [];
  for (const raw of rawPath.split('/').slice(1)) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (raw === '' || decoded === '.' || decoded === '..') return undefined;
    if (/[/\\%]/.test(decoded) || hasControl(decoded)) return undefined;
    segments.push(decoded);
  }
  return segments;
}

function matchRoute(policy: PolicyData, method: string, segments: string[]) {
  for (const route of policy.routes) {
    if (!route.methods.includes(method) || route.segments.length !== segments.length) continue;
    const params: Record<string, string> = {};
    const fits = route.segments.every((template, i) => {
      const param = /^\{(.+)\}$/.exec(template)?.[1];
      if (param !== undefined) params[param] = segments[i]!;
      return param !== undefined || template === segments[i];
    });
    if (fits) return { route, params };
  }
  return undefined;
}

/**
 * Every top-level `key: value` pair of a JSON object text, duplicates kept, or undefined when the text is
 * not one JSON object. JSON.parse validates the text; this scan only finds the pairs it would have merged.
 */
export function topLevelPairs(text: string): Array<[string, unknown]> | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const stringAt = /"(?:[^"\\]|\\.)*"/y;
  const pairs: Array<[string, unknown]> = [];
  let depth = 0;
  let keyStart = -1;
  let key = '';
  let valueStart = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      stringAt.lastIndex = i;
      const literal = stringAt.exec(text)![0];
      if (depth === 1 && valueStart === -1 && keyStart === -1) {
        keyStart = i;
        key = JSON.parse(literal) as string;
      }
      i += literal.length - 1;
      continue;
    }
    if (c === '{' || c === '[') depth++;
    if (depth === 1 && c === ':' && valueStart === -1) valueStart = i + 1;
    if (c === '}' || c === ']') depth--;
    if ((depth === 1 && c === ',') || (depth === 0 && c === '}')) {
      if (keyStart !== -1) pairs.push([key, JSON.parse(text.slice(valueStart, i))]);
      keyStart = -1;
      valueStart = -1;
    }
  }
  return pairs;
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The location codes a request names for its route, or a reason the request must be refused. */
function locationsOf(
  route: PolicyData['routes'][number],
  params: Record<string, string>,
  check: CheckRequest,
  headers: Map<string, string[]>,
): string[] | string {
  const source = route.location;
  if (source === undefined) return [];
  let codes: unknown[];
  if (own(source, 'path')) codes = [params[source.path!]];
  else if (own(source, 'body')) {
    if (source.body!.includes('.') || source.body!.includes('['))
      return 'only top-level body fields are modelled';
    // A body that is not declared JSON may be read as something else upstream (DESIGN rule 4).
    const [mediaType = '', ...parameters] = (joined(headers, 'content-type') ?? '').split(';');
    if (!/^application\/([a-z0-9.+-]+\+)?json$/.test(mediaType.trim().toLowerCase()))
      return 'the body is not declared JSON';
    const charset = parameters.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('charset='));
    if (charset !== undefined && !/^charset="?utf-?8"?$/.test(charset))
      return 'the body is not declared UTF-8';
    const partial = joined(headers, 'x-envoy-auth-partial-body');
    if (partial !== undefined && partial.trim().toLowerCase() !== 'false') return 'the body was cut';
    const http = check.attributes?.request?.http;
    // The body arrives as bytes (`body`, or `raw_body` with pack_as_bytes), or as text in-process.
    const sent = http?.body !== undefined && http.body.length > 0 ? http.body : http?.raw_body;
    let text: string | undefined;
    try {
      text =
        typeof sent === 'string'
          ? sent
          : sent !== undefined && sent.length > 0
            ? fatalUtf8.decode(sent)
            : undefined;
    } catch {
      return 'the body is not UTF-8';
    }
    if (text === undefined || text.charCodeAt(0) === 0xfeff) return 'no readable body';
    const pairs = topLevelPairs(text);
    if (pairs === undefined) return 'the body is not one JSON object';
    // A key spelled differently ("Location") could be the one an upstream reads: every spelling counts.
    codes = pairs.filter(([k]) => k.toLowerCase() === source.body!.toLowerCase()).map(([, v]) => v);
  } else return 'location source not modelled';
  if (codes.length === 0) return 'the route needs a location and the request names none';
  if (!codes.every((c) => typeof c === 'string' && /^[A-Za-z0-9._:-]+$/.test(c))) return 'odd location value';
  return codes as string[];
}

// ---------------------------------------------------------------------------------------------------------
// The identity

export interface Identity {
  subject: string;
  client?: string;
  /** The `iss` that vouched for the subject and client. */
  issuer?: string;
  grantType?: string;
  scopes: string[];
  roles: string[];
  locations: string[];
}

function firstPresent(claims: Record<string, unknown>, names: string[]): unknown {
  for (const name of names) if (own(claims, name) && claims[name] !== null) return claims[name];
  return undefined;
}

/** Claims → identity, with the README's typing rules; undefined when a claim has a type it does not allow. */
export function identityOf(policy: PolicyData, claims: Record<string, unknown>): Identity | undefined {
  // A name is decided on as the upstream receives it in a header, so one a header cannot carry as it is
  // (control characters, whitespace at the ends) is no name at all.
  const headerExact = (v: string) =>
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the model refuses exactly these
    v.isWellFormed() && !/[\x00-\x1f\x7f-\x9f]/.test(v) && v.trim() === v && !/^\s|\s$/.test(v);
  const id = (names: string[]) => {
    const v = firstPresent(claims, names);
    return v === undefined
      ? { ok: true, v: undefined }
      : { ok: typeof v === 'string' && v !== '' && headerExact(v), v: v as string };
  };
  const list = (names: string[], split: boolean) => {
    const v = firstPresent(claims, names);
    if (v === undefined) return [];
    if (typeof v === 'string')
      return split ? v.split(' ').filter((s) => s !== '') : v === '' ? undefined : [v];
    // An empty name in a list is a broken token, not a name: nothing in the policy can be called "".
    if (Array.isArray(v) && v.every((s) => typeof s === 'string' && s !== '')) return v as string[];
    return undefined;
  };
  const exactList = (values: string[] | undefined) => (values?.every(headerExact) ? values : undefined);
  const subject = id(policy.claims.subject);
  const client = id(policy.claims.client);
  const grantType = id(policy.claims.grantType);
  const scopes = exactList(list(policy.claims.scopes, true));
  const roles = exactList(list(policy.claims.roles, false));
  const locations = exactList(list(policy.claims.locations, false));
  if (!subject.ok || subject.v === undefined || !client.ok || !grantType.ok) return undefined;
  if (scopes === undefined || roles === undefined || locations === undefined) return undefined;
  const issuer = typeof claims.iss === 'string' ? claims.iss : undefined;
  return { subject: subject.v, client: client.v, issuer, grantType: grantType.v, scopes, roles, locations };
}

const b64 = (segment: string) =>
  /^[A-Za-z0-9_-]*$/.test(segment) ? Buffer.from(segment, 'base64url') : undefined;

function jsonObject(bytes: Buffer | undefined): Record<string, unknown> | undefined {
  if (bytes === undefined) return undefined;
  try {
    const value = JSON.parse(bytes.toString('utf8')) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** Time claims and audience as RFC 7519 and the issuer config say; numbers only. */
function timesAndAudienceHold(
  claims: Record<string, unknown>,
  issuer: PolicyData['issuers'][number],
  nowSeconds: number,
  checkNotBefore: boolean,
): boolean {
  const tolerance = issuer.clockToleranceSeconds ?? 30;
  const { exp, nbf, iat, aud } = claims;
  if (typeof exp !== 'number' || !(exp + tolerance > nowSeconds)) return false;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
  if (!audiences.some((a) => issuer.audiences.includes(a as string))) return false;
  if (!checkNotBefore) return true;
  if (nbf !== undefined && !(typeof nbf === 'number' && nbf <= nowSeconds + tolerance)) return false;
  if (iat !== undefined && !(typeof iat === 'number' && iat <= nowSeconds + tolerance)) return false;
  return true;
}

/** A bearer token's claims, when it is an RS256 JWT the issuer's real key signed and its claims hold now. */
export function verifiedClaims(
  policy: PolicyData,
  token: string,
  publicJwk: JWK,
  nowSeconds: number,
): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  const [h, p, s] = parts as [string, string, string];
  const header = jsonObject(b64(h));
  const claims = jsonObject(b64(p));
  const signature = b64(s);
  if (!header || !claims || !signature || header.alg !== 'RS256' || own(header, 'crit')) return undefined;
  const key = createPublicKey({ key: publicJwk as import('node:crypto').JsonWebKey, format: 'jwk' });
  if (!verifySignature('sha256', Buffer.from(`${h}.${p}`), key, signature)) return undefined;
  const issuer = policy.issuers.find((i) => i.issuer === claims.iss);
  if (issuer === undefined || !timesAndAudienceHold(claims, issuer, nowSeconds, true)) return undefined;
  return claims;
}

export function structToPlain(struct: ProtoStruct | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(struct?.fields ?? {})) out[k] = valueToPlain(v);
  return out;
}
function valueToPlain(v: ProtoValue): unknown {
  if (v.struct_value !== undefined) return structToPlain(v.struct_value);
  if (v.list_value !== undefined) return (v.list_value.values ?? []).map(valueToPlain);
  if (v.string_value !== undefined) return v.string_value;
  if (v.number_value !== undefined) return v.number_value;
  if (v.bool_value !== undefined) return v.bool_value;
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// The decision

function patternGrants(patterns: readonly string[], code: string): boolean {
  return patterns.some((p) => {
    if (p === '*') return true;
    const star = p.indexOf('*');
    if (star === -1) return p === code;
    return star === p.length - 1 && code.startsWith(p.slice(0, -1));
  });
}

/**
 * The entry for a name within the caller's issuer: an entry names the caller when its name (the key, or its
 * `subject`/`client`) is the caller's and its issuer is the caller's (the only issuer, when it names none).
 */
function entryOf<T extends { issuer?: string; subject?: string; client?: string }>(
  policy: PolicyData,
  entries: Record<string, T>,
  field: 'subject' | 'client',
  who: Identity,
  name: string,
): T | undefined {
  const only = policy.issuers.length === 1 ? policy.issuers[0]!.issuer : undefined;
  return Object.entries(entries).find(
    ([key, entry]) => (entry[field] ?? key) === name && (entry.issuer ?? only) === who.issuer,
  )?.[1];
}

/** What the policy grants this identity on this route, in the README's words. */
export function grants(
  policy: PolicyData,
  who: Identity,
  route: PolicyData['routes'][number],
  locations: string[],
): boolean {
  const client =
    who.client === undefined ? undefined : entryOf(policy, policy.clients, 'client', who, who.client);
  if (client === undefined && !policy.unlistedClientsAllowed) return false;
  if (client?.grantTypes && !(who.grantType !== undefined && client.grantTypes.includes(who.grantType)))
    return false;
  const effective = client ? who.scopes.filter((s) => client.scopes.includes(s)) : who.scopes;
  const byScope = route.permissions.every((perm) =>
    effective.some((s) => own(policy.scopes, s) && policy.scopes[s]!.includes(perm)),
  );
  if (!byScope) return false;
  const subject = entryOf(policy, policy.subjects, 'subject', who, who.subject);
  if (policy.roles) {
    const roles = [...who.roles, ...(subject?.roles ?? [])];
    const byRole = route.permissions.every((perm) =>
      roles.some((r) => own(policy.roles, r) && policy.roles![r]!.includes(perm)),
    );
    if (!byRole) return false;
  }
  return locations.every(
    (code) => patternGrants(subject?.locations ?? [], code) || patternGrants(who.locations, code),
  );
}

/**
 * Could a correct scopegate allow this CheckRequest under the policy? Yes only when the request reads one
 * way, it carries exactly one acceptable credential (a bearer token the issuer's real key signed, or claims
 * Envoy's jwt_authn verified), and that identity is granted every permission and location of the route.
 */
export function mayAllow(
  policy: PolicyData,
  check: CheckRequest,
  publicJwk: JWK,
  nowSeconds: number,
): Verdict {
  const http = check.attributes?.request?.http;
  if (!http) return no('no HTTP attributes');
  const headers = headersOf(check);
  if (!headers) return no('headers sent two ways');

  const methods = new Set([http.method ?? '', joined(headers, ':method') ?? ''].filter((m) => m !== ''));
  const targets = new Set([http.path ?? '', joined(headers, ':path') ?? ''].filter((p) => p !== ''));
  if (methods.size !== 1 || targets.size !== 1) return no('method or path missing or sent two ways');
  const method = [...methods][0]!;
  const target = [...targets][0]!;
  const queryAt = target.indexOf('?');
  const rawPath = queryAt === -1 ? target : target.slice(0, queryAt);
  if (queryAt !== -1) {
    const query = target.slice(queryAt + 1);
    if (query.includes('#') || new URLSearchParams(query).has('access_token')) return no('token in the URL');
  }
  const segments = plainSegments(rawPath);
  if (!segments) return no('ambiguous path');
  const matched = matchRoute(policy, method, segments);
  if (!matched) return no('no route');

  // Exactly one `Bearer <token68>` or none; anything else is ambiguous whatever else the request carries.
  const authorization = headers.get('authorization');
  let token: string | undefined;
  if (authorization !== undefined) {
    const one =
      authorization.length === 1 ? /^bearer ([A-Za-z0-9\-._~+/]+=*)$/i.exec(authorization[0]!) : null;
    if (!one) return no('authorization header not exactly one bearer token');
    token = one[1];
  }

  let claims: Record<string, unknown> | undefined;
  const metadata = check.attributes?.metadata_context?.filter_metadata?.['envoy.filters.http.jwt_authn'];
  const key = policy.envoyMetadataKey;
  if (key !== undefined && metadata?.fields && own(metadata.fields, key)) {
    const value = metadata.fields[key]!;
    if (value.struct_value === undefined) return no('jwt_authn payload is not an object');
    claims = structToPlain(value.struct_value);
    const issuer = policy.issuers.find((i) => i.issuer === claims!.iss);
    if (!issuer || !timesAndAudienceHold(claims, issuer, nowSeconds, false))
      return no('jwt_authn claims do not hold');
  } else {
    if (token === undefined) return no('no credential');
    claims = verifiedClaims(policy, token, publicJwk, nowSeconds);
    if (!claims) return no('token not signed by the issuer or its claims do not hold');
  }
  const identity = identityOf(policy, claims);
  if (!identity) return no('claims of the wrong type');

  const locations = locationsOf(matched.route, matched.params, check, headers);
  if (typeof locations === 'string') return no(locations);
  if (!grants(policy, identity, matched.route, locations)) return no('not granted');
  return { may: true, identity, route: matched.route.name };
}
