// The request phase's public face: CheckRequest → RequestFacts, and the readers other phases reuse
// (canonical paths for `explain`, strict JSON, locations for the decision).
export {
  DEFAULT_REQUEST_LIMITS,
  JWT_AUTHN_NAMESPACE,
  PARTIAL_BODY_HEADER,
  type RequestLimits,
  readRequest,
  sanitizeRequestId,
} from './facts.js';
export { DEFAULT_HEADER_LIMITS, type HeaderLimits, readHeaders } from './headers.js';
export { DEFAULT_JSON_LIMITS, type JsonLimits, type JsonResult, parseStrictJson } from './json.js';
export {
  DEFAULT_LOCATION_LIMITS,
  isJsonContentType,
  type LocationLimits,
  readLocations,
} from './locations.js';
export { type CanonicalPath, canonicalPath, MAX_PATH_BYTES, percentDecode } from './path.js';
export { DEFAULT_QUERY_LIMITS, parseQuery, type QueryLimits } from './query.js';
export { MAX_STRUCT_DEPTH, structToJson, valueToJson } from './struct.js';
export type { RequestBody, RequestFacts } from './types.js';
