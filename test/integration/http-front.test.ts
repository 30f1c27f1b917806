// The HTTP front doors over real HTTP on loopback: Envoy's http_service door answers exactly what the gRPC
// door answers (status, headers, body), the forward-auth door reads the original request only from the
// forwarded headers and refuses a request without them (the other doors never read them), --http-path-prefix
// is taken off before the path is read, and every door's decisions are logged and counted under its transport.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FrontReply, sendHttp } from '../support/http-front.js';
import { captureLog } from '../support/logs.js';
import {
  type Harness,
  type HttpLike,
  httpCheck,
  JSON_BODY,
  startHarness,
  transaction,
} from '../support/scopegate.js';

let h: Harness;
const logged = captureLog('info');
beforeAll(async () => {
  h = await startHarness(undefined, {
    flags: ['--http', '127.0.0.1:0', '--forward-auth', '127.0.0.1:0'],
    log: logged.log,
  });
});
afterAll(async () => h?.close());

const LIST = '/api/inventory/transactions';
const CREATE = '/api/inventory/transactions';

async function bothDoors(call: HttpLike): Promise<void> {
  const request = httpCheck(call);
  const grpc = await h.sendRaw(request);
  const requestId = request.attributes!.request!.http!.headers!['x-request-id']!;
  const headers: Array<[string, string]> = [
    ['host', 'inventory.local'],
    ['x-request-id', requestId],
    ...(call.headers ?? []),
  ];
  if (call.token !== undefined) headers.push(['authorization', `Bearer ${call.token}`]);
  const http = await sendHttp(h.running.httpAddress!, {
    method: call.method,
    target: call.path,
    headers,
    ...(call.body !== undefined && { body: call.body }),
  });
  expect(http.status).toBe(grpc.status);
  expect(http.headers.get('x-scopegate-meta-reason')).toBe(grpc.reason);
  for (const [name, value] of grpc.headers) expect(http.headers.get(name), name).toBe(value);
  if (grpc.status !== 200) expect(http.body).toEqual(grpc.body);
  else expect(http.text).toBe('');
}

describe("Envoy's http_service door answers as the gRPC door does", () => {
  it('the support thread: GET allowed, POST with both scopes allowed, POST with only inventory.write denied', async () => {
    const both = await h.syncToken('inventory.read inventory.write');
    const writeOnly = await h.syncToken('inventory.write');
    await bothDoors({ method: 'GET', path: LIST, token: both });
    await bothDoors({
      method: 'POST',
      path: CREATE,
      token: both,
      headers: JSON_BODY,
      body: transaction('WH01'),
    });
    await bothDoors({
      method: 'POST',
      path: CREATE,
      token: writeOnly,
      headers: JSON_BODY,
      body: transaction('WH01'),
    });
  });

  it('no token (401 with a bare challenge), a bad token, a location denied, an unknown route, a malformed path', async () => {
    const both = await h.syncToken('inventory.read inventory.write');
    await bothDoors({ method: 'GET', path: LIST });
    await bothDoors({ method: 'GET', path: LIST, token: 'not.a.token' });
    await bothDoors({
      method: 'POST',
      path: CREATE,
      token: both,
      headers: JSON_BODY,
      body: transaction('WH99'),
    });
    await bothDoors({ method: 'GET', path: '/api/nowhere', token: both });
    await bothDoors({ method: 'GET', path: '/api/inventory/../transactions', token: both });
    await bothDoors({ method: 'POST', path: CREATE, token: both, headers: JSON_BODY });
  });

  it('an allow names the identity for the upstream and asks Envoy to remove client-sent x-scopegate-* headers', async () => {
    const reply = await sendHttp(h.running.httpAddress!, {
      method: 'GET',
      target: LIST,
      headers: [
        ['authorization', `Bearer ${await h.syncToken('inventory.read')}`],
        ['x-scopegate-subject', 'admin'],
        ['x_scopegate_policy', 'other'],
      ],
    });
    expect(reply.status).toBe(200);
    expect(reply.headers.get('x-scopegate-subject')).toBe('svc-inventory-sync');
    expect(reply.headers.get('x-envoy-auth-headers-to-remove')).toBe('x_scopegate_policy');
    expect(reply.headers.get('x-scopegate-meta-decision')).toBe('allow');
  });

  it('two Authorization headers are request_malformed, as Envoy joins them for the gRPC door', async () => {
    const token = await h.syncToken('inventory.read');
    const reply = await sendHttp(h.running.httpAddress!, {
      method: 'GET',
      target: LIST,
      headers: [
        ['authorization', `Bearer ${token}`],
        ['authorization', `Bearer ${token}`],
      ],
    });
    expect([reply.status, reply.body?.reason]).toEqual([400, 'request_malformed']);
  });
});

