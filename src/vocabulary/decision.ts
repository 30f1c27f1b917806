// What one Check decided: the reason (from the closed table), the specifics, who and where, and the policy
// and revision it was decided under.
import type { Denial, Missing } from './outcome.js';
import { type Reason, specOf } from './reasons.js';

export interface Decision {
  readonly reason: Reason;
  readonly detail: string;
  /** Route name from the policy, when one matched. */
  readonly route?: string;
  readonly subject?: string;
  readonly client?: string;
  /** The issuer that vouched for the subject and client: they are names within it (OIDC `sub`). */
  readonly issuer?: string;
  /** The calling workload's SPIFFE ID, when the route needed one (mTLS, `attributes.source.principal`). */
  readonly peer?: string;
  readonly missing?: Missing;
  readonly missingBySource?: Denial['missingBySource'];
  /** The policy (its name) the decision was made under; absent when no policy owns the request. */
  readonly policy?: string;
  /** Policy revision the decision was made on ('' when no policy owns the request). */
  readonly revision: string;
  /** A deny under `mode: dry_run`: counted and logged as dry_run_deny, but the request goes through. */
  readonly dryRun?: boolean;
  /**
   * Decided under `mode: dry_run` (the route's, else the policy's), whatever the outcome: an allow, a deny it
   * let through (`dryRun`), or one it enforces all the same (`request_malformed`). The trace span says it.
   */
  readonly underDryRun?: boolean;
  /**
   * Present only on a decision that answers many requests (one the decision cache keeps): room for its
   * answer, built and encoded once (src/response/kept.ts). A decision without it is answered afresh.
   */
  readonly kept?: KeptAnswer;
}

/** Where response/ keeps the encoded answer of a decision that answers many requests. */
export interface KeptAnswer {
  encoded?: unknown;
}

/** The metric's and the log's decision: a dry-run deny lets the request through but is a deny by the rules. */
export type DecisionLabel = 'allow' | 'deny' | 'dry_run_deny';

export function decisionLabel(decision: Pick<Decision, 'reason' | 'dryRun'>): DecisionLabel {
  if (specOf(decision.reason).allows) return 'allow';
  return decision.dryRun ? 'dry_run_deny' : 'deny';
}

/** Does the request reach the upstream: an allow, or a deny that dry-run mode lets through. */
export function goesThrough(decision: Pick<Decision, 'reason' | 'dryRun'>): boolean {
  return decisionLabel(decision) !== 'deny';
}
