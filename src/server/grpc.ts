// The gRPC edge: Envoy's Authorization/Check and grpc.health.v1.Health. Thin by design: grpc-js decodes, the
// one Check path (src/check/handle.ts) answers, the answer's bytes go out as they are. Security rule 1: a
// decodable CheckRequest always gets a CheckResponse, never a gRPC error Envoy could fail open on.
import * as grpc from '@grpc/grpc-js';
import { type CheckDeps, handleCheck } from '../check/handle.js';
import { type Answer, decodeAnswer, serializeAnswer } from '../response/kept.js';
import {
  authorizationService,
  healthService,
  type ReceivedCheckResponse,
  type ServingStatus,
} from '../wire/proto.js';
import type { CheckRequest } from '../wire/types.js';

export const AUTHORIZATION_SERVICE_NAME = 'envoy.service.auth.v3.Authorization';

/**
 * Answers one Check as the server would, for tests and the benchmark's in-process mode: the CheckResponse
 * decoded from the very bytes the server would send. Never rejects.
 */
export async function answerCheck(request: CheckRequest, deps: CheckDeps): Promise<ReceivedCheckResponse> {
  return decodeAnswer(await handleCheck(request, deps));
}

/** grpc.health.v1: "" and the Authorization service report the same status (Kubernetes probes ask for ""). */
export class HealthStatus {
  private status: ServingStatus = 'SERVING';
  private readonly watchers = new Set<grpc.ServerWritableStream<unknown, { status: ServingStatus }>>();

  set(status: ServingStatus): void {
    this.status = status;
    for (const watcher of this.watchers) watcher.write({ status });
  }

  statusOf(service: string): ServingStatus {
    return service === '' || service === AUTHORIZATION_SERVICE_NAME ? this.status : 'SERVICE_UNKNOWN';
  }

  handlers(): grpc.UntypedServiceImplementation {
    return {
      Check: (
        call: grpc.ServerUnaryCall<{ service?: string }, unknown>,
        callback: grpc.sendUnaryData<unknown>,
      ) => {
        const status = this.statusOf(call.request.service ?? '');
        if (status === 'SERVICE_UNKNOWN')
          callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
        else callback(null, { status });
      },
      Watch: (call: grpc.ServerWritableStream<{ service?: string }, { status: ServingStatus }>) => {
        const service = call.request.service ?? '';
        call.write({ status: this.statusOf(service) });
        if (service !== '' && service !== AUTHORIZATION_SERVICE_NAME) return;
        this.watchers.add(call);
        call.on('cancelled', () => this.watchers.delete(call));
        call.on('close', () => this.watchers.delete(call));
      },
    };
  }

  /** Ends open Watch streams so a draining server can finish. */
  endWatches(): void {
    for (const watcher of this.watchers) watcher.end();
    this.watchers.clear();
  }
}

/** The Authorization service, sending a kept answer's bytes as they were encoded when it was kept. */
const checkServiceSendingKeptBytes = {
  ...authorizationService,
  Check: {
    ...authorizationService.Check,
    responseSerialize: serializeAnswer,
  },
};

export function createGrpcServer(deps: CheckDeps, health: HealthStatus): grpc.Server {
  const server = new grpc.Server({
    // Envoy sends the body when with_request_body is on; cap what we accept well above inventory payloads.
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
    // Channelz (grpc-js's per-call and per-socket tracking for its debug service, which scopegate does not
    // serve) costs allocations on every Check.
    'grpc.enable_channelz': 0,
  });
  server.addService(checkServiceSendingKeptBytes, {
    Check: (call: grpc.ServerUnaryCall<CheckRequest, Answer>, callback: grpc.sendUnaryData<Answer>) => {
      const answered = handleCheck(
        call.request ?? {},
        deps,
        deps.tracing && ((name) => metadataText(call.metadata, name)),
      );
      if (answered instanceof Promise) {
        // Never rejects; the catch only keeps a throwing callback from becoming an unhandled rejection.
        answered
          .then((response) => callback(null, response))
          .catch((err) =>
            deps.log.error({ err: { message: (err as Error)?.message } }, 'check answer not sent'),
          );
      } else callback(null, answered);
    },
  });
  server.addService(healthService, health.handlers());
  return server;
}

/** A metadata key's first value, when it is text (binary `-bin` keys never carry a trace context). */
function metadataText(metadata: grpc.Metadata, name: string): string | undefined {
  const value = metadata.get(name)[0];
  return typeof value === 'string' ? value : undefined;
}

/** Binds plaintext, or with `credentials` (server/tls.ts: `--tls-cert`, `--tls-key`, `--tls-client-ca`). */
export function bindGrpc(
  server: grpc.Server,
  address: string,
  credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure(),
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (err, port) => (err ? reject(err) : resolve(port)));
  });
}
