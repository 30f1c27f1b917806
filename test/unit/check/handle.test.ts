// The one fail-closed Check function: decide, answer, record. Whatever fails on the way (the decision throws
// or rejects, the answer cannot be built, even recording it fails) the caller gets an internal_error
// CheckResponse, never a thrown error or a rejected promise an edge could turn into a gRPC error Envoy fails
// open on. Every answer is counted and logged as what was sent; a decision the cache keeps is answered with
// the bytes encoded once.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecisionCache } from '../../../src/cache/decisions.js';
import type { Snapshot } from '../../../src/check/decide.js';
import { type CheckDeps, handleCheck } from '../../../src/check/handle.js';
import { Authenticator } from '../../../src/identity/authenticate.js';
import { KeyRegistry } from '../../../src/identity/key-registry.js';
import type { CompiledPolicy } from '../../../src/policy/types.js';
import type { DecisionRecord } from '../../../src/record/types.js';
import { type Answer, decodeAnswer, EncodedAnswer } from '../../../src/response/kept.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { CHECK_SPAN_NAME, HTTP_CHECK_SPAN_NAME, JWKS_SPAN_NAME } from '../../../src/telemetry/otel.js';
import { ok, type Principal } from '../../../src/vocabulary/index.js';
import { checkRequestFor } from '../../../src/wire/check-request.js';
import type { CheckRequest } from '../../../src/wire/types.js';
import { type JwksServer, startJwksServer } from '../../support/jwks-server.js';
import { captureLog } from '../../support/logs.js';
import { compile, examplePolicy, supportThreadClaims } from '../../support/policies.js';
import { answerOf, setOf } from '../../support/scopegate.js';
import { recordTracing } from '../../support/spans.js';
import { mintToken, newSigningKey, type SigningKey } from '../../support/tokens.js';

let key: SigningKey;
let jwks: JwksServer;
let registry: KeyRegistry;
let policy: CompiledPolicy;

beforeAll(async () => {
  key = await newSigningKey('RS256');
  jwks = await startJwksServer([key.publicJwk]);
  registry = new KeyRegistry({ fetchTimeoutMs: 2000 });
  policy = examplePolicy(jwks.uri);
  await registry.start(policy.issuers);
});
afterAll(async () => {
  registry.close();
  await jwks.close();
});

/** Deps around one snapshot, with real metrics and a real logger at debug writing into memory. */
function depsFor(snapshot: Snapshot, more: Partial<CheckDeps> = {}) {
  const captured = captureLog('debug');
  const metrics = new Metrics({ defaultMetrics: false });
  const deps: CheckDeps = { current: () => setOf(snapshot), metrics, log: captured.log, ...more };
  return { deps, metrics, lines: captured.lines };
}

const verifying = (decisions?: DecisionCache): Snapshot => ({
  policy,
  authenticator: new Authenticator(policy, registry),
  ...(decisions && { decisions }),
});

/** An identity phase that fails the way a bug would: by throwing, or by rejecting. */
const broken = (how: 'throws' | 'rejects'): Snapshot => ({
  policy,
  authenticator: {
    identify: () => {
      if (how === 'throws') throw new Error('identity phase bug');
      return Promise.reject(new Error('identity phase bug, later'));
    },
  },
});

/** GET /api/inventory/transactions as Envoy sends it, with the request id `req-1`. */
function list(token: string | undefined, headers: Array<[string, string]> = []): CheckRequest {
  const request = checkRequestFor({
    method: 'GET',
    path: '/api/inventory/transactions',
    headers,
    ...(token !== undefined && { token }),
  });
  const http = request.attributes!.request!.http!;
  http.id = 'req-1';
  http.headers!['x-request-id'] = 'req-1';
  return request;
}

