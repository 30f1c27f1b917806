// One Check's decision, phase by phase: request facts → credential → identity → route → locations →
// permissions → decision. Every phase returns a value or a closed-reason denial; the first denial is the
// decision. Nothing here does I/O except through the authenticator's key stores, and nothing here throws for
// an expected outcome. The caller is identified before the body is read (security rule 10): a stranger's
// request costs its token, never its body. A decision cache, when the snapshot has one, answers repeats of a
// request whose decision depends only on its verified token, route, locations and the revision.
import { DecisionCache, type DecisionLookupStatus } from '../cache/decisions.js';
import {
  checkLocations,
  checkPeerLocations,
  checkPeerPermissions,
  checkPermissions,
  type KnownPeer,
  peerOf,
} from '../decision/evaluate.js';
import type { IdentifyStatus } from '../identity/authenticate.js';
import { type Credential, readCredential } from '../identity/credential.js';
import { identifyPeer } from '../identity/peer.js';
import type { CompiledPolicy, PolicyMode, RouteMatch } from '../policy/types.js';
import type { Gathered } from '../record/types.js';
import { readRequest } from '../request/facts.js';
import { readLocations } from '../request/locations.js';
import type { RequestFacts } from '../request/types.js';
import {
  carriesEnvoyAttributes,
  type Decision,
  type Denial,
  deny,
  type Outcome,
  type Principal,
  type SigningKeyRef,
  specOf,
  type Transport,
} from '../vocabulary/index.js';
import type { CheckRequest } from '../wire/types.js';

type Identified = Outcome<Principal>;

/** The policy revision in force and the authenticator built for it, swapped together on reload. */
export interface Snapshot {
  readonly policy: CompiledPolicy;
  readonly authenticator: {
    /** Who the credential names; synchronous when the answer is known already (a cached token). */
    identify(credential: Credential, status?: IdentifyStatus): Identified | Promise<Identified>;
    /** The key that verified a principal's token (Authenticator); without both of these, nothing is cached. */
    signingKeyOf?(principal: Principal): SigningKeyRef | undefined;
    isPublished?(ref: SigningKeyRef): boolean;
  };
  /** Decisions of this revision by token, method, route and locations; absent or sized 0: off. */
  readonly decisions?: DecisionCache;
}

/**
 * What one Check met on the way (cache results, a key fetch it started), written for a caller that asks: its
 * trace span. A status object, as lru-cache's lookups take: the Check path stays one, and a Check nobody
 * traces allocates nothing for it.
 */
export interface CheckStatus extends IdentifyStatus, DecisionLookupStatus {}

export interface Checked {
  readonly decision: Decision;
  /** Undefined only when the CheckRequest was too malformed to read. */
  readonly facts?: RequestFacts;
  /** What the phases read on the way (for a decision record); absent when the request was not read. */
  readonly gathered?: Gathered;
}

/** Which policy, and which revision of it, a decision was made under. */
interface Stamp {
  readonly policy: string;
  readonly revision: string;
}

function denied(denial: Denial, stamp: Stamp, more: Partial<Decision> = {}): Decision {
  const { reason, detail, missing, missingBySource } = denial;
  return {
    reason,
    detail,
    ...stamp,
    ...more,
    ...(missing && { missing }),
    ...(missingBySource && { missingBySource }),
  };
}

/**
 * Under `mode: dry_run` a deny goes through, counted as dry_run_deny, unless its reason is always enforced;
 * every decision made under it says so (underDryRun).
 */
function underMode(mode: PolicyMode, decision: Decision): Decision {
  if (mode !== 'dry_run') return decision;
  const spec = specOf(decision.reason);
  const waived = !spec.allows && !spec.alwaysEnforced;
  return { ...decision, underDryRun: true, ...(waived && { dryRun: true }) };
}

/** `next` applied to a value now, or to a promise's value later: the hot path stays free of promises. */
function then<T, U>(value: T | Promise<T>, next: (value: T) => U | Promise<U>): U | Promise<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}

type Located = Outcome<string[]>;

/**
 * Where the phases read what they decide on, each asked for only when the decision needs it, in this order:
 * the request itself (decide, below), or a decision record (`scopegate replay`). Undefined: not known (a
 * record that does not hold it); the decision then says so instead of guessing.
 */
export interface Inputs {
  /** Who the credential names, or why it names no one. */
  identity(): Identified | Promise<Identified> | undefined;
  /** The calling workload's SPIFFE ID as Envoy vouches for it (identity/peer.ts), or why there is none. */
  peer(): Outcome<string> | undefined;
  /** The locations the matched route reads. */
  locations(match: RouteMatch): Located | Promise<Located> | undefined;
  /** A decision kept for these inputs (decide's decision cache), or how to keep this one. */
  kept?(
    principal: Principal,
    peer: KnownPeer | undefined,
    match: RouteMatch,
    locations: string[],
  ): Kept | undefined;
}

interface Kept {
  readonly hit: Decision | undefined;
  keep(decision: Decision): Decision;
}

