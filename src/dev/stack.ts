// The whole support-thread setup on loopback, as one value: the dev OAuth2 issuer (token endpoint + JWKS),
// scopegate on the example policy (its JWKS pointed at the issuer), the inventory upstream, and a real Envoy
// running one of the shipped configs with only its addresses rewritten. `npm run demo` and the e2e tests
// both stand on it, so the demo shows exactly what the tests check.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parse, stringify } from 'yaml';
import { serveSettings } from '../config/settings.js';
import { type Running, startServer } from '../server/app.js';
import { createLogger } from '../telemetry/log.js';
import { Metrics } from '../telemetry/metrics.js';
import {
  type LocalTlsFiles,
  localEnvoyConfig,
  type RunningEnvoy,
  repoRoot,
  startEnvoy,
  withRuntime,
} from './envoy.js';
import {
  type DevClient,
  type DevIssuer,
  type DevIssuerConfig,
  loadDevIssuerConfig,
  startDevIssuer,
} from './issuer.js';
import { mintToken, SIGNING_KEY_FILE } from './keys.js';
import { type InventoryUpstream, startInventoryUpstream } from './upstream.js';

/**
 * The shipped Envoy configs; `envoy-http.yaml` asks scopegate's `--http` door (Envoy's `http_service`) where
 * the others use gRPC; `envoy-policy-set.yaml` fronts inventory and shipments, served as examples/mesh;
 * `envoy-mtls.yaml` requires client certificates (give its certificate files as `tls`); `envoy-tracing.yaml`
 * exports its traces to an OTLP/gRPC receiver (give its port as `otelCollector`).
 */
export type EnvoyVariant =
  | 'envoy.yaml'
  | 'envoy-http.yaml'
  | 'envoy-jwt-authn.yaml'
  | 'envoy-policy-set.yaml'
  | 'envoy-mtls.yaml'
  | 'envoy-tracing.yaml';

export const EXAMPLE_DIR = () => join(repoRoot(), 'examples', 'inventory');

export interface HttpResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  /** The JSON body, or undefined when the body is not JSON (Envoy's own plain-text answers). */
  readonly json: Record<string, unknown> | undefined;
}

