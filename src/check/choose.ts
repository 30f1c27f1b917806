// Which policy of the set owns a request, as the server chooses it for every Check (and `explain` and `test`
// for theirs, `replay` for a record's): a set of one file owns every request without reading it; otherwise the request's context
// extension, destination principal and host decide (policy/set.ts). A request from an HTTP front door carries
// neither a context extension nor a destination principal (nothing a client could not have written): it is
// chosen by its host or the default, and only from a set that does not rely on the other two. A set that
// chooses by destination, or has a policy only Envoy's context extension can name, refuses every request from
// an HTTP door: there the host alone could pick another policy than Envoy's gRPC CheckRequest would (a
// catch-all virtual host Envoy names a policy for passes any host the client sends).
import type { PolicyKeys, PolicySet, Selection } from '../policy/set.js';
import { policyKeysOf } from '../request/policy-keys.js';
import { carriesEnvoyAttributes, type Transport } from '../vocabulary/index.js';
import type { CheckRequest } from '../wire/types.js';

export function choosePolicy<T>(
  set: PolicySet<T>,
  request: CheckRequest,
  transport: Transport = 'grpc',
): Selection<T> {
  if (set.only !== undefined) return set.only;
  return chooseByKeys(set, policyKeysOf(request), transport);
}

/** The same choice from keys already read (`replay` has them from a decision record). */
export function chooseByKeys<T>(set: PolicySet<T>, keys: PolicyKeys, transport: Transport): Selection<T> {
  if (carriesEnvoyAttributes(transport)) return set.select(keys);
  const refused = httpRefusalOf(set);
  if (refused !== undefined) return refused;
  return set.select(keys.host === undefined ? {} : { host: keys.host });
}

/** What the HTTP front doors answer every request of this set with, when they refuse it whole; else undefined. */
export function httpDoorsRefusal<T>(set: PolicySet<T>): string | undefined {
  if (set.only !== undefined) return undefined;
  const refusal = httpRefusalOf(set);
  return refusal !== undefined && !refusal.ok ? refusal.detail : undefined;
}

/** Per set (sets are immutable, replaced whole on a reload): the HTTP doors' refusal, worked out once. */
const httpRefusals = new WeakMap<PolicySet<unknown>, Selection<never> | null>();

function httpRefusalOf<T>(set: PolicySet<T>): Selection<never> | undefined {
  let refusal = httpRefusals.get(set);
  if (refusal === undefined) {
    refusal = refusalFor(set);
    httpRefusals.set(set, refusal);
  }
  return refusal ?? undefined;
}

function refusalFor(set: PolicySet<unknown>): Selection<never> | null {
  if (set.choosesByDestination)
    return {
      ok: false,
      detail:
        'this policy set chooses policies by destination principal, which the HTTP front door cannot carry: use the gRPC front door',
    };
  const named = set.chosenOnlyByName;
  if (named.length > 0) {
    const listed =
      named.length > 3 ? `${named.slice(0, 3).join(', ')} and ${named.length - 3} more` : named.join(', ');
    return {
      ok: false,
      detail: `this policy set has policies only Envoy's context extension can name (${listed}), which the HTTP front door cannot carry: give them match.hosts, or use the gRPC front door`,
    };
  }
  return null;
}
