// What a proxy's forward auth stands in front of, for the e2e tests of the shipped proxy configs (proxies/): the
// dev issuer (examples/inventory/dev-issuer.yaml), scopegate serving `--forward-auth` on the example policy (its
// JWKS at the issuer), and the inventory upstream, which also hands every request it receives to the test.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serveSettings } from '../../src/config/settings.js';
import type { DevIssuer } from '../../src/dev/issuer.js';
import { examplePolicyWithJwksUri } from '../../src/dev/stack.js';
import { type InventoryUpstream, startInventoryUpstream } from '../../src/dev/upstream.js';
import { type Running, startServer } from '../../src/server/app.js';
import { createLogger } from '../../src/telemetry/log.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { basic, requestToken, startExampleIssuer } from '../support/dev-issuer.js';
import { freePort, type ProxyPorts } from '../support/reverse-proxies.js';

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
