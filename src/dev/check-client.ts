// `scopegate check`: curl for ext_authz. Sends one real Authorization/Check over gRPC, shaped like the
// CheckRequest Envoy builds for an HTTP request, and prints the answer the way Envoy would act on it.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { CheckRequest } from '../envoy.js';
import { terminalSafe } from '../explain/render.js';
import { headerValueText } from '../response/encode.js';
import { httpStatusNumber, loadClients, type ReceivedCheckResponse } from '../server/proto.js';

export interface CheckCall {
  readonly server: string;
  readonly method: string;
  readonly path: string;
  readonly token?: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body?: string;
  readonly timeoutMs: number;
}

/** The CheckRequest Envoy's ext_authz filter would send for this HTTP request. */
export function checkRequestFor(call: Omit<CheckCall, 'server' | 'timeoutMs'>): CheckRequest {
  const headers: Record<string, string> = {
    // As sent: Envoy passes the method through, and scopegate refuses one that is not upper-case.
    ':method': call.method,
    ':path': call.path,
    ':authority': 'inventory.local',
    ':scheme': 'http',
    'x-request-id': randomUUID(),
  };
  for (const [name, value] of call.headers) {
    const key = name.toLowerCase();
    // Envoy joins a repeated header with ','.
    headers[key] = headers[key] === undefined ? value : `${headers[key]},${value}`;
  }
  if (call.token !== undefined) headers.authorization = `Bearer ${call.token}`;
  return {
    attributes: {
      request: {
        http: {
          id: headers['x-request-id'],
          method: call.method,
          headers,
          // Envoy sends the raw request target, query included, and leaves `query` empty.
          path: call.path,
          host: 'inventory.local',
          scheme: 'http',
          protocol: 'HTTP/1.1',
          ...(call.body !== undefined && { body: call.body, size: String(Buffer.byteLength(call.body)) }),
        },
      },
    },
  };
}

export function sendCheck(call: CheckCall): Promise<ReceivedCheckResponse> {
  const { AuthorizationClient } = loadClients();
  const client = new AuthorizationClient(call.server, grpc.credentials.createInsecure());
  return new Promise<ReceivedCheckResponse>((resolve, reject) => {
    client.Check(
      checkRequestFor(call),
      new grpc.Metadata(),
      { deadline: new Date(Date.now() + call.timeoutMs) },
      (err, response) => (err || !response ? reject(err ?? new Error('no response')) : resolve(response)),
    );
  }).finally(() => client.close());
}

/** Human-readable: the status line Envoy would send, the headers, the body. */
export function describeResponse(response: ReceivedCheckResponse): string {
  if (response.ok_response || !response.denied_response) {
    const added = (response.ok_response?.headers ?? []).map(
      (h) => `${h.header.key}: ${headerValueText(h.header)}`,
    );
    const removed = response.ok_response?.headers_to_remove ?? [];
    return [
      'HTTP 200 (allowed: Envoy forwards the request to the upstream)',
      ...added.map((line) => `+ ${line}`),
      ...removed.map((name) => `- ${name}`),
    ]
      .map(terminalSafe)
      .join('\n');
  }
  const denied = response.denied_response;
  const status = httpStatusNumber(denied.status?.code) ?? 403;
  return [
    `HTTP ${status}`,
    ...(denied.headers ?? []).map((h) => `${h.header.key}: ${headerValueText(h.header)}`),
    '',
    denied.body ?? '',
  ]
    .map(terminalSafe)
    .join('\n');
}
