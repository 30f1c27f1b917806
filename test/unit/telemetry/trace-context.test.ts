// Whose trace a Check joins: Envoy's context from the call's gRPC metadata (W3C, B3 single, B3 multi; W3C
// first when both are there), else the client's own from its HTTP headers; at an HTTP door, the received
// request's headers alone. A malformed header is ignored, never a deny.
import { trace } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import {
  clientHeadersOf,
  contextIn,
  parentOf,
  requestParentOf,
  type TraceHeaders,
} from '../../../src/telemetry/trace-context.js';

const W3C_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const W3C_SPAN = '00f067aa0ba902b7';
const B3_TRACE = '80f198ee56343ba864fe8b2a57d3eff7';
const B3_SPAN = 'e457b5a2e4d86bd1';
const CLIENT_TRACE = '0af7651916cd43dd8448eb211c80319c';

const headers =
  (entries: Record<string, string>): TraceHeaders =>
  (name) =>
    entries[name];

const traceparent = (traceId = W3C_TRACE, spanId = W3C_SPAN, flags = '01') =>
  `00-${traceId}-${spanId}-${flags}`;

function parentIds(carrier: TraceHeaders) {
  const found = contextIn(carrier);
  const span = found && trace.getSpanContext(found);
  return (
    span && {
      traceId: span.traceId,
      spanId: span.spanId,
      sampled: span.traceFlags === 1,
      remote: span.isRemote,
    }
  );
}

describe('contextIn: the formats Envoy tracers send', () => {
  it('W3C traceparent (OpenTelemetry tracer), with its tracestate kept', () => {
    const carrier = headers({ traceparent: traceparent(), tracestate: 'envoy=1' });
    expect(parentIds(carrier)).toEqual({ traceId: W3C_TRACE, spanId: W3C_SPAN, sampled: true, remote: true });
    const found = contextIn(carrier)!;
    expect(trace.getSpanContext(found)?.traceState?.get('envoy')).toBe('1');
  });

  it('B3 in one header (`b3: trace-span-sampled`)', () => {
    expect(parentIds(headers({ b3: `${B3_TRACE}-${B3_SPAN}-1` }))).toEqual({
      traceId: B3_TRACE,
      spanId: B3_SPAN,
      sampled: true,
      remote: true,
    });
  });

  it('B3 in several headers (Zipkin tracer: x-b3-traceid, x-b3-spanid, x-b3-sampled)', () => {
    const carrier = headers({ 'x-b3-traceid': B3_TRACE, 'x-b3-spanid': B3_SPAN, 'x-b3-sampled': '0' });
    expect(parentIds(carrier)).toEqual({ traceId: B3_TRACE, spanId: B3_SPAN, sampled: false, remote: true });
  });

  it('W3C and B3 both present: W3C wins', () => {
    const carrier = headers({ traceparent: traceparent(), b3: `${B3_TRACE}-${B3_SPAN}-1` });
    expect(parentIds(carrier)?.traceId).toBe(W3C_TRACE);
  });

  it('a malformed traceparent is ignored: B3 next to it is used, else no parent', () => {
    for (const bad of [
      'garbage',
      traceparent('0'.repeat(32)),
      traceparent(W3C_TRACE, '0'.repeat(16)),
      `00-${W3C_TRACE}-${W3C_SPAN}-01-extra`,
      `${traceparent()},${traceparent(CLIENT_TRACE)}`,
    ]) {
      expect(parentIds(headers({ traceparent: bad })), bad).toBeUndefined();
      expect(
        parentIds(headers({ traceparent: bad, 'x-b3-traceid': B3_TRACE, 'x-b3-spanid': B3_SPAN }))?.traceId,
      ).toBe(B3_TRACE);
    }
  });

  it('malformed B3 is ignored', () => {
    expect(parentIds(headers({ b3: 'not-b3' }))).toBeUndefined();
    expect(parentIds(headers({ 'x-b3-traceid': 'zz', 'x-b3-spanid': B3_SPAN }))).toBeUndefined();
    expect(parentIds(headers({ 'x-b3-traceid': B3_TRACE }))).toBeUndefined();
  });

  it('nothing there: no parent', () => {
    expect(contextIn(headers({}))).toBeUndefined();
  });
});

