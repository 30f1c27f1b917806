// One Check, phase by phase: request facts → identity → route → permissions → locations → decision.
// Every phase returns a value or a closed-reason denial; the first denial is the decision. Nothing here does
// I/O except through the authenticator's key stores, and nothing here throws for an expected outcome.
// A decision cache, when the snapshot has one, answers repeats of a request whose decision depends only on
// its verified token, route, locations and the revision; everything else is decided afresh.

import { DecisionCache } from './cache/decisions.js';
import { checkLocations, checkPermissions } from './decision/evaluate.js';
import type { Reason } from './decision/reasons.js';
import type { Decision, Denial, Outcome } from './decision/types.js';
import type { CheckRequest } from './envoy.js';
import { extractBearer } from './identity/bearer.js';
import type { SigningKeyRef } from './identity/keys.js';
import type { Principal } from './identity/types.js';
import type { CompiledPolicy, RouteMatch } from './policy/types.js';
import { readRequest } from './request/facts.js';
import { readLocations } from './request/locations.js';
import type { RequestFacts } from './request/types.js';

/** The policy revision in force and the authenticator built for it, swapped together on reload. */
export interface Snapshot {
  readonly policy: CompiledPolicy;
  readonly authenticator: {
    authenticate(facts: RequestFacts): Promise<{ ok: true; value: Principal } | Denial>;
    /** The key that verified a principal's token (Authenticator); without both of these, nothing is cached. */
    signingKeyOf?(principal: Principal): SigningKeyRef | undefined;
    isPublished?(ref: SigningKeyRef): boolean;
  };
  /** Decisions of this revision by token, method, route and locations; absent or sized 0: off. */
  readonly decisions?: DecisionCache;
}

export interface Checked {
  readonly decision: Decision;
  /** From the decision cache: the same Decision object answers every repeat, so its answer can be kept. */
  readonly cached?: true;
  /** Undefined only when the CheckRequest was too malformed to read. */
  readonly facts?: RequestFacts;
}

function denied(denial: Denial, revision: string, more: Partial<Decision> = {}): Decision {
  const { reason, detail, missing, missingBySource } = denial;
  return {
    reason,
    detail,
    revision,
    ...more,
    ...(missing && { missing }),
    ...(missingBySource && { missingBySource }),
  };
}

/** Denials no mode can waive: an ambiguous request must never reach the upstream, nor one we failed on. */
const ALWAYS_ENFORCED: ReadonlySet<Reason> = new Set(['request_malformed', 'internal_error']);

/**
 * The decision for one request. A decision-cache hit is answered synchronously (no promise, no microtask on
 * the hot path); anything that needs identity returns a promise.
 */
export function check(request: CheckRequest, snapshot: Snapshot): Checked | Promise<Checked> {
  const { policy } = snapshot;
  const { revision } = policy;

  const read = readRequest(request);
  if (!read.ok) return { decision: denied(read, revision) };
  const facts = read.value;
  // Matching needs no identity, so it is done once, up front: its mode applies even to token failures.
  const match = policy.matchRoute(facts.method, facts.path);
  const mode = match?.route.mode ?? policy.mode;
  const decided = (decision: Decision): Checked => ({
    decision:
      mode === 'dry_run' && decision.reason !== 'allowed' && !ALWAYS_ENFORCED.has(decision.reason)
        ? { ...decision, dryRun: true }
        : decision,
    facts,
  });

  // Read at most once: the decision cache keys on the locations, and the location phase checks them.
  let locations: Outcome<string[]> | undefined;
  const locationsOf = (m: RouteMatch) => (locations ??= readLocations(m, facts));

  const cache = cacheFor(snapshot, facts, match, locationsOf);
  if (cache !== undefined) {
    const hit = cache.decisions.get(cache.key, cache.isPublished);
    if (hit !== undefined) return { decision: hit, facts, cached: true };
  }
  return snapshot.authenticator.authenticate(facts).then((identity) => {
    if (!identity.ok) return decided(denied(identity, revision));
    return decideFor(identity.value);
  });

  function decideFor(principal: Principal): Checked {
    // From here the decision rests only on what the key holds, so it may be kept (until the token's exp).
    const remember = (checked: Checked): Checked => {
      const signedBy = snapshot.authenticator.signingKeyOf?.(principal);
      if (cache !== undefined && signedBy !== undefined && principal.expiresAt !== undefined) {
        cache.decisions.set(cache.key, checked.decision, { expiresAt: principal.expiresAt, signedBy });
      }
      return checked;
    };
    const who = {
      subject: principal.subject,
      ...(principal.client !== undefined && { client: principal.client }),
      ...(principal.issuer !== undefined && { issuer: principal.issuer }),
    };

    if (!match) {
      return decided({
        reason: 'route_unknown',
        detail: 'no route in the policy matches this method and path',
        revision,
        ...who,
      });
    }
    const at = { ...who, route: match.route.name };

    const permitted = checkPermissions(policy, principal, match.route);
    if (!permitted.ok) return remember(decided(denied(permitted, revision, at)));

    const found = locationsOf(match);
    // Unreadable or missing locations are never cached (`cache` is undefined whenever `found` is a denial).
    if (!found.ok) return decided(denied(found, revision, at));
    const placed = checkLocations(policy, principal, found.value);
    if (!placed.ok) return remember(decided(denied(placed, revision, at)));

    return remember(decided({ reason: 'allowed', detail: 'allowed', revision, ...at }));
  }
}

interface CachePlan {
  readonly decisions: DecisionCache;
  readonly key: string;
  readonly isPublished: (ref: SigningKeyRef) => boolean;
}

/**
 * Where this request's decision is cached, when it can be: a bearer token this policy's issuers verify (not
 * Envoy's jwt_authn claims), a matched route and readable locations. Anything else is decided afresh every
 * time: a denial about the request itself, or a route_unknown, costs no cache entry.
 */
function cacheFor(
  snapshot: Snapshot,
  facts: RequestFacts,
  match: RouteMatch | undefined,
  locationsOf: (m: RouteMatch) => Outcome<string[]>,
): CachePlan | undefined {
  const { decisions, authenticator, policy } = snapshot;
  if (!decisions?.enabled || !authenticator.isPublished || !authenticator.signingKeyOf) return;
  if (match === undefined || policy.issuers.length === 0) return;
  const envoy = policy.envoyJwtAuthn;
  if (envoy !== undefined && facts.jwtAuthnPayloads.has(envoy.metadataKey)) return;
  const bearer = extractBearer(facts);
  if (!bearer.ok || bearer.value === undefined) return;
  const locations = locationsOf(match);
  if (!locations.ok) return;
  const key = DecisionCache.keyFor({
    revision: policy.revision,
    token: bearer.value,
    method: facts.method,
    route: match.route.name,
    locations: locations.value,
  });
  return { decisions, key, isPublished: (ref) => authenticator.isPublished?.(ref) ?? false };
}
