// A decision record (`serve --decision-log`): one JSON line holding the inputs a decision was made from, as
// they were before the policy touched them, and what was decided. From these alone `scopegate replay`
// re-decides the request under another policy (check/decide.ts `decideFrom`), so a record holds what any
// policy's decision can depend on that is not the policy itself, and never a token, a query value, another
// header or the body. The JSON Schema is decision-record.schema.json at the repository root.
import type { CompiledLocationSource } from '../policy/types.js';
import type {
  DecisionLabel,
  DenyReason,
  Missing,
  Outcome,
  Principal,
  Reason,
  Transport,
} from '../vocabulary/index.js';

/** Marks a line as a decision record among other JSON lines (logs share stdout with records). */
export const RECORD_TYPE = 'scopegate.decision';
/** The record format's version; a reader refuses (and counts) versions it does not know. */
export const RECORD_VERSION = 1;

/** A refusal as a record keeps it: the reason, its sentence, and what was missing. */
export interface RecordedDenial {
  readonly reason: DenyReason;
  readonly detail: string;
  readonly missing?: Missing;
}

/** The token's claims as the policy's claim mapping read them: the Principal, as plain JSON. */
export interface RecordedPrincipal {
  readonly issuer?: string;
  readonly subject: string;
  readonly client?: string;
  readonly grant_type?: string;
  readonly scopes: readonly string[];
  readonly roles: readonly string[];
  readonly locations: readonly string[];
}

/**
 * What the credential phase found: who the token names, or why it names no one. `basis` is a digest of the
 * policy's token settings the outcome rests on (record/basis.ts): replay reuses the outcome only under a
 * policy whose basis is the same, since the token itself is not kept.
 */
export type RecordedToken = { readonly basis: string } & (RecordedPrincipal | RecordedDenial);

/** The locations the request names at one source (`body:location`, `query:location`, `header:x-location`…). */
export type RecordedLocations = { readonly source: string } & (
  | { readonly found: readonly string[] }
  | RecordedDenial
);

export interface DecisionRecord {
  readonly type: typeof RECORD_TYPE;
  readonly v: typeof RECORD_VERSION;
  /** When the decision was made (ISO 8601, UTC). */
  readonly time: string;
  readonly request_id: string;
  /** The trace the Check belonged to, when tracing is on. */
  readonly trace_id?: string;
  /** The front door the Check came in by; absent in records written before doors were recorded. */
  readonly transport?: Transport;
  /** The policy (name) that owned the request; absent when none did (policy_unknown). */
  readonly policy?: string;
  readonly revision: string;
  /** What the request offers for choosing its policy from a set, so a candidate set chooses again. */
  readonly policy_keys?: {
    readonly extension?: string;
    readonly destination?: string;
    readonly host?: string;
  };
  /** Why the CheckRequest itself could not be read; then no method, path or later input is recorded. */
  readonly request?: RecordedDenial;
  readonly method?: string;
  /** The canonical path the routes match (no query string). */
  readonly path?: string;
  /** Absent when the token was never read (a peer-only route, a request no policy owned). */
  readonly token?: RecordedToken;
  /** The calling workload's SPIFFE ID as Envoy vouched for it, or why none is trusted; absent: none sent. */
  readonly peer?: string | RecordedDenial;
  /** The locations the decided route read; absent when none were read. */
  readonly locations?: RecordedLocations;
  /** The outcome. */
  readonly route?: string;
  readonly decision: DecisionLabel;
  readonly reason: Reason;
  readonly missing?: Missing;
  readonly dry_run: boolean;
  /** The share of such decisions recorded (1 for denies; `--decision-log-allows` for allows): weight 1/rate. */
  readonly sampled_at: number;
}

/** What decide() read on its way to a decision: the inputs a record keeps (absent: not read). */
export interface Gathered {
  identity?: Outcome<Principal>;
  peer?: Outcome<string>;
  locations?: { readonly source: CompiledLocationSource; readonly found: Outcome<string[]> };
}

/** A location source as one string: `body:lines[].location`, `path:location`, `query:wh`, `header:x-wh`. */
export function sourceKey(source: CompiledLocationSource): string {
  if ('body' in source) return `body:${source.body}`;
  if ('path' in source) return `path:${source.path}`;
  if ('query' in source) return `query:${source.query}`;
  return `header:${source.header.toLowerCase()}`;
}
