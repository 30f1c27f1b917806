// Re-deciding a decision record under a candidate policy (`scopegate replay`), from the record alone: no
// token, no key, no body. The candidate set chooses the policy as the server would (check/choose.ts), then the
// server's own phases decide (check/decide.ts `decideFrom`) with each input taken from the record. What the
// record does not hold is never guessed: the record "cannot be replayed", with the reason why, when the
// candidate would read the token of a request whose token was never read, would verify tokens differently
// (its authentication settings changed: the token itself is not kept), or its route reads locations from a
// source the record has no value for.
import { LRUCache } from 'lru-cache';
import { chooseByKeys } from '../check/choose.js';
import { decideFrom, type Inputs } from '../check/decide.js';
import { identifyPeer } from '../identity/peer.js';
import type { PolicySet } from '../policy/set.js';
import type { CompiledPolicy, RouteMatch } from '../policy/types.js';
import { tokenBasis } from '../record/basis.js';
import { type DecisionRecord, type RecordedDenial, sourceKey } from '../record/types.js';
import { readLocations } from '../request/locations.js';
import type { RequestFacts } from '../request/types.js';
import { type Decision, type Denial, deny, type Outcome, ok, type Principal } from '../vocabulary/index.js';

export type Replayed =
  | { readonly ok: true; readonly decision: Decision }
  | { readonly ok: false; readonly why: string };

/** A request with nothing in it but what a route's path parameters come from (the matched path). */
const NO_FACTS: RequestFacts = Object.freeze({
  requestId: '',
  method: '',
  path: '',
  query: new Map(),
  headers: new Map(),
  body: { partial: false },
  contextExtensions: {},
  jwtAuthnPayloads: new Map(),
  peer: {},
});

export function replayRecord(record: DecisionRecord, candidates: PolicySet<CompiledPolicy>): Replayed {
  const keys = record.policy_keys ?? {};
  // By the door it came in by: from an HTTP door, the candidate set may be one those doors refuse.
  const chosen = chooseByKeys(
    candidates,
    {
      ...(keys.extension !== undefined && { extension: keys.extension }),
      ...(keys.destination !== undefined && { destinationPrincipal: keys.destination }),
      ...(keys.host !== undefined && { host: keys.host }),
    },
    record.transport ?? 'grpc',
  );
  if (!chosen.ok)
    return { ok: true, decision: { reason: 'policy_unknown', detail: chosen.detail, revision: '' } };
  const policy = chosen.value;
  const stamp = { policy: policy.name, revision: policy.revision };
  // A request that could not be read is refused whatever the policy.
  if (record.request !== undefined) return { ok: true, decision: { ...denialOf(record.request), ...stamp } };

  let why = '';
  const inputs: Inputs = {
    identity() {
      const token = record.token;
      if (token === undefined) {
        why =
          'the candidate reads the token, and the record has none (the route it was decided on did not read it)';
        return undefined;
      }
      const issuer = 'subject' in token ? token.issuer : undefined;
      if (tokenBasis(policy, issuer) !== token.basis) {
        why = `the candidate verifies tokens${issuer ? ` of ${issuer}` : ''} differently (authentication settings changed), and the record does not keep the token`;
        return undefined;
      }
      return 'subject' in token ? ok(principalOf(token)) : asDenial(token);
    },
    peer: () =>
      record.peer === undefined
        ? identifyPeer({})
        : typeof record.peer === 'string'
          ? ok(record.peer)
          : asDenial(record.peer),
    locations(match: RouteMatch) {
      const source = match.route.location;
      // Path parameters come from the path, which the record has; a route without a source reads nothing.
      if (source === undefined || 'path' in source) return readLocations(match, NO_FACTS);
      const key = sourceKey(source);
      const recorded = record.locations;
      if (recorded?.source !== key) {
        why = `the candidate's route ${match.route.name} reads locations from ${key}, which the record does not hold`;
        return undefined;
      }
      return 'found' in recorded ? ok([...recorded.found]) : asDenial(recorded);
    },
  };
  const decided = decideFrom(policy, record.method!, record.path!, inputs);
  // Every input above is at hand: a promise here would be a bug, not a slow input.
  if (decided instanceof Promise) throw new Error('replay: a record decided asynchronously');
  return 'decision' in decided ? { ok: true, decision: decided.decision } : { ok: false, why };
}

type RecordedCaller = Extract<NonNullable<DecisionRecord['token']>, { subject: string }>;

/**
 * The same caller recurs in record after record: one Principal for it, so the grants worked out for it under
 * the candidate (decision/evaluate.ts keeps them per Principal) are worked out once. Bounded.
 */
const principals = new LRUCache<string, Principal>({ max: 10_000 });

function principalOf(token: RecordedCaller): Principal {
  const key = JSON.stringify([
    token.issuer,
    token.subject,
    token.client,
    token.grant_type,
    token.scopes,
    token.roles,
    token.locations,
  ]);
  let principal = principals.get(key);
  if (principal === undefined) {
    principal = newPrincipal(token);
    principals.set(key, principal);
  }
  return principal;
}

function newPrincipal(token: RecordedCaller): Principal {
  return {
    subject: token.subject,
    ...(token.client !== undefined && { client: token.client }),
    ...(token.issuer !== undefined && { issuer: token.issuer }),
    ...(token.grant_type !== undefined && { grantType: token.grant_type }),
    scopes: new Set(token.scopes),
    roles: new Set(token.roles),
    locations: [...token.locations],
  };
}

function asDenial({ reason, detail, missing }: RecordedDenial): Outcome<never> & Denial {
  return deny(reason, detail, missing === undefined ? undefined : { missing: { ...missing } });
}

function denialOf({ reason, detail, missing }: RecordedDenial): Omit<Decision, 'revision'> {
  return { reason, detail, ...(missing !== undefined && { missing }) };
}
