// OpenTelemetry tracing: one SERVER span per Check, in the trace the proxy records (trace-context.ts), and a
// CLIENT span per JWKS fetch, exported over OTLP by a batch processor whose queue is bounded. Imported only
// when tracing is on (server/app.ts imports it dynamically), so a server without it loads no OpenTelemetry.
// Tracing never changes a decision: a failure to trace is a Check without a span, an export failure a
// warning, and nothing here waits on the exporter but shutdown.
// No context manager: on Node.js 20 AsyncLocalStorage switches on async hooks for the whole process once
// entered, a cost every Check pays. The Check's span goes down the Check path by hand instead (CheckSpan):
// the phases write what they met into it (a status object), and a JWKS fetch a Check starts is given it as
// its parent (IdentifyStatus.keyFetch); a background refresh has no Check, so it is a root span.
import {
  type Attributes,
  DiagLogLevel,
  diag,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { Logger } from 'pino';
import type { DecisionLookupStatus } from '../cache/decisions.js';
import type { OtlpProtocol, TracingSettings } from '../config/settings.js';
import type { IdentifyStatus } from '../identity/authenticate.js';
import type { KeyFetchOutcome, OnKeyFetch } from '../identity/key-store.js';
import { type Decision, type DecisionLabel, specOf, type Transport } from '../vocabulary/index.js';
import type { CheckRequest } from '../wire/types.js';
import { clientHeadersOf, parentOf, requestParentOf, type TraceHeaders } from './trace-context.js';

export type { TraceHeaders } from './trace-context.js';

/** The RPC Envoy calls at the gRPC door: its span's name and rpc.* attributes (OpenTelemetry's RPC rules). */
const RPC = { service: 'envoy.service.auth.v3.Authorization', method: 'Check' } as const;
export const CHECK_SPAN_NAME = `${RPC.service}/${RPC.method}`;
/**
 * The HTTP doors' span name. OpenTelemetry's HTTP server convention names a span `{method} {http.route}`,
 * the route being the server's template for one kind of request; a door serves one kind, a Check, whatever
 * the method and path (the client's method at `--http`, the proxy's choice at `--forward-auth`, often GET).
 * The method would split one operation into several names that describe the client or the proxy, not
 * scopegate: the span is named after the operation, as the gRPC span is after its RPC.
 */
export const HTTP_CHECK_SPAN_NAME = 'scopegate.check';
export const JWKS_SPAN_NAME = 'scopegate.jwks.fetch';

/** What a Check's span says of the door it came in by; `scopegate.transport` as the metrics' label says it. */
interface DoorSpan {
  readonly name: string;
  readonly attributes: Attributes;
}
const DOOR_SPANS: Readonly<Record<Transport, DoorSpan>> = {
  grpc: {
    name: CHECK_SPAN_NAME,
    attributes: {
      'rpc.system': 'grpc',
      'rpc.service': RPC.service,
      'rpc.method': RPC.method,
      'scopegate.transport': 'grpc',
    },
  },
  http: { name: HTTP_CHECK_SPAN_NAME, attributes: { 'scopegate.transport': 'http' } },
  forward_auth: { name: HTTP_CHECK_SPAN_NAME, attributes: { 'scopegate.transport': 'forward_auth' } },
};

/** Read by the SDK, never changed by it: one of each for every span. */
const CHECK_SPAN: SpanOptions = Object.freeze({ kind: SpanKind.SERVER });
const JWKS_SPAN: Record<'uri' | 'file', SpanOptions> = {
  uri: Object.freeze({ kind: SpanKind.CLIENT }),
  file: Object.freeze({ kind: SpanKind.INTERNAL }),
};

/**
 * The Check's span as the Check path sees it: its ids for the log line, what the phases met on the way (the
 * caches' results, written by them), a JWKS fetch it starts (its child), and what was decided.
 */
export interface CheckSpan extends IdentifyStatus, DecisionLookupStatus {
  readonly traceId: string;
  readonly spanId: string;
  decided(decision: Decision, label: DecisionLabel, requestId: string): void;
}

export interface Tracing {
  /**
   * Runs one Check with its span (named for its door, parented per trace-context.ts) and ends the span when
   * the answer is ready. `check` gets no span when starting one failed: the Check goes on untraced.
   */
  traceCheck<T>(
    request: CheckRequest,
    transport: Transport,
    /** The call's own trace headers: the gRPC metadata, or the headers of the request an HTTP door got. */
    traceHeaders: TraceHeaders | undefined,
    check: (span: CheckSpan | undefined) => T | Promise<T>,
  ): T | Promise<T>;
  /** A JWKS fetch no Check started (a background refresh, start-up): a root span. */
  readonly jwksFetch: OnKeyFetch;
  /** Exports what is queued and stops, giving up at `deadline` (ms since the epoch). Never rejects. */
  shutdown(deadline: number): Promise<void>;
}

const exporters: Record<OtlpProtocol, () => Promise<SpanExporter>> = {
  // Each reads its endpoint, headers, timeout and compression from the OTEL_EXPORTER_OTLP_* variables.
  grpc: async () => new (await import('@opentelemetry/exporter-trace-otlp-grpc')).OTLPTraceExporter(),
  'http/protobuf': async () =>
    new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter(),
  'http/json': async () => new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter(),
};

/** Process-wide parts of the API, set once whatever the number of servers a process (a test) starts. */
let globalsSet = false;
function setGlobals(log: Logger): void {
  if (globalsSet) return;
  globalsSet = true;
  // The SDK reports export failures through diag: a warning, never anything a Check sees.
  const say = (message: string) => log.warn({ otel: message }, 'tracing');
  diag.setLogger(
    { error: say, warn: say, info: () => {}, debug: () => {}, verbose: () => {} },
    DiagLogLevel.WARN,
  );
}

export async function openTracing(
  settings: TracingSettings,
  log: Logger,
  /** Tests read the spans in memory; a server exports what the settings say. */
  exporter?: SpanExporter,
): Promise<Tracing> {
  setGlobals(log);
  exporter ??= await exporters[settings.protocol]();
  const provider = new NodeTracerProvider({
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (envDetector) win over scopegate's defaults.
    resource: defaultResource()
      .merge(resourceFromAttributes({ 'service.name': 'scopegate', 'process.pid': process.pid }))
      .merge(detectResources({ detectors: [envDetector] })),
    // The sampler comes from OTEL_TRACES_SAMPLER(_ARG), the queue bound from OTEL_BSP_MAX_QUEUE_SIZE (2048).
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const tracer = provider.getTracer('scopegate');

  /** A JWKS fetch's span: the child of `parent` (the Check that started it), else a root span. */
  function jwksFetch(issuer: string, source: 'uri' | 'file', parent?: Span) {
    const span = tracer.startSpan(
      JWKS_SPAN_NAME,
      JWKS_SPAN[source],
      parent ? trace.setSpan(ROOT_CONTEXT, parent) : ROOT_CONTEXT,
    );
    span.setAttribute('scopegate.issuer', issuer);
    span.setAttribute('scopegate.jwks.source', source);
    return (outcome: KeyFetchOutcome) => {
      if (outcome.ok) {
        span.setAttribute('scopegate.jwks.result', 'success');
        span.setAttribute('scopegate.jwks.keys', outcome.keys);
      } else {
        // The message is a KeyLoadError's: safe to show, never the URL or key material.
        span.setAttribute('scopegate.jwks.result', 'error');
        span.setAttribute('scopegate.jwks.error', outcome.error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error });
      }
      span.end();
    };
  }

  function startCheck(
    request: CheckRequest,
    transport: Transport,
    traceHeaders: TraceHeaders | undefined,
  ): TracedCheck {
    const door = DOOR_SPANS[transport];
    // An HTTP door's request is both the call and the client's request: its headers are the only place.
    const parent =
      transport === 'grpc'
        ? parentOf(traceHeaders, () => clientHeadersOf(request))
        : requestParentOf(traceHeaders);
    // The sampler decides first; a span it drops gets nothing it would throw away.
    const span = tracer.startSpan(door.name, CHECK_SPAN, parent.context);
    if (span.isRecording()) {
      span.setAttributes(door.attributes);
      span.setAttribute('scopegate.parent', parent.source);
    }
    return new TracedCheck(span, settings.identities, jwksFetch);
  }

  return {
    traceCheck(request, transport, traceHeaders, check) {
      let traced: TracedCheck;
      try {
        traced = startCheck(request, transport, traceHeaders);
      } catch {
        return check(undefined);
      }
      const answered = check(traced);
      if (answered instanceof Promise) return answered.finally(() => traced.span.end());
      traced.span.end();
      return answered;
    },
    jwksFetch: (issuer, source) => jwksFetch(issuer, source),
    async shutdown(deadline) {
      const timeout = new Promise<void>((resolve) =>
        setTimeout(resolve, Math.max(0, deadline - Date.now())).unref(),
      );
      await Promise.race([provider.shutdown().catch(() => {}), timeout]);
    },
  };
}

/** One Check's span; the phases write the cache results into it as they meet them. */
class TracedCheck implements CheckSpan {
  tokenCache: 'hit' | 'miss' | undefined = undefined;
  decisionCache: 'hit' | 'miss' | undefined = undefined;

  constructor(
    readonly span: Span,
    private readonly identities: boolean,
    private readonly fetchSpan: (issuer: string, source: 'uri' | 'file', parent: Span) => OnKeyFetchEnd,
  ) {}

  get traceId(): string {
    return this.span.spanContext().traceId;
  }

  get spanId(): string {
    return this.span.spanContext().spanId;
  }

  keyFetch(issuer: string, source: 'uri' | 'file'): OnKeyFetchEnd {
    return this.fetchSpan(issuer, source, this.span);
  }

  decided(decision: Decision, label: DecisionLabel, requestId: string): void {
    const { span, identities } = this;
    // A span the sampler dropped records nothing: skip the work.
    if (!span.isRecording()) return;
    span.setAttribute('scopegate.decision', label);
    span.setAttribute('scopegate.reason', decision.reason);
    // Decided under a dry-run policy or route, allowed or denied (the decision says whether it was let through).
    span.setAttribute('scopegate.dry_run', decision.underDryRun === true);
    span.setAttribute('scopegate.request_id', requestId);
    if (decision.route !== undefined) span.setAttribute('scopegate.route', decision.route);
    if (decision.policy !== undefined) span.setAttribute('scopegate.policy', decision.policy);
    if (decision.revision !== '') span.setAttribute('scopegate.policy.revision', decision.revision);
    if (decision.peer !== undefined) span.setAttribute('scopegate.peer', decision.peer);
    if (this.tokenCache !== undefined) span.setAttribute('scopegate.cache.token', this.tokenCache);
    if (this.decisionCache !== undefined) span.setAttribute('scopegate.cache.decision', this.decisionCache);
    if (identities && decision.subject !== undefined)
      span.setAttribute('scopegate.subject', decision.subject);
    if (identities && decision.client !== undefined) span.setAttribute('scopegate.client', decision.client);
    // An ordinary deny is the Check working; only scopegate failing (503) is an error.
    if (label !== 'allow' && specOf(decision.reason).failClosed === true)
      span.setStatus({ code: SpanStatusCode.ERROR, message: decision.reason });
  }
}

type OnKeyFetchEnd = ReturnType<OnKeyFetch>;
