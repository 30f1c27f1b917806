// What a CheckRequest offers for choosing its policy from a set (policy/set.ts): the context extension Envoy's
// route config sets, the called workload's identity, and the host. Read before anything else of the request,
// and only when there is a choice to make (a set of one file owns every request).
import { POLICY_EXTENSION, type PolicyKeys } from '../policy/set.js';
import type { CheckRequest } from '../wire/types.js';

export function policyKeysOf(check: CheckRequest): PolicyKeys {
  const attributes = check.attributes;
  const extensions = attributes?.context_extensions;
  const extension =
    extensions && Object.hasOwn(extensions, POLICY_EXTENSION) ? extensions[POLICY_EXTENSION] : undefined;
  const principal = attributes?.destination?.principal;
  const http = attributes?.request?.http;
  // Envoy puts `:authority` in `host`; an HTTP/1.0 request without one has neither.
  const headers = http?.headers;
  const host =
    http?.host || (headers && Object.hasOwn(headers, ':authority') ? headers[':authority'] : undefined);
  return {
    ...(typeof extension === 'string' && { extension }),
    ...(typeof principal === 'string' && principal !== '' && { destinationPrincipal: principal }),
    ...(typeof host === 'string' && host !== '' && { host }),
  };
}
