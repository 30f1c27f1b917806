// `serve --tracing` as users run it: the real binary exporting to real receivers on loopback, over OTLP/gRPC,
// `http/protobuf` (the default) and `http/json`. Each Check is a span in the caller's trace, named for the door
// it came in by; with --workers every worker exports its own; OTEL_RESOURCE_ATTRIBUTES reach the resource;
// SIGTERM flushes what is queued; a collector that is down costs no Check anything and never holds up shutdown;
// and off, no OpenTelemetry SDK module is loaded.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkRequestFor } from '../../src/wire/check-request.js';
import type { ReceivedCheckResponse } from '../../src/wire/proto.js';
import type { CheckRequest } from '../../src/wire/types.js';
import { type AuthorizationConnection, connectAuthorization } from '../support/grpc-client.js';
import { sendHttp } from '../support/http-front.js';
import { type JwksServer, startJwksServer } from '../support/jwks-server.js';
import { type OtlpReceiver, startOtlpHttpReceiver, startOtlpReceiver } from '../support/otlp-receiver.js';
import { examplePolicyText, supportThreadClaims } from '../support/policies.js';
import { type Served, serve } from '../support/process.js';
import { answerOf } from '../support/scopegate.js';
import { mintToken, newSigningKey } from '../support/tokens.js';

const CHECK = 'envoy.service.auth.v3.Authorization/Check';
let jwks: JwksServer;
let receiver: OtlpReceiver;
let policyFile: string;
let allowed: CheckRequest;
let denied: CheckRequest;
const running: Served[] = [];
const connections: AuthorizationConnection[] = [];

beforeAll(async () => {
  const key = await newSigningKey('RS256');
  jwks = await startJwksServer([key.publicJwk]);
  receiver = await startOtlpReceiver();
  policyFile = join(mkdtempSync(join(tmpdir(), 'scopegate-tracing-')), 'policy.yaml');
  writeFileSync(policyFile, examplePolicyText(jwks.uri));
  const path = '/api/inventory/transactions';
  allowed = checkRequestFor({
    method: 'GET',
    path,
    token: await mintToken(key, supportThreadClaims()),
    headers: [],
  });
  denied = checkRequestFor({ method: 'GET', path, headers: [] });
});
afterEach(async () => {
  for (const connection of connections.splice(0)) connection.close();
  for (const served of running.splice(0)) {
    served.child.kill('SIGKILL');
    await served.exited;
  }
});
afterAll(async () => {
  await receiver.close();
  await jwks.close();
});

const args = (...more: string[]) => [
  '--policy',
  policyFile,
  '--listen',
  '127.0.0.1:0',
  '--admin',
  '127.0.0.1:0',
  ...more,
];

async function start(more: string[], env: NodeJS.ProcessEnv): Promise<Served> {
  const served = await serve(args(...more), env);
  running.push(served);
  return served;
}

/** A Check as Envoy's OpenTelemetry tracer makes it: its context in the call's `traceparent` metadata. */
function checkIn(
  connection: AuthorizationConnection,
  request: CheckRequest,
  traceId: string,
): Promise<ReceivedCheckResponse> {
  const metadata = new grpc.Metadata();
  metadata.set('traceparent', `00-${traceId}-00f067aa0ba902b7-01`);
  return new Promise((resolve, reject) =>
    connection.client.Check(request, metadata, { deadline: Date.now() + 5_000 }, (err, response) =>
      err ? reject(err) : resolve(response!),
    ),
  );
}

function connect(served: Served): AuthorizationConnection {
  const connection = connectAuthorization(served.grpc, { ownConnection: true });
  connections.push(connection);
  return connection;
}

const traceIdFor = (n: number) => `${String(n).padStart(8, '0')}${'a'.repeat(24)}`;

async function stop(served: Served): Promise<number | null> {
  served.child.kill('SIGTERM');
  const code = await served.exited;
  running.splice(running.indexOf(served), 1);
  return code;
}

