// Test-side gRPC clients for scopegate, built from the same definitions the server serves: call Check the way
// Envoy does and ask the health service what a probe would see. Shared by unit and integration tests.

import * as grpc from '@grpc/grpc-js';
import {
  type AuthorizationClient,
  type HealthClient,
  httpStatusNumber,
  loadClients,
  type ReceivedCheckResponse,
  type ReceivedHealthCheckResponse,
  type ServingStatus,
} from '../../src/wire/proto.js';
import type { CheckRequest } from '../../src/wire/types.js';

const clients = loadClients();

/** Envoy's own default for the ext_authz gRPC call; tests may pass a longer one. */
const DEFAULT_DEADLINE_MS = 2_000;

function deadlineIn(ms: number): Date {
  return new Date(Date.now() + ms);
}

export interface AuthorizationConnection {
  readonly client: AuthorizationClient;
  /** One Check call; a gRPC error (not a deny) rejects with the grpc-js ServiceError. */
  check(request: CheckRequest, deadlineMs?: number): Promise<ReceivedCheckResponse>;
  close(): void;
}

/**
 * Connects in plaintext, as Envoy does to a sidecar or in-cluster authz service (or with `credentials`: TLS). grpc-js shares one connection
 * between clients to the same address; `ownConnection` gives this client its own (as each Envoy has).
 */
export function connectAuthorization(
  address: string,
  options: { ownConnection?: boolean; credentials?: grpc.ChannelCredentials } = {},
): AuthorizationConnection {
  const client = new clients.AuthorizationClient(
    address,
    options.credentials ?? grpc.credentials.createInsecure(),
    options.ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {},
  );
  return {
    client,
    check(request, deadlineMs = DEFAULT_DEADLINE_MS) {
      return new Promise((resolve, reject) => {
        client.Check(
          request,
          new grpc.Metadata(),
          { deadline: deadlineIn(deadlineMs) },
          (error, response) => {
            if (error) reject(error);
            else if (response === undefined) reject(new Error('Check returned no response'));
            else resolve(response);
          },
        );
      });
    },
    close: () => client.close(),
  };
}

/** The HTTP status Envoy would send for this response: the denied status, 403 when a deny leaves it unset. */
export function deniedHttpStatus(response: ReceivedCheckResponse): number | undefined {
  if (response.denied_response === undefined) return undefined;
  return httpStatusNumber(response.denied_response.status?.code) ?? 403;
}

export interface HealthConnection {
  readonly client: HealthClient;
  check(service?: string, deadlineMs?: number): Promise<ServingStatus>;
  /** The first status a Watch stream reports, then the stream is cancelled. */
  watchFirst(service?: string, deadlineMs?: number): Promise<ServingStatus>;
  close(): void;
}

export function connectHealth(address: string): HealthConnection {
  const client = new clients.HealthClient(address, grpc.credentials.createInsecure());
  return {
    client,
    check(service = '', deadlineMs = DEFAULT_DEADLINE_MS) {
      return new Promise((resolve, reject) => {
        client.Check(
          { service },
          new grpc.Metadata(),
          { deadline: deadlineIn(deadlineMs) },
          (error, response) => {
            if (error) reject(error);
            else if (response === undefined) reject(new Error('Health.Check returned no response'));
            // proto3 omits the zero value, so a decoded UNKNOWN arrives as an absent status.
            else resolve(response.status ?? 'UNKNOWN');
          },
        );
      });
    },
    watchFirst(service = '', deadlineMs = DEFAULT_DEADLINE_MS) {
      return new Promise((resolve, reject) => {
        const stream = client.Watch({ service }, { deadline: deadlineIn(deadlineMs) });
        let settled = false;
        stream.on('data', (message: ReceivedHealthCheckResponse) => {
          if (settled) return;
          settled = true;
          resolve(message.status ?? 'UNKNOWN');
          stream.cancel();
        });
        stream.on('error', (error: grpc.ServiceError) => {
          if (settled && error.code === grpc.status.CANCELLED) return;
          if (!settled) {
            settled = true;
            reject(error);
          }
        });
      });
    },
    close: () => client.close(),
  };
}
