// Compiles a validated PolicyDocument into the lookup tables the hot path reads: reverse maps
// (permission → scopes/roles that grant it), client and subject tables, location grants and the route
// matcher. Done once per policy revision; the result is frozen.
import { createHash } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { compileLocationSource } from './body-path.js';
import { parseLocationGrant } from './locations.js';
import { buildRouteMatcher } from './routes.js';
import type {
  ClaimNames,
  ClaimSite,
  CompiledClient,
  CompiledIssuer,
  CompiledPeer,
  CompiledPolicy,
  CompiledRoute,
  CompiledSubject,
  NamesByIssuer,
  PeerTable,
  PolicyDocument,
} from './types.js';
import { defaultPolicyName } from './validate-match.js';

export const DEFAULT_REALM = 'scopegate';
export const DEFAULT_MAX_TOKEN_BYTES = 8192;
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30;
export const DEFAULT_CLAIMS: ClaimNames = Object.freeze({
  subject: Object.freeze(['sub']),
  scopes: Object.freeze(['scope', 'scp']),
  roles: Object.freeze(['roles']),
  client: Object.freeze(['client_id', 'azp']),
  grantType: Object.freeze(['gty']),
  locations: Object.freeze(['locations']),
});

export interface CompileOptions {
  /** The policy file's text: its hash is the revision. */
  readonly text: string;
  /** Where the policy came from (a file path), kept as `CompiledPolicy.source`. */
  readonly source: string;
  /** Directory that a relative `jwks.file` is resolved against. */
  readonly baseDir: string;
  /** Use this revision instead of the content hash (e.g. a revision the caller already tracks). */
  readonly revision?: string;
  /** Where the name and each `match` claim are written (validatePolicy's `sites`). */
  readonly sites?: Readonly<Record<string, ClaimSite>>;
}

/** Where an issuer's keys come from, as one string: one key store per issuer and source. */
export function keySource(issuer: Pick<CompiledIssuer, 'jwks'>): string {
  return 'uri' in issuer.jwks ? `uri ${issuer.jwks.uri}` : `file ${issuer.jwks.file}`;
}

/** First 12 hex characters of the sha256 of the policy text. */
export function policyRevision(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex').slice(0, 12);
}

/** Compiles a document that `validatePolicy` accepted. */
export function compilePolicy(doc: PolicyDocument, opts: CompileOptions): CompiledPolicy {
  const auth = doc.authentication;

  const issuers: CompiledIssuer[] = (auth.issuers ?? []).map((i) => {
    const settings = {
      issuer: i.issuer,
      audiences: [...i.audiences],
      jwks: 'uri' in i.jwks ? { uri: i.jwks.uri } : { file: resolveFile(opts.baseDir, i.jwks.file) },
      algorithms: [...i.algorithms],
      clockToleranceSeconds: i.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS,
    };
    return deepFreeze({ ...settings, basis: JSON.stringify(settings) });
  });

  const claims: ClaimNames = Object.freeze(
    Object.fromEntries(
      (Object.keys(DEFAULT_CLAIMS) as (keyof ClaimNames)[]).map((k) => [
        k,
        Object.freeze([...(auth.claims?.[k] ?? DEFAULT_CLAIMS[k])]),
      ]),
    ) as unknown as ClaimNames,
  );

  const scopes = grantTable(doc.scopes);
  const roles = doc.roles ? grantTable(doc.roles) : undefined;

  // With one issuer, an entry without `issuer` is that issuer's; with none listed, it is any issuer's.
  const ownerOf = (issuer: string | undefined) =>
    issuer ?? (issuers.length === 1 ? issuers[0]!.issuer : undefined);
  const clients = new IssuerNames<CompiledClient>(
    Object.entries(doc.clients ?? {}).map(([key, c]) =>
      Object.freeze({
        id: c.client ?? key,
        ...withIssuer(ownerOf(c.issuer)),
        scopes: new Set(c.scopes),
        ...(c.grantTypes ? { grantTypes: new Set(c.grantTypes) } : {}),
      }),
    ),
  );

  const subjects = new IssuerNames<CompiledSubject>(
    Object.entries(doc.subjects ?? {}).map(([key, s]) =>
      Object.freeze({
        id: s.subject ?? key,
        ...withIssuer(ownerOf(s.issuer)),
        roles: new Set(s.roles ?? []),
        locations: parseLocationGrant(s.locations ?? []),
      }),
    ),
  );

  const routes: CompiledRoute[] = doc.routes.map((r, index) =>
    deepFreeze({
      name: r.name,
      index,
      methods: typeof r.method === 'string' ? [r.method] : [...r.method],
      path: r.path,
      permissions: [...r.permissions],
      ...(r.location ? { location: compileLocationSource(r.location) } : {}),
      mode: r.mode ?? doc.mode ?? 'enforce',
      identity: r.identity ?? doc.identity ?? 'token',
    }),
  );
  const matchRoute = buildRouteMatcher(routes);

  const name = doc.name ?? defaultPolicyName(opts.source);
  const owns = deepFreeze({
    name,
    hosts: [...(doc.match?.hosts ?? [])],
    destinationPrincipals: [...(doc.match?.destinationPrincipals ?? [])],
    default: doc.match?.default ?? false,
    sites: { ...opts.sites },
  });

  return Object.freeze({
    name,
    owns,
    revision: opts.revision ?? policyRevision(opts.text),
    mode: doc.mode ?? 'enforce',
    source: opts.source,
    realm: auth.realm ?? DEFAULT_REALM,
    maxTokenBytes: auth.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES,
    issuers: Object.freeze(issuers),
    issuerByName: new Map(issuers.map((i) => [i.issuer, i])),
    ...(auth.envoyJwtAuthn
      ? { envoyJwtAuthn: Object.freeze({ metadataKey: auth.envoyJwtAuthn.metadataKey }) }
      : {}),
    claims,
    claimsKey: JSON.stringify(claims),
    scopes: scopes.grants,
    scopesGranting: scopes.granting,
    ...(roles ? { roles: roles.grants } : {}),
    rolesGranting: roles?.granting ?? new Map<string, readonly string[]>(),
    clients,
    // Without a clients section there are no client rules to skip, so nothing is unlisted.
    unlistedClients: doc.clients === undefined ? 'allow' : (auth.unlistedClients ?? 'deny'),
    subjects,
    peers: new Peers(
      Object.entries(doc.peers ?? {}).map(([id, p]) =>
        Object.freeze({
          id,
          roles: new Set(p.roles ?? []),
          locations: parseLocationGrant(p.locations ?? []),
        }),
      ),
    ),
    identity: doc.identity ?? 'token',
    routes: Object.freeze(routes),
    matchRoute,
  });
}

