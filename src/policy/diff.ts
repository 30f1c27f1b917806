// What a policy change means, not how its text changed: routes added, removed or changed, permissions a route
// now requires or no longer requires, scopes, roles, clients, subjects and peers whose grants changed,
// locations granted or revoked, enforce ↔ dry_run, who owns which requests, how tokens are verified. Pure,
// over two compiled revisions, so `scopegate diff` and every live reload (server/app.ts) say the same thing.
// Each change has one kind from a closed list: the kind is a metric label (scopegate_policy_changes_total).

import type { CompiledPolicy, CompiledRoute, LocationGrant } from './types.js';

export const CHANGE_KINDS = [
  'policy_added',
  'policy_removed',
  'route_added',
  'route_removed',
  'route_changed',
  'route_permissions',
  'mode',
  'scope_grants',
  'role_grants',
  'client_grants',
  'subject_grants',
  'peer_grants',
  'locations',
  'authentication',
  'ownership',
] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

export interface PolicyChange {
  readonly kind: ChangeKind;
  readonly policy: string;
  /** What changed, in the policy's words: `route create_transaction`, `subject svc-inventory-sync`. */
  readonly what: string;
  /** Names now granted, required or listed (permissions, scopes, roles, locations, hosts…). */
  readonly added?: readonly string[];
  /** Names no longer granted, required or listed. */
  readonly removed?: readonly string[];
  /** A value that was replaced (a mode, a method and path, a location source…). */
  readonly from?: string;
  readonly to?: string;
  /** One line for people. */
  readonly says: string;
}

const sorted = (items: Iterable<string>) => [...items].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
const list = (items: readonly string[]) => items.join(', ');

/** What `after` has that `before` lacks, and the reverse, each sorted. */
function setDiff(before: Iterable<string>, after: Iterable<string>): { added: string[]; removed: string[] } {
  const was = new Set(before);
  const is = new Set(after);
  return {
    added: sorted([...is].filter((x) => !was.has(x))),
    removed: sorted([...was].filter((x) => !is.has(x))),
  };
}

/** A location grant as the patterns that make it (`*`, `EU-*`, `WH01`). */
function patternsOf(grant: LocationGrant): string[] {
  return [...(grant.all ? ['*'] : []), ...grant.prefixes.map((p) => `${p}*`), ...grant.exact];
}

function routeShape(route: CompiledRoute): string {
  return `${route.methods.join('|')} ${route.path}`;
}

function locationSource(route: CompiledRoute): string {
  const source = route.location;
  if (source === undefined) return 'none';
  if ('body' in source) return `body field ${source.body}`;
  if ('path' in source) return `path parameter ${source.path}`;
  if ('query' in source) return `query parameter ${source.query}`;
  return `header ${source.header}`;
}

/** Clients and subjects are names within an issuer: the key says both when an issuer is set. */
function issuerKey(entry: { readonly id: string; readonly issuer?: string }): string {
  return entry.issuer === undefined ? entry.id : `${entry.id} (${entry.issuer})`;
}

class Changes {
  readonly all: PolicyChange[] = [];
  constructor(private readonly policy: string) {}

  add(kind: ChangeKind, what: string, says: string, more: Partial<PolicyChange> = {}): void {
    this.all.push({ kind, policy: this.policy, what, ...more, says: `${what}: ${says}` });
  }

  /** One change for a set that gained or lost members, worded by `now` and `noLonger`; none if equal. */
  sets(
    kind: ChangeKind,
    what: string,
    before: Iterable<string>,
    after: Iterable<string>,
    now: string,
    noLonger: string,
  ): void {
    const { added, removed } = setDiff(before, after);
    if (added.length === 0 && removed.length === 0) return;
    const parts = [
      ...(added.length > 0 ? [`${now} ${list(added)}`] : []),
      ...(removed.length > 0 ? [`${noLonger} ${list(removed)}`] : []),
    ];
    this.add(kind, what, parts.join('; '), {
      ...(added.length > 0 && { added }),
      ...(removed.length > 0 && { removed }),
    });
  }

  value(kind: ChangeKind, what: string, from: string, to: string): void {
    if (from !== to) this.add(kind, what, `${from} → ${to}`, { from, to });
  }

