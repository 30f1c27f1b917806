// The shipped Caddyfile (proxies/caddy/Caddyfile) in a real Caddy, only its addresses changed: Caddy asks
// scopegate's forward-auth door with `forward_auth` before the inventory upstream. Caddy passes a deny on as it
// came (any status, its headers and body); the upstream must see scopegate's identity and never the client's.
import { describe, expect, it } from 'vitest';
import { sendThrough } from '../../src/dev/stack.js';
import { syncIdentity } from '../support/policies.js';
import { caddyTool, freePort, startCaddy } from '../support/reverse-proxies.js';
import {
  expectScopegatesAnswer,
  postDressedAsList,
  TRANSACTIONS,
  useProxiedStack,
} from './forward-auth-stack.js';

describe.skipIf(caddyTool.skip)(caddyTool.suiteName('Caddy forward_auth (proxies/caddy/Caddyfile)'), () => {
  const front = useProxiedStack(startCaddy);
  const { send } = front;

  it("an allowed GET reaches the upstream with scopegate's identity, never a client's own in either spelling", async () => {
    const answer = await send({
      path: TRANSACTIONS,
      token: await front.stack.syncToken('inventory.read'),
      headers: {
        'x-scopegate-subject': 'admin',
        x_scopegate_subject: 'admin',
        'x.scopegate.subject': 'admin',
        X_SCOPEGATE_CLIENT: 'admin',
        'x-scopegate-peer': 'spiffe://evil/admin',
        'x-scopegate-anything': 'forged',
      },
    });
    expect(answer.status, front.proxy.logs()).toBe(200);
    expect(answer.json?.received_identity).toEqual(syncIdentity('list_transactions'));
    const received = front.stack.received.at(-1)!;
    expect(Object.entries(received).filter(([name]) => /^x[^a-z0-9]scopegate[^a-z0-9]/i.test(name))).toEqual(
      [
        ['x-scopegate-client', 'inventory-sync'],
        ['x-scopegate-issuer', expect.any(String)],
        ['x-scopegate-policy', 'inventory'],
        ['x-scopegate-route', 'list_transactions'],
        ['x-scopegate-subject', 'svc-inventory-sync'],
      ].sort(),
    );
  });

  it('401, 403, 400 and 503 reach the client as scopegate said them, body and all; no scopegate is 502', async () => {
    const address = front.stack.scopegate.forwardAuthAddress!;
    const missing = await send({ path: TRANSACTIONS });
    expect([missing.status, missing.json?.reason]).toEqual([401, 'token_missing']);
    await expectScopegatesAnswer(missing, address, 'GET', TRANSACTIONS);
    const writeOnly = await front.stack.syncToken('inventory.write');
    const scope = await send({ path: TRANSACTIONS, token: writeOnly });
    expect([scope.status, scope.json?.reason]).toEqual([403, 'scope_missing']);
    await expectScopegatesAnswer(scope, address, 'GET', TRANSACTIONS, writeOnly);
    const token = await front.stack.syncToken('inventory.read');
    const malformed = await send({ path: '/api/inventory//transactions', token });
    expect([malformed.status, malformed.json?.reason]).toEqual([400, 'request_malformed']);
    await expectScopegatesAnswer(malformed, address, 'GET', '/api/inventory//transactions', token);
    const ports = await front.stack.keylessProxyPorts();
    const keyless = await startCaddy(ports);
    try {
      const unavailable = await sendThrough(keyless.url, { path: TRANSACTIONS, token });
      expect([unavailable.status, unavailable.json?.reason]).toEqual([503, 'keys_unavailable']);
      await expectScopegatesAnswer(unavailable, `127.0.0.1:${ports.forwardAuth}`, 'GET', TRANSACTIONS, token);
    } finally {
      await keyless.stop();
    }
    // scopegate unreachable: Caddy's own 502, never the upstream.
    const orphan = await startCaddy({ ...ports, forwardAuth: await freePort() });
    try {
      const seen = front.stack.received.length;
      expect((await sendThrough(orphan.url, { path: TRANSACTIONS, token })).status).toBe(502);
      expect(front.stack.received).toHaveLength(seen);
    } finally {
      await orphan.stop();
    }
  });

  it("a client's own X-Forwarded-Uri or X-Original-URI does not change what is decided; the body is not sent", async () => {
    const token = await front.stack.syncToken('inventory.read inventory.write');
    const seen = front.stack.received.length;
    const post = await send(postDressedAsList(token));
    expect([post.status, post.json?.reason, post.json?.route]).toEqual([
      403,
      'body_unreadable',
      'create_transaction',
    ]);
    expect(front.stack.received).toHaveLength(seen);
  });
});
