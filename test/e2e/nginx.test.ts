// The shipped nginx config (proxies/nginx/scopegate.conf) in a real nginx, only its addresses changed: nginx
// asks scopegate's forward-auth door with `auth_request` before the inventory upstream. A client must see what
// scopegate said (status, WWW-Authenticate, x-scopegate-reason, JSON body), 400 and 503 included, which
// auth_request alone would turn into 500; the upstream must see scopegate's identity and never the client's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpResult, type SendOptions, sendThrough } from '../../src/dev/stack.js';
import { sendHttp } from '../support/http-front.js';
import { syncIdentity } from '../support/policies.js';
import { nginxTool, type RunningProxy, startNginx } from '../support/reverse-proxies.js';
import { type ForwardAuthStack, startForwardAuthStack } from './forward-auth-stack.js';

const TRANSACTIONS = '/api/inventory/transactions';

let stack: ForwardAuthStack;
let nginx: RunningProxy;

const send = (options: SendOptions) => sendThrough(nginx.url, options);

/**
 * What scopegate's forward-auth door answers for this request when asked directly, as Traefik or Caddy would
 * ask it: the answer the client behind nginx must see too.
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
async function expectScopegatesAnswer(
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

describe.skipIf(nginxTool.skip)(
  nginxTool.suiteName('nginx auth_request (proxies/nginx/scopegate.conf)'),
  () => {
    beforeAll(async () => {
      stack = await startForwardAuthStack();
      nginx = await startNginx(await stack.proxyPorts());
    });
    afterAll(async () => {
      await nginx?.stop();
      await stack?.close();
    });

    it('an allowed GET reaches the upstream with the identity scopegate decided on', async () => {
      const answer = await send({ path: TRANSACTIONS, token: await stack.syncToken('inventory.read') });
      expect(answer.status, nginx.logs()).toBe(200);
      expect(answer.json?.received_identity).toEqual(syncIdentity('list_transactions'));
    });

    it('no token: 401 with the bare challenge, token_missing and its JSON body, as scopegate said them', async () => {
      const seen = stack.received.length;
      const answer = await send({ path: TRANSACTIONS });
      expect(answer.status).toBe(401);
      expect(answer.headers['www-authenticate']).toBe('Bearer realm="inventory"');
      expect(answer.headers['x-scopegate-reason']).toBe('token_missing');
      expect(answer.json?.reason).toBe('token_missing');
      await expectScopegatesAnswer(answer, stack.scopegate.forwardAuthAddress!, 'GET', TRANSACTIONS);
      expect(stack.received).toHaveLength(seen);
    });

    it('a token without inventory.read: 403 insufficient_scope naming the scope, with the missing permission', async () => {
      const token = await stack.syncToken('inventory.write');
      const answer = await send({ path: TRANSACTIONS, token });
      expect(answer.status).toBe(403);
      expect(answer.headers['www-authenticate']).toMatch(
        /error="insufficient_scope".*scope="inventory.read"/,
      );
      expect(answer.json).toMatchObject({
        reason: 'scope_missing',
        route: 'list_transactions',
        missing: { scopes: ['inventory.read'] },
      });
      await expectScopegatesAnswer(answer, stack.scopegate.forwardAuthAddress!, 'GET', TRANSACTIONS, token);
    });

    it("a client's own x-scopegate-subject and x_scopegate_subject never reach the upstream", async () => {
      const answer = await send({
        path: TRANSACTIONS,
        token: await stack.syncToken('inventory.read'),
        headers: {
          'x-scopegate-subject': 'admin',
          x_scopegate_subject: 'admin',
          'x-scopegate-peer': 'spiffe://evil/admin',
          x_scopegate_peer: 'spiffe://evil/admin',
        },
      });
      expect(answer.status).toBe(200);
      const received = stack.received.at(-1)!;
      expect(received['x-scopegate-subject']).toBe('svc-inventory-sync');
      expect(received['x-scopegate-peer']).toBeUndefined();
      expect(Object.keys(received).filter((name) => name.startsWith('x_'))).toEqual([]);
    });

    it("a client's own X-Original-URI, X-Original-Method or X-Forwarded-Uri does not change what is decided", async () => {
      const token = await stack.syncToken('inventory.read');
      const seen = stack.received.length;
      // A POST dressed up as the GET the token may make is still the POST, which needs inventory.write.
      const post = await send({
        method: 'POST',
        path: TRANSACTIONS,
        token,
        json: { location: 'WH01', item: 'ITEM001', quantity: 1 },
        headers: {
          'x-original-method': 'GET',
          'x-original-uri': TRANSACTIONS,
          'x-forwarded-method': 'GET',
          'x-forwarded-uri': TRANSACTIONS,
        },
      });
      expect([post.status, post.json?.reason, post.json?.route]).toEqual([
        403,
        'scope_missing',
        'create_transaction',
      ]);
      expect(stack.received).toHaveLength(seen);
      // And the other way: the GET it may make, claiming to be another route, is decided as what it is.
      const get = await send({
        path: TRANSACTIONS,
        token,
        headers: { 'x-original-uri': '/api/inventory/stock', 'x-forwarded-uri': '/api/inventory/stock' },
      });
      expect(get.status).toBe(200);
      expect(get.json?.received_identity).toEqual(syncIdentity('list_transactions'));
    });

    it('a POST whose route reads the location from the body is 403 body_unreadable: nginx sends no body', async () => {
      const token = await stack.syncToken('inventory.read inventory.write');
      const answer = await send({
        method: 'POST',
        path: TRANSACTIONS,
        token,
        json: { location: 'WH01', item: 'ITEM001', quantity: 1 },
      });
      expect(answer.status).toBe(403);
      expect(answer.json).toMatchObject({ reason: 'body_unreadable', route: 'create_transaction' });
      expect(stack.upstream.transactions()).toHaveLength(0);
    });

    it('a path scopegate refuses is 400 request_malformed with invalid_request, not the 500 auth_request makes', async () => {
      const token = await stack.syncToken('inventory.read');
      const path = '/api/inventory//transactions';
      const answer = await send({ path, token });
      expect(answer.status).toBe(400);
      expect(answer.headers['www-authenticate']).toMatch(/error="invalid_request"/);
      expect(answer.json?.reason).toBe('request_malformed');
      await expectScopegatesAnswer(answer, stack.scopegate.forwardAuthAddress!, 'GET', path, token);
    });

    it('no keys for the issuer: 503 keys_unavailable with Retry-After, not 500', async () => {
      const ports = await stack.keylessProxyPorts();
      const keyless = await startNginx(ports);
      try {
        const token = await stack.syncToken('inventory.read');
        const answer = await sendThrough(keyless.url, { path: TRANSACTIONS, token });
        expect(answer.status, keyless.logs()).toBe(503);
        expect(answer.headers['retry-after']).toBe('1');
        expect(answer.json?.reason).toBe('keys_unavailable');
        await expectScopegatesAnswer(answer, `127.0.0.1:${ports.forwardAuth}`, 'GET', TRANSACTIONS, token);
      } finally {
        await keyless.stop();
      }
    });
  },
);
