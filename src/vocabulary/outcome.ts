// What a phase returns: a value, or a refusal with a closed reason and what was missing.
import type { DenyReason } from './reasons.js';

/** What a denied request lacked, in the policy's own words (scope, permission, role and location names). */
export interface Missing {
  /** Permissions the route requires that the caller was not granted. */
  permissions?: string[];
  /** Scopes that would grant the missing permissions. */
  scopes?: string[];
  /** Roles that would grant the missing permissions. */
  roles?: string[];
  /** Locations in the request the caller may not access. */
  locations?: string[];
  /** Grant types the client may use (when the token's grant type is refused). */
  grantTypes?: string[];
  /** The token's client the policy does not list, or null when the token names none (client_unknown). */
  client?: string | null;
  /**
   * The calling workload (SPIFFE ID) the permissions, roles or locations above were missing for, or null when
   * the request came without one (peer_missing). Absent when they were missing for the token's subject.
   */
  peer?: string | null;
}

/** Where a missing permission should have come from: the token's scopes, the caller's roles, the peer's roles. */
export type MissingSource = 'scope' | 'role' | 'peer';

/** A phase's refusal: a closed reason plus a sentence with the specifics (never a secret). */
export interface Denial {
  readonly ok: false;
  readonly reason: DenyReason;
  readonly detail: string;
  readonly missing?: Missing;
  /** Which permissions were missing from which source, for scopegate_missing_permissions_total. */
  readonly missingBySource?: ReadonlyArray<{ permission: string; source: MissingSource }>;
}

export type Outcome<T> = { readonly ok: true; readonly value: T } | Denial;

export function deny(
  reason: DenyReason,
  detail: string,
  extra?: Pick<Denial, 'missing' | 'missingBySource'>,
): Denial {
  return { ok: false, reason, detail, ...extra };
}

export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}
