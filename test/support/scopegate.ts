// Starts scopegate in-process on loopback port 0 against a real HTTP JWKS server, and sends HTTP-shaped
// requests through real gRPC Check calls, returning what Envoy would send the client.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JWTPayload } from 'jose';
import type { Logger } from 'pino';
import type { Snapshot } from '../../src/check/decide.js';
import { serveSettings } from '../../src/config/settings.js';
import { PolicySet } from '../../src/policy/set.js';
import { headerValueText } from '../../src/response/encode.js';
import { type Running, startServer } from '../../src/server/app.js';
import { createLogger } from '../../src/telemetry/log.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { checkRequestFor } from '../../src/wire/check-request.js';
import type { ReceivedCheckResponse } from '../../src/wire/proto.js';
import type { CheckRequest } from '../../src/wire/types.js';
import { type AuthorizationConnection, connectAuthorization, deniedHttpStatus } from './grpc-client.js';
import { type JwksServer, startJwksServer } from './jwks-server.js';
import { EXAMPLE_AUDIENCE, EXAMPLE_ISSUER, examplePolicyText } from './policies.js';
import { mintToken, newSigningKey, type SigningKey } from './tokens.js';

/** A set of one policy, as `--policy FILE` serves it: what the Check path reads for a single snapshot. */
export function setOf(snapshot: Snapshot): PolicySet<Snapshot> {
  return new PolicySet([{ owns: snapshot.policy.owns, value: snapshot }], true);
}

/** The one snapshot a `--policy FILE` server serves now. */
export function onlySnapshot(running: Running): Snapshot {
  const only = running.current().only;
  if (!only?.ok) throw new Error('this server serves a policy set, not one file');
  return only.value;
}

export interface HttpAnswer {
  /** 200 when allowed (Envoy forwards upstream), else the denied status. */
  readonly status: number;
  readonly grpcCode: number;
  readonly reason: string | undefined;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Record<string, unknown> | undefined;
  readonly headersToRemove: readonly string[];
  readonly raw: ReceivedCheckResponse;
}

export function answerOf(raw: ReceivedCheckResponse): HttpAnswer {
  const allowed = raw.denied_response === undefined;
  const headerList = (allowed ? raw.ok_response?.headers : raw.denied_response?.headers) ?? [];
  const text = raw.denied_response?.body;
  return {
    status: allowed ? 200 : (deniedHttpStatus(raw) ?? 403),
    grpcCode: raw.status?.code ?? 0,
    reason: raw.dynamic_metadata?.fields?.reason?.string_value,
    headers: new Map(headerList.map((h) => [h.header.key, headerValueText(h.header)])),
    body: text ? (JSON.parse(text) as Record<string, unknown>) : undefined,
    headersToRemove: raw.ok_response?.headers_to_remove ?? [],
    raw,
  };
}

export interface HttpLike {
  method: string;
  path: string;
  token?: string;
  headers?: Array<[string, string]>;
  body?: string;
}

export interface Harness {
  readonly key: SigningKey;
  readonly jwks: JwksServer;
  readonly running: Running;
  readonly metrics: Metrics;
  readonly policyFile: string;
  readonly grpc: AuthorizationConnection;
  /** A token for the example issuer and audience, signed by the harness key, valid for 5 minutes. */
  token(claims: JWTPayload, options?: Parameters<typeof mintToken>[2]): Promise<string>;
  /** The support thread's service account, with the given scopes. */
  syncToken(scope: string, more?: JWTPayload): Promise<string>;
  send(request: HttpLike): Promise<HttpAnswer>;
  sendRaw(request: CheckRequest): Promise<HttpAnswer>;
  scrape(): Promise<string>;
  /** Value of one sample of the Prometheus text, e.g. `scopegate_cache_lookups_total{cache="decision",result="hit"}`. */
  sample(series: string): Promise<number>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** A JWKS server to use (shared between servers); default: a new one publishing a new key of this harness. */
  readonly jwks?: JwksServer;
  readonly jwksDown?: boolean;
  /** More `serve` flags; they win over the harness's own (e.g. a shorter `--jwks-timeout-ms`). */
  readonly flags?: readonly string[];
  readonly log?: Logger;
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * The one way tests start scopegate in-process: `serve` on loopback port 0 with the example policy (or the
 * given one) pointed at a real JWKS endpoint. A generous JWKS timeout by default: tests run in parallel on a
 * busy machine, and timeouts have their own tests (which pass `--jwks-timeout-ms`).
 */
export async function startHarness(
  policyText?: (jwksUri: string) => string,
  options: HarnessOptions = {},
): Promise<Harness> {
  const key = await newSigningKey('RS256');
  const ownJwks = options.jwks === undefined;
  const jwks = options.jwks ?? (await startJwksServer([key.publicJwk]));
  if (options.jwksDown) jwks.setAvailable(false);
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-it-'));
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, (policyText ?? examplePolicyText)(jwks.uri));
  const metrics = new Metrics();
  const settings = serveSettings(
    [
      '--policy',
      policyFile,
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--log-level',
      'silent',
      '--jwks-timeout-ms',
      '2000',
      ...(options.flags ?? []),
    ],
    options.env ?? {},
  );
  const running = await startServer(settings, options.log ?? createLogger('silent'), metrics);
  const grpc = connectAuthorization(running.grpcAddress);
  const token: Harness['token'] = (claims, mintOptions) =>
    mintToken(key, { iss: EXAMPLE_ISSUER, aud: EXAMPLE_AUDIENCE, ...claims }, mintOptions);
  const sendRaw = async (request: CheckRequest) => answerOf(await grpc.check(request));
  return {
    key,
    jwks,
    running,
    metrics,
    policyFile,
    grpc,
    token,
    syncToken: (scope, more) =>
      token({
        sub: 'svc-inventory-sync',
        client_id: 'inventory-sync',
        gty: 'client_credentials',
        scope,
        ...more,
      }),
    send: (request) => sendRaw(httpCheck(request)),
    sendRaw,
    scrape: async () => {
      const response = await fetch(`http://${running.adminAddress}/metrics`);
      return response.text();
    },
    sample: async (series) => {
      const text = await metrics.registry.metrics();
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.slice(series.length + 1));
    },
    close: async () => {
      grpc.close();
      await running.stop();
      if (ownJwks) await jwks.close();
    },
  };
}

/** The CheckRequest Envoy builds for an HTTP-like request. */
export function httpCheck({ method, path, token, headers = [], body }: HttpLike): CheckRequest {
  return checkRequestFor({
    method,
    path,
    headers,
    ...(token !== undefined && { token }),
    ...(body !== undefined && { body }),
  });
}

export const JSON_BODY: Array<[string, string]> = [['content-type', 'application/json']];
export const transaction = (location: string) => JSON.stringify({ location, item: 'ITEM001', quantity: 10 });
