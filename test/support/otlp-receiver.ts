// Real OTLP trace receivers on loopback (what a Collector's otlp receiver does): OTLP/gRPC, and OTLP/HTTP
// taking both `http/protobuf` and `http/json` on /v1/traces. Protobuf is decoded with OTLP's own message
// definitions (./otlp/trace_service.proto), JSON as the OTLP/JSON encoding specifies it (hex ids, enums as
// numbers). Envoy's OpenTelemetry tracer and scopegate export to them, and tests read the spans as a tracing
// backend would store them.
import { createServer } from 'node:http';
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
  /** The content type of each export received (OTLP/HTTP only): which protocol the exporter spoke. */
  readonly contentTypes: string[];
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
/** The same decoder the gRPC server uses, for an http/protobuf body. */
const decodeExport = traceService.Export!.requestDeserialize as (bytes: Buffer) => WireRequest;

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

/** The spans received so far, and a way to wait for one: what every receiver here shares. */
function spanStore(): Pick<OtlpReceiver, 'spans' | 'waitFor'> & {
  add(request: WireRequest): void;
  push(received: ReceivedSpan[]): void;
} {
  const spans: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();
  const push = (received: ReceivedSpan[]) => {
    spans.push(...received);
    for (const wake of waiters) wake();
  };
  return {
    spans,
    push,
    add(request) {
      const received: ReceivedSpan[] = [];
      for (const resourceSpans of request.resource_spans ?? []) {
        const resource = attributesOf(resourceSpans.resource?.attributes);
        for (const scope of resourceSpans.scope_spans ?? [])
          for (const span of scope.spans ?? [])
            received.push({
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
      push(received);
    },
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
  };
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const store = spanStore();
  const server = new grpc.Server();
  server.addService(traceService, {
    Export: (call: grpc.ServerUnaryCall<WireRequest, unknown>, done: grpc.sendUnaryData<unknown>) => {
      store.add(call.request);
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
    spans: store.spans,
    contentTypes: [],
    waitFor: store.waitFor,
    close: () => new Promise((resolve) => server.tryShutdown(() => resolve())),
  };
}

type SpanStore = ReturnType<typeof spanStore>;

/**
 * An HTTP receiver on loopback taking POSTs on `path` (404 otherwise): `take` stores a body's spans and says
 * what to answer; each POST's content type is recorded.
 */
async function startHttpReceiver(
  path: string,
  take: (type: string, body: Buffer, store: SpanStore) => { status: number; type?: string; body?: string },
): Promise<OtlpReceiver> {
  const store = spanStore();
  const contentTypes: string[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== path) return void res.writeHead(404).end();
      const type = req.headers['content-type'] ?? '';
      contentTypes.push(type);
      const answer = take(type, Buffer.concat(chunks), store);
      res.writeHead(answer.status, answer.type ? { 'content-type': answer.type } : {}).end(answer.body ?? '');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    address: `127.0.0.1:${port}`,
    endpoint: `http://127.0.0.1:${port}`,
    spans: store.spans,
    contentTypes,
    waitFor: store.waitFor,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** OTLP/HTTP on /v1/traces (the exporters' default path under OTEL_EXPORTER_OTLP_ENDPOINT). */
export function startOtlpHttpReceiver(): Promise<OtlpReceiver> {
  return startHttpReceiver('/v1/traces', (type, body, store) => {
    if (type === 'application/x-protobuf') store.add(decodeExport(body));
    else if (type === 'application/json') store.add(wireOfJson(JSON.parse(body.toString('utf8'))));
    else return { status: 415 };
    return { status: 200, type, body: type === 'application/json' ? '{}' : '' };
  });
}

/** A span as Zipkin's JSON v2 encoding has it (POST /api/v2/spans, a list of them). */
interface ZipkinSpan {
  traceId: string;
  id: string;
  parentId?: string;
  name?: string;
  kind?: string;
  localEndpoint?: { serviceName?: string };
  tags?: Record<string, string>;
}

/**
 * A Zipkin collector on loopback (POST /api/v2/spans, JSON v2; what Envoy's Zipkin tracer sends with
 * `collector_endpoint_version: HTTP_JSON`), its spans read in the OTLP shape: ids as Zipkin's hex (a 64-bit trace
 * id stays 16 digits), kind as Zipkin's (`CLIENT`, `SERVER`; '' when absent), tags as attributes, the local
 * endpoint's service name as `service.name`.
 */
export function startZipkinCollector(): Promise<OtlpReceiver> {
  return startHttpReceiver('/api/v2/spans', (_type, body, store) => {
    const spans = JSON.parse(body.toString('utf8')) as ZipkinSpan[];
    store.push(
      spans.map((span) => ({
        traceId: span.traceId,
        spanId: span.id,
        parentSpanId: span.parentId ?? '',
        name: span.name ?? '',
        kind: span.kind ?? '',
        attributes: { ...span.tags },
        status: { code: 'STATUS_CODE_UNSET', message: '' },
        resource: { 'service.name': span.localEndpoint?.serviceName ?? '' },
      })),
    );
    return { status: 202 };
  });
}

interface JsonKeyValue {
  key: string;
  value?: { stringValue?: string; boolValue?: boolean; intValue?: string | number; doubleValue?: number };
}

/** OTLP/JSON in the protobuf shape above: camelCase fields, hex ids, span kinds and status codes as numbers. */
function wireOfJson(json: {
  resourceSpans?: Array<{
    resource?: { attributes?: JsonKeyValue[] };
    scopeSpans?: Array<{
      spans?: Array<{
        traceId?: string;
        spanId?: string;
        parentSpanId?: string;
        name?: string;
        kind?: number;
        attributes?: JsonKeyValue[];
        status?: { code?: number; message?: string };
      }>;
    }>;
  }>;
}): WireRequest {
  const KINDS = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
  const CODES = ['UNSET', 'OK', 'ERROR'];
  const bytes = (id: string | undefined) => (id ? Buffer.from(id, 'hex') : undefined);
  const keyValues = (list: JsonKeyValue[] = []): WireKeyValue[] =>
    list.map(({ key, value = {} }) => ({
      key,
      value: {
        ...(value.stringValue !== undefined && { string_value: value.stringValue }),
        ...(value.boolValue !== undefined && { bool_value: value.boolValue }),
        ...(value.intValue !== undefined && { int_value: String(value.intValue) }),
        ...(value.doubleValue !== undefined && { double_value: value.doubleValue }),
      },
    }));
  return {
    resource_spans: (json.resourceSpans ?? []).map((resourceSpans) => ({
      resource: { attributes: keyValues(resourceSpans.resource?.attributes) },
      scope_spans: (resourceSpans.scopeSpans ?? []).map((scope) => ({
        spans: (scope.spans ?? []).map((span) => ({
          trace_id: bytes(span.traceId),
          span_id: bytes(span.spanId),
          parent_span_id: bytes(span.parentSpanId),
          name: span.name,
          kind: `SPAN_KIND_${KINDS[span.kind ?? 0]}`,
          attributes: keyValues(span.attributes),
          status: { code: `STATUS_CODE_${CODES[span.status?.code ?? 0]}`, message: span.status?.message },
        })),
      })),
    })),
  };
}
