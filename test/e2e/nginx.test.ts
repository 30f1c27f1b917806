// The shipped nginx config (proxies/nginx/scopegate.conf) in a real nginx, only its addresses changed: nginx
// asks scopegate's forward-auth door with `auth_request` before the inventory upstream. A client must see what
// scopegate said (status, WWW-Authenticate, x-scopegate-reason, JSON body), 400 and 503 included, which
// auth_request alone would turn into 500; the upstream must see scopegate's identity and never the client's.
import { describe, expect, it } from 'vitest';
import { sendThrough } from '../../src/dev/stack.js';
import { syncIdentity } from '../support/policies.js';
import { freePort, nginxTool, startNginx } from '../support/reverse-proxies.js';
import {
  expectScopegatesAnswer,
  postDressedAsList,
  TRANSACTIONS,
  useProxiedStack,
} from './forward-auth-stack.js';

describe.skipIf(nginxTool.skip)(
  nginxTool.suiteName('nginx auth_request (proxies/nginx/scopegate.conf)'),
  () => {
    const front = useProxiedStack(startNginx);
    const { send } = front;

    it('an allowed GET reaches the upstream with the identity scopegate decided on', async () => {
      const answer = await send({ path: TRANSACTIONS, token: await front.stack.syncToken('inventory.read') });
      expect(answer.status, front.proxy.logs()).toBe(200);
      expect(answer.json?.received_identity).toEqual(syncIdentity('list_transactions'));
    });

    it('no token: 401 with the bare challenge, token_missing and its JSON body, as scopegate said them', async () => {
      const seen = front.stack.received.length;
      const answer = await send({ path: TRANSACTIONS });
      expect(answer.status).toBe(401);
      expect(answer.headers['www-authenticate']).toBe('Bearer realm="inventory"');
      expect(answer.headers['x-scopegate-reason']).toBe('token_missing');
      expect(answer.json?.reason).toBe('token_missing');
      // nginx's $request_id, which the config sends scopegate (and the upstream), so nginx's log can name it.
      expect(answer.json?.request_id).toMatch(/^[0-9a-f]{32}$/);
      await expectScopegatesAnswer(answer, front.stack.scopegate.forwardAuthAddress!, 'GET', TRANSACTIONS);
      expect(front.stack.received).toHaveLength(seen);
    });

    it('a token without inventory.read: 403 insufficient_scope naming the scope, with the missing permission', async () => {
      const token = await front.stack.syncToken('inventory.write');
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
      await expectScopegatesAnswer(
        answer,
        front.stack.scopegate.forwardAuthAddress!,
        'GET',
        TRANSACTIONS,
        token,
      );
    });

    it("a client's own x-scopegate-subject, x_scopegate_subject or x.scopegate.subject never reaches the upstream", async () => {
      const answer = await send({
        path: TRANSACTIONS,
        token: await front.stack.syncToken('inventory.read'),
        headers: {
          'x-scopegate-subject': 'admin',
          x_scopegate_subject: 'admin',
          'x.scopegate.subject': 'admin',
          X_SCOPEGATE_CLIENT: 'admin',
          'x-scopegate-peer': 'spiffe://evil/admin',
          x_scopegate_peer: 'spiffe://evil/admin',
        },
      });
      expect(answer.status).toBe(200);
      const received = front.stack.received.at(-1)!;
      expect(received['x-scopegate-subject']).toBe('svc-inventory-sync');
      expect(received['x-scopegate-peer']).toBeUndefined();
      expect(Object.keys(received).filter((name) => /^x[^a-z0-9-]/.test(name))).toEqual([]);
      expect(received['x-scopegate-client']).toBe('inventory-sync');
    });

    it("a client's own X-Original-URI, X-Original-Method or X-Forwarded-Uri does not change what is decided", async () => {
      const token = await front.stack.syncToken('inventory.read');
      const seen = front.stack.received.length;
      // A POST dressed up as the GET the token may make is still the POST, which needs inventory.write.
      const post = await send(postDressedAsList(token));
      expect([post.status, post.json?.reason, post.json?.route]).toEqual([
        403,
        'scope_missing',
        'create_transaction',
      ]);
      expect(front.stack.received).toHaveLength(seen);
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
      const token = await front.stack.syncToken('inventory.read inventory.write');
      const answer = await send({
        method: 'POST',
        path: TRANSACTIONS,
        token,
        json: { location: 'WH01', item: 'ITEM001', quantity: 1 },
      });
      expect(answer.status).toBe(403);
      expect(answer.json).toMatchObject({ reason: 'body_unreadable', route: 'create_transaction' });
      expect(front.stack.upstream.transactions()).toHaveLength(0);
    });

    it('a path scopegate refuses is 400 request_malformed with invalid_request, not the 500 auth_request makes', async () => {
      const token = await front.stack.syncToken('inventory.read');
      const path = '/api/inventory//transactions';
      const answer = await send({ path, token });
      expect(answer.status).toBe(400);
      expect(answer.headers['www-authenticate']).toMatch(/error="invalid_request"/);
      expect(answer.json?.reason).toBe('request_malformed');
      await expectScopegatesAnswer(answer, front.stack.scopegate.forwardAuthAddress!, 'GET', path, token);
    });

    it('no keys for the issuer: 503 keys_unavailable with Retry-After, not 500', async () => {
      const ports = await front.stack.keylessProxyPorts();
      const keyless = await startNginx(ports);
      try {
        const token = await front.stack.syncToken('inventory.read');
        const answer = await sendThrough(keyless.url, { path: TRANSACTIONS, token });
        expect(answer.status, keyless.logs()).toBe(503);
        expect(answer.headers['retry-after']).toBe('1');
        expect(answer.json?.reason).toBe('keys_unavailable');
        await expectScopegatesAnswer(answer, `127.0.0.1:${ports.forwardAuth}`, 'GET', TRANSACTIONS, token);
      } finally {
        await keyless.stop();
      }
    });

    it('scopegate unreachable: nginx answers its own 500, never the upstream', async () => {
      const seen = front.stack.received.length;
      const ports = { ...(await front.stack.proxyPorts()), forwardAuth: await freePort() };
      const orphan = await startNginx(ports);
      try {
        const answer = await sendThrough(orphan.url, {
          path: TRANSACTIONS,
          token: await front.stack.syncToken('inventory.read'),
        });
        expect(answer.status).toBe(500);
        expect(answer.json).toBeUndefined();
        expect(front.stack.received).toHaveLength(seen);
      } finally {
        await orphan.stop();
      }
    });
  },
);
