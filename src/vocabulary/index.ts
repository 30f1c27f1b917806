// The ground vocabulary every phase speaks: outcomes and denials, the reasons table, decisions, the caller,
// the key that vouched for it, and what makes a text usable as an identity. It imports nothing of scopegate's.
export {
  type Decision,
  type DecisionLabel,
  decisionLabel,
  goesThrough,
  type KeptAnswer,
} from './decision.js';
export { identityTextProblem } from './identity-text.js';
export { type Denial, deny, type Missing, type MissingSource, type Outcome, ok } from './outcome.js';
export {
  type Challenge,
  type DenyReason,
  GrpcCode,
  isReason,
  REASON_CODES,
  REASONS,
  type Reason,
  type ReasonSpec,
  reasonsWhere,
  specOf,
} from './reasons.js';
export { spiffeIdProblem } from './spiffe.js';
export { carriesBody, carriesEnvoyAttributes, TRANSPORTS, type Transport } from './transport.js';
export type { Principal, SigningKeyRef } from './types.js';