  /** Entries of a keyed section: added, removed, and for the ones in both, `compare`. */
  keyed<T>(
    kind: ChangeKind,
    label: string,
    before: ReadonlyMap<string, T>,
    after: ReadonlyMap<string, T>,
    describe: (entry: T) => string,
    compare: (what: string, was: T, is: T) => void,
    removedKind: ChangeKind = kind,
  ): void {
    for (const [key, is] of after) {
      const was = before.get(key);
      if (was === undefined) this.add(kind, `${label} ${key}`, `added (${describe(is)})`);
      else compare(`${label} ${key}`, was, is);
    }
    for (const [key, was] of before) {
      if (!after.has(key)) this.add(removedKind, `${label} ${key}`, `removed (was ${describe(was)})`);
    }
  }
}

const byKey = <T>(entries: readonly T[], key: (entry: T) => string) =>
  new Map(entries.map((entry) => [key(entry), entry]));
const grantsText = (permissions: Iterable<string>) => {
  const names = sorted(permissions);
  return names.length > 0 ? `grants ${list(names)}` : 'grants nothing';
};

/** What changed from one revision of a policy to another (empty when they mean the same). */
export function diffPolicy(before: CompiledPolicy, after: CompiledPolicy): PolicyChange[] {
  const changes = new Changes(after.name);
  diffRoutes(changes, before, after);
  changes.value('mode', 'requests no route matches', before.mode, after.mode);
  changes.value('route_changed', 'identity of requests no route matches', before.identity, after.identity);

  changes.keyed(
    'scope_grants',
    'scope',
    before.scopes,
    after.scopes,
    (granted) => grantsText(granted),
    (what, was, is) => changes.sets('scope_grants', what, was, is, 'now grants', 'no longer grants'),
  );
  if ((before.roles === undefined) !== (after.roles === undefined)) {
    changes.add(
      'role_grants',
      'roles section',
      after.roles ? 'added: roles are now checked' : 'removed: roles are no longer checked',
    );
  }
  changes.keyed(
    'role_grants',
    'role',
    before.roles ?? new Map(),
    after.roles ?? new Map(),
    (granted) => grantsText(granted),
    (what, was, is) => changes.sets('role_grants', what, was, is, 'now grants', 'no longer grants'),
  );

  changes.keyed(
    'client_grants',
    'client',
    byKey(before.clients.entries, issuerKey),
    byKey(after.clients.entries, issuerKey),
    (client) => `scopes ${list(sorted(client.scopes)) || 'none'}`,
    (what, was, is) => {
      changes.sets(
        'client_grants',
        what,
        was.scopes,
        is.scopes,
        'may now use scope',
        'may no longer use scope',
      );
      const grantTypes = (c: typeof was) => (c.grantTypes ? list(sorted(c.grantTypes)) : 'any');
      if (grantTypes(was) !== grantTypes(is)) {
        changes.add('client_grants', what, `grant types ${grantTypes(was)} → ${grantTypes(is)}`, {
          from: grantTypes(was),
          to: grantTypes(is),
        });
      }
    },
  );
  changes.value('authentication', 'unlisted clients', before.unlistedClients, after.unlistedClients);

  // Subjects and peers alike hold roles and locations.
  type Holder = { readonly roles: ReadonlySet<string>; readonly locations: LocationGrant };
  const holders = <T extends Holder>(
    kind: 'subject_grants' | 'peer_grants',
    label: string,
    was: ReadonlyMap<string, T>,
    is: ReadonlyMap<string, T>,
  ) =>
    changes.keyed(
      kind,
      label,
      was,
      is,
      (holder) =>
        `roles ${list(sorted(holder.roles)) || 'none'}, locations ${list(patternsOf(holder.locations)) || 'none'}`,
      (what, from, to) => {
        changes.sets(kind, what, from.roles, to.roles, 'now has role', 'no longer has role');
        changes.sets(
          'locations',
          what,
          patternsOf(from.locations),
          patternsOf(to.locations),
          'locations granted',
          'locations revoked',
        );
      },
    );
  holders(
    'subject_grants',
    'subject',
    byKey(before.subjects.entries, issuerKey),
    byKey(after.subjects.entries, issuerKey),
  );
  const peerId = (peer: { readonly id: string }) => peer.id;
  holders('peer_grants', 'peer', byKey(before.peers.entries, peerId), byKey(after.peers.entries, peerId));

  diffAuthentication(changes, before, after);
  diffOwnership(changes, before, after);
  return changes.all;
}

