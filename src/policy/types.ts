// The policy as users write it (PolicyDocument, the YAML contract in DESIGN.md) and as the hot path reads
// it (CompiledPolicy: lookup tables built once per revision, then frozen).

import type { ConfigProblem } from '../config/problems.js';

/** `dry_run`: a deny is counted (decision="dry_run_deny"), logged and put in metadata, but not enforced. */
export const POLICY_MODES = ['enforce', 'dry_run'] as const;
export type PolicyMode = (typeof POLICY_MODES)[number];

/**
 * Which identities a route needs: a bearer token (`token`, the default), the calling workload's mTLS identity
 * (`peer`), or both (`token_and_peer`: the peer acts for the token's subject; both need every permission
 * and every location).
 */
export const IDENTITY_REQUIREMENTS = ['token', 'peer', 'token_and_peer'] as const;
export type IdentityRequirement = (typeof IDENTITY_REQUIREMENTS)[number];

export type LocationSource = { body: string } | { path: string } | { query: string } | { header: string };

/** One step of a body path: `lines[]` is `{ key: 'lines', each: true }` (every element of that array). */
export interface BodyPathStep {
  readonly key: string;
  readonly each: boolean;
}

/** A location source as the hot path reads it: a body path comes pre-parsed into steps. */
export type CompiledLocationSource =
  | { readonly body: string; readonly steps: readonly BodyPathStep[] }
  | { readonly path: string }
  | { readonly query: string }
  | { readonly header: string };

export interface RouteDocument {
  name: string;
  method: string | string[];
  path: string;
  permissions: string[];
  location?: LocationSource;
  mode?: PolicyMode;
  identity?: IdentityRequirement;
}

export interface IssuerDocument {
  issuer: string;
  audiences: string[];
  jwks: { uri: string } | { file: string };
  algorithms: string[];
  clockToleranceSeconds?: number;
}

export interface ClaimsDocument {
  subject?: string[];
  scopes?: string[];
  roles?: string[];
  client?: string[];
  grantType?: string[];
  locations?: string[];
}

/** `deny` (default): with a `clients` section, a token whose client is missing or unlisted is client_unknown. */
export const UNLISTED_CLIENTS = ['deny', 'allow'] as const;
export type UnlistedClients = (typeof UNLISTED_CLIENTS)[number];

/**
 * A `clients` entry. Its key is the client id, unless `client` names it (then the key is only a label, so two
 * issuers' clients of one name can both be listed); `issuer` says whose client it is.
 */
export interface ClientDocument {
  issuer?: string;
  client?: string;
  scopes: string[];
  grantTypes?: string[];
}

/** A `peers` entry: the roles and locations of a calling workload, keyed by its SPIFFE ID (or a `…/*`). */
export interface PeerDocument {
  roles?: string[];
  locations?: string[];
}

/** A `subjects` entry; `subject` and `issuer` as for clients. */
export interface SubjectDocument {
  issuer?: string;
  subject?: string;
  roles?: string[];
  locations?: string[];
}

/** Which requests a policy of a set owns (policy/set.ts); a policy without one is chosen by name only. */
export interface MatchDocument {
  hosts?: string[];
  destinationPrincipals?: string[];
  default?: boolean;
}

export interface PolicyDocument {
  version: 1;
  /** Default: the file's name without its extension. */
  name?: string;
  match?: MatchDocument;
  mode?: PolicyMode;
  /** The identities a route needs unless it says otherwise (default `token`). */
  identity?: IdentityRequirement;
  authentication: {
    realm?: string;
    maxTokenBytes?: number;
    issuers?: IssuerDocument[];
    envoyJwtAuthn?: { metadataKey: string };
    claims?: ClaimsDocument;
    unlistedClients?: UnlistedClients;
  };
  scopes: Record<string, string[]>;
  roles?: Record<string, string[]>;
  clients?: Record<string, ClientDocument>;
  subjects?: Record<string, SubjectDocument>;
  peers?: Record<string, PeerDocument>;
  routes: RouteDocument[];
}

/** Claim names to read, in order; the first present claim wins. Defaults filled in by compile. */
export interface ClaimNames {
  readonly subject: readonly string[];
  readonly scopes: readonly string[];
  readonly roles: readonly string[];
  readonly client: readonly string[];
  readonly grantType: readonly string[];
  readonly locations: readonly string[];
}

export interface CompiledIssuer {
  readonly issuer: string;
  readonly audiences: readonly string[];
  /** A jwks.file path is resolved against the policy file's directory. */
  readonly jwks: { readonly uri: string } | { readonly file: string };
  readonly algorithms: readonly string[];
  readonly clockToleranceSeconds: number;
  /**
   * Everything a token is verified against for this issuer, as one string: a verified-token cache entry is
   * served under another revision only while its issuer's basis is the same.
   */
  readonly basis: string;
}

