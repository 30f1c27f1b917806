// The gRPC edge over real loopback gRPC: Authorization/Check answered by the one Check function (a kept
// answer's bytes sent as they were encoded, a failure still a CheckResponse), and grpc.health.v1 reporting
// one status for "" and the Authorization service, to Check and to Watch streams alike.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { DecisionCache } from '../../../src/cache/decisions.js';
import type { Snapshot } from '../../../src/check/decide.js';
import type { CheckDeps } from '../../../src/check/handle.js';
import { handleCheck } from '../../../src/check/handle.js';
import { decodeAnswer, EncodedAnswer } from '../../../src/response/kept.js';
import {
  AUTHORIZATION_SERVICE_NAME,
  answerCheck,
  bindGrpc,
  createGrpcServer,
  HealthStatus,
} from '../../../src/server/grpc.js';
import { createLogger } from '../../../src/telemetry/log.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { deny, ok, type Principal } from '../../../src/vocabulary/index.js';
import { checkRequestFor } from '../../../src/wire/check-request.js';
import type { ReceivedHealthCheckResponse } from '../../../src/wire/proto.js';
import { connectAuthorization, connectHealth } from '../../support/grpc-client.js';
import { examplePolicy } from '../../support/policies.js';
import { answerOf, setOf } from '../../support/scopegate.js';

const policy = examplePolicy();
const principal: Principal = {
  subject: 'svc-inventory-sync',
  issuer: policy.issuers[0]!.issuer,
  client: 'inventory-sync',
  grantType: 'client_credentials',
  scopes: new Set(['inventory.read']),
  roles: new Set(),
  locations: [],
  expiresAt: Math.floor(Date.now() / 1000) + 3600,
};
/** Every bearer token is the support thread's service account, signed by a key still published. */
const trusting = (decisions?: DecisionCache): Snapshot => ({
  policy,
  authenticator: {
    identify: (credential) =>
      credential.kind === 'bearer' ? ok(principal) : deny('token_missing', 'no bearer token'),
    signingKeyOf: () => ({ issuer: policy.issuers[0]!.issuer, thumbprint: 'thumb', alg: 'RS256' }),
    isPublished: () => true,
  },
  ...(decisions && { decisions }),
});
const failing: Snapshot = {
  policy,
  authenticator: {
    identify: () => {
      throw new Error('identity phase bug');
    },
  },
};
const deps = (snapshot: Snapshot): CheckDeps => ({
  current: () => setOf(snapshot),
  metrics: new Metrics({ defaultMetrics: false }),
  log: createLogger('silent'),
});
const list = (token?: string) =>
  checkRequestFor({
    method: 'GET',
    path: '/api/inventory/transactions',
    headers: [],
    ...(token !== undefined && { token }),
  });

const stops: Array<() => void> = [];
afterEach(() => {
  for (const stop of stops.splice(0)) stop();
});

/** A started server on 127.0.0.1 port 0; returns its address. */
async function serving(checkDeps: CheckDeps, health = new HealthStatus()): Promise<string> {
  const server = createGrpcServer(checkDeps, health);
  const port = await bindGrpc(server, '127.0.0.1:0');
  stops.push(() => server.destroy());
  return `127.0.0.1:${port}`;
}

function authorization(address: string) {
  const connection = connectAuthorization(address, { ownConnection: true });
  stops.push(() => connection.close());
  return connection;
}

describe('Authorization/Check', () => {
  it('answers through the Check path: a request without a token is a 401 token_missing CheckResponse', async () => {
    const answer = answerOf(await authorization(await serving(deps(trusting()))).check(list()));
    expect(answer).toMatchObject({ status: 401, grpcCode: 16, reason: 'token_missing' });
  });

  it('a Check that fails inside is an internal_error CheckResponse, not a gRPC error', async () => {
    const answer = answerOf(await authorization(await serving(deps(failing))).check(list('a.b.c')));
    expect(answer).toMatchObject({ status: 503, grpcCode: 14, reason: 'internal_error' });
  });

  it('a kept answer goes out as the bytes it was encoded to, and reads as the fresh answer would', async () => {
    const checkDeps = deps(trusting(new DecisionCache()));
    const connection = authorization(await serving(checkDeps));
    const first = await connection.check(list('a.b.c'));
    expect(await handleCheck(list('a.b.c'), checkDeps)).toBeInstanceOf(EncodedAnswer);
    const again = await connection.check(list('a.b.c'));
    expect(again).toEqual(first);
    const fresh = await authorization(await serving(deps(trusting()))).check(list('a.b.c'));
    expect(again).toEqual(fresh);
    expect(answerOf(again)).toMatchObject({ status: 200, reason: 'allowed' });
    expect(answerOf(again).headers.get('x-scopegate-subject')).toBe('svc-inventory-sync');
  });
});

