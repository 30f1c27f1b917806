// The gRPC edge: Envoy's Authorization/Check and grpc.health.v1.Health. Thin by design: decode (grpc-js),
// run the pipeline, encode, count. Security rule 1: a decodable CheckRequest always gets a CheckResponse —
// internal errors become an `internal_error` deny (503), never a gRPC error Envoy could fail open on.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { type Checked, check, type Snapshot } from '../check/decide.js';
import { requestIdOf } from '../request/facts.js';
import { isIdentityHeader, toCheckResponse } from '../response/encode.js';
import { type Answer, decodeAnswer, KeptAnswers, serializeAnswer } from '../response/kept.js';
import type { DecisionLabel, Metrics } from '../telemetry/metrics.js';
import type { Decision } from '../vocabulary/index.js';
import type { CheckRequest, CheckResponse } from '../wire/envoy.js';
import { authorizationService, healthService, type ReceivedCheckResponse } from '../wire/proto.js';

export const AUTHORIZATION_SERVICE_NAME = 'envoy.service.auth.v3.Authorization';

export interface CheckServiceDeps {
  readonly current: () => Snapshot;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Fix hints in 403 deny bodies (`serve --deny-hints`). */
  readonly denyHints?: boolean;
}

/** Answers built and encoded once per decision (see kept-answers.ts); one set per process. */
const kept = new KeptAnswers();

/**
 * Answers one Check; never rejects. Exposed for tests and the benchmark's in-process mode: the answer is the
 * CheckResponse the server would send, decoded from the very bytes it would send.
 */
export async function answerCheck(
  request: CheckRequest,
  deps: CheckServiceDeps,
): Promise<ReceivedCheckResponse> {
  return decodeAnswer(await answerOrLastResort(request, deps));
}

/**
 * Answers one Check, synchronously when the decision cache knows the answer. A failure in the pipeline or
 * in building the answer becomes a logged `internal_error` deny for this request.
 */
function answerCheckNow(request: CheckRequest, deps: CheckServiceDeps): Answer | Promise<Answer> {
  const started = process.hrtime.bigint();
  const snapshot = deps.current();
  const failed = (err: unknown) => answer(request, deps, snapshot, started, failure(err, deps, snapshot));
  const answered = (done: Checked) => answer(request, deps, snapshot, started, done);
  try {
    const checked = check(request, snapshot);
    if (checked instanceof Promise) return checked.then(answered).catch(failed);
    return answered(checked);
  } catch (err) {
    return failed(err);
  }
}

/** answerCheckNow, and if even the internal_error answer failed, a bare one: never a throw or rejection. */
function answerOrLastResort(request: CheckRequest, deps: CheckServiceDeps): Answer | Promise<Answer> {
  let answered: Answer | Promise<Answer>;
  try {
    answered = answerCheckNow(request, deps);
  } catch {
    return lastResortAnswer(deps);
  }
  return answered instanceof Promise ? answered.catch(() => lastResortAnswer(deps)) : answered;
}

/** A bug, not an outcome: deny and say so without echoing the request. */
function failure(err: unknown, deps: CheckServiceDeps, snapshot: Snapshot): Checked {
  deps.log.error({ err: { message: (err as Error)?.message, stack: (err as Error)?.stack } }, 'check failed');
  return {
    decision: { reason: 'internal_error', detail: 'internal error', revision: snapshot.policy.revision },
  };
}

function answer(
  request: CheckRequest,
  deps: CheckServiceDeps,
  snapshot: Snapshot,
  started: bigint,
  { decision, facts, cached }: Checked,
): Answer {
  const requestId = facts ? facts.requestId : requestIdOf(request);
  const headers = facts?.headers;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  deps.metrics.recordDecision(decision, decisionLabel(decision), seconds);
  logDecision(deps.log, decision, requestId, seconds);
  const context = {
    requestId,
    realm: snapshot.policy.realm,
    // An iterator of its own: it can be read only once, and only toCheckResponse reads this one.
    requestHeaderNames: headers ? headers.keys() : [],
    hints: deps.denyHints === true,
  };
  // Only a cached decision is answered again (a fresh one is a new object each time), and a dry-run deny goes
  // through like an allow and strips like one: those are built afresh.
  if (!cached || decision.dryRun) return toCheckResponse(decision, context);
  if (decision.reason === 'allowed') {
    if (headers && hasIdentityHeader(headers.keys())) return toCheckResponse(decision, context);
    return kept.allow(decision, () => toCheckResponse(decision, context));
  }
  return kept.deny(decision, context, (id) => toCheckResponse(decision, { ...context, requestId: id }));
}

