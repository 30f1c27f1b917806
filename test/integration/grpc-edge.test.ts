// The gRPC edge's protocol over real loopback HTTP/2: what a grpc-js client sees, and what raw HTTP/2 requests
// get for the cases a gRPC library never sends, each with the status grpc-js's server gave (h2-grpc.ts): an
// unknown method, a wrong content type, an oversized message (refused from its prefix, before its bytes come),
// no message or two, undecodable bytes, compressed messages; a client resetting mid-message or dropping the
// connection mid-Check leaves the server serving; a drain lets calls in flight finish.
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { Snapshot } from '../../src/check/decide.js';
import type { CheckDeps } from '../../src/check/handle.js';
import { CHECK_PATH, createGrpcServer, HealthStatus } from '../../src/server/grpc.js';
import { GrpcStatus, H2GrpcServer } from '../../src/server/h2-grpc.js';
import { createLogger } from '../../src/telemetry/log.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { deny } from '../../src/vocabulary/index.js';
import { checkRequestFor } from '../../src/wire/check-request.js';
import { authorizationService, healthService, type ReceivedCheckResponse } from '../../src/wire/proto.js';
import { connectAuthorization } from '../support/grpc-client.js';
import { examplePolicy } from '../support/policies.js';
import { framed, messagesIn, type RawReply, rawCall, rawSession } from '../support/raw-h2.js';
import { answerOf, setOf } from '../support/scopegate.js';

const policy = examplePolicy();
/** No caller has a token this authenticator takes: every Check is a 401 token_missing CheckResponse. */
const snapshot: Snapshot = {
  policy,
  authenticator: { identify: () => deny('token_missing', 'no bearer token') },
};
const deps: CheckDeps = {
  current: () => setOf(snapshot),
  metrics: new Metrics({ defaultMetrics: false }),
  log: createLogger('silent'),
};
const encodeCheck = authorizationService.Check.requestSerialize;
const decodeCheckResponse = authorizationService.Check.responseDeserialize as (
  bytes: Buffer,
) => ReceivedCheckResponse;
const list = encodeCheck(
  checkRequestFor({ method: 'GET', path: '/api/inventory/transactions', headers: [] }),
);

const stops: Array<() => void> = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

async function serving(server = createGrpcServer(deps, new HealthStatus())): Promise<string> {
  const port = await server.listen('127.0.0.1', 0);
  stops.push(() => server.destroy());
  return `127.0.0.1:${port}`;
}

async function session(address?: string) {
  const opened = rawSession(address ?? (await serving()));
  stops.push(() => opened.destroy());
  return opened;
}

/** The reason of the one CheckResponse in a reply. */
/** A server whose Check echoes its request bytes once `release` is called: a call held in flight. */
function heldEchoServer() {
  let release = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let answered = 0;
  const server = new H2GrpcServer({
    methods: new Map([
      [
        CHECK_PATH,
        {
          kind: 'unary' as const,
          decode: (bytes: Buffer) => bytes,
          handle: async (request: Buffer) => {
            await held;
            answered++;
            return request;
          },
        },
      ],
    ]),
  });
  return { server, release: () => release(), answered: () => answered };
}

function reasonIn(reply: RawReply): string | undefined {
  const [message] = messagesIn(reply.data);
  return message && answerOf(decodeCheckResponse(message)).reason;
}

