// One trace through a real Envoy running envoy/envoy-tracing.yaml (its OpenTelemetry tracer) and scopegate
// (`serve --tracing`), both exporting OTLP/gRPC to a real receiver on loopback: scopegate's Check span is a
// child of Envoy's ext_authz span in Envoy's trace, says what was decided, and a denied request's log line
// carries that trace id; the same through envoy/envoy-http.yaml with that tracer, to scopegate's --http door. And
// what Envoy really puts in the Check call's gRPC metadata, and in the request its http_service sends the --http
// door, seen by a recording authorization server in scopegate's place. And envoy/envoy.yaml with Envoy's Zipkin
// tracer (posting to a Zipkin collector on loopback): what it sends in the Check call (B3), and that scopegate's
// Check span is the child of its ext_authz span.
import { createServer, type IncomingHttpHeaders } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { localEnvoyConfig, repoRoot, startEnvoy, withRuntime } from '../../src/dev/envoy.js';
import { sendThrough } from '../../src/dev/stack.js';
import { authorizationService } from '../../src/wire/proto.js';
import type { CheckRequest } from '../../src/wire/types.js';
import { captureLog } from '../support/logs.js';
import {
  type OtlpReceiver,
  type ReceivedSpan,
  startOtlpReceiver,
  startZipkinCollector,
} from '../support/otlp-receiver.js';
import { requireEnvoy, skipWithoutEnvoy, suiteName } from './envoy-required.js';
import { type Stack, startStack } from './stack.js';

const CHECK = 'envoy.service.auth.v3.Authorization/Check';
const TRANSACTIONS = '/api/inventory/transactions';
/** A client's own W3C context, as a traced browser or service sends it. */
const CLIENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CLIENT_TRACEPARENT = `00-${CLIENT_TRACE}-b7ad6b7169203331-01`;
const portOf = (address: string) => Number(address.split(':').pop());
/** Envoy's OpenTelemetry tracer exports each span as it ends (by default after 5 spans, else a 5 s timer). */
const FLUSH_EACH_OTEL_SPAN = { 'tracing.opentelemetry.min_flush_spans': 1 };

let receiver: OtlpReceiver;
beforeAll(async () => {
  receiver = await startOtlpReceiver();
});
afterAll(async () => receiver?.close());