async function count(metrics: Metrics, labels: string): Promise<number> {
  const text = await metrics.registry.metrics();
  const line = text.split('\n').find((l) => l.startsWith(`scopegate_decisions_total{${labels}} `));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

const INTERNAL_ERROR = 'decision="deny",reason="internal_error",route="",policy="inventory",transport="grpc"';

function expectInternalError(answer: Answer, requestId: string) {
  const seen = answerOf(decodeAnswer(answer));
  expect(seen).toMatchObject({ status: 503, grpcCode: 14, reason: 'internal_error' });
  expect(seen.body).toMatchObject({ reason: 'internal_error', request_id: requestId });
  expect(seen.headers.get('retry-after')).toBe('1');
}

describe('the kept answer path: decide, answer, record', () => {
  it('an allow is answered, counted by route and logged at debug with its request id', async () => {
    const { deps, metrics, lines } = depsFor(verifying());
    const token = await mintToken(key, supportThreadClaims('inventory.read'));
    const answer = answerOf(decodeAnswer(await handleCheck(list(token), deps)));
    expect(answer).toMatchObject({ status: 200, reason: 'allowed' });
    expect(answer.headers.get('x-scopegate-subject')).toBe('svc-inventory-sync');
    expect(
      await count(
        metrics,
        'decision="allow",reason="allowed",route="list_transactions",policy="inventory",transport="grpc"',
      ),
    ).toBe(1);
    expect(lines).toEqual([
      expect.objectContaining({ level: 'debug', msg: 'decision', decision: 'allow', request_id: 'req-1' }),
    ]);
  });

  it('a deny that needed no waiting is answered synchronously, counted and logged at info', () => {
    const { deps, metrics, lines } = depsFor(verifying());
    const answer = handleCheck(list(undefined), deps);
    expect(answer).not.toBeInstanceOf(Promise);
    expect(answerOf(decodeAnswer(answer as Answer))).toMatchObject({ status: 401, reason: 'token_missing' });
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'info',
        decision: 'deny',
        reason: 'token_missing',
        request_id: 'req-1',
      }),
    ]);
    return expect(
      count(metrics, 'decision="deny",reason="token_missing",route="",policy="inventory",transport="grpc"'),
    ).resolves.toBe(1);
  });

  it('a CheckRequest too broken to read is request_malformed, with a request id made up for it', () => {
    const { deps, lines } = depsFor(verifying());
    const answer = answerOf(decodeAnswer(handleCheck({}, deps) as Answer));
    expect(answer).toMatchObject({ status: 400, reason: 'request_malformed' });
    expect(answer.body?.request_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(lines[0]?.request_id).toBe(answer.body?.request_id);
  });

  it('a decision the cache keeps is answered with the bytes encoded the first time', async () => {
    const { deps, metrics } = depsFor(verifying(new DecisionCache()));
    const token = await mintToken(key, supportThreadClaims('inventory.read'));
    const first = await handleCheck(list(token), deps);
    const second = await handleCheck(list(token), deps);
    expect(first).toBeInstanceOf(EncodedAnswer);
    expect(second).toBe(first);
    expect(
      await count(
        metrics,
        'decision="allow",reason="allowed",route="list_transactions",policy="inventory",transport="grpc"',
      ),
    ).toBe(2);
    // Without a decision cache, nothing is kept: each answer is built afresh.
    const fresh = depsFor(verifying());
    expect(await handleCheck(list(token), fresh.deps)).not.toBeInstanceOf(EncodedAnswer);
  });

  it('the request’s own x-scopegate-* headers are stripped, even from a kept allow', async () => {
    const { deps } = depsFor(verifying(new DecisionCache()));
    const token = await mintToken(key, supportThreadClaims('inventory.read'));
    await handleCheck(list(token), deps);
    const spoofed = answerOf(
      decodeAnswer(await handleCheck(list(token, [['x-scopegate-tenant', 'x']]), deps)),
    );
    expect(spoofed.headersToRemove).toEqual(['x-scopegate-tenant']);
  });

  it('deny hints reach a 403 body only when the deps ask for them', async () => {
    const token = await mintToken(key, supportThreadClaims('inventory.write'));
    const write = checkRequestFor({
      method: 'POST',
      path: '/api/inventory/transactions',
      token,
      headers: [['content-type', 'application/json']],
      body: '{"location":"WH01"}',
    });
    const plain = answerOf(decodeAnswer(await handleCheck(write, depsFor(verifying()).deps)));
    const hinted = answerOf(
      decodeAnswer(await handleCheck(write, depsFor(verifying(), { denyHints: true }).deps)),
    );
    expect(plain).toMatchObject({ status: 403, reason: 'scope_missing' });
    expect(plain.body).not.toHaveProperty('hints');
    expect(hinted.body?.hints).toEqual(['request scope inventory.read as well']);
  });
});

