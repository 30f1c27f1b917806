// The policy phase's public surface: load (parse + validate + compile), the matcher pieces and location
// grants that other phases reuse, and the shared types.

export { formatProblem } from '../config/problems.js';
export type { CompileOptions } from './compile.js';
export {
  compilePolicy,
  DEFAULT_CLAIMS,
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  DEFAULT_MAX_TOKEN_BYTES,
  DEFAULT_REALM,
  IssuerNames,
  policyRevision,
} from './compile.js';
export type { ParseOptions, PolicyResult } from './load.js';
export { loadPolicyFile, MAX_POLICY_BYTES, parsePolicy } from './load.js';
export { locationAllowed, locationPatternProblem, parseLocationGrant } from './locations.js';
export type { HttpMethod, RouteMatcher, TemplateResult, TemplateSegment } from './routes.js';
export {
  buildRouteMatcher,
  HTTP_METHODS,
  MAX_PATH_SEGMENTS,
  parsePathTemplate,
  templateParams,
  templateShape,
} from './routes.js';
export type * from './types.js';
export type { ValidateResult } from './validate.js';
export { validatePolicy } from './validate.js';
export {
  ALLOWED_ALGORITHMS,
  CLOCK_TOLERANCE_MAX_SECONDS,
  MAX_TOKEN_BYTES_RANGE,
} from './validate-authentication.js';
