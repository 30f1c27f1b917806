// What a Check's span says, exported by the real trace SDK: a SERVER span named after the RPC in the trace
// Envoy is recording (at an HTTP door, after the Check, parented by the received request's own headers), the
// door, the decision and its reason, route, policy and revision, cache results and dry-run;
// subject and client only when asked for; ERROR only when scopegate is failing; a JWKS fetch a Check waited
// for is its child. A Check whose span cannot be started is answered untraced.
import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CHECK_SPAN_NAME,
  HTTP_CHECK_SPAN_NAME,
  JWKS_SPAN_NAME,
  openTracing,
} from '../../../src/telemetry/otel.js';
import type { Decision } from '../../../src/vocabulary/index.js';
import type { CheckRequest } from '../../../src/wire/types.js';
import { captureLog } from '../../support/logs.js';
import { recordTracing } from '../../support/spans.js';

const ENVOY_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const ENVOY_SPAN = '00f067aa0ba902b7';
const fromEnvoy = (name: string) =>
  name === 'traceparent' ? `00-${ENVOY_TRACE}-${ENVOY_SPAN}-01` : undefined;
const request: CheckRequest = { attributes: { request: { http: { headers: { ':path': '/' } } } } };

const scopeMissing: Decision = {
  reason: 'scope_missing',
  detail: 'route create_transaction requires INV_TRANSACTION_READ',
  route: 'create_transaction',
  policy: 'inventory',
  revision: 'rev-1',
  subject: 'svc-inventory-sync',
  client: 'inventory-sync',
};

const savedEnv = { ...process.env };
afterEach(() => {
  process.env = { ...savedEnv };
});