describe.skipIf(skipWithoutEnvoy)(suiteName('one trace: Envoy (OpenTelemetry tracer) → scopegate'), () => {
  let stack: Stack;
  const log = captureLog('info');
  const saved = { ...process.env };

  beforeAll(async () => {
    // scopegate's exporter reads the standard variables from its environment (this process, in the stack).
    Object.assign(process.env, {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_BSP_SCHEDULE_DELAY: '100',
    });
    stack = await startStack('envoy-tracing.yaml', {
      otelCollector: portOf(receiver.address),
      envoyRuntime: FLUSH_EACH_OTEL_SPAN,
      serveFlags: ['--tracing'],
      log: log.log,
    });
  });
  afterAll(async () => {
    await stack?.close();
    process.env = saved;
  });

  /** scopegate's Check span for the request whose deny body or upstream echo carries this request id. */
  const checkSpanOf = (requestId: string) =>
    receiver.waitFor((s) => s.name === CHECK && s.attributes['scopegate.request_id'] === requestId);
  /** Envoy's span (any service) with this id in this trace. */
  const envoySpan = (traceId: string, spanId: string) =>
    receiver.waitFor(
      (s) => s.traceId === traceId && s.spanId === spanId && s.resource['service.name'] === 'envoy',
    );

  it("a denied request: scopegate's span is the child of Envoy's ext_authz span, and its log line has the trace id", async () => {
    const answer = await stack.send({ method: 'GET', path: TRANSACTIONS });
    expect(answer.status).toBe(401);
    const requestId = String(answer.json?.request_id);

    const check = await checkSpanOf(requestId);
    expect(check).toMatchObject({
      kind: 'SPAN_KIND_SERVER',
      attributes: {
        'rpc.system': 'grpc',
        'rpc.service': 'envoy.service.auth.v3.Authorization',
        'rpc.method': 'Check',
        'scopegate.transport': 'grpc',
        'scopegate.parent': 'grpc_metadata',
        'scopegate.decision': 'deny',
        'scopegate.reason': 'token_missing',
        'scopegate.policy': 'inventory',
        'scopegate.dry_run': false,
      },
      status: { code: 'STATUS_CODE_UNSET' },
      resource: { 'service.name': 'scopegate' },
    });
    expect(check.attributes['scopegate.policy.revision']).toMatch(/^[0-9a-f]{12}$/);

    // Its parent is the span Envoy made for the ext_authz gRPC call, in Envoy's trace, under Envoy's
    // span for the whole request.
    const extAuthz = await envoySpan(check.traceId, check.parentSpanId);
    expect(extAuthz.name).toMatch(/envoy\.service\.auth\.v3\.Authorization/);
    expect(extAuthz.kind).toBe('SPAN_KIND_CLIENT');
    const ingress = await envoySpan(check.traceId, extAuthz.parentSpanId);
    expect(ingress.kind).toBe('SPAN_KIND_SERVER');
    expect(ingress.parentSpanId).toBe('');

    const line = log.lines.find((l) => l.msg === 'decision' && l.request_id === requestId);
    expect(line).toMatchObject({ reason: 'token_missing', trace_id: check.traceId, span_id: check.spanId });
  });

  it("through envoy-http.yaml, traced: scopegate's --http span is the child of Envoy's span for the call, and a denied request's log line has the trace id", async () => {
    // Another Envoy, http_service to this scopegate's --http door, tracing to the same receiver.
    const envoy = await startEnvoy({
      bin: requireEnvoy(),
      configText: httpServiceTraced({
        scopegateHttp: portOf(stack.scopegate.httpAddress!),
        inventory: stack.upstream.port,
      }),
    });
    try {
      const answer = await sendThrough(envoy.url, { method: 'GET', path: TRANSACTIONS });
      expect(answer.status).toBe(401);
      const requestId = String(answer.json?.request_id);

      const check = await receiver.waitFor(
        (s) => s.name === 'scopegate.check' && s.attributes['scopegate.request_id'] === requestId,
      );
      expect(check).toMatchObject({
        kind: 'SPAN_KIND_SERVER',
        attributes: {
          'scopegate.transport': 'http',
          'scopegate.parent': 'request_headers',
          'scopegate.decision': 'deny',
          'scopegate.reason': 'token_missing',
          'scopegate.policy': 'inventory',
        },
        resource: { 'service.name': 'scopegate' },
      });
      // Its parent is Envoy's ext_authz span (the CLIENT span of the call to the scopegate_http cluster, with
      // ext_authz's own tags), under Envoy's span for the request: one trace.
      const call = await envoySpan(check.traceId, check.parentSpanId);
      expect(call).toMatchObject({
        name: 'async scopegate_http egress',
        kind: 'SPAN_KIND_CLIENT',
        attributes: { ext_authz_status: 'ext_authz_unauthorized', upstream_cluster: 'scopegate_http' },
      });
      const ingress = await envoySpan(check.traceId, call.parentSpanId);
      expect(ingress).toMatchObject({ kind: 'SPAN_KIND_SERVER', parentSpanId: '' });

      const line = log.lines.find((l) => l.msg === 'decision' && l.request_id === requestId);
      expect(line).toMatchObject({
        transport: 'http',
        reason: 'token_missing',
        trace_id: check.traceId,
        span_id: check.spanId,
      });
    } finally {
      await envoy.stop();
    }
  });

  it("through envoy.yaml with Envoy's Zipkin tracer: scopegate's Check span (parent grpc_metadata) is the child of Envoy's Zipkin ext_authz span, in its trace", async () => {
    const zipkin = await startZipkinCollector();
    const envoy = await startEnvoy({
      bin: requireEnvoy(),
      configText: zipkinTraced({
        scopegate: portOf(stack.scopegate.grpcAddress),
        inventory: stack.upstream.port,
        zipkin: portOf(zipkin.address),
      }),
    });
    try {
      const answer = await sendThrough(envoy.url, { method: 'GET', path: TRANSACTIONS });
      expect(answer.status).toBe(401);
      const check = await checkSpanOf(String(answer.json?.request_id));
      expect(check.attributes).toMatchObject({
        'scopegate.parent': 'grpc_metadata',
        'scopegate.reason': 'token_missing',
      });
      // Envoy's trace id is 64-bit: scopegate's is the same, zero-padded to 128 bits (as B3 says).
      expect(check.traceId.slice(0, 16)).toBe('0000000000000000');
      const call = await zipkinCheckSpan(zipkin, check.traceId.slice(16));
      expect(check.parentSpanId).toBe(call.spanId);
      expect(call.attributes).toMatchObject({ ext_authz_status: 'ext_authz_unauthorized' });
    } finally {
      await envoy.stop();
      await zipkin.close();
    }
  });

  it("an allowed request with the client's own traceparent: one trace, the client's, Envoy in between", async () => {
    const token = await stack.clientToken('sync', 'inventory.read');
    const answer = await stack.send({
      method: 'GET',
      path: TRANSACTIONS,
      token,
      headers: { traceparent: CLIENT_TRACEPARENT },
    });
    expect(answer.status).toBe(200);
    const allowed = await receiver.waitFor(
      (s) => s.name === CHECK && s.traceId === CLIENT_TRACE && s.attributes['scopegate.decision'] === 'allow',
    );
    expect(allowed.attributes).toMatchObject({
      'scopegate.reason': 'allowed',
      'scopegate.route': 'list_transactions',
    });
    // Not the client's span: Envoy's ext_authz span, which Envoy sent in the metadata, is the parent.
    expect(allowed.parentSpanId).not.toBe('b7ad6b7169203331');
    expect((await envoySpan(CLIENT_TRACE, allowed.parentSpanId)).kind).toBe('SPAN_KIND_CLIENT');
    // Subject and client only with --trace-identities.
    expect(allowed.attributes).not.toHaveProperty('scopegate.subject');
    expect(allowed.attributes).not.toHaveProperty('scopegate.client');
  });
});