describe('the forward-auth headers mean nothing to the other doors', () => {
  // What a client could send to steer the decision to another route: only the forward-auth door reads them,
  // where a proxy overwrites them.
  const steering = (method: string, uri: string): Array<[string, string]> => [
    ['x-forwarded-method', method],
    ['x-forwarded-uri', uri],
    ['x-original-method', method],
    ['x-original-uri', uri],
  ];

  it('the gRPC and --http doors decide the request line, whatever X-Forwarded-*/X-Original-* say', async () => {
    const token = await h.syncToken('inventory.read');
    const auth: [string, string] = ['authorization', `Bearer ${token}`];
    const cases = [
      // The real request is allowed; the headers name a route that does not exist.
      { method: 'GET', path: LIST, headers: steering('DELETE', '/api/nowhere'), route: 'list_transactions' },
      // The real request is no route; the headers name an allowed one.
      { method: 'GET', path: '/api/nowhere', headers: steering('GET', LIST), route: undefined },
    ];
    for (const { method, path, headers, route } of cases) {
      const grpc = await h.send({ method, path, token, headers });
      const http = await sendHttp(h.running.httpAddress!, {
        method,
        target: path,
        headers: [auth, ...headers],
      });
      const expected = route === undefined ? [403, 'route_unknown', undefined] : [200, 'allowed', route];
      expect([grpc.status, grpc.reason, grpc.headers.get('x-scopegate-route')], `gRPC ${path}`).toEqual(
        expected,
      );
      expect(
        [http.status, http.headers.get('x-scopegate-meta-reason'), http.headers.get('x-scopegate-route')],
        `--http ${path}`,
      ).toEqual(expected);
    }
    // The forward-auth door, given the same headers, decides what they name.
    const steered = await forwardAuth([auth, ...steering('GET', LIST)], 'GET', '/api/nowhere');
    expect([steered.status, steered.headers.get('x-scopegate-route')]).toEqual([200, 'list_transactions']);
  });
});

describe('--http-path-prefix: Envoy puts its path_prefix before each path', () => {
  let prefixed: Harness;
  beforeAll(async () => {
    prefixed = await startHarness(undefined, {
      flags: ['--http', '127.0.0.1:0', '--http-path-prefix', '/authz'],
    });
  });
  afterAll(async () => prefixed?.close());

  it('a request under the prefix is decided as the path without it; one without it is request_malformed', async () => {
    const token = await prefixed.syncToken('inventory.read');
    const get = (target: string) =>
      sendHttp(prefixed.running.httpAddress!, {
        method: 'GET',
        target,
        headers: [['authorization', `Bearer ${token}`]],
      });
    const allowed = await get(`/authz${LIST}`);
    expect([allowed.status, allowed.headers.get('x-scopegate-route')]).toEqual([200, 'list_transactions']);
    const item = await get('/authz/api/inventory/locations/WH99/items');
    expect([item.status, item.body?.reason, item.body?.route]).toEqual([
      403,
      'location_denied',
      'list_location_items',
    ]);
    for (const target of [LIST, `/authzx${LIST}`, '/authz', `/other${LIST}`]) {
      const refused = await get(target);
      expect([refused.status, refused.body?.reason], target).toEqual([400, 'request_malformed']);
    }
  });
});

async function forwardAuth(
  headers: Array<[string, string]>,
  method = 'GET',
  target = '/auth',
): Promise<FrontReply> {
  return sendHttp(h.running.forwardAuthAddress!, { method, target, headers });
}

describe('the forward-auth door', () => {
  it("decides the original request the forwarded headers describe, not the proxy's own call", async () => {
    const token = await h.syncToken('inventory.read');
    const traefik = await forwardAuth([
      ['authorization', `Bearer ${token}`],
      ['x-forwarded-method', 'GET'],
      ['x-forwarded-uri', LIST],
      ['x-forwarded-host', 'inventory.local'],
    ]);
    expect([traefik.status, traefik.headers.get('x-scopegate-route')]).toEqual([200, 'list_transactions']);
    const nginx = await forwardAuth([
      ['authorization', `Bearer ${token}`],
      ['x-original-method', 'GET'],
      ['x-original-uri', LIST],
    ]);
    expect(nginx.status).toBe(200);
    // The proxy's own method and path mean nothing: the same call naming a route the token lacks is denied.
    const denied = await forwardAuth(
      [
        ['authorization', `Bearer ${token}`],
        ['x-forwarded-method', 'DELETE'],
        ['x-forwarded-uri', LIST],
      ],
      'GET',
      LIST,
    );
    expect(denied.status).not.toBe(200);
  });

  it('refuses a request without the forwarded method or URI, or with two that disagree: request_malformed', async () => {
    const token = await h.syncToken('inventory.read');
    const auth: [string, string] = ['authorization', `Bearer ${token}`];
    for (const headers of [
      [auth],
      [auth, ['x-forwarded-uri', LIST]],
      [auth, ['x-forwarded-method', 'GET']],
      [auth, ['x-forwarded-method', 'GET'], ['x-forwarded-uri', LIST], ['x-original-uri', '/api/other']],
      [auth, ['x-forwarded-method', 'GET'], ['x-forwarded-uri', LIST], ['x-forwarded-uri', LIST]],
    ] as Array<Array<[string, string]>>) {
      const reply = await forwardAuth(headers, 'GET', LIST);
      expect([reply.status, reply.body?.reason], JSON.stringify(headers.slice(1))).toEqual([
        400,
        'request_malformed',
      ]);
    }
  });

  it('a route that reads its location from the body is body_unreadable: the proxies send no body', async () => {
    const reply = await forwardAuth([
      ['authorization', `Bearer ${await h.syncToken('inventory.read inventory.write')}`],
      ['content-type', 'application/json'],
      ['x-forwarded-method', 'POST'],
      ['x-forwarded-uri', CREATE],
    ]);
    expect([reply.status, reply.body?.reason]).toEqual([403, 'body_unreadable']);
  });
});