describe('the Check span', () => {
  it("is a SERVER span named after the RPC, child of Envoy's span, saying what was decided", async () => {
    const { tracing, flush } = await recordTracing();
    const ids = tracing.traceCheck(request, 'grpc', fromEnvoy, (span) => {
      span?.decided(scopeMissing, 'deny', 'req-1');
      return { traceId: span?.traceId, spanId: span?.spanId };
    });
    const [span] = await flush();
    expect(span).toMatchObject({ name: CHECK_SPAN_NAME, kind: SpanKind.SERVER });
    expect(span!.spanContext().traceId).toBe(ENVOY_TRACE);
    expect(span!.parentSpanContext?.spanId).toBe(ENVOY_SPAN);
    expect(ids).toEqual({ traceId: ENVOY_TRACE, spanId: span!.spanContext().spanId });
    expect(span!.attributes).toEqual({
      'rpc.system': 'grpc',
      'rpc.service': 'envoy.service.auth.v3.Authorization',
      'rpc.method': 'Check',
      'scopegate.transport': 'grpc',
      'scopegate.parent': 'grpc_metadata',
      'scopegate.decision': 'deny',
      'scopegate.reason': 'scope_missing',
      'scopegate.dry_run': false,
      'scopegate.request_id': 'req-1',
      'scopegate.route': 'create_transaction',
      'scopegate.policy': 'inventory',
      'scopegate.policy.revision': 'rev-1',
    });
    // An ordinary deny is the Check working.
    expect(span!.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('names the subject and client only with --trace-identities', async () => {
    const { tracing, flush } = await recordTracing({ identities: true });
    tracing.traceCheck(request, 'grpc', fromEnvoy, (span) => span?.decided(scopeMissing, 'deny', 'req-1'));
    const [span] = await flush();
    expect(span!.attributes).toMatchObject({
      'scopegate.subject': 'svc-inventory-sync',
      'scopegate.client': 'inventory-sync',
    });
  });

  it('a Check decided under a dry-run policy says so, whether it was allowed or denied', async () => {
    const { tracing, flush } = await recordTracing();
    tracing.traceCheck(request, 'grpc', undefined, (span) =>
      span?.decided({ ...scopeMissing, underDryRun: true, dryRun: true }, 'dry_run_deny', 'req-1'),
    );
    const allowed: Decision = { reason: 'allowed', detail: 'allowed', revision: 'rev-1', underDryRun: true };
    tracing.traceCheck(request, 'grpc', undefined, (span) => span?.decided(allowed, 'allow', 'req-2'));
    const [span, allow] = await flush();
    expect(span!.attributes).toMatchObject({
      'scopegate.decision': 'dry_run_deny',
      'scopegate.dry_run': true,
    });
    expect(allow!.attributes).toMatchObject({ 'scopegate.decision': 'allow', 'scopegate.dry_run': true });
    // No context in the metadata nor in the client's headers: a trace of its own.
    expect(span!.parentSpanContext).toBeUndefined();
    expect(span!.attributes['scopegate.parent']).toBe('none');
  });

  it('is an ERROR only when scopegate is failing (internal_error, keys_unavailable)', async () => {
    const { tracing, flush } = await recordTracing();
    for (const reason of ['keys_unavailable', 'internal_error', 'token_expired', 'allowed'] as const)
      tracing.traceCheck(request, 'grpc', undefined, (span) =>
        span?.decided(
          { reason, detail: reason, revision: 'rev-1' },
          reason === 'allowed' ? 'allow' : 'deny',
          'r',
        ),
      );
    const statuses = (await flush()).map((s) => [s.attributes['scopegate.reason'], s.status.code]);
    expect(statuses).toEqual([
      ['keys_unavailable', SpanStatusCode.ERROR],
      ['internal_error', SpanStatusCode.ERROR],
      ['token_expired', SpanStatusCode.UNSET],
      ['allowed', SpanStatusCode.UNSET],
    ]);
  });

  it('ends when a Check that had to wait is answered, with the cache results the phases wrote into it', async () => {
    const { tracing, flush } = await recordTracing();
    const answered = tracing.traceCheck(request, 'grpc', fromEnvoy, async (span) => {
      // What the caches do with a status object (cache/tokens.ts, cache/decisions.ts): no context manager.
      if (span) span.tokenCache = 'miss';
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (span) span.decisionCache = 'hit';
      span?.decided(scopeMissing, 'deny', 'req-1');
      return 'answer';
    });
    expect(answered).toBeInstanceOf(Promise);
    expect(await answered).toBe('answer');
    const [span] = await flush();
    expect(span!.attributes).toMatchObject({
      'scopegate.cache.token': 'miss',
      'scopegate.cache.decision': 'hit',
    });
    expect(span!.duration[1] + span!.duration[0] * 1e9).toBeGreaterThan(4e6);
  });

  it('says nothing of a cache that was not asked', async () => {
    const { tracing, flush } = await recordTracing();
    tracing.traceCheck(request, 'grpc', undefined, (span) => span?.decided(scopeMissing, 'deny', 'req-1'));
    const [span] = await flush();
    expect(Object.keys(span!.attributes).filter((name) => name.startsWith('scopegate.cache.'))).toEqual([]);
  });

  it('a sampler that drops it records nothing, yet the log still gets the ids', async () => {
    process.env.OTEL_TRACES_SAMPLER = 'always_off';
    const { tracing, flush } = await recordTracing();
    const ids = tracing.traceCheck(request, 'grpc', undefined, (span) => {
      span?.decided(scopeMissing, 'deny', 'req-1');
      return span?.traceId;
    });
    expect(ids).toMatch(/^[0-9a-f]{32}$/);
    expect(await flush()).toEqual([]);
  });
});

describe("the client's own context, when Envoy sends none", () => {
  const CLIENT = '0af7651916cd43dd8448eb211c80319c';
  const traceparent = `00-${CLIENT}-b7ad6b7169203331-01`;

  it.each([
    ['the header map', { headers: { ':path': '/', traceparent } }],
    [
      'raw headers (encode_raw_headers)',
      { header_map: { headers: [{ key: 'traceparent', raw_value: Buffer.from(traceparent) }] } },
    ],
  ])('is read from %s', async (_how, http) => {
    const { tracing, flush } = await recordTracing();
    tracing.traceCheck({ attributes: { request: { http } } } as CheckRequest, 'grpc', undefined, () => {});
    const [span] = await flush();
    expect(span!.spanContext().traceId).toBe(CLIENT);
    expect(span!.attributes['scopegate.parent']).toBe('http_headers');
  });
});

describe('at an HTTP door (--http, --forward-auth)', () => {
  const CLIENT = '0af7651916cd43dd8448eb211c80319c';
  const received =
    (headers: Record<string, string>) =>
    (name: string): string | undefined =>
      headers[name];
  // What the door described: here with a context of its own, which an HTTP door's span must never read.
  const described: CheckRequest = {
    attributes: {
      request: {
        http: { headers: { ':path': '/', traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-01` } },
      },
    },
  };

  it.each(['http', 'forward_auth'] as const)(
    '%s: a SERVER span named after the Check, not the RPC, saying its door; its parent is the received traceparent',
    async (transport) => {
      const { tracing, flush } = await recordTracing();
      const headers = received({ traceparent: `00-${CLIENT}-b7ad6b7169203331-01` });
      tracing.traceCheck(described, transport, headers, (span) =>
        span?.decided(scopeMissing, 'deny', 'req-1'),
      );
      const [span] = await flush();
      expect(span).toMatchObject({ name: HTTP_CHECK_SPAN_NAME, kind: SpanKind.SERVER });
      expect(span!.spanContext().traceId).toBe(CLIENT);
      expect(span!.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
      expect(span!.attributes).toMatchObject({
        'scopegate.transport': transport,
        'scopegate.parent': 'request_headers',
        'scopegate.reason': 'scope_missing',
      });
      expect(Object.keys(span!.attributes).filter((name) => name.startsWith('rpc.'))).toEqual([]);
    },
  );

  it('a malformed traceparent is ignored (B3 next to it is read), and no other place is tried', async () => {
    const { tracing, flush } = await recordTracing();
    tracing.traceCheck(described, 'http', received({ traceparent: 'garbage' }), () => {});
    tracing.traceCheck(
      described,
      'http',
      received({ traceparent: 'garbage', b3: `${CLIENT}-b7ad6b7169203331-1` }),
      () => {},
    );
    tracing.traceCheck(described, 'forward_auth', undefined, () => {});
    const [malformed, b3, none] = await flush();
    expect(malformed!.parentSpanContext).toBeUndefined();
    expect(malformed!.attributes['scopegate.parent']).toBe('none');
    expect(b3!.spanContext().traceId).toBe(CLIENT);
    expect(b3!.attributes['scopegate.parent']).toBe('request_headers');
    expect(none!.parentSpanContext).toBeUndefined();
    expect(none!.attributes['scopegate.parent']).toBe('none');
  });
});

describe('the JWKS fetch span', () => {
  it('is a child of the Check that started it, even after awaits, with the keys it loaded', async () => {
    const { tracing, flush } = await recordTracing();
    await tracing.traceCheck(request, 'grpc', fromEnvoy, async (span) => {
      // As the key store does: the fetch starts after the Check has awaited its token's verification.
      await new Promise((resolve) => setTimeout(resolve, 1));
      span?.keyFetch?.('https://idp.example.com/', 'uri')({ ok: true, keys: 2 });
    });
    const spans = await flush();
    const check = spans.find((s) => s.name === CHECK_SPAN_NAME)!;
    const child = spans.find((s) => s.name === JWKS_SPAN_NAME)!;
    expect(child.spanContext().traceId).toBe(ENVOY_TRACE);
    expect(child.parentSpanContext?.spanId).toBe(check.spanContext().spanId);
    expect(child).toMatchObject({
      kind: SpanKind.CLIENT,
      attributes: {
        'scopegate.issuer': 'https://idp.example.com/',
        'scopegate.jwks.source': 'uri',
        'scopegate.jwks.result': 'success',
        'scopegate.jwks.keys': 2,
      },
    });
  });

  it('a background refresh is a root span, even while a Check is running', async () => {
    const { tracing, flush } = await recordTracing();
    tracing.traceCheck(request, 'grpc', fromEnvoy, () => {
      tracing.jwksFetch(
        'https://idp.example.com/',
        'file',
      )({ ok: false, error: 'the JWKS file could not be read (ENOENT)' });
    });
    const background = (await flush()).find((s) => s.name === JWKS_SPAN_NAME)!;
    expect(background.parentSpanContext).toBeUndefined();
    expect(background.spanContext().traceId).not.toBe(ENVOY_TRACE);
    expect(background).toMatchObject({
      kind: SpanKind.INTERNAL,
      attributes: { 'scopegate.jwks.result': 'error' },
    });
    expect(background.status).toEqual({
      code: SpanStatusCode.ERROR,
      message: 'the JWKS file could not be read (ENOENT)',
    });
  });
});

describe('no context manager', () => {
  it('a traced Check leaves no span active, during it or after', async () => {
    const { tracing } = await recordTracing();
    const during = await tracing.traceCheck(request, 'grpc', fromEnvoy, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      return trace.getActiveSpan();
    });
    expect(during).toBeUndefined();
    expect(trace.getActiveSpan()).toBeUndefined();
  });
});

describe('tracing never changes the Check', () => {
  it('a Check whose span cannot start is answered untraced', async () => {
    const { tracing } = await recordTracing();
    const broken = {
      attributes: {
        request: {
          http: {
            get headers(): never {
              throw new Error('boom');
            },
          },
        },
      },
    };
    expect(tracing.traceCheck(broken as CheckRequest, 'grpc', undefined, (span) => span ?? 'untraced')).toBe(
      'untraced',
    );
    expect(trace.getActiveSpan()).toBeUndefined();
  });

  it('shutdown gives up at its deadline when the collector never answers', async () => {
    const hanging: SpanExporter = { export: () => {}, shutdown: () => new Promise(() => {}) };
    const tracing = await openTracing(
      { protocol: 'grpc', identities: false },
      captureLog('warn').log,
      hanging,
    );
    tracing.traceCheck(request, 'grpc', undefined, () => {});
    const started = Date.now();
    await tracing.shutdown(Date.now() + 200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
