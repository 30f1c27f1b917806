// One Check, start to end, whatever door it came in by: decide (decide.ts: read the request, identify the
// caller, decide) → answer (response/) → record (metrics and the log line). The one fail-closed function of
// the Check path (security rule 1): a failure anywhere becomes a logged `internal_error` deny for this
// request, never a thrown error or a rejected promise an edge could turn into a gRPC error Envoy fails open on.
import type { Logger } from 'pino';
import { DEFAULT_REALM } from '../policy/compile.js';
import type { PolicySet } from '../policy/set.js';
import { recordOf } from '../record/build.js';
import { requestIdOf } from '../request/facts.js';
import { answerFor } from '../response/answer.js';
import { toCheckResponse } from '../response/encode.js';
import type { Answer } from '../response/kept.js';
import type { DecisionRecords } from '../telemetry/decision-records.js';
import { logDecision } from '../telemetry/log.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { CheckSpan, TraceHeaders, Tracing } from '../telemetry/otel.js';
import { type Decision, type DecisionLabel, decisionLabel, type Transport } from '../vocabulary/index.js';
import type { CheckRequest } from '../wire/types.js';
import { choosePolicy } from './choose.js';
import { type Checked, type Door, decide, type Snapshot } from './decide.js';

/** The doors as a Check that was described in full sees them: made once, not per Check. */
const DOORS: Readonly<Record<Transport, Door>> = Object.freeze({
  grpc: Object.freeze({ transport: 'grpc' }),
  http: Object.freeze({ transport: 'http' }),
  forward_auth: Object.freeze({ transport: 'forward_auth' }),
});

export interface CheckDeps {
  /** The policies in force (each a revision and its authenticator), read once at the start of each Check. */
  readonly current: () => PolicySet<Snapshot>;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Fix hints in 403 deny bodies (`serve --deny-hints`). */
  readonly denyHints?: boolean;
  /** OpenTelemetry (`serve --tracing`); absent when off, and then a Check does no tracing work at all. */
  readonly tracing?: Tracing;
  /** Decision records (`serve --decision-log`): every deny, a sample of allows. Off when absent. */
  readonly records?: Pick<DecisionRecords, 'sample' | 'write' | 'failed'>;
  /** The front door these Checks come in by (default gRPC): what the request can carry, the metric label. */
  readonly transport?: Transport;
}

/**
 * Answers one Check, synchronously when nothing had to wait; never throws, never rejects. `traceHeaders` are
 * the call's own (gRPC metadata, or the HTTP request's headers), where the proxy puts the trace it records.
 * `refused`: an HTTP front door could not describe the request (request_malformed, said this way).
 */
export function handleCheck(
  request: CheckRequest,
  deps: CheckDeps,
  traceHeaders?: TraceHeaders,
  refused?: string,
): Answer | Promise<Answer> {
  const transport = deps.transport ?? 'grpc';
  const door: Door = refused === undefined ? DOORS[transport] : { transport, refused };
  if (deps.tracing === undefined) return answerSafely(request, deps, door, undefined);
  try {
    return deps.tracing.traceCheck(request, transport, traceHeaders, (span) =>
      answerSafely(request, deps, door, span),
    );
  } catch {
    // Tracing failed around a Check that never throws: answer it untraced rather than not at all.
    return answerSafely(request, deps, door, undefined);
  }
}

function answerSafely(
  request: CheckRequest,
  deps: CheckDeps,
  door: Door,
  span: CheckSpan | undefined,
): Answer | Promise<Answer> {
  try {
    const answered = answerNow(request, deps, door, span);
    return answered instanceof Promise ? answered.catch(lastResort) : answered;
  } catch {
    return lastResort();
  }
}

