// The parts of the demo/e2e stack that need no Envoy: the example policy pointed at the dev issuer's JWKS,
// and sendThrough, the HTTP client that sends a path byte for byte and can repeat a header, against a tiny
// loopback server that records what arrived. The stack itself runs in test/e2e and `npm run demo`.
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { examplePolicyWithJwksUri, sendThrough } from '../../../src/dev/stack.js';
import { parsePolicy } from '../../../src/policy/index.js';
import { listenHttp } from '../../../src/server/admin.js';
import { examplePolicyText } from '../../support/policies.js';

describe('examplePolicyWithJwksUri', () => {
  it('is the example policy with only its JWKS source changed, to the URI given', () => {
    const uri = 'http://127.0.0.1:8090/.well-known/jwks.json';
    const text = examplePolicyWithJwksUri(uri);
    expect(text).toBe(examplePolicyText(uri));
    const parsed = parsePolicy(text, 'policy.yaml');
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
    expect(parsed.policy.issuers.map((issuer) => issuer.jwks)).toEqual([{ uri }]);
  });
});

describe('sendThrough', () => {
  interface Arrived {
    readonly method: string;
    readonly url: string;
    readonly rawHeaders: string[];
    readonly body: Buffer;
  }
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
  });

  /** Records each request; answers with `reply` (JSON unless told otherwise). */
  async function upstream(reply: { status?: number; type?: string; text?: string } = {}) {
    const arrived: Arrived[] = [];
    server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        arrived.push({
          method: req.method ?? '',
          url: req.url ?? '',
          rawHeaders: req.rawHeaders,
          body: Buffer.concat(chunks),
        });
        res
          .writeHead(reply.status ?? 200, {
            'content-type': reply.type ?? 'application/json',
            'x-upstream': 'yes',
          })
          .end(reply.text ?? '{"ok":true}');
      });
    });
    const { port } = await listenHttp(server, '127.0.0.1', 0);
    return { url: `http://127.0.0.1:${port}`, arrived };
  }

  const header = (arrived: Arrived, name: string) =>
    arrived.rawHeaders.filter((_, i) => i % 2 === 1 && arrived.rawHeaders[i - 1]!.toLowerCase() === name);

  it('sends the path exactly as written, where fetch would have normalised it', async () => {
    const { url, arrived } = await upstream();
    for (const path of ['/api//inventory/./transactions', '/api/inventory/%2e%2e/x?y=1&y=2', '/a/../b'])
      await sendThrough(url, { path });
    expect(arrived.map((request) => request.url)).toEqual([
      '/api//inventory/./transactions',
      '/api/inventory/%2e%2e/x?y=1&y=2',
      '/a/../b',
    ]);
  });

  it('a JSON body is POSTed as application/json with the bearer token; no body is a GET', async () => {
    const { url, arrived } = await upstream();
    await sendThrough(url, { path: '/t', token: 'abc.def.ghi', json: { location: 'WH01' } });
    await sendThrough(url, { path: '/t' });
    expect(arrived[0]?.method).toBe('POST');
    expect(arrived[0]?.body.toString()).toBe('{"location":"WH01"}');
    expect(header(arrived[0]!, 'content-type')).toEqual(['application/json']);
    expect(header(arrived[0]!, 'authorization')).toEqual(['Bearer abc.def.ghi']);
    expect(arrived[1]?.method).toBe('GET');
    expect(arrived[1]?.body).toHaveLength(0);
    expect(header(arrived[1]!, 'authorization')).toEqual([]);
  });

  it('a raw body goes as it is; an explicit method wins; a header given as a list is sent once per value', async () => {
    const { url, arrived } = await upstream();
    await sendThrough(url, {
      method: 'PUT',
      path: '/t',
      body: Buffer.from([0x7b, 0xff, 0x7d]),
      headers: { authorization: ['Bearer one', 'Bearer two'], 'x-location': 'WH01' },
    });
    expect(arrived[0]?.method).toBe('PUT');
    expect(arrived[0]?.body).toEqual(Buffer.from([0x7b, 0xff, 0x7d]));
    expect(header(arrived[0]!, 'authorization')).toEqual(['Bearer one', 'Bearer two']);
    expect(header(arrived[0]!, 'x-location')).toEqual(['WH01']);
  });

  it('returns the status, the headers, the text, and the JSON when the body is JSON', async () => {
    const json = await upstream({ status: 403, text: '{"reason":"scope_missing"}' });
    const denied = await sendThrough(json.url, { path: '/t' });
    expect(denied).toMatchObject({
      status: 403,
      text: '{"reason":"scope_missing"}',
      json: { reason: 'scope_missing' },
    });
    expect(denied.headers['x-upstream']).toBe('yes');
    await new Promise((resolve) => server!.close(resolve));
    const plain = await upstream({ status: 503, type: 'text/plain', text: 'upstream connect error' });
    expect(await sendThrough(plain.url, { path: '/t' })).toMatchObject({
      status: 503,
      text: 'upstream connect error',
      json: undefined,
    });
  });

  it('rejects when nothing listens', async () => {
    const { url } = await upstream();
    await new Promise((resolve) => server!.close(resolve));
    server = undefined;
    await expect(sendThrough(url, { path: '/' })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });
});