/** What an input that was asked for and not known leaves undecided. */
export type Unknown = 'identity' | 'peer' | 'locations';

export type Decided = { readonly decision: Decision } | { readonly unknown: Unknown };

/**
 * The decision for a method and canonical path under one policy, from the inputs: every phase after reading
 * the request. Both the server (decide) and replay (review/replay.ts) decide here, so a replayed decision is
 * the server's by construction. Synchronous when every input is.
 */
export function decideFrom(
  policy: CompiledPolicy,
  method: string,
  path: string,
  inputs: Inputs,
): Decided | Promise<Decided> {
  const stamp: Stamp = { policy: policy.name, revision: policy.revision };
  // Matching needs no identity, so it is done once, up front: its mode applies even to token failures.
  const match = policy.matchRoute(method, path);
  const mode = match?.route.mode ?? policy.mode;
  const decided = (decision: Decision): Decided => ({ decision: underMode(mode, decision) });

  // Which identities the route needs: a token (the default), the calling workload (mTLS peer), or both.
  const needs = match?.route.identity ?? policy.identity;
  if (needs === 'peer') return authorizePeer();

  const identified = inputs.identity();
  if (identified === undefined) return UNKNOWN.identity;
  return then(identified, (identity) =>
    identity.ok ? authorize(identity.value) : decided(denied(identity, stamp)),
  );

  /** The peer Envoy vouches for, and the `peers` entry that lists it. */
  function knownPeer(): Outcome<KnownPeer> | undefined {
    const id = inputs.peer();
    return id === undefined || !id.ok ? id : peerOf(policy, id.value);
  }

  function authorize(principal: Principal): Decided | Promise<Decided> {
    let peer: KnownPeer | undefined;
    if (needs === 'token_and_peer') {
      const known = knownPeer();
      if (known === undefined) return UNKNOWN.peer;
      if (!known.ok) return decided(denied(known, stamp, whoOf(principal)));
      peer = known.value;
    }
    if (!match) return decided(routeUnknown(stamp, whoOf(principal, peer)));
    // Only now is the body read: the caller is known. The permissions still decide first (below).
    const located = inputs.locations(match);
    if (located === undefined) return UNKNOWN.locations;
    return then(located, (found): Decided => {
      // Unreadable or missing locations are never cached: only a decision resting on the key is.
      const kept = found.ok ? inputs.kept?.(principal, peer, match, found.value) : undefined;
      if (kept?.hit !== undefined) return { decision: kept.hit };
      // Who and where: only a decision made afresh needs them (a repeat is answered above, spreading nothing).
      const at = { ...whoOf(principal, peer), route: match.route.name };
      // From here the decision rests only on what the key holds, so it may be kept (until the token's exp).
      const remember = (decision: Decision): Decided => {
        const moded = underMode(mode, decision);
        return { decision: kept ? kept.keep(moded) : moded };
      };

      // The token's subject first, then the peer acting for it: both must hold every permission and location.
      const permitted = checkPermissions(policy, principal, match.route);
      if (!permitted.ok) return remember(denied(permitted, stamp, at));
      const peerPermitted = peer && checkPeerPermissions(policy, peer, match.route);
      if (peerPermitted && !peerPermitted.ok) return remember(denied(peerPermitted, stamp, at));
      if (!found.ok) return decided(denied(found, stamp, at));
      const placed = checkLocations(policy, principal, found.value);
      if (!placed.ok) return remember(denied(placed, stamp, at));
      const peerPlaced = peer && checkPeerLocations(peer, found.value);
      if (peerPlaced && !peerPlaced.ok) return remember(denied(peerPlaced, stamp, at));
      return remember({ reason: 'allowed', detail: 'allowed', ...stamp, ...at });
    });
  }

  /** A route only the calling workload's identity opens: no token is read. Nothing here is cached. */
  function authorizePeer(): Decided | Promise<Decided> {
    const known = knownPeer();
    if (known === undefined) return UNKNOWN.peer;
    if (!known.ok) return decided(denied(known, stamp));
    const peer = known.value;
    if (!match) return decided(routeUnknown(stamp, { peer: peer.id }));
    const at = { peer: peer.id, route: match.route.name };
    const located = inputs.locations(match);
    if (located === undefined) return UNKNOWN.locations;
    return then(located, (found) => {
      const permitted = checkPeerPermissions(policy, peer, match.route);
      if (!permitted.ok) return decided(denied(permitted, stamp, at));
      if (!found.ok) return decided(denied(found, stamp, at));
      const placed = checkPeerLocations(peer, found.value);
      if (!placed.ok) return decided(denied(placed, stamp, at));
      return decided({ reason: 'allowed', detail: 'allowed', ...stamp, ...at });
    });
  }
}

const UNKNOWN: Readonly<Record<Unknown, Decided>> = Object.freeze({
  identity: Object.freeze({ unknown: 'identity' as const }),
  peer: Object.freeze({ unknown: 'peer' as const }),
  locations: Object.freeze({ unknown: 'locations' as const }),
});