export interface CompiledRoute {
  readonly name: string;
  /** Position in the policy: the first matching route wins. */
  readonly index: number;
  readonly methods: readonly string[];
  readonly path: string;
  readonly permissions: readonly string[];
  readonly location?: CompiledLocationSource;
  /** The route's own mode, else the policy's. */
  readonly mode: PolicyMode;
  /** The route's own identity requirement, else the policy's. */
  readonly identity: IdentityRequirement;
}

export interface RouteMatch {
  readonly route: CompiledRoute;
  /** Template parameters, percent-decoded, by name. */
  readonly params: Readonly<Record<string, string>>;
}

/** A location grant: exact codes, prefixes from trailing-`*` patterns, or everything (`*`). */
export interface LocationGrant {
  readonly all: boolean;
  readonly exact: ReadonlySet<string>;
  readonly prefixes: readonly string[];
}

/**
 * Subjects or clients: each a name within one issuer (OIDC makes `sub` unique only per issuer). A policy
 * with one issuer puts every entry under it; one that lists none (Envoy's jwt_authn vouches) keeps entries
 * without `issuer` for any issuer.
 */
export interface NamesByIssuer<T> {
  get(issuer: string | undefined, name: string): T | undefined;
  readonly size: number;
  /** Every entry, in the policy's order (for `scopegate diff`). */
  readonly entries: readonly T[];
}

export interface CompiledClient {
  /** The client id as tokens carry it, and the issuer it belongs to (undefined: any, see NamesByIssuer). */
  readonly id: string;
  readonly issuer?: string;
  readonly scopes: ReadonlySet<string>;
  /** Undefined: any grant type. */
  readonly grantTypes?: ReadonlySet<string>;
}

export interface CompiledPeer {
  /** The key as written: a SPIFFE ID, or one ending in `/*` (every workload under that path). */
  readonly id: string;
  readonly roles: ReadonlySet<string>;
  readonly locations: LocationGrant;
}

/** Peers by SPIFFE ID: an exact entry, else the `…/*` entry of the ID's path without its last segment. */
export interface PeerTable {
  get(spiffeId: string): CompiledPeer | undefined;
  readonly size: number;
  /** Every entry, in the policy's order (for `scopegate diff`). */
  readonly entries: readonly CompiledPeer[];
}

export interface CompiledSubject {
  readonly id: string;
  readonly issuer?: string;
  readonly roles: ReadonlySet<string>;
  readonly locations: LocationGrant;
}

export interface CompiledPolicy {
  /** `name`, else the file's name without its extension: a label, a header value, a context extension. */
  readonly name: string;
  /** Which requests it owns when it is one of a set. */
  readonly owns: Ownership;
  /** Content hash of the policy file (first 12 hex chars of sha256). */
  readonly revision: string;
  readonly source: string;
  /** Mode for requests no route matches (and the default for routes). */
  readonly mode: PolicyMode;
  readonly realm: string;
  readonly maxTokenBytes: number;
  readonly issuers: readonly CompiledIssuer[];
  readonly issuerByName: ReadonlyMap<string, CompiledIssuer>;
  readonly envoyJwtAuthn?: { readonly metadataKey: string };
  readonly claims: ClaimNames;
  /** The claims mapping as one string: principals built under equal mappings are the same. */
  readonly claimsKey: string;
  /** scope → permissions it grants. */
  readonly scopes: ReadonlyMap<string, ReadonlySet<string>>;
  /** permission → scopes that grant it (sorted). */
  readonly scopesGranting: ReadonlyMap<string, readonly string[]>;
  /** Undefined when the policy has no `roles` section (then roles are not checked). */
  readonly roles?: ReadonlyMap<string, ReadonlySet<string>>;
  /** permission → roles that grant it (sorted). */
  readonly rolesGranting: ReadonlyMap<string, readonly string[]>;
  readonly clients: NamesByIssuer<CompiledClient>;
  /** With a `clients` section: whether a token whose client is missing or unlisted may go on. */
  readonly unlistedClients: UnlistedClients;
  readonly subjects: NamesByIssuer<CompiledSubject>;
  readonly peers: PeerTable;
  /** For requests no route matches (and the default for routes). */
  readonly identity: IdentityRequirement;
  readonly routes: readonly CompiledRoute[];
  /** First route (by policy order) whose method and path template match a canonical path. */
  matchRoute(method: string, canonicalPath: string): RouteMatch | undefined;
}

/** Where a claim (`name`, a host, a destination principal, `default`) is written in its policy file. */
export interface ClaimSite {
  readonly line: number;
  readonly col: number;
  readonly field: string;
}

/** What a policy owns in a set: its name and its `match` claims, compiled (the set looks these up as they are). */
export interface Ownership {
  readonly name: string;
  readonly hosts: readonly string[];
  readonly destinationPrincipals: readonly string[];
  readonly default: boolean;
  /** Claim key (validate-match.ts `claimKey`) → where it is written, for conflicts between files. */
  readonly sites: Readonly<Record<string, ClaimSite>>;
}

/** One problem found in a policy file, located for `FILE:LINE:COL: field: message`. */
export type PolicyProblem = ConfigProblem;