describe('serve --tracing exporting OTLP/gRPC', () => {
  it('with --workers 2 every worker exports its own spans, flushed on SIGTERM; deny lines carry the trace id', async () => {
    const served = await start(['--tracing', '--workers', '2', '--drain-seconds', '5'], {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      // Nothing would be exported on its own for a minute: what arrives was flushed by the shutdown.
      OTEL_BSP_SCHEDULE_DELAY: '60000',
      OTEL_SERVICE_NAME: 'scopegate-under-test',
    });
    // Separate connections, as separate Envoys make: the primary hands them to the workers in turn.
    const traces = [traceIdFor(1), traceIdFor(2), traceIdFor(3), traceIdFor(4)];
    for (const [i, traceId] of traces.entries()) {
      const answer = answerOf(await checkIn(connect(served), i % 2 ? denied : allowed, traceId));
      expect(answer.reason).toBe(i % 2 ? 'token_missing' : 'allowed');
    }
    expect(receiver.spans.filter((s) => traces.includes(s.traceId))).toEqual([]);
    expect(await stop(served)).toBe(0);

    const spans = await Promise.all(
      traces.map((id) => receiver.waitFor((s) => s.traceId === id && s.name === CHECK)),
    );
    for (const [i, span] of spans.entries()) {
      expect(span).toMatchObject({
        kind: 'SPAN_KIND_SERVER',
        parentSpanId: '00f067aa0ba902b7',
        attributes: {
          'rpc.system': 'grpc',
          'scopegate.decision': i % 2 ? 'deny' : 'allow',
          'scopegate.reason': i % 2 ? 'token_missing' : 'allowed',
          'scopegate.policy': 'inventory',
          'scopegate.parent': 'grpc_metadata',
        },
        resource: { 'service.name': 'scopegate-under-test' },
      });
      expect(span.attributes).not.toHaveProperty('scopegate.subject');
    }
    const pids = new Set(spans.map((s) => s.resource['process.pid']));
    expect(pids.size).toBe(2);
    expect(pids.has(served.child.pid!)).toBe(false);

    const denyLines = served.lines().filter((l) => l.msg === 'decision' && l.decision === 'deny');
    expect(denyLines.map((l) => l.trace_id).sort()).toEqual([traces[1], traces[3]]);
    for (const line of denyLines)
      expect(line.span_id).toBe(spans.find((s) => s.traceId === line.trace_id)!.spanId);
  });

  it('a collector that is down costs no Check its answer, and never holds up shutdown past the drain', async () => {
    const served = await start(['--tracing', '--workers', '1', '--drain-seconds', '1'], {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      // A port nothing listens on (the receiver's, closed below, would do too; this one never opened).
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9',
      OTEL_BSP_SCHEDULE_DELAY: '50',
    });
    const connection = connect(served);
    for (let i = 0; i < 20; i++) {
      const answer = answerOf(await checkIn(connection, i % 2 ? denied : allowed, traceIdFor(100 + i)));
      expect(answer.reason).toBe(i % 2 ? 'token_missing' : 'allowed');
    }
    const stopping = Date.now();
    expect(await stop(served)).toBe(0);
    // The drain and the flush both end within the drain time (1 s), and the process exits.
    expect(Date.now() - stopping).toBeLessThan(3_000);
  });
});

