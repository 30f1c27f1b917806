// `scopegate check`: curl for ext_authz. Sends one real Authorization/Check over gRPC, shaped like the
// CheckRequest Envoy builds for an HTTP request, and prints the answer the way Envoy would act on it.
import * as grpc from '@grpc/grpc-js';
import { terminalSafe } from '../explain/render.js';
import { headerValueText } from '../response/encode.js';
import { checkRequestFor } from '../wire/check-request.js';
import { httpStatusNumber, loadClients, type ReceivedCheckResponse } from '../wire/proto.js';

export interface CheckCall {
  readonly server: string;
  readonly method: string;
  readonly path: string;
  readonly token?: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body?: string;
  readonly timeoutMs: number;
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