describe("parentOf: Envoy's metadata first, the client's headers only without it", () => {
  const client = headers({ traceparent: traceparent(CLIENT_TRACE) });

  it("the call's metadata wins over the client's HTTP headers, which are not even read", () => {
    let read = false;
    const parent = parentOf(headers({ traceparent: traceparent() }), () => {
      read = true;
      return client;
    });
    expect(parent.source).toBe('grpc_metadata');
    expect(trace.getSpanContext(parent.context)?.traceId).toBe(W3C_TRACE);
    expect(read).toBe(false);
  });

  it("without a context in the metadata (Envoy not tracing), the client's is the parent", () => {
    for (const metadata of [undefined, headers({}), headers({ traceparent: 'malformed' })]) {
      const parent = parentOf(metadata, () => client);
      expect(parent.source).toBe('http_headers');
      expect(trace.getSpanContext(parent.context)?.traceId).toBe(CLIENT_TRACE);
    }
  });

  it('none anywhere (or unreadable headers): a new trace', () => {
    expect(parentOf(undefined, () => undefined).source).toBe('none');
    expect(parentOf(headers({}), () => headers({ traceparent: 'x' })).source).toBe('none');
    expect(trace.getSpanContext(parentOf(undefined, undefined).context)).toBeUndefined();
  });
});

describe("requestParentOf: an HTTP door's request is the only place", () => {
  it('its context, labelled request_headers; a malformed or missing one: a new trace', () => {
    const found = requestParentOf(headers({ traceparent: traceparent(CLIENT_TRACE) }));
    expect(found.source).toBe('request_headers');
    expect(trace.getSpanContext(found.context)?.traceId).toBe(CLIENT_TRACE);
    for (const none of [undefined, headers({}), headers({ traceparent: 'malformed', b3: 'not-b3' })])
      expect(requestParentOf(none).source).toBe('none');
  });
});

describe("clientHeadersOf: the client's trace headers in the CheckRequest", () => {
  const raw = (entries: Array<[string, string]>) => ({
    attributes: {
      request: {
        http: {
          header_map: { headers: entries.map(([key, value]) => ({ key, raw_value: Buffer.from(value) })) },
        },
      },
    },
  });

  it("Envoy's header map: looked up by name", () => {
    const read = clientHeadersOf({
      attributes: { request: { http: { headers: { traceparent: traceparent(CLIENT_TRACE) } } } },
    });
    expect(read?.('traceparent')).toBe(traceparent(CLIENT_TRACE));
    expect(read?.('b3')).toBeUndefined();
  });

  it('raw headers: the trace headers picked out (any case), repeats joined as the request phase joins them', () => {
    const read = clientHeadersOf(
      raw([
        ['authorization', 'Bearer secret'],
        ['TraceParent', traceparent(CLIENT_TRACE)],
        ['x-b3-traceid', B3_TRACE],
        ['x-b3-traceid', B3_TRACE],
      ]),
    );
    expect(read?.('traceparent')).toBe(traceparent(CLIENT_TRACE));
    expect(read?.('x-b3-traceid')).toBe(`${B3_TRACE},${B3_TRACE}`);
    // Nothing but trace headers is read.
    expect(read?.('authorization')).toBeUndefined();
  });

  it('a repeated traceparent is malformed, so ignored', () => {
    const read = clientHeadersOf(
      raw([
        ['traceparent', traceparent()],
        ['traceparent', traceparent(CLIENT_TRACE)],
      ]),
    );
    expect(contextIn(read!)).toBeUndefined();
  });

  it('unreadable: raw headers and a map both, or more headers than the request phase reads', () => {
    const both = raw([['traceparent', traceparent(CLIENT_TRACE)]]);
    (both.attributes.request.http as Record<string, unknown>).headers = { ':path': '/' };
    expect(clientHeadersOf(both)).toBeUndefined();
    const many = raw(Array.from({ length: 201 }, (_, i): [string, string] => [`x-${i}`, 'v']));
    expect(clientHeadersOf(many)).toBeUndefined();
    expect(clientHeadersOf({})).toBeUndefined();
  });
});
