// Which policy of the set owns a request, as the server chooses it for every Check (and `explain` and `test`
// for theirs): a set of one file owns every request without reading it; otherwise the request's context
// extension, destination principal and host decide (policy/set.ts). A request from an HTTP front door carries
// neither a context extension nor a destination principal (nothing a client could not have written): it is
// chosen by its host or the default, and refused when the set chooses by destination, where its host alone
// could pick another policy than Envoy's gRPC CheckRequest would.
import type { PolicySet, Selection } from '../policy/set.js';
import { policyKeysOf } from '../request/policy-keys.js';
import { carriesEnvoyAttributes, type Transport } from '../vocabulary/index.js';
import type { CheckRequest } from '../wire/types.js';

export function choosePolicy<T>(
  set: PolicySet<T>,
  request: CheckRequest,
  transport: Transport = 'grpc',
): Selection<T> {
  if (set.only !== undefined) return set.only;
  if (carriesEnvoyAttributes(transport)) return set.select(policyKeysOf(request));
  if (set.choosesByDestination)
    return {
      ok: false,
      detail:
        'this policy set chooses policies by destination principal, which the HTTP front door cannot carry: use the gRPC front door',
    };
  const { host } = policyKeysOf(request);
  return set.select(host === undefined ? {} : { host });
}
