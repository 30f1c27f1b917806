// The authorization decision proper: given who is calling and which route they hit, does the policy grant
// every permission the route requires, and may they touch every location the request names? Pure
// functions over compiled policy data; each failure is a closed reason naming exactly what is missing.

import { locationAllowed, parseLocationGrant } from '../policy/locations.js';
import type {
  CompiledClient,
  CompiledPeer,
  CompiledPolicy,
  CompiledRoute,
  CompiledSubject,
} from '../policy/types.js';
import type { Principal } from '../vocabulary/index.js';
import { deny, type Outcome, ok } from '../vocabulary/index.js';

const list = (items: Iterable<string>) => [...items].join(', ');

function union(target: Set<string>, items: Iterable<string> | undefined): Set<string> {
  if (items) for (const item of items) target.add(item);
  return target;
}

/** Permissions granted by a set of scopes. */
function permissionsOfScopes(policy: CompiledPolicy, scopes: Iterable<string>): Set<string> {
  const granted = new Set<string>();
  for (const scope of scopes) union(granted, policy.scopes.get(scope));
  return granted;
}

/** The policy's entry for the caller's client, if the token names one the policy lists for its issuer. */
export function clientOf(policy: CompiledPolicy, principal: Principal): CompiledClient | undefined {
  return principal.client === undefined ? undefined : policy.clients.get(principal.issuer, principal.client);
}

/** The policy's entry for the caller's subject within its issuer. */
export function subjectOf(policy: CompiledPolicy, principal: Principal): CompiledSubject | undefined {
  return policy.subjects.get(principal.issuer, principal.subject);
}

/** The scopes that count: the token's, narrowed to what its client may use when the policy lists the client. */
export function effectiveScopes(policy: CompiledPolicy, principal: Principal): ReadonlySet<string> {
  const client = clientOf(policy, principal);
  if (!client) return principal.scopes;
  return new Set([...principal.scopes].filter((scope) => client.scopes.has(scope)));
}

/** Roles from the token's claim plus those the policy gives the subject. */
export function rolesOf(policy: CompiledPolicy, principal: Principal): ReadonlySet<string> {
  const subject = subjectOf(policy, principal);
  return subject ? union(new Set(principal.roles), subject.roles) : principal.roles;
}

/** What a principal's effective scopes and its roles grant under one policy revision. */
interface Grants {
  readonly policy: CompiledPolicy;
  readonly byScopes: ReadonlySet<string>;
  /** Undefined when the policy has no roles section (scopes alone decide). */
  readonly byRoles: ReadonlySet<string> | undefined;
}

/**
 * Worked out once per principal and revision, not per Check: a principal from the token cache answers many
 * checks, and these sets were most of what a Check allocated. Keyed weakly, so it lives as long as the
 * cached principal does.
 */
const grantsByPrincipal = new WeakMap<Principal, Grants>();

function grantsOf(policy: CompiledPolicy, principal: Principal): Grants {
  const known = grantsByPrincipal.get(principal);
  if (known?.policy === policy) return known;
  let byRoles: Set<string> | undefined;
  if (policy.roles) {
    byRoles = new Set<string>();
    for (const role of rolesOf(policy, principal)) union(byRoles, policy.roles.get(role));
  }
  const grants = {
    policy,
    byScopes: permissionsOfScopes(policy, effectiveScopes(policy, principal)),
    byRoles,
  };
  grantsByPrincipal.set(principal, grants);
  return grants;
}

/**
 * Client, grant type, then scopes (token ∩ client), then roles. The order follows the support thread: the
 * nature of the token first, then what it carries, then who holds it.
 */