describe('serve --tracing exporting OTLP/HTTP (http/protobuf by default, http/json)', () => {
  let httpReceiver: OtlpReceiver;
  beforeAll(async () => {
    httpReceiver = await startOtlpHttpReceiver();
  });
  afterAll(async () => httpReceiver.close());

  const PATH = '/api/inventory/transactions';
  const traceparentFor = (traceId: string) => `00-${traceId}-b7ad6b7169203331-01`;

  it("by default http/protobuf; each door's span says its door, the HTTP doors' parented by the traceparent they received", async () => {
    const served = await start(
      [
        '--tracing',
        '--workers',
        '1',
        '--http',
        '127.0.0.1:0',
        '--forward-auth',
        '127.0.0.1:0',
        '--drain-seconds',
        '2',
      ],
      {
        OTEL_EXPORTER_OTLP_PROTOCOL: undefined,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: undefined,
        OTEL_EXPORTER_OTLP_ENDPOINT: httpReceiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY: '60000',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=integration,k8s.pod.name=scopegate-0',
      },
    );
    const [grpcTrace, httpTrace, forwardAuthTrace] = [traceIdFor(300), traceIdFor(301), traceIdFor(302)];
    expect(answerOf(await checkIn(connect(served), denied, grpcTrace)).reason).toBe('token_missing');
    const viaHttp = await sendHttp(served.http!, {
      method: 'GET',
      target: PATH,
      headers: [['traceparent', traceparentFor(httpTrace)]],
    });
    expect(viaHttp.status).toBe(401);
    const viaForwardAuth = await sendHttp(served.forwardAuth!, {
      method: 'GET',
      target: '/auth',
      headers: [
        ['x-forwarded-method', 'GET'],
        ['x-forwarded-uri', PATH],
        ['x-forwarded-host', 'inventory.local'],
        ['traceparent', traceparentFor(forwardAuthTrace)],
      ],
    });
    expect(viaForwardAuth.status).toBe(401);
    expect(await stop(served)).toBe(0);

    const spanIn = (traceId: string) => httpReceiver.waitFor((s) => s.traceId === traceId);
    const [grpcSpan, httpSpan, forwardAuthSpan] = await Promise.all([
      spanIn(grpcTrace),
      spanIn(httpTrace),
      spanIn(forwardAuthTrace),
    ]);
    expect(httpReceiver.contentTypes.length).toBeGreaterThan(0);
    expect(new Set(httpReceiver.contentTypes)).toEqual(new Set(['application/x-protobuf']));
    expect(grpcSpan).toMatchObject({
      name: CHECK,
      kind: 'SPAN_KIND_SERVER',
      parentSpanId: '00f067aa0ba902b7',
      attributes: {
        'rpc.system': 'grpc',
        'scopegate.transport': 'grpc',
        'scopegate.parent': 'grpc_metadata',
        'scopegate.reason': 'token_missing',
      },
    });
    for (const [span, transport] of [
      [httpSpan, 'http'],
      [forwardAuthSpan, 'forward_auth'],
    ] as const) {
      expect(span).toMatchObject({
        name: 'scopegate.check',
        kind: 'SPAN_KIND_SERVER',
        parentSpanId: 'b7ad6b7169203331',
        attributes: {
          'scopegate.transport': transport,
          'scopegate.parent': 'request_headers',
          'scopegate.reason': 'token_missing',
          'scopegate.policy': 'inventory',
        },
      });
      expect(Object.keys(span.attributes).filter((name) => name.startsWith('rpc.'))).toEqual([]);
    }
    // OTEL_RESOURCE_ATTRIBUTES, next to scopegate's own resource attributes.
    for (const span of [grpcSpan, httpSpan, forwardAuthSpan])
      expect(span.resource).toMatchObject({
        'service.name': 'scopegate',
        'deployment.environment.name': 'integration',
        'k8s.pod.name': 'scopegate-0',
      });
    expect(typeof grpcSpan.resource['process.pid']).toBe('number');
  });

  it('http/json: the same span, as JSON', async () => {
    const served = await start(['--tracing', '--workers', '1', '--drain-seconds', '2'], {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_ENDPOINT: httpReceiver.endpoint,
      OTEL_BSP_SCHEDULE_DELAY: '60000',
    });
    const traceId = traceIdFor(310);
    const before = httpReceiver.contentTypes.length;
    expect(answerOf(await checkIn(connect(served), allowed, traceId)).reason).toBe('allowed');
    expect(await stop(served)).toBe(0);
    const span = await httpReceiver.waitFor((s) => s.traceId === traceId);
    expect(httpReceiver.contentTypes.slice(before)).toEqual(['application/json']);
    expect(span).toMatchObject({
      name: CHECK,
      kind: 'SPAN_KIND_SERVER',
      parentSpanId: '00f067aa0ba902b7',
      status: { code: 'STATUS_CODE_UNSET' },
      attributes: {
        'scopegate.transport': 'grpc',
        'scopegate.decision': 'allow',
        'scopegate.dry_run': false,
        'scopegate.route': 'list_transactions',
      },
      resource: { 'service.name': 'scopegate' },
    });
  });
});

describe('off: no OpenTelemetry SDK at all', () => {
  const preload = join(import.meta.dirname, '..', 'support', 'loaded-modules.cjs');

  async function loadedModules(more: string[], env: NodeJS.ProcessEnv): Promise<string[]> {
    const report = join(mkdtempSync(join(tmpdir(), 'scopegate-loaded-')), 'modules.json');
    const served = await start(['--workers', '1', ...more], {
      ...env,
      NODE_OPTIONS: `--require ${preload}`,
      LOADED_MODULES_REPORT: report,
    });
    const connection = connect(served);
    await checkIn(connection, allowed, traceIdFor(200));
    await checkIn(connection, denied, traceIdFor(201));
    expect(await stop(served)).toBe(0);
    // The API alone (no-op until an SDK registers) is prom-client's: its default CPU metric loads it for
    // exemplars, with or without tracing.
    return (JSON.parse(readFileSync(report, 'utf8')) as string[]).filter(
      (path) => !path.includes('/@opentelemetry/api/'),
    );
  }

  it('without --tracing the process loads no OpenTelemetry SDK module; with it, it does', async () => {
    expect(await loadedModules([], { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint })).toEqual([]);
    expect(await loadedModules([], { OTEL_TRACES_EXPORTER: 'none' })).toEqual([]);
    const on = await loadedModules(['--tracing'], {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    });
    expect(on.some((path) => path.includes('sdk-trace'))).toBe(true);
    // Only the exporter the protocol names.
    expect(on.some((path) => path.includes('exporter-trace-otlp-proto'))).toBe(false);
  });
});