function answerNow(
  request: CheckRequest,
  deps: CheckDeps,
  door: Door,
  span: CheckSpan | undefined,
): Answer | Promise<Answer> {
  const started = process.hrtime.bigint();
  // Which policy owns the request, before anything else is read of it: a set of one file owns every request.
  const chosen = choosePolicy(deps.current(), request, door.transport);
  if (!chosen.ok) {
    const decision: Decision = { reason: 'policy_unknown', detail: chosen.detail, revision: '' };
    return finish(request, deps, undefined, started, { decision }, span);
  }
  const snapshot = chosen.value;
  const failed = (err: unknown) =>
    finish(request, deps, snapshot, started, failure(err, deps, snapshot), span);
  const decided = (checked: Checked) => finish(request, deps, snapshot, started, checked, span);
  try {
    // The span (when traced) is told what the phases meet on the way: cache results, a key fetch's start.
    const checked = decide(request, snapshot, span, door);
    return checked instanceof Promise ? checked.then(decided).catch(failed) : decided(checked);
  } catch (err) {
    return failed(err);
  }
}

/** A bug, not an outcome: deny, and say so without echoing the request. */
function failure(err: unknown, deps: CheckDeps, snapshot: Snapshot): Checked {
  deps.log.error({ err: { message: (err as Error)?.message, stack: (err as Error)?.stack } }, 'check failed');
  const { name: policy, revision } = snapshot.policy;
  return { decision: { reason: 'internal_error', detail: 'internal error', policy, revision } };
}

/** Answer, then record: the answer is what was sent when the metrics, the log and the record say it. */
function finish(
  request: CheckRequest,
  deps: CheckDeps,
  snapshot: Snapshot | undefined,
  started: bigint,
  checked: Checked,
  span: CheckSpan | undefined,
): Answer {
  const { decision, facts } = checked;
  const requestId = facts ? facts.requestId : requestIdOf(request);
  const headers = facts?.headers;
  const answer = answerFor(decision, {
    requestId,
    realm: snapshot?.policy.realm ?? DEFAULT_REALM,
    requestHeaderNames: headers ? new HeaderNames(headers) : [],
    hints: deps.denyHints === true,
  });
  const label = decisionLabel(decision);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  deps.metrics.recordDecision(decision, label, seconds, deps.transport);
  span?.decided(decision, label, requestId);
  logDecision(deps.log, decision, label, requestId, seconds, span);
  if (deps.records)
    keepRecord(deps.records, deps.transport ?? 'grpc', request, checked, label, requestId, span, snapshot);
  return answer;
}

/** The request's header names, readable more than once (a kept allow checks them, a fresh answer strips). */
class HeaderNames implements Iterable<string> {
  constructor(private readonly headers: ReadonlyMap<string, string>) {}
  [Symbol.iterator](): Iterator<string> {
    return this.headers.keys();
  }
}

/** The decision record, when this one is recorded: queued, never waited for; a failure is only counted. */
function keepRecord(
  records: NonNullable<CheckDeps['records']>,
  transport: Transport,
  request: CheckRequest,
  { decision, facts, gathered }: Checked,
  label: DecisionLabel,
  requestId: string,
  span: CheckSpan | undefined,
  snapshot: Snapshot | undefined,
): void {
  try {
    const sampledAt = records.sample(label);
    if (sampledAt === undefined) return;
    const record = recordOf(
      request,
      { decision, label, ...(facts && { facts }), ...(gathered && { gathered }) },
      {
        time: new Date(),
        requestId,
        sampledAt,
        transport,
        ...(span !== undefined && { traceId: span.traceId }),
        ...(snapshot && { policy: snapshot.policy }),
      },
    );
    records.write(record);
  } catch (err) {
    records.failed(err);
  }
}

/** When even the internal_error answer failed: a bare one, built from nothing that could fail again. */
export function lastResort(): Answer {
  return toCheckResponse(
    { reason: 'internal_error', detail: 'internal error', revision: '' },
    { requestId: '', realm: DEFAULT_REALM, requestHeaderNames: [] },
  );
}
