// What a proxy's forward auth stands in front of, for the e2e tests of the shipped proxy configs (proxies/): the
// dev issuer (examples/inventory/dev-issuer.yaml), scopegate serving `--forward-auth` on the example policy (its
// JWKS at the issuer), and the inventory upstream, which also hands every request it receives to the test.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { serveSettings } from '../../src/config/settings.js';
import type { DevIssuer } from '../../src/dev/issuer.js';
import {
  examplePolicyWithJwksUri,
  type HttpResult,
  type SendOptions,
  sendThrough,
} from '../../src/dev/stack.js';
import { type InventoryUpstream, startInventoryUpstream } from '../../src/dev/upstream.js';
import { type Running, startServer } from '../../src/server/app.js';
import { createLogger } from '../../src/telemetry/log.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { basic, requestToken, startExampleIssuer } from '../support/dev-issuer.js';
import { sendHttp } from '../support/http-front.js';
import { freePort, type ProxyPorts, type RunningProxy } from '../support/reverse-proxies.js';

export interface ForwardAuthStack {
  readonly issuer: DevIssuer;
  readonly upstream: InventoryUpstream;
  readonly scopegate: Running;
  /** The headers of every request the upstream received, oldest first (lower-case names, as Node gives them). */
  readonly received: Array<IncomingMessage['headers']>;
  /** Ports for a shipped proxy config in front of this scopegate and upstream. */
  proxyPorts(): Promise<ProxyPorts>;
  /**
   * Ports for a proxy in front of a second scopegate whose issuer's JWKS address answers nothing: every token
   * is keys_unavailable (503).
   */
  keylessProxyPorts(): Promise<ProxyPorts>;
  /** A token from the issuer's token endpoint (client_credentials) for the example's inventory-sync client. */
  syncToken(scope: string): Promise<string>;
  close(): Promise<void>;
}

const port = (address: string) => Number(address.slice(address.lastIndexOf(':') + 1));

export async function startForwardAuthStack(): Promise<ForwardAuthStack> {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-forward-auth-'));
  const started: Array<() => Promise<void>> = [];
  const close = async () => {
    await Promise.allSettled(started.reverse().map((stop) => stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  const serveOn = async (name: string, jwksUri: string): Promise<Running> => {
    const policy = join(dir, `${name}.yaml`);
    writeFileSync(policy, examplePolicyWithJwksUri(jwksUri));
    const settings = serveSettings(
      [
        '--policy',
        policy,
        '--listen',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--forward-auth',
        '127.0.0.1:0',
      ],
      {},
    );
    const running = await startServer(settings, createLogger('silent'), new Metrics());
    started.push(() => running.stop());
    return running;
  };
  try {
    const { config, issuer } = await startExampleIssuer();
    started.push(() => issuer.close());
    const received: Array<IncomingMessage['headers']> = [];
    const upstream = await startInventoryUpstream({ onRequest: (req) => received.push(req.headers) });
    started.push(() => upstream.close());
    const scopegate = await serveOn('policy', issuer.jwksUri);
    const portsFor = async (running: Running): Promise<ProxyPorts> => ({
      listen: await freePort(),
      forwardAuth: port(running.forwardAuthAddress!),
      inventory: upstream.port,
    });
    const sync = config.clients.find((client) => client.id === 'inventory-sync')!;
    return {
      issuer,
      upstream,
      scopegate,
      received,
      proxyPorts: () => portsFor(scopegate),
      keylessProxyPorts: async () =>
        portsFor(await serveOn('keyless', `http://127.0.0.1:${await freePort()}/jwks.json`)),
      syncToken: async (scope) => {
        const answer = await requestToken(
          issuer.tokenUrl,
          { grant_type: 'client_credentials', scope },
          { authorization: basic(sync.id, sync.secret) },
        );
        if (answer.json.access_token === undefined)
          throw new Error(`no token for ${sync.id}: ${JSON.stringify(answer.json)}`);
        return answer.json.access_token;
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * What scopegate's forward-auth door answers for this request when asked directly, as Traefik or Caddy would
 * ask it: the answer the client behind the proxy must see too.
 */
async function scopegateSays(address: string, method: string, uri: string, token?: string) {
  const reply = await sendHttp(address, {
    method: 'GET',
    target: '/auth',
    headers: [
      ['x-forwarded-method', method],
      ['x-forwarded-uri', uri],
      ...(token === undefined ? [] : ([['authorization', `Bearer ${token}`]] as Array<[string, string]>)),
    ],
  });
  return reply;
}

/** The client's answer is scopegate's: status, challenge, reason, Retry-After, and the body but its request id. */
export async function expectScopegatesAnswer(
  answer: HttpResult,
  address: string,
  method: string,
  uri: string,
  token?: string,
): Promise<void> {
  const direct = await scopegateSays(address, method, uri, token);
  expect(answer.status).toBe(direct.status);
  for (const name of ['www-authenticate', 'x-scopegate-reason', 'retry-after', 'cache-control'])
    expect(answer.headers[name], name).toBe(direct.headers.get(name));
  expect(answer.headers['content-type']).toMatch(/^application\/json/);
  const { request_id: sentId, ...sent } = answer.json ?? {};
  const { request_id: directId, ...said } = direct.body ?? {};
  expect(sent).toEqual(said);
  expect(sentId).toEqual(expect.any(String));
  expect(sentId).not.toBe(directId);
}

/** A proxy started on a shipped config in front of the stack, and a way to send through it. */
export interface Proxied {
  readonly stack: ForwardAuthStack;
  readonly proxy: RunningProxy;
  send(options: SendOptions): Promise<HttpResult>;
}

/**
 * Registers the suite's hooks: the stack and one proxy started before its tests, both stopped after. The value
 * is filled in by the time a test runs.
 */
export function useProxiedStack(start: (ports: ProxyPorts) => Promise<RunningProxy>): Proxied {
  const proxied = {} as { stack: ForwardAuthStack; proxy: RunningProxy };
  beforeAll(async () => {
    proxied.stack = await startForwardAuthStack();
    proxied.proxy = await start(await proxied.stack.proxyPorts());
  });
  afterAll(async () => {
    await proxied.proxy?.stop();
    await proxied.stack?.close();
  });
  return {
    get stack() {
      return proxied.stack;
    },
    get proxy() {
      return proxied.proxy;
    },
    send: (options) => sendThrough(proxied.proxy.url, options),
  };
}

export const TRANSACTIONS = '/api/inventory/transactions';

/**
 * A POST creating a transaction at WH01 (its route reads the location from the body), its headers claiming in
 * both proxies' spellings that it is the GET listing transactions.
 */
export function postDressedAsList(token: string): SendOptions {
  return {
    method: 'POST',
    path: TRANSACTIONS,
    token,
    json: { location: 'WH01', item: 'ITEM001', quantity: 1 },
    headers: {
      'x-forwarded-method': 'GET',
      'x-forwarded-uri': TRANSACTIONS,
      'x-original-method': 'GET',
      'x-original-uri': TRANSACTIONS,
    },
  };
}
