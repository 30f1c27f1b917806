// The whole story of one decision, for `scopegate explain` and `scopegate test`: request facts, identity,
// route, token and client scopes, every required permission with the scopes and roles that grant it, the
// grant type, the locations, the final reason and what to change. The decision itself is the server's:
// the trace runs check/decide.ts's `decide` with the same identity outcome and door, so the reason it reports
// is the one Envoy's caller would get. The tables around it read the same compiled policy and call the same
// decision functions; they show *why*, they never decide.

import { type Door, decide, peerThrough } from '../check/decide.js';
import {
  checkLocations,
  checkPeerPermissions,
  clientOf,
  effectiveScopes,
  peerOf,
  rolesOf,
  subjectOf,
} from '../decision/evaluate.js';
import { fixHints, type Who } from '../decision/hints.js';
import type { SelectedBy } from '../policy/set.js';
import type {
  CompiledLocationSource,
  CompiledPolicy,
  CompiledRoute,
  IdentityRequirement,
  LocationGrant,
  RouteMatch,
} from '../policy/types.js';
import { readRequest } from '../request/facts.js';
import { readLocations } from '../request/locations.js';
import type { RequestFacts } from '../request/types.js';
import {
  type DecisionLabel,
  decisionLabel,
  deny,
  type Missing,
  type Outcome,
  type Principal,
  REASONS,
  type Reason,
  type Transport,
} from '../vocabulary/index.js';
import type { CheckRequest } from '../wire/types.js';
import type { IdentityPhase } from './identity.js';

/** How the caller's identity was given to explain. */
export type Credential = 'token' | 'claims' | 'none';

export interface ScopeGrant {
  readonly scope: string;
  readonly inToken: boolean;
  /** Whether the caller's client may use it; null when the client is not listed (then it is not narrowed). */
  readonly clientAllows: boolean | null;
  readonly effective: boolean;
}

export interface RoleGrant {
  readonly role: string;
  readonly held: boolean;
  /** Where the caller holds it from: the token's roles claim, the policy's subject entry, or both. */
  readonly from: ReadonlyArray<'token' | 'subject'>;
}

export interface PermissionTrace {
  readonly permission: string;
  readonly byScope: { readonly ok: boolean; readonly scopes: readonly ScopeGrant[] };
  /** `checked` is false when the policy has no `roles` section (roles are then not required). */
  readonly byRole: { readonly checked: boolean; readonly ok: boolean; readonly roles: readonly RoleGrant[] };
}

export interface Trace {
  /** The front door the request was judged as coming in by: it chooses the policy and carries the peer. */
  readonly door: Transport;
  /** The policy that decided, and why it owns the request; or why none does (then the reason is policy_unknown). */
  readonly policy:
    | {
        readonly chosen: true;
        readonly name: string;
        readonly file: string;
        readonly revision: string;
        readonly chosenBy: SelectedBy;
      }
    | { readonly chosen: false; readonly detail: string };
  readonly credential: Credential;
  /** False when the token's signature was not checked (--no-verify, or claims given directly). */
  readonly verified: boolean;
  readonly warnings: readonly string[];
  readonly request:
    | { readonly ok: true; readonly method: string; readonly path: string; readonly requestId: string }
    | { readonly ok: false; readonly reason: Reason; readonly detail: string };
  readonly identity?:
    | {
        readonly ok: true;
        readonly subject: string;
        readonly client?: string;
        readonly issuer?: string;
        readonly grantType?: string;
        readonly expiresAt?: string;
      }
    | {
        readonly ok: false;
        readonly reason: Reason;
        readonly detail: string;
        /** Why the issuer's keys could not be loaded, when that is the reason. Never URLs or key material. */
        readonly keyProblems?: readonly string[];
      };
  /** The identities the route (or, with no route, the policy) needs; `token` unless it says otherwise. */
  readonly needs: IdentityRequirement;
  /** The calling workload, when a peer is needed: who Envoy says it is, and what the policy lists for it. */
  readonly peer?:
    | {
        readonly ok: true;
        readonly id: string;
        /** The `peers` key that matched: the ID itself, or its `…/*`. */
        readonly entry: string;
        readonly roles: readonly string[];
        readonly locations: readonly string[];
        /** Permissions of the route none of its roles grants. */
        readonly lacking: readonly string[];
      }
    | { readonly ok: false; readonly id?: string; readonly reason: Reason; readonly detail: string };
  readonly route?:
    | {
        readonly matched: true;
        readonly name: string;
        readonly methods: readonly string[];
        readonly template: string;
        readonly params: Readonly<Record<string, string>>;
      }
    | { readonly matched: false };
  readonly scopes?: {
    readonly token: readonly string[];
    readonly client?: { readonly id: string; readonly listed: boolean; readonly allowed?: readonly string[] };
    readonly effective: readonly string[];
  };
  readonly grantType?: {
    readonly token?: string;
    /** Grant types the client may use; absent when any is fine (client not listed or no grantTypes). */
    readonly allowed?: readonly string[];
    readonly ok: boolean;
  };
  readonly roles?: {
    readonly checked: boolean;
    readonly token: readonly string[];
    readonly subject: readonly string[];
  };
  readonly permissions?: readonly PermissionTrace[];
  readonly locations?: {
    /** Where the route reads locations from, e.g. `body field location`; absent when it reads none. */
    readonly source?: string;
    readonly found: readonly string[];
    readonly grantedToSubject: readonly string[];
    readonly grantedByToken: readonly string[];
    readonly results: ReadonlyArray<{ readonly location: string; readonly ok: boolean }>;
    /** Why the locations could not be read (location_missing, body_unreadable, request_malformed). */
    readonly problem?: { readonly reason: Reason; readonly detail: string };
  };
  readonly decision: DecisionLabel;
  readonly reason: Reason;
  /** What the caller gets: 200 when the request reaches the upstream (allowed or dry-run), else the deny status. */
  readonly status: number;
  readonly detail: string;
  readonly missing?: Missing;
  /** What to change for this reason, in the user's words. */
  readonly hints: readonly string[];
  /** What the next check would refuse once this reason is fixed (same words). */
  readonly alsoNeeded: readonly string[];
}

