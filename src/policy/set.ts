// A policy set: the policies a `serve --policy DIR` serves, each owning the requests its `match` block claims,
// and the one rule that picks a policy for a request (issue 19). First that applies, each an O(1) lookup
// however many policies there are (a host wildcard costs one lookup per label of the host):
//   1. Envoy's context extension `scopegate_policy: NAME` (set per virtual host or route): the policy of that
//      name; a name no policy has is policy_unknown at once, never a fall-through;
//   2. the destination workload's identity (`attributes.destination.principal`) in `match.destinationPrincipals`;
//   3. the request's host (`:authority`, port ignored) in `match.hosts`: an exact name, else the longest
//      `*.suffix` wildcard that covers it;
//   4. the policy with `match: { default: true }`, if one has it;
//   5. otherwise policy_unknown.
// A set of one file (`--policy FILE`) is that policy for every request, as before sets existed.

import type { Ownership } from './types.js';

/** A host as the deny may repeat it: a DNS name or an IP literal, nothing a log or a body would mangle. */
const SAYABLE_HOST = /^[a-z0-9_.:[\]-]{1,253}$/;

/** The extension key Envoy's route config sets to name the policy for a route or virtual host. */
export const POLICY_EXTENSION = 'scopegate_policy';

/** What a request offers for choosing its policy, read from the CheckRequest before anything else. */
export interface PolicyKeys {
  /** `attributes.context_extensions.scopegate_policy`. */
  readonly extension?: string;
  /** `attributes.destination.principal`. */
  readonly destinationPrincipal?: string;
  /** `:authority` (or `attributes.request.http.host`), as sent. */
  readonly host?: string;
}

/** Why a request was matched to its policy, for `explain` and the decision log. */
export type SelectedBy = 'only policy' | 'context extension' | 'destination principal' | 'host' | 'default';

export type Selection<T> =
  | { readonly ok: true; readonly value: T; readonly by: SelectedBy }
  | { readonly ok: false; readonly detail: string };

export class PolicySet<T> {
  private readonly byName = new Map<string, T>();
  private readonly byPrincipal = new Map<string, T>();
  private readonly byHost = new Map<string, T>();
  /** `*.example.com` is kept under `example.com`. */
  private readonly byHostSuffix = new Map<string, T>();
  private readonly fallback: T | undefined;
  /**
   * `--policy FILE`: that policy owns every request, whatever the request says; a Check takes it without
   * reading the request's keys.
   */
  readonly only: Selection<T> | undefined;
  /**
   * Policies that claim nothing (no host, no destination principal, not the default): chosen only by name, by
   * Envoy's context extension. Their presence says the set relies on Envoy naming policies per route.
   */
  readonly chosenOnlyByName: readonly string[];

  /**
   * From policies whose claims do not overlap (the set's source refuses a file whose claims collide with
   * another's before it gets here). `single` is the one-file mode.
   */
  constructor(
    entries: ReadonlyArray<{ readonly owns: Omit<Ownership, 'sites'>; readonly value: T }>,
    single = false,
  ) {
    let fallback: T | undefined;
    const onlyByName: string[] = [];
    for (const { owns, value } of entries) {
      if (owns.hosts.length === 0 && owns.destinationPrincipals.length === 0 && !owns.default)
        onlyByName.push(owns.name);
      this.byName.set(owns.name, value);
      for (const principal of owns.destinationPrincipals) this.byPrincipal.set(principal, value);
      for (const host of owns.hosts) {
        if (host.startsWith('*.')) this.byHostSuffix.set(host.slice(2), value);
        else this.byHost.set(host, value);
      }
      if (owns.default) fallback = value;
    }
    this.fallback = fallback;
    this.chosenOnlyByName = onlyByName.sort();
    this.only =
      single && entries.length === 1 ? { ok: true, value: entries[0]!.value, by: 'only policy' } : undefined;
  }

  /**
   * Some policy claims requests by the destination workload's identity, which outranks the host: a request
   * that cannot say its destination (one from an HTTP front door) cannot be given a policy by its host alone.
   */
  get choosesByDestination(): boolean {
    return this.byPrincipal.size > 0;
  }

  get size(): number {
    return this.byName.size;
  }

  named(name: string): T | undefined {
    return this.byName.get(name);
  }

  select(keys: PolicyKeys): Selection<T> {
    if (this.only !== undefined) return this.only;
    if (keys.extension !== undefined) {
      const named = this.byName.get(keys.extension);
      return named === undefined
        ? {
            ok: false,
            detail: `Envoy names policy ${JSON.stringify(keys.extension.slice(0, 128))} (context extension ${POLICY_EXTENSION}), which no policy file has`,
          }
        : { ok: true, value: named, by: 'context extension' };
    }
    if (keys.destinationPrincipal !== undefined) {
      const owner = this.byPrincipal.get(keys.destinationPrincipal);
      if (owner !== undefined) return { ok: true, value: owner, by: 'destination principal' };
    }
    const host = keys.host === undefined ? undefined : hostName(keys.host);
    if (host !== undefined) {
      const owner = this.byHost.get(host) ?? this.wildcardFor(host);
      if (owner !== undefined) return { ok: true, value: owner, by: 'host' };
    }
    if (this.fallback !== undefined) return { ok: true, value: this.fallback, by: 'default' };
    // The host is the caller's own (it goes back in the 403 body and the log line), said only when it is one.
    const said = host !== undefined && SAYABLE_HOST.test(host) ? ` host "${host}"` : ' this request';
    return {
      ok: false,
      detail: `no policy owns${said} (by context extension, destination principal or host)`,
    };
  }

  /** The longest `*.suffix` that covers the host: `a.b.example.com` tries `b.example.com`, then `example.com`. */
  private wildcardFor(host: string): T | undefined {
    if (this.byHostSuffix.size === 0) return undefined;
    for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
      const owner = this.byHostSuffix.get(host.slice(dot + 1));
      if (owner !== undefined) return owner;
    }
    return undefined;
  }
}

/**
 * The host part of an `:authority`, lower-cased, without its port: `Inventory.Example.com:8443` is
 * `inventory.example.com`, `[::1]:80` is `[::1]`. A trailing dot (a fully qualified name) is dropped, as
 * DNS treats both alike. Undefined for an empty authority.
 */
export function hostName(authority: string): string | undefined {
  let host = authority.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    host = end === -1 ? host : host.slice(0, end + 1);
  } else {
    const colon = host.lastIndexOf(':');
    if (colon !== -1 && /^\d*$/.test(host.slice(colon + 1))) host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host === '' ? undefined : host;
}
