// The CheckRequest Envoy's ext_authz filter builds for an HTTP request, for the places that start from an HTTP
// request rather than from Envoy: `explain` and `test`, `scopegate check`, the tests and the benchmarks.
import { randomUUID } from 'node:crypto';
import type { CheckRequest } from './types.js';

/** An HTTP request as a client sends it through Envoy, and what Envoy adds for choosing a policy. */
export interface HttpCall {
  readonly method: string;
  readonly path: string;
  readonly token?: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body?: string;
  /** `:authority` (default `inventory.local`). */
  readonly host?: string;
  /** What Envoy's route config sets in `context_extensions` (e.g. `scopegate_policy`). */
  readonly contextExtensions?: Readonly<Record<string, string>>;
  /** The called workload's SPIFFE ID, as Istio sets `destination.principal`. */
  readonly destinationPrincipal?: string;
  /** The calling workload's SPIFFE ID, as Envoy sets `source.principal` for an mTLS peer. */
  readonly peer?: string;
}

/** The CheckRequest Envoy's ext_authz filter would send for this HTTP request. */
export function checkRequestFor(call: HttpCall): CheckRequest {
  const host = call.host ?? 'inventory.local';
  const headers: Record<string, string> = {
    // As sent: Envoy passes the method through, and scopegate refuses one that is not upper-case.
    ':method': call.method,
    ':path': call.path,
    ':authority': host,
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
          host,
          scheme: 'http',
          protocol: 'HTTP/1.1',
          ...(call.body !== undefined && { body: call.body, size: String(Buffer.byteLength(call.body)) }),
        },
      },
      ...(call.contextExtensions !== undefined && { context_extensions: { ...call.contextExtensions } }),
      ...(call.destinationPrincipal !== undefined && {
        destination: { principal: call.destinationPrincipal },
      }),
      ...(call.peer !== undefined && { source: { principal: call.peer } }),
    },
  };
}