function hasIdentityHeader(names: Iterable<string>): boolean {
  for (const name of names) if (isIdentityHeader(name)) return true;
  return false;
}

function decisionLabel(decision: Decision): DecisionLabel {
  if (decision.reason === 'allowed') return 'allow';
  return decision.dryRun ? 'dry_run_deny' : 'deny';
}

/** One line per deny (and dry-run deny) at info; allows only at debug, so busy gateways log what matters. */
function logDecision(log: Logger, decision: Decision, requestId: string, seconds: number): void {
  const allowed = decision.reason === 'allowed';
  if (allowed ? !log.isLevelEnabled('debug') : !log.isLevelEnabled('info')) return;
  const entry = {
    request_id: requestId,
    decision: decisionLabel(decision),
    reason: decision.reason,
    route: decision.route,
    subject: decision.subject,
    client: decision.client,
    missing: decision.missing,
    detail: decision.detail,
    policy_revision: decision.revision,
    duration_ms: Math.round(seconds * 1e6) / 1e3,
  };
  if (allowed) log.debug(entry, 'decision');
  else log.info(entry, 'decision');
}

type ServingStatus = 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

/** grpc.health.v1: "" and the Authorization service report the same status (Kubernetes probes ask for ""). */
export class HealthStatus {
  private status: ServingStatus = 'SERVING';
  private readonly watchers = new Set<grpc.ServerWritableStream<unknown, { status: ServingStatus }>>();

  set(status: ServingStatus): void {
    this.status = status;
    for (const watcher of this.watchers) watcher.write({ status });
  }

  statusOf(service: string): ServingStatus {
    return service === '' || service === AUTHORIZATION_SERVICE_NAME ? this.status : 'SERVICE_UNKNOWN';
  }

  handlers(): grpc.UntypedServiceImplementation {
    return {
      Check: (
        call: grpc.ServerUnaryCall<{ service?: string }, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        const status = this.statusOf(call.request.service ?? '');
        if (status === 'SERVICE_UNKNOWN')
          callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        else callback(null, { status });
      },
      Watch: (call: grpc.ServerWritableStream<{ service?: string }, { status: ServingStatus }>) => {
        const service = call.request.service ?? '';
        call.write({ status: this.statusOf(service) });
        if (service !== '' && service !== AUTHORIZATION_SERVICE_NAME) return;
        this.watchers.add(call);
        call.on('cancelled', () => this.watchers.delete(call));
        call.on('close', () => this.watchers.delete(call));
      },
    };
  }

  /** Ends open Watch streams so a draining server can finish. */
  endWatches(): void {
    for (const watcher of this.watchers) watcher.end();
    this.watchers.clear();
  }
}

/** The Authorization service, sending a kept answer's bytes as they were encoded when it was kept. */
const checkServiceSendingKeptBytes = {
  ...authorizationService,
  Check: {
    ...authorizationService.Check,
    responseSerialize: serializeAnswer,
  },
};

function lastResortAnswer(deps: CheckServiceDeps): CheckResponse {
  const { revision, realm } = deps.current().policy;
  return toCheckResponse(
    { reason: 'internal_error', detail: 'internal error', revision },
    { requestId: '', realm, requestHeaderNames: [] },
  );
}

export function createGrpcServer(deps: CheckServiceDeps, health: HealthStatus): grpc.Server {
  const server = new grpc.Server({
    // Envoy sends the body when with_request_body is on; cap what we accept well above inventory payloads.
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(checkServiceSendingKeptBytes, {
    Check: (call: grpc.ServerUnaryCall<CheckRequest, Answer>, callback: grpc.sendUnaryData<Answer>) => {
      const answered = answerOrLastResort(call.request ?? {}, deps);
      if (answered instanceof Promise) {
        // Never rejects; the catch only keeps a throwing callback from becoming an unhandled rejection.
        answered
          .then((response) => callback(null, response))
          .catch((err) =>
            deps.log.error({ err: { message: (err as Error)?.message } }, 'check answer not sent'),
          );
      } else callback(null, answered);
    },
  });
  server.addService(healthService, health.handlers());
  return server;
}

export function bindGrpc(server: grpc.Server, address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) =>
      err ? reject(err) : resolve(port),
    );
  });
}