/** What a client brings to a TLS listener: the CA it trusts for Envoy's certificate, and its own (mTLS). */
export interface ClientTls {
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

export interface SendOptions {
  readonly method?: string;
  /** Sent byte for byte (node:http does not normalise it, unlike fetch). */
  readonly path: string;
  readonly token?: string;
  /** Extra headers; an array value sends the header once per element. */
  readonly headers?: Record<string, string | string[]>;
  /** A JSON body (sent with content-type application/json) or raw text or bytes. */
  readonly json?: unknown;
  readonly body?: string | Buffer;
  /** Required for an `https://` Envoy: the CA to trust, and the client certificate to present. */
  readonly tls?: ClientTls;
}

/** Which shipped config an Envoy runs, and the few changes a test may ask of it. */
export interface EnvoyOptions {
  readonly variant?: EnvoyVariant;
  /** The certificate files of a listener that serves TLS (envoy-mtls.yaml); an error for the others. */
  readonly tls?: LocalTlsFiles;
  /**
   * Envoy's ext_authz sends the body as text (`pack_as_bytes: false`, the `body` field) instead of the
   * shipped configs' bytes (`raw_body`): to show what that costs (Envoy writes `!` for bytes not UTF-8).
   */
  readonly envoyBodyAsText?: boolean;
  /**
   * Envoy passes a client's own `x-forwarded-client-cert` on as it came (`forward_client_cert_details:
   * ALWAYS_FORWARD_ONLY`) instead of the shipped configs' removing it: a hop that trusts its clients, to show
   * that scopegate, which sees the header then, still never takes a peer from it.
   */
  readonly envoyForwardsClientCert?: boolean;
  /** Where the `otel_collector` cluster of envoy-tracing.yaml points: an OTLP/gRPC receiver's port. */
  readonly otelCollector?: number;
  /**
   * Runtime values Envoy gets as a static layer (say `tracing.opentelemetry.min_flush_spans: 1`, so it exports
   * each span as it ends instead of after 5 spans or 5 s); the shipped configs set none.
   */
  readonly envoyRuntime?: Record<string, unknown>;
  /**
   * The `transport_socket` the clusters that reach scopegate (`scopegate`, `scopegate_http`) get: TLS to a
   * scopegate serving `--tls-cert` (give it those flags as `serveFlags`). Without it they speak plaintext.
   */
  readonly scopegateTransportSocket?: Record<string, unknown>;
}

export interface StackOptions extends EnvoyOptions {
  readonly envoyBin: string;
  /** scopegate's logger; default silent. */
  readonly log?: Logger;
  /** Fixed loopback ports (0 = any free one) for people who want to curl the demo. */
  readonly ports?: {
    readonly envoy?: number;
    readonly scopegate?: number;
    /** scopegate's `--http` door (Envoy `http_service`, envoy-http.yaml). */
    readonly http?: number;
    readonly admin?: number;
  };
  /**
   * scopegate's `serve` flags beyond the stack's own (say `--tracing`). With them, its settings and its
   * OpenTelemetry exporter read this process's environment (OTEL_*), as a served process reads its own.
   */
  readonly serveFlags?: readonly string[];
}

/** One more Envoy in front of the same scopegate and upstream, and a way to send through it. */
export interface EnvoyFront {
  readonly envoy: RunningEnvoy;
  send(options: SendOptions): Promise<HttpResult>;
}

export interface Stack {
  readonly envoy: RunningEnvoy;
  readonly scopegate: Running;
  /** The policy file (or directory) scopegate serves; removed by `close`. */
  readonly policyPath: string;
  readonly metrics: Metrics;
  readonly issuer: DevIssuer;
  readonly issuerConfig: DevIssuerConfig;
  readonly upstream: InventoryUpstream;
  /** Where the dev signing key lives (for `scopegate token --key`). */
  readonly keyFile: string;
  client(id: string): DevClient;
  /** A token from the issuer's token endpoint (client_credentials), as the thread's service account got it. */
  clientToken(clientId: string, scope: string): Promise<string>;
  /** A token signed by the issuer's key but not from its endpoint: other grant types, expired ones. */
  mint(claims: {
    subject: string;
    client: string;
    scope: string;
    grantType: string;
    ttlSeconds: number;
  }): Promise<string>;
  /** One HTTP request through Envoy. */
  send(options: SendOptions): Promise<HttpResult>;
  /** Requests Envoy has sent to the inventory cluster so far (Envoy's own counter). */
  upstreamRequests(): Promise<number>;
  /** Starts another Envoy (another variant) in front of this scopegate and upstream; stopped by `close`. */
  startEnvoy(options: EnvoyOptions): Promise<EnvoyFront>;
  close(): Promise<void>;
}

/** An example policy (default: inventory's) with its `jwks: { file }` pointed at a JWKS URI instead. */
export function examplePolicyWithJwksUri(jwksUri: string, file = join(EXAMPLE_DIR(), 'policy.yaml')): string {
  const text = readFileSync(file, 'utf8');
  const replaced = text.replace(/jwks: \{ file: [^}]+\}/, `jwks: { uri: "${jwksUri}" }`);
  if (replaced === text)
    throw new Error(`${file} has no \`jwks: { file: … }\` line to point at the dev issuer`);
  return replaced;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const loaded = await loadDevIssuerConfig(join(EXAMPLE_DIR(), 'dev-issuer.yaml'));
  if (!loaded.ok) throw new Error(`examples/inventory/dev-issuer.yaml:\n${loaded.problems.join('\n')}`);
  const issuerConfig = loaded.config;
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-stack-'));
  const keysDir = join(dir, 'dev-keys');
  const started: Array<{ close(): Promise<void> }> = [];
  const closeAll = async () => {
    await Promise.allSettled(started.reverse().map((part) => part.close()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const issuer = await startDevIssuer({ ...issuerConfig, keysDir });
    started.push(issuer);
    const upstream = await startInventoryUpstream();
    started.push(upstream);

    // One policy file, or for the policy-set config the example set (examples/mesh: inventory and shipments).
    let policyPath = join(dir, 'policy.yaml');
    if (options.variant === 'envoy-policy-set.yaml') {
      policyPath = join(dir, 'policies');
      mkdirSync(policyPath);
      writeFileSync(join(policyPath, 'inventory.yaml'), examplePolicyWithJwksUri(issuer.jwksUri));
      const shipments = join(repoRoot(), 'examples', 'mesh', 'shipments.yaml');
      writeFileSync(join(policyPath, 'shipments.yaml'), examplePolicyWithJwksUri(issuer.jwksUri, shipments));
    } else writeFileSync(policyPath, examplePolicyWithJwksUri(issuer.jwksUri));
    const metrics = new Metrics();
    const settings = serveSettings(
      [
        '--policy',
        policyPath,
        '--listen',
        `127.0.0.1:${options.ports?.scopegate ?? 0}`,
        '--admin',
        `127.0.0.1:${options.ports?.admin ?? 0}`,
        // Always on, so any Envoy of the stack may be envoy-http.yaml (startEnvoy too); gRPC variants never use it.
        '--http',
        `127.0.0.1:${options.ports?.http ?? 0}`,
        ...(options.serveFlags ?? []),
      ],
      options.serveFlags ? process.env : {},
    );
    const scopegate = await startServer(settings, options.log ?? createLogger('silent'), metrics);
    started.push({ close: () => scopegate.stop() });

    const startFront = async (front: EnvoyOptions, listener = 0): Promise<EnvoyFront> => {
      let configText = localEnvoyConfig(
        join(repoRoot(), 'envoy', front.variant ?? 'envoy.yaml'),
        {
          scopegate: portOf(scopegate.grpcAddress),
          scopegateHttp: portOf(scopegate.httpAddress),
          inventory: upstream.port,
          devIssuer: issuer.port,
          ...(front.otelCollector !== undefined && { otelCollector: front.otelCollector }),
          listener,
        },
        front.tls,
      );
      if (front.envoyBodyAsText) configText = withBodyAsText(configText);
      if (front.envoyForwardsClientCert) configText = withClientCertForwarded(configText);
      if (front.scopegateTransportSocket)
        configText = withScopegateTransportSocket(configText, front.scopegateTransportSocket);
      if (front.envoyRuntime) configText = withRuntime(configText, front.envoyRuntime);
      const running = await startEnvoy({
        bin: options.envoyBin,
        configText,
        tls: front.tls !== undefined,
      });
      started.push({ close: () => running.stop() });
      return { envoy: running, send: (request) => sendThrough(running.url, request) };
    };
    const { envoy } = await startFront(options, options.ports?.envoy);

    const client = (id: string) => {
      const found = issuerConfig.clients.find((c) => c.id === id);
      if (!found) throw new Error(`no client ${id} in examples/inventory/dev-issuer.yaml`);
      return found;
    };
    const keyFile = join(keysDir, SIGNING_KEY_FILE);
    return {
      envoy,
      scopegate,
      policyPath,
      metrics,
      issuer,
      issuerConfig,
      upstream,
      keyFile,
      client,
      clientToken: async (clientId, scope) => {
        const { id, secret } = client(clientId);
        const response = await fetch(issuer.tokenUrl, {
          method: 'POST',
          headers: {
            authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
            'content-type': 'application/x-www-form-urlencoded',
          },
          body: new URLSearchParams({ grant_type: 'client_credentials', scope }).toString(),
        });
        const answer = (await response.json()) as { access_token?: string; error?: string };
        if (!response.ok || answer.access_token === undefined) {
          throw new Error(`dev issuer refused a token for ${id}: ${response.status} ${answer.error}`);
        }
        return answer.access_token;
      },
      mint: ({ subject, client: clientId, scope, grantType, ttlSeconds }) =>
        mintToken({
          keyFile,
          issuer: issuerConfig.issuer,
          audience: issuerConfig.audience,
          subject,
          client: clientId,
          scope,
          grantType,
          ttlSeconds,
        }),
      send: (request) => sendThrough(envoy.url, request),
      upstreamRequests: async () => {
        const stats = await (
          await fetch(`${envoy.adminUrl}/stats?filter=^cluster\\.inventory\\.upstream_rq_total$`)
        ).text();
        const match = /upstream_rq_total: (\d+)/.exec(stats);
        if (match === null) throw new Error(`no upstream_rq_total in Envoy stats: ${stats}`);
        return Number(match[1]);
      },
      startEnvoy: (front) => startFront(front),
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** The port of a `HOST:PORT` scopegate bound. */
function portOf(address: string | undefined): number {
  const port = Number(address?.split(':').pop());
  if (!Number.isInteger(port) || port <= 0) throw new Error(`scopegate bound no usable address: ${address}`);
  return port;
}

/** The config with `change` applied to the typed config of every filter named `filter`; at least one. */
function withFilterChanged(
  configText: string,
  filter: string,
  change: (typed: Record<string, unknown>) => void,
): string {
  let changed = 0;
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (typeof node === 'object' && node !== null) {
      const record = node as Record<string, unknown>;
      if (record.name === filter) {
        change(record.typed_config as Record<string, unknown>);
        changed++;
      }
      Object.values(record).forEach(visit);
    }
  };
  const config = parse(configText) as unknown;
  visit(config);
  if (changed === 0) throw new Error(`the Envoy config has no ${filter} to change`);
  return stringify(config);
}

/** The config with every ext_authz filter sending the body as text (`body`, `pack_as_bytes: false`). */
function withBodyAsText(configText: string): string {
  return withFilterChanged(configText, 'envoy.filters.http.ext_authz', (typed) => {
    typed.with_request_body = { ...(typed.with_request_body as object), pack_as_bytes: false };
  });
}

/** The config with every connection manager passing a client's x-forwarded-client-cert on unchanged. */
function withClientCertForwarded(configText: string): string {
  return withFilterChanged(configText, 'envoy.filters.network.http_connection_manager', (typed) => {
    typed.forward_client_cert_details = 'ALWAYS_FORWARD_ONLY';
  });
}

/** The clusters of localEnvoyConfig that reach scopegate: its gRPC door, and its `--http` door. */
const SCOPEGATE_CLUSTERS = new Set(['scopegate', 'scopegate_http']);

/** The config with `socket` as the transport_socket of every cluster that reaches scopegate; at least one. */
function withScopegateTransportSocket(configText: string, socket: Record<string, unknown>): string {
  const config = parse(configText) as { static_resources: { clusters: Array<Record<string, unknown>> } };
  const clusters = config.static_resources.clusters.filter((c) => SCOPEGATE_CLUSTERS.has(String(c.name)));
  if (clusters.length === 0) throw new Error('the Envoy config has no cluster that reaches scopegate');
  for (const cluster of clusters) cluster.transport_socket = structuredClone(socket);
  return stringify(config);
}

/**
 * node:http (node:https for an `https://` Envoy, with the client's certificate) rather than fetch: the path
 * goes out exactly as written, and headers can repeat.
 */
export function sendThrough(baseUrl: string, options: SendOptions): Promise<HttpResult> {
  const url = new URL(baseUrl);
  const body = options.json !== undefined ? JSON.stringify(options.json) : options.body;
  const headers: Record<string, string | string[]> = {
    ...(options.json !== undefined && { 'content-type': 'application/json' }),
    ...(options.token !== undefined && { authorization: `Bearer ${options.token}` }),
    ...options.headers,
  };
  const secure = url.protocol === 'https:';
  if (secure && options.tls === undefined)
    return Promise.reject(new Error(`${baseUrl} serves TLS: give the client's tls (CA, certificate)`));
  const request = secure ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
        path: options.path,
        headers,
        agent: false,
        timeout: 10_000,
        ...(secure && options.tls),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> | undefined;
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from Envoy for ${options.path}`)));
    req.on('error', reject);
    req.end(body);
  });
}