describe('fail closed', () => {
  it('a decision that throws is an internal_error answer, at once; the failure and the deny are logged', async () => {
    const { deps, metrics, lines } = depsFor(broken('throws'));
    const answer = handleCheck(list('a.b.c'), deps);
    expect(answer).not.toBeInstanceOf(Promise);
    expectInternalError(answer as Answer, 'req-1');
    expect(await count(metrics, INTERNAL_ERROR)).toBe(1);
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['error', 'check failed'],
      ['info', 'decision'],
    ]);
    expect(lines[0]).toMatchObject({ err: { message: 'identity phase bug' } });
    expect(lines[1]).toMatchObject({ decision: 'deny', reason: 'internal_error', request_id: 'req-1' });
  });

  it('a decision that rejects is an internal_error answer too: the promise resolves, never rejects', async () => {
    const { deps, metrics, lines } = depsFor(broken('rejects'));
    const pending = handleCheck(list('a.b.c'), deps);
    expect(pending).toBeInstanceOf(Promise);
    expectInternalError(await pending, 'req-1');
    expect(await count(metrics, INTERNAL_ERROR)).toBe(1);
    expect(lines[0]).toMatchObject({ level: 'error', err: { message: 'identity phase bug, later' } });
  });

  it('an answer that cannot be built (an identity no header can carry) is an internal_error, not an allow', async () => {
    // A policy with no clients and no roles: the scope alone allows, so the identity reaches the answer.
    const open = compile(`version: 1
authentication:
  issuers:
    - { issuer: "https://idp.example/", audiences: [inventory], algorithms: [RS256], jwks: { uri: "${jwks.uri}" } }
scopes:
  inventory.read: [INV_TRANSACTION_READ]
routes:
  - { name: list_transactions, method: GET, path: /api/inventory/transactions, permissions: [INV_TRANSACTION_READ] }
`);
    const principal: Principal = {
      subject: 'svc-inventory-sync\nx-injected: yes',
      scopes: new Set(['inventory.read']),
      roles: new Set(),
      locations: [],
    };
    const { deps, metrics, lines } = depsFor({
      policy: open,
      authenticator: { identify: () => ok(principal) },
    });
    expectInternalError(handleCheck(list('a.b.c'), deps) as Answer, 'req-1');
    // The policy here is named after its file (policy.yaml): counted under it, not under the example's name.
    expect(
      await count(
        metrics,
        'decision="allow",reason="allowed",route="list_transactions",policy="policy",transport="grpc"',
      ),
    ).toBe(0);
    expect(await count(metrics, INTERNAL_ERROR.replace('inventory', 'policy'))).toBe(1);
    expect(lines[0]).toMatchObject({
      level: 'error',
      err: { message: 'x-scopegate-subject would not reach the upstream verbatim' },
    });
  });

  it('when even recording fails, a bare internal_error answer is still sent, at once or later', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.recordDecision = () => {
      throw new Error('metrics broken');
    };
    for (const snapshot of [broken('throws'), broken('rejects'), verifying()]) {
      const { deps } = depsFor(snapshot, { metrics });
      expectInternalError(await handleCheck(list(undefined), deps), '');
    }
  });
});