export interface TraceInput {
  /** The front door the request comes in by (default gRPC): the server's decision for that door. */
  readonly door?: Transport;
  readonly policy: CompiledPolicy;
  /** Why the set chose this policy (default: it is the only one). */
  readonly chosenBy?: SelectedBy;
  readonly request: CheckRequest;
  readonly identity: IdentityPhase;
  readonly credential: Credential;
  readonly verified: boolean;
  readonly warnings?: readonly string[];
  /** Why keys are not loaded (KeyRegistry.problems), asked only when the reason is keys_unavailable. */
  readonly keyProblems?: () => string[];
}

const sorted = (items: Iterable<string>) => [...items].sort();

export async function traceCheck(input: TraceInput): Promise<Trace> {
  const { policy, request } = input;
  const door: Door = { transport: input.door ?? 'grpc' };
  const read = readRequest(request);
  const needs =
    (read.ok && policy.matchRoute(read.value.method, read.value.path)?.route.identity) || policy.identity;
  let identity: Outcome<Principal> | undefined;
  // A route only a peer opens reads no token, and neither does its trace.
  if (read.ok && needs !== 'peer') identity = await input.identity.authenticate(read.value);

  // The decision is the server pipeline's own, fed the identity outcome computed above (authenticating
  // once: a token cache or a key refresh must not make the trace and the decision disagree).
  const { decision } = await decide(
    request,
    {
      policy,
      authenticator: {
        // check() identifies only requests it could read, and those already have their outcome.
        identify: () => identity ?? deny('internal_error', 'identity was not checked'),
      },
    },
    undefined,
    door,
  );

  const who: Who = {
    subject: identity?.ok ? identity.value.subject : decision.subject,
    client: identity?.ok ? identity.value.client : decision.client,
    issuer: identity?.ok ? identity.value.issuer : decision.issuer,
  };
  const label = decisionLabel(decision);
  const base = {
    door: door.transport,
    policy: {
      chosen: true as const,
      name: policy.name,
      file: policy.source,
      revision: policy.revision,
      chosenBy: input.chosenBy ?? 'only policy',
    },
    credential: input.credential,
    verified: input.verified,
    warnings: [...(input.warnings ?? [])],
    needs,
    decision: label,
    reason: decision.reason,
    status: label === 'deny' ? REASONS[decision.reason].http : 200,
    detail: decision.detail,
    ...(decision.missing && { missing: decision.missing }),
  };
  const hints = fixHints(decision.reason, decision.missing, who);
  if (decision.reason === 'keys_unavailable' && input.credential === 'token' && input.verified) {
    hints.push('to explain the rest without checking the signature, rerun with --no-verify');
  }

  if (!read.ok) {
    return {
      ...base,
      request: { ok: false, reason: read.reason, detail: read.detail },
      hints,
      alsoNeeded: [],
    };
  }
  const facts = read.value;
  const match = policy.matchRoute(facts.method, facts.path);
  const requestTrace = {
    ok: true as const,
    method: facts.method,
    path: facts.path,
    requestId: facts.requestId,
  };
  const routeTrace = match
    ? {
        matched: true as const,
        name: match.route.name,
        methods: match.route.methods,
        template: match.route.path,
        params: match.params,
      }
    : { matched: false as const };

  const peer = needs === 'token' ? undefined : { peer: peerTrace(policy, facts, match?.route, door) };
  if (needs === 'peer')
    return { ...base, request: requestTrace, ...peer, route: routeTrace, hints, alsoNeeded: [] };
  if (!identity?.ok) {
    const failed = identity ?? { reason: 'internal_error' as const, detail: 'identity was not checked' };
    const keyProblems =
      failed.reason === 'keys_unavailable' && input.keyProblems ? input.keyProblems() : undefined;
    return {
      ...base,
      request: requestTrace,
      identity: {
        ok: false,
        reason: failed.reason,
        detail: failed.detail,
        ...(keyProblems && keyProblems.length > 0 && { keyProblems }),
      },
      ...peer,
      route: routeTrace,
      hints,
      alsoNeeded: [],
    };
  }

  const principal = identity.value;
  const sections = await authorizationSections(policy, principal, match, facts);
  return {
    ...base,
    request: requestTrace,
    identity: {
      ok: true,
      subject: principal.subject,
      ...(principal.client !== undefined && { client: principal.client }),
      ...(principal.issuer !== undefined && { issuer: principal.issuer }),
      ...(principal.grantType !== undefined && { grantType: principal.grantType }),
      ...(principal.expiresAt !== undefined && { expiresAt: isoTime(principal.expiresAt) }),
    },
    ...peer,
    route: routeTrace,
    ...sections,
    hints: [
      ...hints,
      ...clientHintsForMissingScopes(policy, principal, decision.reason, decision.missing, who),
    ],
    alsoNeeded: alsoNeeded(decision.reason, sections, who),
  };
}