interface Recorded {
  readonly metadata: Record<string, string>;
  readonly headers: Record<string, string>;
}

/** In scopegate's place: an Authorization service that records each call's metadata and denies it. */
async function startRecordingAuthz(): Promise<{ port: number; calls: Recorded[]; close(): void }> {
  const calls: Recorded[] = [];
  const server = new grpc.Server();
  server.addService(authorizationService, {
    Check: (call: grpc.ServerUnaryCall<CheckRequest, unknown>, done: grpc.sendUnaryData<unknown>) => {
      const metadata: Record<string, string> = {};
      for (const [key, value] of Object.entries(call.metadata.getMap())) metadata[key] = String(value);
      calls.push({ metadata, headers: { ...call.request.attributes?.request?.http?.headers } });
      done(null, { status: { code: 7 }, denied_response: { status: { code: 'Forbidden' } } });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  return { port, calls, close: () => server.forceShutdown() };
}

const TRACE_KEYS = /^(traceparent|tracestate|b3|x-b3-.*|x-ot-span-context|grpc-trace-bin|uber-trace-id)$/;
const traceKeys = (map: Record<string, string>) =>
  Object.keys(map)
    .filter((k) => TRACE_KEYS.test(k))
    .sort();

/**
 * Envoy with this config in front of a recording server in scopegate's place: a plain request and one with
 * the client's own traceparent, both denied; then `check`, while Envoy still runs (it exports its spans).
 */
async function throughEnvoy(configText: string, check: () => Promise<void>): Promise<void> {
  const envoy = await startEnvoy({ bin: requireEnvoy(), configText });
  try {
    for (const headers of [{}, { traceparent: CLIENT_TRACEPARENT }] as Record<string, string>[])
      expect((await sendThrough(envoy.url, { path: TRANSACTIONS, headers })).status).toBe(403);
    await check();
  } finally {
    await envoy.stop();
  }
}

/**
 * The trace headers Envoy sent for the plain request and the client-traced one (Envoy 1.40: `traceparent` and an
 * empty `tracestate`; no B3, that is the Zipkin tracer's): the second continues the client's trace with a span
 * of Envoy's own, returned as Envoy exported it.
 */
async function envoysSpan(
  plain: Record<string, string>,
  withClientContext: Record<string, string>,
): Promise<ReceivedSpan> {
  expect(traceKeys(plain)).toEqual(['traceparent', 'tracestate']);
  expect(plain.tracestate).toBe('');
  expect(plain.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  const [, traceId, spanId] = withClientContext.traceparent!.split('-');
  expect(traceId).toBe(CLIENT_TRACE);
  expect(spanId).not.toBe('b7ad6b7169203331');
  return receiver.waitFor((s) => s.traceId === CLIENT_TRACE && s.spanId === spanId);
}

describe.skipIf(skipWithoutEnvoy)(
  suiteName('what Envoy sends in the Check call (envoy-tracing.yaml)'),
  () => {
    it("W3C traceparent (and an empty tracestate) in the gRPC metadata, naming Envoy's ext_authz span; the client's own stays in the HTTP headers", async () => {
      const authz = await startRecordingAuthz();
      const config = withRuntime(
        localEnvoyConfig(`${repoRoot()}/envoy/envoy-tracing.yaml`, {
          scopegate: authz.port,
          inventory: 9,
          otelCollector: portOf(receiver.address),
        }),
        FLUSH_EACH_OTEL_SPAN,
      );
      try {
        await throughEnvoy(config, async () => {
          const [plain, withClientContext] = authz.calls;
          const extAuthz = await envoysSpan(plain!.metadata, withClientContext!.metadata);
          expect(extAuthz.resource['service.name']).toBe('envoy');
          // The CheckRequest's headers are the client's: none from a plain request, its own unchanged.
          expect(traceKeys(plain!.headers)).toEqual([]);
          expect(withClientContext!.headers.traceparent).toBe(CLIENT_TRACEPARENT);
        });
      } finally {
        authz.close();
      }
    });
  },
);

/** In scopegate's `--http` place: an HTTP authorization server that records each request's headers and denies. */
async function startRecordingHttpAuthz(): Promise<{
  port: number;
  calls: IncomingHttpHeaders[];
  close(): void;
}> {
  const calls: IncomingHttpHeaders[] = [];
  const server = createServer((req, res) => {
    calls.push(req.headers);
    req.resume();
    req.on('end', () => res.writeHead(403, { 'content-length': '0' }).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { port, calls, close: () => server.close() };
}

/**
 * envoy/envoy-http.yaml (http_service) with envoy-tracing.yaml's OpenTelemetry tracer and its collector cluster,
 * asking the --http door on `scopegateHttp`. Envoy exports each span as it ends (its runtime's
 * min_flush_spans, 5 by default, else a 5 s timer), so a test waits for no timer.
 */
function httpServiceTraced(ports: { scopegateHttp: number; inventory: number }): string {
  type Config = {
    static_resources: {
      listeners: Array<{ filter_chains: Array<{ filters: Array<{ typed_config: { tracing?: unknown } }> }> }>;
      clusters: Array<{ name: string }>;
    };
  };
  const local = (file: string) =>
    parse(
      localEnvoyConfig(`${repoRoot()}/envoy/${file}`, {
        scopegate: 9,
        ...ports,
        otelCollector: portOf(receiver.address),
      }),
    ) as Config;
  const manager = (config: Config) =>
    config.static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config;
  const http = local('envoy-http.yaml');
  const traced = local('envoy-tracing.yaml');
  manager(http).tracing = manager(traced).tracing;
  http.static_resources.clusters.push(
    traced.static_resources.clusters.find((c) => c.name === 'otel_collector')!,
  );
  return withRuntime(stringify(http), FLUSH_EACH_OTEL_SPAN);
}

describe.skipIf(skipWithoutEnvoy)(
  suiteName('what Envoy sends the --http door (envoy-http.yaml with the OpenTelemetry tracer)'),
  () => {
    it("W3C traceparent (and an empty tracestate) in the request's headers, naming Envoy's span for the call; it replaces the client's own", async () => {
      const authz = await startRecordingHttpAuthz();
      try {
        await throughEnvoy(httpServiceTraced({ scopegateHttp: authz.port, inventory: 9 }), async () => {
          const [plain, withClientContext] = authz.calls.map((headers) => headers as Record<string, string>);
          // Although allowed_headers names traceparent, the client's does not reach the door: Envoy's own
          // context (its span for the call) takes its place.
          const call = await envoysSpan(plain!, withClientContext!);
          expect(call).toMatchObject({ kind: 'SPAN_KIND_CLIENT', resource: { 'service.name': 'envoy' } });
        });
      } finally {
        authz.close();
      }
    });
  },
);

/**
 * envoy/envoy.yaml (gRPC ext_authz to `scopegate`) with Envoy's Zipkin tracer, posting Zipkin JSON v2 to the
 * collector on `zipkin` (a `zipkin` cluster added here, on loopback). Envoy posts each span as it ends (runtime
 * min_flush_spans 1; else 5 spans or a 5 s timer), so a test waits for no timer.
 */
function zipkinTraced(ports: { scopegate: number; inventory: number; zipkin: number }): string {
  const config = parse(
    localEnvoyConfig(`${repoRoot()}/envoy/envoy.yaml`, {
      scopegate: ports.scopegate,
      inventory: ports.inventory,
    }),
  );
  config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config.tracing = {
    random_sampling: { value: 100 },
    provider: {
      name: 'envoy.tracers.zipkin',
      typed_config: {
        '@type': 'type.googleapis.com/envoy.config.trace.v3.ZipkinConfig',
        collector_cluster: 'zipkin',
        collector_endpoint: '/api/v2/spans',
        collector_endpoint_version: 'HTTP_JSON',
      },
    },
  };
  config.static_resources.clusters.push({
    name: 'zipkin',
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: {
      cluster_name: 'zipkin',
      endpoints: [
        {
          lb_endpoints: [
            { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: ports.zipkin } } } },
          ],
        },
      ],
    },
  });
  return withRuntime(stringify(config), { 'tracing.zipkin.min_flush_spans': 1 });
}

/** Envoy's Zipkin span for its ext_authz gRPC call, in this trace. */
const zipkinCheckSpan = (zipkin: OtlpReceiver, traceId: string) =>
  zipkin.waitFor(
    (s) =>
      s.traceId === traceId &&
      s.kind === 'CLIENT' &&
      s.name === 'async envoy.service.auth.v3.Authorization.Check egress',
  );

describe.skipIf(skipWithoutEnvoy)(suiteName('what Envoy sends in the Check call (its Zipkin tracer)'), () => {
  it("B3 in several x-b3-* entries of the gRPC metadata (64-bit trace id), naming Envoy's ext_authz span; no b3, no traceparent; a client's traceparent is not continued", async () => {
    const authz = await startRecordingAuthz();
    const zipkin = await startZipkinCollector();
    try {
      const config = zipkinTraced({ scopegate: authz.port, inventory: 9, zipkin: portOf(zipkin.address) });
      await throughEnvoy(config, async () => {
        const [plain, withClientContext] = authz.calls;
        for (const { metadata } of [plain!, withClientContext!]) {
          expect(traceKeys(metadata)).toEqual([
            'x-b3-parentspanid',
            'x-b3-sampled',
            'x-b3-spanid',
            'x-b3-traceid',
          ]);
          expect(metadata['x-b3-traceid']).toMatch(/^[0-9a-f]{16}$/);
          expect(metadata['x-b3-sampled']).toBe('1');
          const call = await zipkinCheckSpan(zipkin, metadata['x-b3-traceid']!);
          expect(call.spanId).toBe(metadata['x-b3-spanid']);
          expect(call.parentSpanId).toBe(metadata['x-b3-parentspanid']);
          expect(call.attributes).toMatchObject({ upstream_cluster: 'scopegate' });
        }
        // Envoy's Zipkin tracer reads B3 only: the client's traceparent starts no continued trace, and stays
        // (unchanged) in the CheckRequest's headers.
        expect(withClientContext!.metadata['x-b3-traceid']).not.toBe(CLIENT_TRACE.slice(16));
        expect(withClientContext!.headers.traceparent).toBe(CLIENT_TRACEPARENT);
        expect(traceKeys(plain!.headers)).toEqual([]);
      });
    } finally {
      authz.close();
      await zipkin.close();
    }
  });
});
