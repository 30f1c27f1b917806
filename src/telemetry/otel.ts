// OpenTelemetry tracing: one SERVER span per Check, in the trace Envoy is recording (trace-context.ts), and a
// CLIENT span per JWKS fetch, exported over OTLP by a batch processor whose queue is bounded. Imported only
// when tracing is on (server/app.ts imports it dynamically), so a server without it loads no OpenTelemetry.
// Tracing never changes a decision: a failure to trace is a Check without a span, an export failure a
// warning, and nothing here waits on the exporter but shutdown.
import {
  type Context,
  context,
  DiagLogLevel,
  diag,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  defaultResource,
  detectResources,
  envDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import type { Logger } from 'pino';
import type { OtlpProtocol, TracingSettings } from '../config/settings.js';
import type { KeyFetchOutcome } from '../identity/key-store.js';
import { readHeaders } from '../request/headers.js';
import { type Decision, type DecisionLabel, specOf } from '../vocabulary/index.js';
import type { CheckRequest } from '../wire/types.js';
import { parentOf, type TraceHeaders } from './trace-context.js';

export type { TraceHeaders } from './trace-context.js';

/** The RPC Envoy calls: the span's name and its rpc.* attributes (OpenTelemetry's RPC conventions). */
const RPC = { service: 'envoy.service.auth.v3.Authorization', method: 'Check' } as const;
export const CHECK_SPAN_NAME = `${RPC.service}/${RPC.method}`;
export const JWKS_SPAN_NAME = 'scopegate.jwks.fetch';

/** The Check's span as the Check path sees it: its ids for the log line, and what was decided. */
export interface CheckSpan {
  readonly traceId: string;
  readonly spanId: string;
  decided(decision: Decision, label: DecisionLabel, requestId: string): void;
}

export interface Tracing {
  /**
   * Runs one Check inside its span (parented per trace-context.ts) and ends the span when the answer is
   * ready. `check` gets no span when starting one failed: the Check goes on untraced.
   */
  traceCheck<T>(
    request: CheckRequest,
    metadata: TraceHeaders | undefined,
    check: (span: CheckSpan | undefined) => T | Promise<T>,
  ): T | Promise<T>;
  /** A cache lookup made by the Check running now (its span is the active one), for the span's attributes. */
  cacheLookup(cache: 'token' | 'decision', result: 'hit' | 'miss'): void;
  /** A JWKS fetch starts: a child of the Check that needed it, or a root span in the background. */
  jwksFetch(issuer: string, source: 'uri' | 'file'): (outcome: KeyFetchOutcome) => void;
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
  // A Check's span must stay the active one across its awaits (a signature check, a key fetch).
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
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

  function startCheckSpan(request: CheckRequest, metadata: TraceHeaders | undefined) {
    const parent = parentOf(metadata, () => clientHeaders(request));
    const span = tracer.startSpan(
      CHECK_SPAN_NAME,
      {
        kind: SpanKind.SERVER,
        attributes: {
          'rpc.system': 'grpc',
          'rpc.service': RPC.service,
          'rpc.method': RPC.method,
          'scopegate.parent': parent.source,
        },
      },
      parent.context,
    );
    return { span, active: trace.setSpan(parent.context, span) };
  }

  return {
    traceCheck(request, metadata, check) {
      let started: { span: Span; active: Context };
      try {
        started = startCheckSpan(request, metadata);
      } catch {
        return check(undefined);
      }
      const { span, active } = started;
      const checkSpan = checkSpanOf(span, settings.identities);
      // A span the sampler dropped has nothing to collect: no need to make it the active one.
      const answered = span.isRecording()
        ? context.with(active, check, undefined, checkSpan)
        : check(checkSpan);
      if (answered instanceof Promise) return answered.finally(() => span.end());
      span.end();
      return answered;
    },
    cacheLookup(cache, result) {
      trace.getActiveSpan()?.setAttribute(`scopegate.cache.${cache}`, result);
    },
    jwksFetch(issuer, source) {
      const span = tracer.startSpan(JWKS_SPAN_NAME, {
        kind: source === 'uri' ? SpanKind.CLIENT : SpanKind.INTERNAL,
        attributes: { 'scopegate.issuer': issuer, 'scopegate.jwks.source': source },
      });
      return (outcome) => {
        if (outcome.ok)
          span.setAttributes({ 'scopegate.jwks.result': 'success', 'scopegate.jwks.keys': outcome.keys });
        else {
          // The message is a KeyLoadError's: safe to show, never the URL or key material.
          span.setAttributes({ 'scopegate.jwks.result': 'error', 'scopegate.jwks.error': outcome.error });
          span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error });
        }
        span.end();
      };
    },
    async shutdown(deadline) {
      const timeout = new Promise<void>((resolve) =>
        setTimeout(resolve, Math.max(0, deadline - Date.now())).unref(),
      );
      await Promise.race([provider.shutdown().catch(() => {}), timeout]);
    },
  };
}

/**
 * The client's own headers: looked up by name in Envoy's header map, or read as the request phase reads
 * them (bounded) when Envoy sent raw headers; undefined when unreadable.
 */
function clientHeaders(request: CheckRequest): TraceHeaders | undefined {
  const http = request.attributes?.request?.http;
  if (http === undefined) return undefined;
  if (!http.header_map?.headers?.length) {
    const map = http.headers;
    return map && ((name) => (Object.hasOwn(map, name) ? map[name] : undefined));
  }
  const read = readHeaders(http);
  return read.ok ? (name) => read.value.get(name) : undefined;
}

function checkSpanOf(span: Span, identities: boolean): CheckSpan {
  const { traceId, spanId } = span.spanContext();
  return {
    traceId,
    spanId,
    decided(decision, label, requestId) {
      // A span the sampler dropped records nothing: skip the work.
      if (!span.isRecording()) return;
      span.setAttributes({
        'scopegate.decision': label,
        'scopegate.reason': decision.reason,
        'scopegate.dry_run': decision.dryRun === true,
        'scopegate.request_id': requestId,
        ...(decision.route !== undefined && { 'scopegate.route': decision.route }),
        ...(decision.policy !== undefined && { 'scopegate.policy': decision.policy }),
        ...(decision.revision !== '' && { 'scopegate.policy.revision': decision.revision }),
        ...(decision.peer !== undefined && { 'scopegate.peer': decision.peer }),
        ...(identities && decision.subject !== undefined && { 'scopegate.subject': decision.subject }),
        ...(identities && decision.client !== undefined && { 'scopegate.client': decision.client }),
      });
      // An ordinary deny is the Check working; only scopegate failing (503) is an error.
      if (label !== 'allow' && specOf(decision.reason).failClosed === true)
        span.setStatus({ code: SpanStatusCode.ERROR, message: decision.reason });
    },
  };
}