/** The trace of a request no policy of the set owns: the server denies it before reading anything else. */
export function traceUnowned(
  detail: string,
  input: Pick<TraceInput, 'door' | 'credential' | 'verified' | 'warnings'>,
): Trace {
  return {
    door: input.door ?? 'grpc',
    policy: { chosen: false, detail },
    credential: input.credential,
    verified: input.verified,
    warnings: [...(input.warnings ?? [])],
    needs: 'token',
    request: { ok: false, reason: 'policy_unknown', detail },
    decision: 'deny',
    reason: 'policy_unknown',
    status: REASONS.policy_unknown.http,
    detail,
    hints: fixHints('policy_unknown', undefined),
    alsoNeeded: [],
  };
}

/** The peer as the server's door judges it (then the policy's `peers`), and what its roles lack. */
function peerTrace(
  policy: CompiledPolicy,
  facts: RequestFacts,
  route: CompiledRoute | undefined,
  door: Door,
): NonNullable<Trace['peer']> {
  const id = peerThrough(door, facts);
  if (!id.ok) return { ok: false, reason: id.reason, detail: id.detail };
  const known = peerOf(policy, id.value);
  if (!known.ok) return { ok: false, id: id.value, reason: known.reason, detail: known.detail };
  const { entry } = known.value;
  const permitted = route ? checkPeerPermissions(policy, known.value, route) : undefined;
  return {
    ok: true,
    id: id.value,
    entry: entry.id,
    roles: sorted(entry.roles),
    locations: patternsOf(entry.locations),
    lacking: permitted && !permitted.ok ? (permitted.missing?.permissions ?? []) : [],
  };
}

type Sections = Pick<Trace, 'scopes' | 'grantType' | 'roles' | 'permissions' | 'locations'>;

