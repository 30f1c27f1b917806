// The one place that reads scopegate's .proto files: it loads them once, at import, and hands out the
// gRPC service definitions (for the server) and client constructors (for tests and the benchmark).
// Decoding options are fixed here so every caller sees the shapes described in src/wire/types.ts.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { CheckRequest, CheckResponse } from './types.js';

/** The files the server speaks, relative to the `proto/` folder; their imports are resolved from there. */
const SERVED_PROTO_FILES = ['envoy/service/auth/v3/external_auth.proto', 'grpc/health/v1/health.proto'];

/**
 * keepCase keeps Envoy's snake_case names; longs as strings and enums as names keep values JSON-safe;
 * no defaults so "absent" stays distinguishable from "empty"; oneofs name the field that is set.
 * bytes are left at proto-loader's default, Buffer.
 */
export const LOADER_OPTIONS: protoLoader.Options = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
});

/**
 * Finds the package's `proto/` folder by walking up from this file, so the same code works from `src/server/`
 * (vitest, tsx) and from the compiled `dist/server/`, and from wherever npm installed the package.
 */
export function findProtoRoot(startDir: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = startDir;
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, SERVED_PROTO_FILES[0]!))) return candidate;
    const parent = dirname(dir);
    // Without the protos the server cannot decode a single Check: refuse to start rather than guess.
    if (parent === dir) throw new Error(`scopegate: no proto/ folder found above ${startDir}`);
    dir = parent;
  }
}

export const PROTO_ROOT = findProtoRoot();

/**
 * Well-known google/protobuf/* imports (struct, timestamp, wrappers, any) are served by protobufjs from its
 * bundled copies, so loading needs no network and no extra include folder.
 */
export const packageDefinition: protoLoader.PackageDefinition = protoLoader.loadSync(
  SERVED_PROTO_FILES.map((file) => join(PROTO_ROOT, file)),
  { ...LOADER_OPTIONS, includeDirs: [PROTO_ROOT] },
);

// ---- Authorization (envoy.service.auth.v3) ----

export interface AuthorizationHandlers extends grpc.UntypedServiceImplementation {
  Check: grpc.handleUnaryCall<CheckRequest, CheckResponse>;
}

export const authorizationService = packageDefinition[
  'envoy.service.auth.v3.Authorization'
] as unknown as grpc.ServiceDefinition<AuthorizationHandlers> & {
  Check: grpc.MethodDefinition<CheckRequest, CheckResponse>;
};

/**
 * A CheckResponse as a client decodes it. Enums arrive as names, so `denied_response.status.code` is e.g.
 * 'Forbidden' (or the bare number for a code Envoy's enum does not list); see `httpStatusNumber`.
 */
export type ReceivedCheckResponse = Omit<CheckResponse, 'denied_response'> & {
  denied_response?: Omit<NonNullable<CheckResponse['denied_response']>, 'status'> & {
    status?: { code?: string | number };
  };
  http_response?: 'denied_response' | 'ok_response';
};

export interface AuthorizationClient extends grpc.Client {
  Check(request: CheckRequest, callback: grpc.requestCallback<ReceivedCheckResponse>): grpc.ClientUnaryCall;
  Check(
    request: CheckRequest,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<ReceivedCheckResponse>,
  ): grpc.ClientUnaryCall;
}

// ---- Health (grpc.health.v1) ----

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

export interface HealthCheckRequest {
  service?: string;
}
export interface HealthCheckResponse {
  status: ServingStatus;
}
/** proto3 drops the zero value, so a decoded UNKNOWN arrives with no status at all. */
export type ReceivedHealthCheckResponse = Partial<HealthCheckResponse>;

export interface HealthHandlers extends grpc.UntypedServiceImplementation {
  Check: grpc.handleUnaryCall<HealthCheckRequest, HealthCheckResponse>;
  Watch: grpc.handleServerStreamingCall<HealthCheckRequest, HealthCheckResponse>;
}

/** List (a newer upstream method) is declared but optional: grpc-js answers UNIMPLEMENTED when it is absent. */
export const healthService = packageDefinition[
  'grpc.health.v1.Health'
] as unknown as grpc.ServiceDefinition<HealthHandlers>;

export interface HealthClient extends grpc.Client {
  Check(
    request: HealthCheckRequest,
    callback: grpc.requestCallback<HealthCheckResponse>,
  ): grpc.ClientUnaryCall;
  Check(
    request: HealthCheckRequest,
    metadata: grpc.Metadata,
    options: Partial<grpc.CallOptions>,
    callback: grpc.requestCallback<HealthCheckResponse>,
  ): grpc.ClientUnaryCall;
  Watch(
    request: HealthCheckRequest,
    options?: Partial<grpc.CallOptions>,
  ): grpc.ClientReadableStream<HealthCheckResponse>;
}

// ---- Clients ----

type ClientConstructor<T> = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => T;

export interface Clients {
  AuthorizationClient: ClientConstructor<AuthorizationClient>;
  HealthClient: ClientConstructor<HealthClient>;
}

/**
 * The Authorization service as a client sends it: a body given as text goes out as its UTF-8 bytes, as Envoy
 * sends it (`body` is `bytes` in our proto; protobufjs would read a string there as base64).
 */
const authorizationServiceForClients = {
  ...authorizationService,
  Check: {
    ...authorizationService.Check,
    requestSerialize: (request: CheckRequest) =>
      authorizationService.Check.requestSerialize(withBodyBytes(request)),
  },
};

function withBodyBytes(request: CheckRequest): CheckRequest {
  const http = request.attributes?.request?.http;
  if (typeof http?.body !== 'string') return request;
  const attributes = request.attributes!;
  return {
    ...request,
    attributes: {
      ...attributes,
      request: { ...attributes.request, http: { ...http, body: Buffer.from(http.body, 'utf8') } },
    },
  };
}

/** Client constructors built from the same definitions the server uses (tests and the benchmark call Check). */
export function loadClients(): Clients {
  return {
    AuthorizationClient: grpc.makeGenericClientConstructor(
      authorizationServiceForClients,
      'Authorization',
    ) as unknown as ClientConstructor<AuthorizationClient>,
    HealthClient: grpc.makeGenericClientConstructor(
      healthService,
      'Health',
    ) as unknown as ClientConstructor<HealthClient>,
  };
}

// ---- HTTP status names ----

// The enum's descriptor (EnumDescriptorProto) lists every name with its number.
const statusCodeEnum = packageDefinition['envoy.type.v3.StatusCode'] as protoLoader.EnumTypeDefinition;
const statusCodeValues = (statusCodeEnum.type as { value: { name: string; number: number }[] }).value;
const httpStatusByName: ReadonlyMap<string, number> = new Map(
  statusCodeValues.map((v) => [v.name, v.number]),
);

/** The HTTP status number for a decoded envoy.type.v3.StatusCode ('Forbidden' → 403); undefined if unknown. */
export function httpStatusNumber(code: string | number | undefined): number | undefined {
  if (typeof code === 'number') return code;
  if (code === undefined) return undefined;
  return httpStatusByName.get(code);
}