function diffRoutes(changes: Changes, before: CompiledPolicy, after: CompiledPolicy): void {
  const describe = (route: CompiledRoute) =>
    `${routeShape(route)}, requires ${list(route.permissions) || 'nothing'}`;
  changes.keyed(
    'route_added',
    'route',
    byKey(before.routes, (r) => r.name),
    byKey(after.routes, (r) => r.name),
    describe,
    (what, was, is) => {
      changes.value('route_changed', what, routeShape(was), routeShape(is));
      changes.value('route_changed', `${what} location`, locationSource(was), locationSource(is));
      changes.value('route_changed', `${what} identity`, was.identity, is.identity);
      changes.value('mode', what, was.mode, is.mode);
      changes.sets(
        'route_permissions',
        what,
        was.permissions,
        is.permissions,
        'now requires',
        'no longer requires',
      );
    },
    'route_removed',
  );
  // The first matching route wins, so the order of the routes both revisions have is part of what they mean.
  const inAfter = new Set(after.routes.map((r) => r.name));
  const inBoth = new Set(before.routes.map((r) => r.name).filter((name) => inAfter.has(name)));
  const order = (routes: readonly CompiledRoute[]) =>
    routes.filter((r) => inBoth.has(r.name)).map((r) => r.name);
  const was = order(before.routes);
  const is = order(after.routes);
  if (was.join('\0') !== is.join('\0')) {
    changes.add('route_changed', 'route order', `${list(was)} → ${list(is)} (the first match wins)`, {
      from: list(was),
      to: list(is),
    });
  }
}

function diffAuthentication(changes: Changes, before: CompiledPolicy, after: CompiledPolicy): void {
  changes.keyed(
    'authentication',
    'issuer',
    before.issuerByName,
    after.issuerByName,
    (issuer) => `audiences ${list(issuer.audiences)}`,
    (what, was, is) => {
      changes.sets('authentication', `${what} audiences`, was.audiences, is.audiences, 'added', 'removed');
      changes.sets('authentication', `${what} algorithms`, was.algorithms, is.algorithms, 'added', 'removed');
      changes.value('authentication', `${what} keys`, JSON.stringify(was.jwks), JSON.stringify(is.jwks));
      changes.value(
        'authentication',
        `${what} clock tolerance`,
        `${was.clockToleranceSeconds}s`,
        `${is.clockToleranceSeconds}s`,
      );
    },
  );
  changes.value('authentication', 'claims', before.claimsKey, after.claimsKey);
  changes.value('authentication', 'maxTokenBytes', String(before.maxTokenBytes), String(after.maxTokenBytes));
  changes.value(
    'authentication',
    'envoyJwtAuthn',
    before.envoyJwtAuthn?.metadataKey ?? 'off',
    after.envoyJwtAuthn?.metadataKey ?? 'off',
  );
  changes.value('authentication', 'realm', before.realm, after.realm);
}

function diffOwnership(changes: Changes, before: CompiledPolicy, after: CompiledPolicy): void {
  const { owns: was } = before;
  const { owns: is } = after;
  changes.value('ownership', 'policy name', was.name, is.name);
  changes.sets('ownership', 'match hosts', was.hosts, is.hosts, 'now owns', 'no longer owns');
  changes.sets(
    'ownership',
    'match destinationPrincipals',
    was.destinationPrincipals,
    is.destinationPrincipals,
    'now owns',
    'no longer owns',
  );
  changes.value('ownership', 'match default', String(was.default), String(is.default));
}

/**
 * What changed between two sets of policies (`scopegate diff DIR DIR`): policies are paired by name; one that
 * only one side has is added or removed. With one policy on each side they are paired whatever their names,
 * as `serve --policy FILE` serves any one file for every request.
 */
export function diffPolicySets(
  before: readonly CompiledPolicy[],
  after: readonly CompiledPolicy[],
): PolicyChange[] {
  if (before.length === 1 && after.length === 1) return diffPolicy(before[0]!, after[0]!);
  const changes: PolicyChange[] = [];
  const was = byKey(before, (p) => p.name);
  const is = byKey(after, (p) => p.name);
  for (const [name, policy] of is) {
    const old = was.get(name);
    if (old !== undefined) changes.push(...diffPolicy(old, policy));
    else {
      changes.push({
        kind: 'policy_added',
        policy: name,
        what: `policy ${name}`,
        says: `policy ${name}: added (${policy.routes.length} routes)`,
      });
    }
  }
  for (const name of was.keys()) {
    if (!is.has(name)) {
      changes.push({
        kind: 'policy_removed',
        policy: name,
        what: `policy ${name}`,
        says: `policy ${name}: removed`,
      });
    }
  }
  return changes;
}

/** Changes counted by kind, for the `policy reloaded` log line and the metric. */
export function countByKind(changes: readonly PolicyChange[]): Partial<Record<ChangeKind, number>> {
  const counts: Partial<Record<ChangeKind, number>> = {};
  for (const { kind } of changes) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}
