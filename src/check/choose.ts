// Which policy of the set owns a request, as the server chooses it for every Check (and `explain` and `test`
// for theirs): a set of one file owns every request without reading it; otherwise the request's context
// extension, destination principal and host decide (policy/set.ts).
import type { PolicySet, Selection } from '../policy/set.js';
import { policyKeysOf } from '../request/policy-keys.js';
import type { CheckRequest } from '../wire/types.js';

export function choosePolicy<T>(set: PolicySet<T>, request: CheckRequest): Selection<T> {
  return set.only ?? set.select(policyKeysOf(request));
}