describe('traced (serve --tracing): the same answers, the deny line joined to the trace', () => {
  const envoy = (name: string) =>
    name === 'traceparent' ? '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' : undefined;

  it("a deny's log line carries the Check span's trace and span ids; its body's request_id is unchanged", async () => {
    const recorded = await recordTracing();
    const { deps, lines } = depsFor(verifying(), { tracing: recorded.tracing });
    const answer = handleCheck(list(undefined), deps, envoy);
    // Traced or not, a Check that needed no waiting is answered synchronously.
    expect(answer).not.toBeInstanceOf(Promise);
    expect(answerOf(decodeAnswer(answer as Answer)).body).toMatchObject({ request_id: 'req-1' });
    const [span] = await recorded.flush();
    expect(lines[0]).toMatchObject({
      reason: 'token_missing',
      request_id: 'req-1',
      trace_id: '4bf92f3577b34da6a3ce929d0e0e4736',
      span_id: span!.spanContext().spanId,
    });
    expect(span!.name).toBe(CHECK_SPAN_NAME);
    expect(span!.attributes).toMatchObject({
      'scopegate.transport': 'grpc',
      'scopegate.parent': 'grpc_metadata',
      'scopegate.reason': 'token_missing',
      'scopegate.policy': 'inventory',
    });
  });

  it.each(['http', 'forward_auth'] as const)(
    "at the %s door the span is the Check's, not the RPC's, and the received request's traceparent is its parent",
    async (transport) => {
      const recorded = await recordTracing();
      const { deps } = depsFor(verifying(), { tracing: recorded.tracing, transport });
      const client = '0af7651916cd43dd8448eb211c80319c';
      const received = (name: string) =>
        name === 'traceparent' ? `00-${client}-b7ad6b7169203331-01` : undefined;
      handleCheck(list(undefined), deps, received);
      const [span] = await recorded.flush();
      expect(span!.name).toBe(HTTP_CHECK_SPAN_NAME);
      expect(span!.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
      expect(span!.spanContext().traceId).toBe(client);
      expect(span!.attributes).toMatchObject({
        'scopegate.transport': transport,
        'scopegate.parent': 'request_headers',
        'scopegate.reason': 'token_missing',
      });
      expect(Object.keys(span!.attributes).filter((name) => name.startsWith('rpc.'))).toEqual([]);
    },
  );

  it.each(['grpc', 'http'] as const)(
    'at the %s door a malformed traceparent or b3 gets the answer no trace context gets, and a trace of its own',
    async (transport) => {
      const recorded = await recordTracing();
      const token = await mintToken(key, supportThreadClaims('inventory.read'));
      const malformed: Array<[string, string]>[] = [
        [['traceparent', 'garbage']],
        [['traceparent', `00-${'0'.repeat(32)}-00f067aa0ba902b7-01`]],
        [['b3', 'not-b3']],
        [
          ['x-b3-traceid', 'zz'],
          ['x-b3-spanid', 'e457b5a2e4d86bd1'],
        ],
      ];
      for (const bad of malformed)
        for (const presented of [token, undefined]) {
          const plain = decodeAnswer(await handleCheck(list(presented), depsFor(verifying()).deps));
          // In the call's own headers and in the request's: every place a context is looked for.
          const callHeaders = (name: string) => bad.find(([n]) => n === name)?.[1];
          const traced = decodeAnswer(
            await handleCheck(
              list(presented, bad),
              depsFor(verifying(), { tracing: recorded.tracing, transport }).deps,
              callHeaders,
            ),
          );
          expect(answerOf(traced).reason).toBe(presented ? 'allowed' : 'token_missing');
          expect(traced).toEqual(plain);
        }
      const spans = await recorded.flush();
      expect(spans).toHaveLength(malformed.length * 2);
      for (const span of spans) {
        expect(span.parentSpanContext).toBeUndefined();
        expect(span.attributes['scopegate.parent']).toBe('none');
      }
    },
  );

  it("a deny's decision record carries the trace id of the Check's span", async () => {
    const recorded = await recordTracing();
    const written: DecisionRecord[] = [];
    const records = { sample: () => 1, write: (r: DecisionRecord) => void written.push(r), failed: () => {} };
    const { deps } = depsFor(verifying(), { tracing: recorded.tracing, records });
    handleCheck(list(undefined), deps, envoy);
    const untraced = depsFor(verifying(), { records });
    handleCheck(list(undefined), untraced.deps);
    expect(written.map((r) => [r.reason, r.trace_id])).toEqual([
      ['token_missing', '4bf92f3577b34da6a3ce929d0e0e4736'],
      ['token_missing', undefined],
    ]);
  });

  it('answers exactly what an untraced Check answers, allow and deny', async () => {
    const recorded = await recordTracing();
    const token = await mintToken(key, supportThreadClaims('inventory.read'));
    for (const request of [list(token), list(undefined), list('a.b.c'), {}]) {
      const plain = decodeAnswer(await handleCheck(request, depsFor(verifying()).deps));
      const traced = decodeAnswer(
        await handleCheck(request, depsFor(verifying(), { tracing: recorded.tracing }).deps, envoy),
      );
      const stable = (a: typeof plain) =>
        JSON.stringify(a).replace(/[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}/g, '<id>');
      expect(stable(traced)).toBe(stable(plain));
    }
    expect(await recorded.flush()).toHaveLength(4);
  });

  it('the span says whether the token and the decision came from the caches', async () => {
    const recorded = await recordTracing();
    const { deps } = depsFor(verifying(new DecisionCache()), { tracing: recorded.tracing });
    const token = await mintToken(key, { ...supportThreadClaims('inventory.read'), jti: 'cache-results' });
    await handleCheck(list(token), deps, envoy);
    await handleCheck(list(token), deps, envoy);
    const spans = await recorded.flush();
    expect(
      spans.map((s) => [s.attributes['scopegate.cache.token'], s.attributes['scopegate.cache.decision']]),
    ).toEqual([
      ['miss', 'miss'],
      ['hit', 'hit'],
    ]);
  });

  it("a JWKS fetch a Check's new kid starts is that Check's child; start-up and background fetches are root spans", async () => {
    const recorded = await recordTracing();
    const rotated = await newSigningKey('RS256');
    const issuerKeys = await startJwksServer([key.publicJwk]);
    const keys = new KeyRegistry({ fetchTimeoutMs: 2000, onFetch: recorded.tracing.jwksFetch });
    try {
      const rotating = examplePolicy(issuerKeys.uri);
      await keys.start(rotating.issuers);
      issuerKeys.setKeys([key.publicJwk, rotated.publicJwk]);
      const snapshot: Snapshot = { policy: rotating, authenticator: new Authenticator(rotating, keys) };
      const { deps } = depsFor(snapshot, { tracing: recorded.tracing });
      const answer = await handleCheck(list(await mintToken(rotated, supportThreadClaims())), deps, envoy);
      expect(answerOf(decodeAnswer(answer)).reason).toBe('allowed');
    } finally {
      keys.close();
      await issuerKeys.close();
    }
    const spans = await recorded.flush();
    const check = spans.find((s) => s.name === CHECK_SPAN_NAME)!;
    const [atStart, forCheck] = spans.filter((s) => s.name === JWKS_SPAN_NAME);
    expect(atStart!.parentSpanContext).toBeUndefined();
    expect(forCheck!.parentSpanContext?.spanId).toBe(check.spanContext().spanId);
    expect(forCheck!.spanContext().traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(forCheck!.attributes).toMatchObject({
      'scopegate.jwks.result': 'success',
      'scopegate.jwks.keys': 2,
    });
  });

  it('untraced, the log line has no trace fields', () => {
    const { deps, lines } = depsFor(verifying());
    handleCheck(list(undefined), deps, envoy);
    expect(lines[0]).not.toHaveProperty('trace_id');
    expect(lines[0]).not.toHaveProperty('span_id');
  });
});
