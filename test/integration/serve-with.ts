// A scopegate started in-process with the flags a test chooses (cache sizes, JWKS timeout), on loopback port 0,
// against a JWKS server the test owns: the cache and key-fault tests need several servers sharing one key set,
// or one with a short key-fetch timeout, which the shared harness does not offer.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveSettings } from '../../src/config/settings.js';
import { type Running, startServer } from '../../src/server/app.js';
import { createLogger } from '../../src/telemetry/log.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { checkRequestFor } from '../../src/wire/check-request.js';
import type { CheckRequest } from '../../src/wire/envoy.js';
import { type AuthorizationConnection, connectAuthorization } from '../support/grpc-client.js';
import { examplePolicyText } from '../support/policies.js';
import { answerOf, type HttpAnswer, type HttpLike } from '../support/scopegate.js';

export interface Served {
  readonly running: Running;
  readonly metrics: Metrics;
  readonly grpc: AuthorizationConnection;
  readonly policyFile: string;
  send(request: HttpLike): Promise<HttpAnswer>;
  sendRaw(request: CheckRequest): Promise<HttpAnswer>;
  /** Value of one sample of the Prometheus text, e.g. `scopegate_cache_lookups_total{cache="decision",result="hit"}`. */
  sample(series: string): Promise<number>;
  close(): Promise<void>;
}

export function httpCheck({ method, path, token, headers = [], body }: HttpLike): CheckRequest {
  return checkRequestFor({
    method,
    path,
    headers,
    ...(token !== undefined && { token }),
    ...(body !== undefined && { body }),
  });
}

/** The example policy pointed at `jwksUri`, served with the given extra flags. */
export async function serveWith(jwksUri: string, flags: string[] = []): Promise<Served> {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-caches-'));
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, examplePolicyText(jwksUri));
  const metrics = new Metrics({ defaultMetrics: false });
  const settings = serveSettings(
    ['--policy', policyFile, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', ...flags],
    {},
  );
  const running = await startServer(settings, createLogger('silent'), metrics);
  const grpc = connectAuthorization(running.grpcAddress);
  const sendRaw = async (request: CheckRequest) => answerOf(await grpc.check(request));
  return {
    running,
    metrics,
    grpc,
    policyFile,
    send: (request) => sendRaw(httpCheck(request)),
    sendRaw,
    sample: async (series) => {
      const text = await metrics.registry.metrics();
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.slice(series.length + 1));
    },
    close: async () => {
      grpc.close();
      await running.stop();
    },
  };
}