describe('a Check, as Envoy sends it', () => {
  it('is answered with HTTP 200, one CheckResponse message and grpc-status 0 in the trailers', async () => {
    const reply = await rawCall(await session(), CHECK_PATH, [framed(list)]);
    expect(reply.headers[':status']).toBe(200);
    expect(reply.headers['content-type']).toBe('application/grpc+proto');
    expect(reply.trailers?.['grpc-status']).toBe('0');
    expect(messagesIn(reply.data)).toHaveLength(1);
    expect(reasonIn(reply)).toBe('token_missing');
  });

  it('is read however its message is split across DATA frames', async () => {
    const whole = framed(list);
    const chunks = Array.from({ length: whole.length }, (_, i) => whole.subarray(i, i + 1));
    const reply = await rawCall(await session(), CHECK_PATH, chunks);
    expect(reply.grpcStatus).toBe(GrpcStatus.OK);
    expect(reasonIn(reply)).toBe('token_missing');
  });

  it('an empty message is an empty CheckRequest, answered with a CheckResponse (never a gRPC error)', async () => {
    const reply = await rawCall(await session(), CHECK_PATH, [framed(Buffer.alloc(0))]);
    expect(reply.grpcStatus).toBe(GrpcStatus.OK);
    expect(messagesIn(reply.data)).toHaveLength(1);
  });

  it('gzip (grpc-encoding) is inflated; another encoding is UNIMPLEMENTED; a bomb past 4 MiB RESOURCE_EXHAUSTED', async () => {
    const s = await session();
    const gzip = { 'grpc-encoding': 'gzip' };
    expect(reasonIn(await rawCall(s, CHECK_PATH, [framed(gzipSync(list), 1)], { headers: gzip }))).toBe(
      'token_missing',
    );
    const snappy = await rawCall(s, CHECK_PATH, [framed(list, 1)], {
      headers: { 'grpc-encoding': 'snappy' },
    });
    expect(snappy.grpcStatus).toBe(GrpcStatus.UNIMPLEMENTED);
    const bomb = framed(gzipSync(Buffer.alloc(5 * 2 ** 20)), 1);
    expect((await rawCall(s, CHECK_PATH, [bomb], { headers: gzip })).grpcStatus).toBe(
      GrpcStatus.RESOURCE_EXHAUSTED,
    );
    const corrupt = await rawCall(s, CHECK_PATH, [framed(Buffer.from('not gzip'), 1)], { headers: gzip });
    expect(corrupt).toMatchObject({
      grpcStatus: GrpcStatus.INTERNAL,
      grpcMessage: 'Failed to decompress message',
    });
  });
});

describe('what grpc-js refused is refused alike', () => {
  it('an unknown method: trailers-only UNIMPLEMENTED, and a grpc-js client reads it so', async () => {
    const address = await serving();
    const reply = await rawCall(await session(address), '/envoy.service.auth.v2.Authorization/Check', [
      framed(list),
    ]);
    expect(reply.headers[':status']).toBe(200);
    expect(reply.trailers).toBeUndefined();
    expect(reply).toMatchObject({
      grpcStatus: GrpcStatus.UNIMPLEMENTED,
      grpcMessage: 'The server does not implement the method /envoy.service.auth.v2.Authorization/Check',
    });
    const Client = grpc.makeGenericClientConstructor(
      { List: { ...healthService.Check, path: '/grpc.health.v1.Health/List' } },
      'Health',
    );
    const client = new Client(address, grpc.credentials.createInsecure());
    stops.push(() => client.close());
    const error = await new Promise<grpc.ServiceError | null>((resolve) =>
      (client as unknown as { List: (r: object, cb: (e: grpc.ServiceError | null) => void) => void }).List(
        {},
        resolve,
      ),
    );
    expect(error?.code).toBe(grpc.status.UNIMPLEMENTED);
  });

  it('a content type that is not application/grpc: HTTP 415 and no gRPC status; a GET: HTTP 405', async () => {
    const s = await session();
    for (const type of ['application/json', 'text/plain']) {
      const reply = await rawCall(s, CHECK_PATH, [framed(list)], { headers: { 'content-type': type } });
      expect(reply.headers[':status']).toBe(415);
      expect(reply.grpcStatus).toBeUndefined();
    }
    expect((await rawCall(s, CHECK_PATH, [], { headers: { ':method': 'GET' } })).headers[':status']).toBe(
      405,
    );
    const plus = await rawCall(s, CHECK_PATH, [framed(list)], {
      headers: { 'content-type': 'application/grpc+proto' },
    });
    expect(plus.grpcStatus).toBe(GrpcStatus.OK);
  });

  it('a message announced over 4 MiB: RESOURCE_EXHAUSTED at once, before its bytes are sent', async () => {
    const prefix = Buffer.from([0, 0, 0x50, 0, 0]); // 5 MiB
    // The request is never ended and sends only a few bytes of the message: the answer comes anyway.
    const reply = await rawCall(await session(), CHECK_PATH, [prefix, Buffer.alloc(10)], { end: false });
    expect(reply).toMatchObject({
      grpcStatus: GrpcStatus.RESOURCE_EXHAUSTED,
      grpcMessage: 'Received message larger than max (5242880 vs 4194304)',
    });
  });

  it('a grpc-js client sending a CheckRequest over 4 MiB gets RESOURCE_EXHAUSTED; under it, an answer', async () => {
    const connection = connectAuthorization(await serving(), { ownConnection: true });
    stops.push(() => connection.close());
    const withBody = (bytes: number) =>
      checkRequestFor({
        method: 'POST',
        path: '/api/inventory/transactions',
        headers: [],
        body: 'x'.repeat(bytes),
      });
    expect(answerOf(await connection.check(withBody(3 * 2 ** 20), 10_000)).reason).toBe('token_missing');
    await expect(connection.check(withBody(5 * 2 ** 20), 10_000)).rejects.toMatchObject({
      code: grpc.status.RESOURCE_EXHAUSTED,
    });
  });

  it('bytes that are not a CheckRequest: INTERNAL "Error deserializing request"', async () => {
    // Field 1 (attributes), length-delimited, with a length running past the message.
    const reply = await rawCall(await session(), CHECK_PATH, [framed(Buffer.from([0x0a, 0x7f, 0x01]))]);
    expect(reply).toMatchObject({
      grpcStatus: GrpcStatus.INTERNAL,
      grpcMessage: 'Error deserializing request',
    });
  });

  it('no message, part of one, or two: UNIMPLEMENTED', async () => {
    const s = await session();
    expect((await rawCall(s, CHECK_PATH, [])).grpcStatus).toBe(GrpcStatus.UNIMPLEMENTED);
    expect((await rawCall(s, CHECK_PATH, [framed(list).subarray(0, 20)])).grpcStatus).toBe(
      GrpcStatus.UNIMPLEMENTED,
    );
    expect((await rawCall(s, CHECK_PATH, [framed(list), framed(list)])).grpcStatus).toBe(
      GrpcStatus.UNIMPLEMENTED,
    );
  });

  it('Health/Check for an unknown service: trailers-only NOT_FOUND', async () => {
    const request = healthService.Check.requestSerialize({ service: 'inventory' });
    const reply = await rawCall(await session(), '/grpc.health.v1.Health/Check', [framed(request)]);
    expect(reply).toMatchObject({ grpcStatus: GrpcStatus.NOT_FOUND, grpcMessage: 'unknown service' });
  });
});

