// A real OTLP/gRPC trace receiver on loopback (what a Collector's otlp receiver does), decoding the real
// protobuf with OTLP's own message definitions (./otlp/trace_service.proto): Envoy's OpenTelemetry tracer
// and scopegate export to it, and tests read the spans as a tracing backend would store them.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export interface ReceivedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly name: string;
  readonly kind: string;
  readonly attributes: Record<string, string | number | boolean>;
  readonly status: { readonly code: string; readonly message: string };
  /** The exporting process's resource (service.name, process.pid, …). */
  readonly resource: Record<string, string | number | boolean>;
}

export interface OtlpReceiver {
  /** `127.0.0.1:PORT`, for Envoy's cluster; `http://127.0.0.1:PORT` is the OTEL_EXPORTER_OTLP_ENDPOINT. */
  readonly address: string;
  readonly endpoint: string;
  readonly spans: ReceivedSpan[];
  /** Resolves once a span matching `test` has arrived (rejects after `ms`). */
  waitFor(test: (span: ReceivedSpan) => boolean, ms?: number): Promise<ReceivedSpan>;
  close(): Promise<void>;
}

interface WireValue {
  string_value?: string;
  bool_value?: boolean;
  int_value?: string;
  double_value?: number;
  bytes_value?: Buffer;
}
interface WireKeyValue {
  key: string;
  value?: WireValue;
}
interface WireSpan {
  trace_id?: Buffer;
  span_id?: Buffer;
  parent_span_id?: Buffer;
  name?: string;
  kind?: string;
  attributes?: WireKeyValue[];
  status?: { code?: string; message?: string };
}
interface WireRequest {
  resource_spans?: Array<{
    resource?: { attributes?: WireKeyValue[] };
    scope_spans?: Array<{ spans?: WireSpan[] }>;
  }>;
}

const PROTO = join(dirname(fileURLToPath(import.meta.url)), 'otlp', 'trace_service.proto');
const definition = protoLoader.loadSync(PROTO, {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: false,
});
const traceService = definition[
  'opentelemetry.proto.collector.trace.v1.TraceService'
] as grpc.ServiceDefinition;

function attributesOf(list: WireKeyValue[] = []): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value = {} } of list) {
    if (value.string_value !== undefined) out[key] = value.string_value;
    else if (value.bool_value !== undefined) out[key] = value.bool_value;
    else if (value.int_value !== undefined) out[key] = Number(value.int_value);
    else if (value.double_value !== undefined) out[key] = value.double_value;
    else if (value.bytes_value !== undefined) out[key] = value.bytes_value.toString('hex');
  }
  return out;
}

const hex = (bytes: Buffer | undefined) => (bytes ? bytes.toString('hex') : '');

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();
  const server = new grpc.Server();
  server.addService(traceService, {
    Export: (call: grpc.ServerUnaryCall<WireRequest, unknown>, done: grpc.sendUnaryData<unknown>) => {
      for (const resourceSpans of call.request.resource_spans ?? []) {
        const resource = attributesOf(resourceSpans.resource?.attributes);
        for (const scope of resourceSpans.scope_spans ?? [])
          for (const span of scope.spans ?? [])
            spans.push({
              traceId: hex(span.trace_id),
              spanId: hex(span.span_id),
              parentSpanId: hex(span.parent_span_id),
              name: span.name ?? '',
              kind: span.kind ?? 'SPAN_KIND_UNSPECIFIED',
              attributes: attributesOf(span.attributes),
              status: { code: span.status?.code ?? 'STATUS_CODE_UNSET', message: span.status?.message ?? '' },
              resource,
            });
      }
      for (const wake of waiters) wake();
      done(null, {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    endpoint: `http://127.0.0.1:${port}`,
    spans,
    waitFor(test, ms = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = spans.find(test);
          if (found === undefined) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(found);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no such span within ${ms} ms; received: ${spans.map((s) => s.name).join(', ')}`));
        }, ms);
        waiters.add(check);
        check();
      });
    },
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}