describe('answerCheck', () => {
  it('is the CheckResponse decoded from the bytes the server would send, kept or fresh', async () => {
    for (const snapshot of [trusting(), trusting(new DecisionCache()), failing]) {
      const checkDeps = deps(snapshot);
      for (const request of [list(), list('a.b.c'), list('a.b.c')])
        expect(await answerCheck(request, checkDeps)).toEqual(
          decodeAnswer(await handleCheck(request, checkDeps)),
        );
    }
  });
});

describe('grpc.health.v1', () => {
  it('"" and the Authorization service report the one status; another service is unknown', () => {
    const health = new HealthStatus();
    expect(health.statusOf('')).toBe('SERVING');
    expect(health.statusOf(AUTHORIZATION_SERVICE_NAME)).toBe('SERVING');
    expect(health.statusOf('grpc.health.v1.Health')).toBe('SERVICE_UNKNOWN');
    health.set('NOT_SERVING');
    expect(health.statusOf('')).toBe('NOT_SERVING');
    expect(health.statusOf(AUTHORIZATION_SERVICE_NAME)).toBe('NOT_SERVING');
  });

  it('Check answers the status, and NOT_FOUND for an unknown service', async () => {
    const health = new HealthStatus();
    const connection = connectHealth(await serving(deps(trusting()), health));
    stops.push(() => connection.close());
    expect(await connection.check('')).toBe('SERVING');
    health.set('NOT_SERVING');
    expect(await connection.check(AUTHORIZATION_SERVICE_NAME)).toBe('NOT_SERVING');
    await expect(connection.check('inventory')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it('Watch reports the status now and each change, and ends when the server drains', async () => {
    const health = new HealthStatus();
    const connection = connectHealth(await serving(deps(trusting()), health));
    stops.push(() => connection.close());
    const seen: string[] = [];
    const stream = connection.client.Watch({ service: '' });
    stream.on('data', (message: ReceivedHealthCheckResponse) => seen.push(message.status ?? 'UNKNOWN'));
    const ended = new Promise<void>((resolve) => stream.on('end', resolve));
    stream.on('error', () => {});
    await until(() => seen.length === 1);
    health.set('NOT_SERVING');
    await until(() => seen.length === 2);
    health.endWatches();
    await ended;
    expect(seen).toEqual(['SERVING', 'NOT_SERVING']);
  });

  it('Watch on an unknown service reports SERVICE_UNKNOWN and hears no later change', async () => {
    const health = new HealthStatus();
    const connection = connectHealth(await serving(deps(trusting()), health));
    stops.push(() => connection.close());
    expect(await connection.watchFirst('inventory')).toBe('SERVICE_UNKNOWN');
    const seen: string[] = [];
    const stream = connection.client.Watch({ service: 'inventory' });
    stream.on('data', (message: ReceivedHealthCheckResponse) => seen.push(message.status ?? 'UNKNOWN'));
    stream.on('error', () => {});
    await until(() => seen.length === 1);
    health.set('NOT_SERVING');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen).toEqual(['SERVICE_UNKNOWN']);
    stream.cancel();
  });
});

describe('bindGrpc', () => {
  it('resolves with the bound port, and rejects an address it cannot bind', async () => {
    const server = createGrpcServer(deps(trusting()), new HealthStatus());
    stops.push(() => server.destroy());
    await expect(bindGrpc(server, 'no-such-host.invalid:0')).rejects.toBeInstanceOf(Error);
    expect(await bindGrpc(server, '127.0.0.1:0')).toBeGreaterThan(0);
  });
});

async function until(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
