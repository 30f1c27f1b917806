// One Check, phase by phase: request facts → identity → route → permissions → locations → decision.
// Every phase returns a value or a closed-reason denial; the first denial is the decision. Nothing here does
// I/O except through the authenticator's key stores, and nothing here throws for an expected outcome.

import { checkLocations, checkPermissions } from './decision/evaluate.js';
import type { Reason } from './decision/reasons.js';
import type { Decision, Denial } from './decision/types.js';
import type { CheckRequest } from './envoy.js';
import type { Principal } from './identity/types.js';
import type { CompiledPolicy } from './policy/types.js';
import { readRequest } from './request/facts.js';
import { readLocations } from './request/locations.js';
import type { RequestFacts } from './request/types.js';

/** The policy revision in force and the authenticator built for it, swapped together on reload. */
export interface Snapshot {
  readonly policy: CompiledPolicy;
  readonly authenticator: {
    authenticate(facts: RequestFacts): Promise<{ ok: true; value: Principal } | Denial>;
  };
}

export interface Checked {
  readonly decision: Decision;
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

export async function check(request: CheckRequest, snapshot: Snapshot): Promise<Checked> {
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

  const identity = await snapshot.authenticator.authenticate(facts);
  if (!identity.ok) return decided(denied(identity, revision));
  const principal = identity.value;
  const who = {
    subject: principal.subject,
    ...(principal.client !== undefined && { client: principal.client }),
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
  if (!permitted.ok) return decided(denied(permitted, revision, at));

  const locations = readLocations(match, facts);
  if (!locations.ok) return decided(denied(locations, revision, at));
  const placed = checkLocations(policy, principal, locations.value);
  if (!placed.ok) return decided(denied(placed, revision, at));

  return decided({ reason: 'allowed', detail: 'allowed', revision, ...at });
}
