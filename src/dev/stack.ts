// The whole support-thread setup on loopback, as one value: the dev OAuth2 issuer (token endpoint + JWKS),
// scopegate on the example policy (its JWKS pointed at the issuer), the inventory upstream, and a real Envoy
// running one of the shipped configs with only its addresses rewritten. `npm run demo` and the e2e tests
// both stand on it, so the demo shows exactly what the tests check.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { parse, stringify } from 'yaml';
import { serveSettings } from '../config/settings.js';
import { type Running, startServer } from '../server/app.js';
import { createLogger } from '../telemetry/log.js';
import { Metrics } from '../telemetry/metrics.js';
import { localEnvoyConfig, type RunningEnvoy, repoRoot, startEnvoy } from './envoy.js';
import {
  type DevClient,
  type DevIssuer,
  type DevIssuerConfig,
  loadDevIssuerConfig,
  startDevIssuer,
} from './issuer.js';
import { mintToken, SIGNING_KEY_FILE } from './keys.js';
import { type InventoryUpstream, startInventoryUpstream } from './upstream.js';

/** The shipped Envoy configs; `envoy-policy-set.yaml` fronts inventory and shipments, served as examples/mesh. */
export type EnvoyVariant = 'envoy.yaml' | 'envoy-jwt-authn.yaml' | 'envoy-policy-set.yaml';

export const EXAMPLE_DIR = () => join(repoRoot(), 'examples', 'inventory');

export interface HttpResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  /** The JSON body, or undefined when the body is not JSON (Envoy's own plain-text answers). */
  readonly json: Record<string, unknown> | undefined;
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
}

export interface StackOptions {
  readonly envoyBin: string;
  readonly variant?: EnvoyVariant;
  /** scopegate's logger; default silent. */
  readonly log?: Logger;
  /** Fixed loopback ports (0 = any free one) for people who want to curl the demo. */
  readonly ports?: { readonly envoy?: number; readonly scopegate?: number; readonly admin?: number };
  /**
   * Envoy's ext_authz sends the body as text (`pack_as_bytes: false`, the `body` field) instead of the
   * shipped configs' bytes (`raw_body`): to show what that costs (Envoy writes `!` for bytes not UTF-8).
   */
  readonly envoyBodyAsText?: boolean;
}

export interface Stack {
  readonly envoy: RunningEnvoy;
  readonly scopegate: Running;
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
      ],
      {},
    );
    const scopegate = await startServer(settings, options.log ?? createLogger('silent'), metrics);
    started.push({ close: () => scopegate.stop() });

    const configText = localEnvoyConfig(join(repoRoot(), 'envoy', options.variant ?? 'envoy.yaml'), {
      scopegate: Number(scopegate.grpcAddress.split(':').pop()),
      inventory: upstream.port,
      devIssuer: issuer.port,
      listener: options.ports?.envoy ?? 0,
    });
    const envoy = await startEnvoy({
      bin: options.envoyBin,
      configText: options.envoyBodyAsText ? withBodyAsText(configText) : configText,
    });
    started.push({ close: () => envoy.stop() });

    const client = (id: string) => {
      const found = issuerConfig.clients.find((c) => c.id === id);
      if (!found) throw new Error(`no client ${id} in examples/inventory/dev-issuer.yaml`);
      return found;
    };
    const keyFile = join(keysDir, SIGNING_KEY_FILE);
    return {
      envoy,
      scopegate,
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
      close: closeAll,
    };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/** The config with every ext_authz filter sending the body as text (`body`, `pack_as_bytes: false`). */
function withBodyAsText(configText: string): string {
  let changed = 0;
  const visit = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (typeof node === 'object' && node !== null) {
      const record = node as Record<string, unknown>;
      if (record.name === 'envoy.filters.http.ext_authz') {
        const typed = record.typed_config as Record<string, Record<string, unknown>>;
        typed.with_request_body = { ...typed.with_request_body, pack_as_bytes: false };
        changed++;
      }
      Object.values(record).forEach(visit);
    }
  };
  const config = parse(configText) as unknown;
  visit(config);
  if (changed === 0) throw new Error('the Envoy config has no ext_authz filter to send bodies as text');
  return stringify(config);
}

/** node:http rather than fetch: the path goes out exactly as written, and headers can repeat. */
export function sendThrough(baseUrl: string, options: SendOptions): Promise<HttpResult> {
  const url = new URL(baseUrl);
  const body = options.json !== undefined ? JSON.stringify(options.json) : options.body;
  const headers: Record<string, string | string[]> = {
    ...(options.json !== undefined && { 'content-type': 'application/json' }),
    ...(options.token !== undefined && { authorization: `Bearer ${options.token}` }),
    ...options.headers,
  };
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
        path: options.path,
        headers,
        agent: false,
        timeout: 10_000,
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