async function authorizationSections(
  policy: CompiledPolicy,
  principal: Principal,
  match: RouteMatch | undefined,
  facts: RequestFacts,
): Promise<Sections> {
  const clientId = principal.client;
  const client = clientOf(policy, principal);
  const effective = effectiveScopes(policy, principal);
  const held = rolesOf(policy, principal);
  const subjectRoles = subjectOf(policy, principal)?.roles ?? new Set<string>();

  const scopes: Sections['scopes'] = {
    token: sorted(principal.scopes),
    ...(clientId !== undefined && {
      client: {
        id: clientId,
        listed: client !== undefined,
        ...(client && { allowed: sorted(client.scopes) }),
      },
    }),
    effective: sorted(effective),
  };
  const grantType: Sections['grantType'] = {
    ...(principal.grantType !== undefined && { token: principal.grantType }),
    ...(client?.grantTypes && { allowed: sorted(client.grantTypes) }),
    ok:
      !client?.grantTypes ||
      (principal.grantType !== undefined && client.grantTypes.has(principal.grantType)),
  };
  const roles: Sections['roles'] = {
    checked: policy.roles !== undefined,
    token: sorted(principal.roles),
    subject: sorted(subjectRoles),
  };
  if (!match) return { scopes, grantType, roles };

  const permissions = match.route.permissions.map((permission): PermissionTrace => {
    const scopeGrants = (policy.scopesGranting.get(permission) ?? []).map(
      (scope): ScopeGrant => ({
        scope,
        inToken: principal.scopes.has(scope),
        clientAllows: client ? client.scopes.has(scope) : null,
        effective: effective.has(scope),
      }),
    );
    const roleGrants = (policy.rolesGranting.get(permission) ?? []).map((role): RoleGrant => {
      const from: Array<'token' | 'subject'> = [];
      if (principal.roles.has(role)) from.push('token');
      if (subjectRoles.has(role)) from.push('subject');
      return { role, held: held.has(role), from };
    });
    return {
      permission,
      byScope: { ok: scopeGrants.some((g) => g.effective), scopes: scopeGrants },
      byRole: {
        checked: policy.roles !== undefined,
        ok: policy.roles === undefined || roleGrants.some((g) => g.held),
        roles: roleGrants,
      },
    };
  });

  const subjectGrant = subjectOf(policy, principal)?.locations;
  const source = match.route.location;
  const read = await readLocations(match, facts);
  const found = read.ok ? read.value : [];
  const locations: Sections['locations'] = {
    ...(source && { source: describeSource(source) }),
    found,
    grantedToSubject: subjectGrant ? patternsOf(subjectGrant) : [],
    grantedByToken: [...principal.locations],
    results: found.map((location) => ({
      location,
      ok: checkLocations(policy, principal, [location]).ok,
    })),
    ...(!read.ok && { problem: { reason: read.reason, detail: read.detail } }),
  };
  return { scopes, grantType, roles, permissions, locations };
}

/**
 * When the token must ask for a scope its client may not use, asking is not enough: the client needs it
 * too. Said alongside "request scope … as well", since both are needed for the one fix.
 */
function clientHintsForMissingScopes(
  policy: CompiledPolicy,
  principal: Principal,
  reason: Reason,
  missing: Missing | undefined,
  who: Who,
): string[] {
  if (reason !== 'scope_missing' || principal.client === undefined) return [];
  const client = clientOf(policy, principal);
  if (!client) return [];
  const refused = (missing?.scopes ?? []).filter((scope) => !client.scopes.has(scope));
  return refused.length > 0 ? fixHints('client_scope_not_allowed', { scopes: refused }, who) : [];
}

/** The checks after the deciding one that would still refuse: roles after scopes, locations after both. */
function alsoNeeded(reason: Reason, sections: Sections, who: Who): string[] {
  const hints: string[] = [];
  const beforeRoles: Reason[] = [
    'client_unknown',
    'grant_type_not_allowed',
    'scope_missing',
    'client_scope_not_allowed',
  ];
  if (beforeRoles.includes(reason)) {
    const lacking = (sections.permissions ?? []).filter((p) => !p.byRole.ok);
    if (lacking.length > 0) {
      const roles = sorted(new Set(lacking.flatMap((p) => p.byRole.roles.map((r) => r.role))));
      hints.push(...fixHints('role_missing', { roles, permissions: lacking.map((p) => p.permission) }, who));
    }
  }
  if (reason !== 'location_denied' && reason !== 'allowed') {
    const refused = (sections.locations?.results ?? []).filter((r) => !r.ok).map((r) => r.location);
    if (refused.length > 0) hints.push(...fixHints('location_denied', { locations: refused }, who));
  }
  return hints;
}

function patternsOf(grant: LocationGrant): string[] {
  return [...(grant.all ? ['*'] : []), ...sorted(grant.exact), ...grant.prefixes.map((p) => `${p}*`)];
}

function describeSource(source: CompiledLocationSource): string {
  if ('path' in source) return `path parameter {${source.path}}`;
  if ('query' in source) return `query parameter ${source.query}`;
  if ('header' in source) return `header ${source.header}`;
  return `body field ${source.body}`;
}

function isoTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}