/**
 * Peers by SPIFFE ID: the exact entry wins; else the entry for every workload under the ID's path
 * (`spiffe://td/ns/orders/sa/*` for `spiffe://td/ns/orders/sa/orders-api`). Two map lookups at most. Callers
 * give only IDs that passed the SPIFFE rule (identity/peer.ts), so a look-alike never reaches a wildcard.
 */
export class Peers implements PeerTable {
  private readonly exact = new Map<string, CompiledPeer>();
  /** `…/*` entries by the ID prefix before the `*` (with its trailing slash). */
  private readonly under = new Map<string, CompiledPeer>();
  readonly size: number;

  constructor(readonly entries: readonly CompiledPeer[]) {
    for (const entry of entries) {
      if (entry.id.endsWith('/*')) this.under.set(entry.id.slice(0, -1), entry);
      else this.exact.set(entry.id, entry);
    }
    this.size = entries.length;
    Object.freeze(this);
  }

  get(spiffeId: string): CompiledPeer | undefined {
    const exact = this.exact.get(spiffeId);
    if (exact !== undefined || this.under.size === 0) return exact;
    return this.under.get(spiffeId.slice(0, spiffeId.lastIndexOf('/') + 1));
  }
}

function withIssuer(issuer: string | undefined): { issuer?: string } {
  return issuer === undefined ? {} : { issuer };
}

/** Entries by issuer, then name (validation made each pair unique). */
export class IssuerNames<T extends { readonly id: string; readonly issuer?: string }>
  implements NamesByIssuer<T>
{
  private readonly byIssuer = new Map<string, Map<string, T>>();
  /** Entries for any issuer: only in a policy that lists no issuers (Envoy's jwt_authn vouches). */
  private readonly anyIssuer = new Map<string, T>();
  readonly size: number;

  constructor(readonly entries: readonly T[]) {
    for (const entry of entries) {
      if (entry.issuer === undefined) this.anyIssuer.set(entry.id, entry);
      else {
        const names = this.byIssuer.get(entry.issuer) ?? new Map<string, T>();
        names.set(entry.id, entry);
        this.byIssuer.set(entry.issuer, names);
      }
    }
    this.size = entries.length;
    Object.freeze(this);
  }

  get(issuer: string | undefined, name: string): T | undefined {
    const own = issuer === undefined ? undefined : this.byIssuer.get(issuer)?.get(name);
    return own ?? this.anyIssuer.get(name);
  }
}

/** name → permissions it grants, and the reverse: permission → names granting it (sorted). */
function grantTable(section: Record<string, string[]>): {
  grants: Map<string, ReadonlySet<string>>;
  granting: Map<string, readonly string[]>;
} {
  const grants = new Map<string, ReadonlySet<string>>();
  const reverse = new Map<string, string[]>();
  for (const [name, permissions] of Object.entries(section)) {
    grants.set(name, new Set(permissions));
    for (const permission of permissions) {
      const list = reverse.get(permission) ?? [];
      if (!list.includes(name)) list.push(name);
      reverse.set(permission, list);
    }
  }
  const granting = new Map<string, readonly string[]>();
  for (const [permission, names] of [...reverse].sort(([a], [b]) => compare(a, b))) {
    granting.set(permission, Object.freeze(names.sort(compare)));
  }
  return { grants, granting };
}

// Code-point order, not locale order: the same policy compiles the same way on every machine.
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function resolveFile(baseDir: string, file: string): string {
  return isAbsolute(file) ? file : resolve(baseDir, file);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
