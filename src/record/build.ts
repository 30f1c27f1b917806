// A decision record from what one Check read and decided (record/types.ts). Pure but for reading the clock's
// value it is given: the Check path (check/handle.ts) builds one only for the decisions it records.
import { identifyPeer } from '../identity/peer.js';
import { hostName } from '../policy/set.js';
import type { CompiledPolicy } from '../policy/types.js';
import { readRequest } from '../request/facts.js';
import { policyKeysOf } from '../request/policy-keys.js';
import type { RequestFacts } from '../request/types.js';
import type { Decision, DecisionLabel, Denial, Outcome, Principal, Transport } from '../vocabulary/index.js';
import type { CheckRequest } from '../wire/types.js';
import { tokenBasis } from './basis.js';
import {
  type DecisionRecord,
  type Gathered,
  RECORD_TYPE,
  RECORD_VERSION,
  type RecordedDenial,
  type RecordedToken,
  sourceKey,
} from './types.js';

/** Longest policy key kept: names, SPIFFE IDs and hosts that own requests are shorter. */
const MAX_KEY_LENGTH = 1024;

export interface RecordContext {
  readonly time: Date;
  readonly requestId: string;
  readonly traceId?: string;
  /** The front door the Check came in by. */
  readonly transport?: Transport;
  /** The share of such decisions recorded: 1 for denies. */
  readonly sampledAt: number;
  /** The policy revision that decided; absent when no policy owned the request. */
  readonly policy?: CompiledPolicy;
}

export interface Decided {
  readonly decision: Decision;
  readonly label: DecisionLabel;
  /** What decide() read; absent when it read nothing (no policy, a failure). */
  readonly facts?: RequestFacts;
  readonly gathered?: Gathered;
}

export function recordOf(request: CheckRequest, decided: Decided, context: RecordContext): DecisionRecord {
  const { decision, label, gathered = {} } = decided;
  // A request no policy owned was never read: read it now (bounded, no body), so a candidate set that owns
  // it can decide it.
  let facts = decided.facts;
  let unreadable: Denial | undefined;
  if (facts === undefined) {
    const read = readRequest(request);
    if (read.ok) facts = read.value;
    else unreadable = read;
  }
  const { policy } = context;
  return {
    type: RECORD_TYPE,
    v: RECORD_VERSION,
    time: context.time.toISOString(),
    request_id: context.requestId,
    ...(context.traceId !== undefined && { trace_id: context.traceId }),
    ...(context.transport !== undefined && { transport: context.transport }),
    ...(decision.policy !== undefined && { policy: decision.policy }),
    revision: decision.revision,
    ...policyKeys(request),
    ...(unreadable && { request: denialOf(unreadable) }),
    ...(facts && { method: facts.method, path: facts.path }),
    ...(gathered.identity && policy && { token: tokenOf(gathered.identity, policy) }),
    ...(facts && peerOf(facts, gathered.peer)),
    ...(gathered.locations && {
      locations: {
        source: sourceKey(gathered.locations.source),
        ...(gathered.locations.found.ok
          ? { found: gathered.locations.found.value }
          : denialOf(gathered.locations.found)),
      },
    }),
    ...(decision.route !== undefined && { route: decision.route }),
    decision: label,
    reason: decision.reason,
    ...(decision.missing !== undefined && { missing: decision.missing }),
    dry_run: decision.dryRun === true,
    sampled_at: context.sampledAt,
  };
}

export function denialOf({ reason, detail, missing }: Denial): RecordedDenial {
  return { reason, detail, ...(missing !== undefined && { missing }) };
}

function tokenOf(identity: Outcome<Principal>, policy: CompiledPolicy): RecordedToken {
  if (!identity.ok) return { basis: tokenBasis(policy), ...denialOf(identity) };
  const p = identity.value;
  return {
    basis: tokenBasis(policy, p.issuer),
    ...(p.issuer !== undefined && { issuer: p.issuer }),
    subject: p.subject,
    ...(p.client !== undefined && { client: p.client }),
    ...(p.grantType !== undefined && { grant_type: p.grantType }),
    scopes: [...p.scopes],
    roles: [...p.roles],
    locations: [...p.locations],
  };
}

/** The peer as Envoy vouched for it: identified here when decide() had no need to (a token route). */
function peerOf(facts: RequestFacts, known: Outcome<string> | undefined): { peer?: string | RecordedDenial } {
  if (facts.peer.principal === undefined && facts.peer.certificate === undefined) return {};
  const peer = known ?? identifyPeer(facts.peer);
  return { peer: peer.ok ? peer.value : denialOf(peer) };
}

function policyKeys(request: CheckRequest): Pick<DecisionRecord, 'policy_keys'> {
  const { extension, destinationPrincipal, host } = policyKeysOf(request);
  const name = host === undefined ? undefined : hostName(host);
  // Cut, not dropped: a cut key still names no policy, as the whole one did not.
  const cut = (text: string) => text.slice(0, MAX_KEY_LENGTH);
  const keys = {
    ...(extension !== undefined && { extension: cut(extension) }),
    ...(destinationPrincipal !== undefined && { destination: cut(destinationPrincipal) }),
    ...(name !== undefined && { host: cut(name) }),
  };
  return Object.keys(keys).length > 0 ? { policy_keys: keys } : {};
}