describe("the forward-auth door, asked for a deny in headers (nginx auth_request's shipped config)", () => {
  it('answers every deny 403 with the real status and the body in headers; an allow as ever', async () => {
    const ask: [string, string] = ['x-scopegate-deny-in-headers', '1'];
    const forwarded: Array<[string, string]> = [
      ['x-original-method', 'GET'],
      ['x-original-uri', LIST],
    ];
    const plain = await forwardAuth(forwarded);
    const asked = await forwardAuth([...forwarded, ask]);
    expect([plain.status, asked.status]).toEqual([401, 403]);
    expect(asked.headers.get('x-scopegate-status')).toBe('401');
    expect(asked.headers.get('www-authenticate')).toBe(plain.headers.get('www-authenticate'));
    const { request_id: _, ...carried } = JSON.parse(asked.headers.get('x-scopegate-body')!);
    const { request_id: __, ...said } = plain.body!;
    expect(carried).toEqual(said);
    const malformed = await forwardAuth([ask, ['x-original-method', 'GET']]);
    expect([malformed.status, malformed.headers.get('x-scopegate-status')]).toEqual([403, '400']);
    const token = await h.syncToken('inventory.read');
    const allowed = await forwardAuth([...forwarded, ask, ['authorization', `Bearer ${token}`]]);
    expect([allowed.status, allowed.headers.get('x-scopegate-status')]).toEqual([200, undefined]);
    expect(allowed.headers.get('x-scopegate-subject')).toBe('svc-inventory-sync');
    // The ask is the door's, not the request's: it is no client-sent identity header to remove.
    expect(allowed.headers.get('x-envoy-auth-headers-to-remove')).toBeUndefined();
  });
});

describe('logs', () => {
  it('each door’s decision lines name it: transport grpc, http or forward_auth', async () => {
    // A deny each (denies are logged at info), found again by the request id its answer names.
    const grpc = await h.send({ method: 'GET', path: LIST });
    const http = await sendHttp(h.running.httpAddress!, { method: 'GET', target: LIST, headers: [] });
    const forwardAuthReply = await forwardAuth([
      ['x-forwarded-method', 'GET'],
      ['x-forwarded-uri', LIST],
    ]);
    for (const [transport, body] of [
      ['grpc', grpc.body],
      ['http', http.body],
      ['forward_auth', forwardAuthReply.body],
    ] as const) {
      const requestId = body?.request_id;
      expect(requestId, transport).toEqual(expect.any(String));
      const lines = logged.text.filter((line) => line.includes(`"request_id":"${requestId}"`));
      expect(lines, transport).toHaveLength(1);
      expect(JSON.parse(lines[0]!), transport).toMatchObject({
        msg: 'decision',
        reason: 'token_missing',
        transport,
      });
      // Named once: the door's child logger says it, the line itself does not say it again.
      expect(lines[0]!.match(/"transport":/g), transport).toHaveLength(1);
    }
  });
});

describe('metrics', () => {
  it('count each door under its transport label', async () => {
    const text = await h.scrape();
    expect(text).toMatch(/^scopegate_decisions_total\{[^}]*reason="allowed"[^}]*transport="grpc"\} [1-9]/m);
    expect(text).toMatch(/^scopegate_decisions_total\{[^}]*reason="allowed"[^}]*transport="http"\} [1-9]/m);
    expect(text).toMatch(
      /^scopegate_decisions_total\{[^}]*reason="allowed"[^}]*transport="forward_auth"\} [1-9]/m,
    );
    expect(text).toMatch(
      /^scopegate_decisions_total\{[^}]*reason="body_unreadable"[^}]*transport="forward_auth"\} 1$/m,
    );
    expect(text).toMatch(
      /^scopegate_check_duration_seconds_count\{decision="allow",transport="http"\} [1-9]/m,
    );
    // The fail-closed series of each served door are there from the start, for the alerts.
    expect(text).toMatch(
      /^scopegate_decisions_total\{decision="deny",reason="internal_error",route="",policy="",transport="forward_auth"\} 0$/m,
    );
  });
});