export function checkPermissions(
  policy: CompiledPolicy,
  principal: Principal,
  route: CompiledRoute,
): Outcome<void> {
  const client = clientOf(policy, principal);
  // A policy that lists clients means its client rules: a token that names none, or one it does not list,
  // would otherwise skip every one of them (scope narrowing, grant types).
  if (client === undefined && policy.unlistedClients === 'deny') {
    const issuer = principal.issuer === undefined ? '' : ` of issuer ${principal.issuer}`;
    return deny(
      'client_unknown',
      principal.client === undefined
        ? 'the token names no OAuth2 client, and this policy accepts only the clients it lists'
        : `client ${principal.client}${issuer} is not listed in the policy's clients`,
      { missing: { client: principal.client ?? null } },
    );
  }
  if (client?.grantTypes && !(principal.grantType && client.grantTypes.has(principal.grantType))) {
    const allowed = [...client.grantTypes].sort();
    const got = principal.grantType ? `was obtained with ${principal.grantType}` : 'names no grant type';
    return deny(
      'grant_type_not_allowed',
      `client ${principal.client} may only use grant type ${list(allowed)}; the token ${got}`,
      { missing: { grantTypes: allowed } },
    );
  }

  const { byScopes: granted, byRoles } = grantsOf(policy, principal);
  const lacking = route.permissions.filter((permission) => !granted.has(permission));
  if (lacking.length > 0) {
    // A permission some token scope grants, but the client may not use that scope, is the client's fault;
    // one no token scope grants at all means the token must ask for more.
    const byToken = permissionsOfScopes(policy, principal.scopes);
    const notRequested = lacking.filter((permission) => !byToken.has(permission));
    const missingBySource = lacking.map((permission) => ({ permission, source: 'scope' as const }));
    if (notRequested.length > 0) {
      const scopes = union(
        new Set<string>(),
        notRequested.flatMap((p) => policy.scopesGranting.get(p) ?? []),
      );
      return deny(
        'scope_missing',
        `route ${route.name} requires ${list(notRequested)}, which no scope in the token grants; ` +
          `request scope ${list([...scopes].sort())}`,
        { missing: { permissions: notRequested, scopes: [...scopes].sort() }, missingBySource },
      );
    }
    const refused = [...principal.scopes]
      .filter((scope) => lacking.some((permission) => policy.scopes.get(scope)?.has(permission)))
      .sort();
    return deny(
      'client_scope_not_allowed',
      `client ${principal.client} is not allowed scope ${list(refused)}, needed for ${list(lacking)} on route ${route.name}`,
      { missing: { permissions: lacking, scopes: refused }, missingBySource },
    );
  }

  if (byRoles) {
    const lackingRole = route.permissions.filter((permission) => !byRoles.has(permission));
    if (lackingRole.length > 0) {
      const roles = [
        ...union(
          new Set<string>(),
          lackingRole.flatMap((p) => policy.rolesGranting.get(p) ?? []),
        ),
      ].sort();
      const fix =
        roles.length > 0 ? `; a role that grants it: ${list(roles)}` : '; no role in the policy grants it';
      return deny(
        'role_missing',
        `${principal.subject} has no role granting ${list(lackingRole)} on route ${route.name}${fix}`,
        {
          missing: { permissions: lackingRole, roles },
          missingBySource: lackingRole.map((permission) => ({ permission, source: 'role' as const })),
        },
      );
    }
  }
  return ok(undefined);
}

/** Every location the request names must be granted to the subject by the policy or by the token's claim. */
export function checkLocations(
  policy: CompiledPolicy,
  principal: Principal,
  locations: readonly string[],
): Outcome<void> {
  if (locations.length === 0) return ok(undefined);
  const bySubject = subjectOf(policy, principal)?.locations;
  const byToken = principal.locations.length > 0 ? parseLocationGrant([...principal.locations]) : undefined;
  const refused = locations.filter(
    (code) =>
      !(bySubject && locationAllowed(bySubject, code)) && !(byToken && locationAllowed(byToken, code)),
  );
  if (refused.length === 0) return ok(undefined);
  return deny('location_denied', `${principal.subject} may not access location ${list(refused)}`, {
    missing: { locations: refused },
  });
}

/** A calling workload as the policy knows it: its SPIFFE ID and the `peers` entry that matched it. */
export interface KnownPeer {
  readonly id: string;
  readonly entry: CompiledPeer;
}

/** The `peers` entry for a SPIFFE ID (exact, else its `…/*`), or peer_not_allowed naming it. */
export function peerOf(policy: CompiledPolicy, id: string): Outcome<KnownPeer> {
  const entry = policy.peers.get(id);
  if (entry === undefined) {
    return deny('peer_not_allowed', `peer ${id} is not listed in the policy's peers`, {
      missing: { peer: id },
    });
  }
  return ok({ id, entry });
}

/** Permissions a peer's roles grant, worked out once per entry and revision. */
const grantsByPeer = new WeakMap<CompiledPeer, ReadonlySet<string>>();

function peerGrants(policy: CompiledPolicy, entry: CompiledPeer): ReadonlySet<string> {
  let granted = grantsByPeer.get(entry);
  if (granted === undefined) {
    granted = new Set<string>();
    for (const role of entry.roles) union(granted as Set<string>, policy.roles?.get(role));
    grantsByPeer.set(entry, granted);
  }
  return granted;
}

/** A peer has no scopes: every permission the route requires must come from one of its roles. */
export function checkPeerPermissions(
  policy: CompiledPolicy,
  peer: KnownPeer,
  route: CompiledRoute,
): Outcome<void> {
  const granted = peerGrants(policy, peer.entry);
  const lacking = route.permissions.filter((permission) => !granted.has(permission));
  if (lacking.length === 0) return ok(undefined);
  const roles = [
    ...union(
      new Set<string>(),
      lacking.flatMap((p) => policy.rolesGranting.get(p) ?? []),
    ),
  ].sort();
  const fix =
    roles.length > 0 ? `; a role that grants it: ${list(roles)}` : '; no role in the policy grants it';
  return deny(
    'peer_not_allowed',
    `peer ${peer.id} has no role granting ${list(lacking)} on route ${route.name}${fix}`,
    {
      missing: { permissions: lacking, roles, peer: peer.id },
      missingBySource: lacking.map((permission) => ({ permission, source: 'peer' as const })),
    },
  );
}

/** Every location the request names must be granted to the peer too (its `peers` entry). */
export function checkPeerLocations(peer: KnownPeer, locations: readonly string[]): Outcome<void> {
  const refused = locations.filter((code) => !locationAllowed(peer.entry.locations, code));
  if (refused.length === 0) return ok(undefined);
  return deny('location_denied', `peer ${peer.id} may not access location ${list(refused)}`, {
    missing: { locations: refused, peer: peer.id },
  });
}