describe('keepalive', () => {
  it('a client pinging an idle connection again and again is answered each time, and never sent away', async () => {
    const s = await session();
    await new Promise((resolve) => s.once('connect', resolve));
    let goaway = false;
    s.on('goaway', () => {
      goaway = true;
    });
    for (let i = 0; i < 20; i++)
      await new Promise<void>((resolve, reject) => s.ping((err) => (err ? reject(err) : resolve())));
    expect(goaway).toBe(false);
    expect(reasonIn(await rawCall(s, CHECK_PATH, [framed(list)]))).toBe('token_missing');
  });
});

describe('clients that go away', () => {
  it('a stream reset mid-message leaves the connection serving the next Check', async () => {
    const s = await session();
    const stream = s.request({ ':method': 'POST', ':path': CHECK_PATH, 'content-type': 'application/grpc' });
    stream.on('error', () => {});
    stream.write(framed(list).subarray(0, 30));
    await new Promise((resolve) => setTimeout(resolve, 20));
    stream.close(0x8); // CANCEL
    await new Promise((resolve) => stream.on('close', resolve));
    expect(reasonIn(await rawCall(s, CHECK_PATH, [framed(list)]))).toBe('token_missing');
  });

  it('a connection dropped while a Check is being answered: nothing is written to it, the server serves on', async () => {
    const { server, release, answered } = heldEchoServer();
    const address = await serving(server);
    const dropped = rawSession(address);
    dropped.on('error', () => {});
    const lost = rawCall(dropped, CHECK_PATH, [framed(list)]).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 50));
    dropped.destroy();
    await lost;
    release();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(answered()).toBe(1);
    const reply = await rawCall(await session(address), CHECK_PATH, [framed(Buffer.from('echo'))]);
    expect(messagesIn(reply.data)).toEqual([Buffer.from('echo')]);
  });
});

describe('draining', () => {
  it('lets a call in flight finish, then closes; new connections are refused', async () => {
    const { server, release } = heldEchoServer();
    const address = await serving(server);
    const s = await session(address);
    const inFlight = rawCall(s, CHECK_PATH, [framed(Buffer.from('slow'))]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    let closed = false;
    const closing = server.close().then(() => {
      closed = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(false);
    release();
    const reply = await inFlight;
    expect(reply.grpcStatus).toBe(GrpcStatus.OK);
    expect(messagesIn(reply.data)).toEqual([Buffer.from('slow')]);
    await closing;
    const late = rawSession(address);
    stops.push(() => late.destroy());
    await expect(
      new Promise((resolve, reject) => {
        late.once('connect', resolve);
        late.once('error', reject);
      }),
    ).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