/** The front door a request came in by, and what it refused before the request could be read. */
export interface Door {
  readonly transport: Transport;
  /** Why the door could not describe the request (a missing forwarded header, …): request_malformed. */
  readonly refused?: string;
}

const GRPC_DOOR: Door = Object.freeze({ transport: 'grpc' });

/**
 * The decision for one request. Synchronous when every phase is (a cached token, a body read in one
 * slice); a promise when verifying a token, fetching keys or reading a large body takes longer.
 */
export function decide(
  request: CheckRequest,
  snapshot: Snapshot,
  /** Where a traced Check learns its cache results and the key fetches it started (telemetry/otel.ts). */
  status?: CheckStatus,
  door: Door = GRPC_DOOR,
): Checked | Promise<Checked> {
  const { policy } = snapshot;
  const read = door.refused !== undefined ? deny('request_malformed', door.refused) : readRequest(request);
  if (!read.ok) return { decision: denied(read, { policy: policy.name, revision: policy.revision }) };
  const facts = read.value;
  // What the phases read, for a decision record: filled in as each is asked for.
  const gathered: Gathered = {};
  let credential: Credential | undefined;
  const inputs: Inputs = {
    identity() {
      const presented = readCredential(facts, policy);
      if (!presented.ok) {
        gathered.identity = presented;
        return presented;
      }
      credential = presented.value;
      return then(snapshot.authenticator.identify(presented.value, status), (identity) => {
        gathered.identity = identity;
        return identity;
      });
    },
    peer() {
      gathered.peer = peerThrough(door, facts);
      return gathered.peer;
    },
    locations: (match) =>
      then(readLocations(match, facts), (found) => {
        if (match.route.location) gathered.locations = { source: match.route.location, found };
        return found;
      }),
    kept(principal, peer, match, locations) {
      const cache = credential && cacheFor(snapshot, credential, principal);
      if (cache === undefined) return undefined;
      const key = DecisionCache.keyFor({
        policy: policy.name,
        revision: policy.revision,
        tokenHash: cache.tokenHash,
        peer: peer?.id ?? '',
        method: facts.method,
        route: match.route.name,
        locations,
      });
      return {
        hit: cache.decisions.get(key, cache.isPublished, status),
        keep: (decision) => cache.decisions.set(key, decision, cache.basis),
      };
    },
  };
  return then(decideFrom(policy, facts.method, facts.path, inputs), (result) => {
    // The request answers every question it is asked: an unknown input here is a bug (→ internal_error).
    if (!('decision' in result)) throw new Error(`decide: no ${result.unknown} input`);
    return { decision: result.decision, facts, gathered };
  });
}

/** The calling workload as the door names it (identity/peer.ts), or why it names none. */
export function peerThrough(door: Door, facts: RequestFacts): Outcome<string> {
  // An HTTP request names no peer Envoy vouched for: a header saying one is the client's own word.
  if (carriesEnvoyAttributes(door.transport)) return identifyPeer(facts.peer);
  return deny(
    'peer_missing',
    "this route needs the calling workload's identity (mTLS), which the HTTP front door cannot carry: use the gRPC front door",
    { missing: { peer: null } },
  );
}

/** Who a decision is about: the token's subject, client and issuer, and the peer when one was needed. */
function whoOf(principal: Principal, peer?: KnownPeer): Partial<Decision> {
  return {
    subject: principal.subject,
    ...(principal.client !== undefined && { client: principal.client }),
    ...(principal.issuer !== undefined && { issuer: principal.issuer }),
    ...(peer !== undefined && { peer: peer.id }),
  };
}

/** Decided only once the caller is known (security rule 10): a stranger learns nothing of the routes. */
function routeUnknown(stamp: Stamp, who: Partial<Decision>): Decision {
  return {
    reason: 'route_unknown',
    detail: 'no route in the policy matches this method and path',
    ...stamp,
    ...who,
  };
}

interface CachePlan {
  readonly decisions: DecisionCache;
  readonly tokenHash: string;
  readonly basis: { readonly expiresAt: number; readonly signedBy: SigningKeyRef };
  /** Authenticator.isPublished: a bound function. */
  readonly isPublished: (ref: SigningKeyRef) => boolean;
}

/**
 * Whether this decision may be cached: a bearer token this policy's issuers verified (not Envoy's jwt_authn
 * claims, which no key of ours vouches for), with a known signing key and expiry. Anything else is decided
 * afresh every time.
 */
function cacheFor(snapshot: Snapshot, credential: Credential, principal: Principal): CachePlan | undefined {
  const { decisions, authenticator } = snapshot;
  if (!decisions?.enabled || credential.kind !== 'bearer' || principal.expiresAt === undefined) return;
  const { isPublished } = authenticator;
  const signedBy = authenticator.signingKeyOf?.(principal);
  if (isPublished === undefined || signedBy === undefined) return;
  return {
    decisions,
    tokenHash: credential.hash,
    basis: { expiresAt: principal.expiresAt, signedBy },
    isPublished,
  };
}
