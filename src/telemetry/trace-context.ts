// Whose trace a Check belongs to. Envoy's own context arrives in the gRPC metadata of the Check call (its
// tracer's headers: W3C `traceparent`/`tracestate`, or B3 in one `b3` header or several `x-b3-*` ones); the
// trace headers inside the CheckRequest's HTTP headers are the client's, so they are the parent only when
// the metadata carries no context (Envoy not tracing). In each place W3C is tried first, then B3; a malformed
// header is ignored (the next format, or place, is tried), never a deny. Loaded only when tracing is on.
import {
  type Context,
  isSpanContextValid,
  ROOT_CONTEXT,
  type TextMapGetter,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';

/** Header (or metadata key) → its first value as text; names are lower case. */
export type TraceHeaders = (name: string) => string | undefined;

/** Where the parent came from, for the span (and for tests). */
export type ParentSource = 'grpc_metadata' | 'http_headers' | 'none';

const formats = [new W3CTraceContextPropagator(), new B3Propagator()];

const getter: TextMapGetter<TraceHeaders> = {
  get: (headers, name) => headers(name.toLowerCase()),
  // Only asked for by propagators that scan every header (baggage): neither of ours does.
  keys: () => [],
};

/** The remote parent the headers carry, W3C first, then B3; undefined when none is valid. */
export function contextIn(headers: TraceHeaders): Context | undefined {
  for (const format of formats) {
    const extracted = format.extract(ROOT_CONTEXT, headers, getter);
    // The W3C format checks the shape, not the all-zero ids the specification calls invalid.
    const found = trace.getSpanContext(extracted);
    if (found !== undefined && isSpanContextValid(found)) return extracted;
  }
  return undefined;
}

/** The Check span's parent: Envoy's context from the call's metadata, else the client's from its headers. */
export function parentOf(
  metadata: TraceHeaders | undefined,
  httpHeaders: (() => TraceHeaders | undefined) | undefined,
): { readonly context: Context; readonly source: ParentSource } {
  const fromEnvoy = metadata && contextIn(metadata);
  if (fromEnvoy) return { context: fromEnvoy, source: 'grpc_metadata' };
  const client = httpHeaders?.();
  const fromClient = client && contextIn(client);
  if (fromClient) return { context: fromClient, source: 'http_headers' };
  return { context: ROOT_CONTEXT, source: 'none' };
}
