// The gRPC edge: Envoy's Authorization/Check and grpc.health.v1.Health, served on node:http2 by h2-grpc.ts.
// Thin by design: the request message is decoded, the one Check path (src/check/handle.ts) answers, the
// answer's bytes go out as they are. Security rule 1: a decodable CheckRequest always gets a CheckResponse,
// never a gRPC error Envoy could fail open on (even a Check path that threw is answered internal_error).
import type { IncomingHttpHeaders } from 'node:http2';
import { type CheckDeps, handleCheck, lastResort } from '../check/handle.js';
import { parseHostPort } from '../config/settings.js';
import { type Answer, decodeAnswer, serializeAnswer } from '../response/kept.js';
import {
  authorizationService,
  type HealthCheckRequest,
  healthService,
  type ReceivedCheckResponse,
  type ServingStatus,
} from '../wire/proto.js';
import type { CheckRequest } from '../wire/types.js';
import {
  type GrpcMethod,
  GrpcStatus,
  H2GrpcServer,
  type StreamingCall,
  type TlsSource,
  type UnaryMethod,
} from './h2-grpc.js';

export const AUTHORIZATION_SERVICE_NAME = 'envoy.service.auth.v3.Authorization';
export const CHECK_PATH = `/${AUTHORIZATION_SERVICE_NAME}/Check`;

/**
 * Answers one Check as the server would, for tests and the benchmark's in-process mode: the CheckResponse
 * decoded from the very bytes the server would send. Never rejects.
 */
export async function answerCheck(request: CheckRequest, deps: CheckDeps): Promise<ReceivedCheckResponse> {
  return decodeAnswer(await handleCheck(request, deps));
}

const decodeHealthRequest = healthService.Check.requestDeserialize as (bytes: Buffer) => HealthCheckRequest;
const encodeHealthResponse = healthService.Check.responseSerialize as (response: {
  status: ServingStatus;
}) => Buffer;

/** grpc.health.v1: "" and the Authorization service report the same status (Kubernetes probes ask for ""). */
export class HealthStatus {
  private status: ServingStatus = 'SERVING';
  private readonly watchers = new Set<StreamingCall>();
  /** Once the server drains, a new Watch hears the status and ends at once. */
  private ended = false;

  set(status: ServingStatus): void {
    this.status = status;
    const message = encodeHealthResponse({ status });
    for (const watcher of this.watchers) watcher.write(message);
  }

  statusOf(service: string): ServingStatus {
    return service === '' || service === AUTHORIZATION_SERVICE_NAME ? this.status : 'SERVICE_UNKNOWN';
  }

  methods(): Array<[string, GrpcMethod]> {
    const check: UnaryMethod<HealthCheckRequest> = {
      kind: 'unary',
      decode: decodeHealthRequest,
      handle: (request) => {
        const status = this.statusOf(request.service ?? '');
        return status === 'SERVICE_UNKNOWN'
          ? { code: GrpcStatus.NOT_FOUND, details: 'unknown service' }
          : encodeHealthResponse({ status });
      },
    };
    const watch: GrpcMethod = {
      kind: 'serverStreaming',
      decode: decodeHealthRequest,
      handle: (request: HealthCheckRequest, call: StreamingCall) => {
        const service = request.service ?? '';
        call.write(encodeHealthResponse({ status: this.statusOf(service) }));
        if (service !== '' && service !== AUTHORIZATION_SERVICE_NAME) return;
        if (this.ended) {
          call.end();
          return;
        }
        this.watchers.add(call);
        call.onClose(() => this.watchers.delete(call));
      },
    };
    return [
      ['/grpc.health.v1.Health/Check', check],
      ['/grpc.health.v1.Health/Watch', watch],
    ];
  }

  /** Ends open Watch streams (and any opened later) so a draining server can finish. */
  endWatches(): void {
    this.ended = true;
    for (const watcher of this.watchers) watcher.end();
    this.watchers.clear();
  }
}

const decodeCheckRequest = authorizationService.Check.requestDeserialize as (bytes: Buffer) => CheckRequest;

/**
 * The Check method after its request is decoded: the response message's bytes (a kept answer's as they were
 * encoded when it was kept). Never throws, never rejects. `headers` are the call's HTTP/2 headers, where
 * Envoy puts the trace context (traceparent, b3, …) of the request it asks about.
 */
export function checkMethod(deps: CheckDeps): UnaryMethod<CheckRequest>['handle'] {
  // The door's lines say which door, as the HTTP doors' do: one child logger, made here, not one per Check.
  const door: CheckDeps = { ...deps, transport: 'grpc', log: deps.log.child({ transport: 'grpc' }) };
  return (request, headers) => {
    let answered: Answer | Promise<Answer>;
    try {
      answered = handleCheck(request, door, door.tracing && ((name) => headerText(headers[name])));
    } catch {
      answered = lastResort();
    }
    return answered instanceof Promise
      ? answered.then(serializeSafely, () => serializeSafely(lastResort()))
      : serializeSafely(answered);
  };
}

function serializeSafely(answer: Answer): Buffer {
  try {
    return serializeAnswer(answer);
  } catch {
    return serializeAnswer(lastResort());
  }
}

/** A header's first value, when it is text; an absent one is undefined. */
function headerText(value: IncomingHttpHeaders[string]): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}

export type GrpcServer = H2GrpcServer;

export function createGrpcServer(deps: CheckDeps, health: HealthStatus): GrpcServer {
  const check: UnaryMethod<CheckRequest> = {
    kind: 'unary',
    decode: decodeCheckRequest,
    handle: checkMethod(deps),
  };
  return new H2GrpcServer({
    methods: new Map<string, GrpcMethod>([[CHECK_PATH, check], ...health.methods()]),
    onError: (err, path) =>
      deps.log.error(
        { transport: 'grpc', err: { message: (err as Error)?.message }, path },
        'gRPC method failed',
      ),
  });
}

/**
 * Listens on `HOST:PORT` (`0.0.0.0:9191`, `[::1]:0`; port 0 binds any), plaintext or with the certificate files
 * of `--tls-cert`, `--tls-key`, `--tls-client-ca` (server/tls.ts). Resolves with the bound port.
 */
export async function bindGrpc(server: GrpcServer, address: string, tls?: TlsSource): Promise<number> {
  const { host, port } = parseHostPort(address, 'gRPC address');
  return server.listen(host, port, tls);
}
