// Whose trace a Check belongs to. At the gRPC door, Envoy's own context arrives in the gRPC metadata of the
// Check call (its tracer's headers: W3C `traceparent`/`tracestate`, or B3 in one `b3` header or several
// `x-b3-*` ones); the trace headers inside the CheckRequest's HTTP headers are the client's, so they are the
// parent only when the metadata carries no context (Envoy not tracing). At an HTTP door there is one place:
// the headers of the request scopegate received, whoever put them there (the proxy's tracer, or the client
// through a proxy that passes them on). In each place W3C is tried first, then B3; a malformed header is
// ignored (the next format, or place, is tried), never a deny. Loaded only when tracing is on.
// Every Check asks, traced or not, and most carry no context at all: that answer costs three lookups.
import {
  type Context,
  isSpanContextValid,
  ROOT_CONTEXT,
  type TextMapGetter,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import { pickRawHeaders } from '../request/headers.js';
import type { CheckRequest } from '../wire/types.js';

/** Header (or metadata key) → its first value as text; names are lower case. */
export type TraceHeaders = (name: string) => string | undefined;

/**
 * Where the parent came from, for the span (and for tests): the gRPC call's metadata or the CheckRequest's
 * HTTP headers (gRPC door), the request an HTTP door received (`request_headers`), or nowhere.
 */
export type ParentSource = 'grpc_metadata' | 'http_headers' | 'request_headers' | 'none';

const formats = [new W3CTraceContextPropagator(), new B3Propagator()];

const getter: TextMapGetter<TraceHeaders> = {
  get: (headers, name) => headers(name.toLowerCase()),
  // Only asked for by propagators that scan every header (baggage): neither of ours does.
  keys: () => [],
};

/** Every header the two formats read: what is picked out of a raw header map. */
const TRACE_HEADER_NAMES: ReadonlySet<string> = new Set([
  'traceparent',
  'tracestate',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
]);

/** The remote parent the headers carry, W3C first, then B3; undefined when none is valid. */
export function contextIn(headers: TraceHeaders): Context | undefined {
  // Each format reads nothing without its first header (W3C `traceparent`, B3 `b3` or `x-b3-traceid`).
  if (!headers('traceparent') && !headers('b3') && !headers('x-b3-traceid')) return undefined;
  for (const format of formats) {
    const extracted = format.extract(ROOT_CONTEXT, headers, getter);
    // The W3C format checks the shape, not the all-zero ids the specification calls invalid.
    const found = trace.getSpanContext(extracted);
    if (found !== undefined && isSpanContextValid(found)) return extracted;
  }
  return undefined;
}

export interface Parent {
  readonly context: Context;
  readonly source: ParentSource;
}

const NO_PARENT: Parent = Object.freeze({ context: ROOT_CONTEXT, source: 'none' });

/** A gRPC Check's parent: Envoy's context from the call's metadata, else the client's from its headers. */
export function parentOf(
  metadata: TraceHeaders | undefined,
  httpHeaders: (() => TraceHeaders | undefined) | undefined,
): Parent {
  const fromEnvoy = metadata && contextIn(metadata);
  if (fromEnvoy) return { context: fromEnvoy, source: 'grpc_metadata' };
  const client = httpHeaders?.();
  const fromClient = client && contextIn(client);
  if (fromClient) return { context: fromClient, source: 'http_headers' };
  return NO_PARENT;
}

/** An HTTP door's Check span's parent: the context in the received request's headers, read once. */
export function requestParentOf(headers: TraceHeaders | undefined): Parent {
  const found = headers && contextIn(headers);
  return found ? { context: found, source: 'request_headers' } : NO_PARENT;
}

/**
 * The client's own trace headers in a CheckRequest: looked up by name in Envoy's header map, or picked out of
 * raw headers (`encode_raw_headers`) in one pass that decodes only those; undefined when unreadable (raw
 * headers and a map both, or more headers than the request phase reads).
 */
export function clientHeadersOf(request: CheckRequest): TraceHeaders | undefined {
  const http = request.attributes?.request?.http;
  if (http === undefined) return undefined;
  const map = http.headers;
  const raw = http.header_map?.headers;
  if (raw === undefined || raw.length === 0)
    return map && ((name) => (Object.hasOwn(map, name) ? map[name] : undefined));
  // Both at once is refused by the request phase (request_malformed): no client context either.
  if (map !== undefined && hasAny(map)) return undefined;
  const picked = pickRawHeaders(raw, TRACE_HEADER_NAMES);
  return picked && ((name) => picked.get(name));
}

function hasAny(map: object): boolean {
  for (const _ in map) return true;
  return false;
}
