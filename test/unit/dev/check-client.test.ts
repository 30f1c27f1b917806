// `scopegate check`, the client half: one real Check over loopback gRPC, shaped as Envoy would send it for the
// HTTP request, and the answer printed as the HTTP response Envoy would make of it, safe for a terminal
// whatever the server put in it.
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { describeResponse, sendCheck } from '../../../src/dev/check-client.js';
import { toCheckResponse } from '../../../src/response/encode.js';
import type { Decision } from '../../../src/vocabulary/index.js';
import { authorizationService, type ReceivedCheckResponse } from '../../../src/wire/proto.js';
import type { CheckRequest, CheckResponse } from '../../../src/wire/types.js';

/** A CheckResponse as the client decodes it off the wire. */
const received = (response: CheckResponse): ReceivedCheckResponse =>
  authorizationService.Check.responseDeserialize(authorizationService.Check.responseSerialize(response));
const context = { requestId: 'req-1', realm: 'inventory', requestHeaderNames: ['x-scopegate-policy'] };

describe('describeResponse', () => {
  it('an allow: the status Envoy acts on, the headers set for the upstream (+) and removed (-)', () => {
    const allowed: Decision = {
      reason: 'allowed',
      detail: 'allowed',
      revision: 'r1',
      route: 'create_transaction',
      subject: 'josé',
      client: 'inventory-sync',
    };
    expect(describeResponse(received(toCheckResponse(allowed, context))).split('\n')).toEqual([
      'HTTP 200 (allowed: Envoy forwards the request to the upstream)',
      '+ x-scopegate-subject: josé',
      '+ x-scopegate-client: inventory-sync',
      '+ x-scopegate-route: create_transaction',
      '- x-scopegate-policy',
    ]);
  });

  it('a deny: the HTTP status, each header, a blank line, then the body', () => {
    const expired: Decision = { reason: 'token_expired', detail: 'exp passed', revision: 'r1' };
    const response = toCheckResponse(expired, context);
    const lines = describeResponse(received(response)).split('\n');
    expect(lines[0]).toBe('HTTP 401');
    expect(lines).toContain('x-scopegate-reason: token_expired');
    expect(lines.find((line) => line.startsWith('www-authenticate: '))).toMatch(/error="invalid_token"/);
    expect(lines.at(-2)).toBe('');
    expect(lines.at(-1)).toBe(response.denied_response!.body);
  });

  it('a deny with no status code reads as Envoy’s default 403', () => {
    expect(describeResponse({ status: { code: 7 }, denied_response: { body: 'no' } })).toBe('HTTP 403\n\nno');
  });

  it('escapes what could redraw a terminal or hide a line, from headers and body alike', () => {
    const hostile: ReceivedCheckResponse = {
      status: { code: 7 },
      denied_response: {
        status: { code: 'Forbidden' },
        headers: [{ header: { key: 'x-evil\u001b[2J', value: 'a\rb\nFAKE: line' } }],
        body: '{"error":"\u009b31m\u202ehidden"}',
      },
    };
    const text = describeResponse(hostile);
    expect(text).toBe(
      'HTTP 403\nx-evil\\u001b[2J: a\\u000db\\u000aFAKE: line\n\n{"error":"\\u009b31m\\u202ehidden"}',
    );
    expect(text.split('\n')).toHaveLength(4);
  });
});

describe('sendCheck', () => {
  let server: grpc.Server | undefined;
  afterEach(() => {
    server?.forceShutdown();
    server = undefined;
  });

  /** A bare Authorization server on loopback that records each CheckRequest and answers with `answer`. */
  async function authorizationServer(answer?: CheckResponse) {
    const seen: CheckRequest[] = [];
    server = new grpc.Server();
    server.addService(authorizationService, {
      Check: (
        call: grpc.ServerUnaryCall<CheckRequest, CheckResponse>,
        callback: grpc.sendUnaryData<CheckResponse>,
      ) => {
        seen.push(call.request);
        if (answer) callback(null, answer);
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server!.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) =>
        error ? reject(error) : resolve(bound),
      ),
    );
    return { address: `127.0.0.1:${port}`, seen };
  }

  it('sends the CheckRequest Envoy would for the HTTP request, and returns the decoded answer', async () => {
    const denied = toCheckResponse({ reason: 'token_expired', detail: 'x', revision: 'r1' }, context);
    const { address, seen } = await authorizationServer(denied);
    const response = await sendCheck({
      server: address,
      method: 'POST',
      path: '/api/inventory/transactions',
      token: 'abc.def.ghi',
      headers: [['content-type', 'application/json']],
      body: '{"location":"WH01"}',
      timeoutMs: 2_000,
    });
    expect(response).toEqual(received(denied));
    const http = seen[0]?.attributes?.request?.http;
    expect(http).toMatchObject({ method: 'POST', path: '/api/inventory/transactions', size: '19' });
    expect(Buffer.from(http!.body as Uint8Array).toString('utf8')).toBe('{"location":"WH01"}');
    expect(http?.headers).toMatchObject({
      ':method': 'POST',
      ':path': '/api/inventory/transactions',
      authorization: 'Bearer abc.def.ghi',
      'content-type': 'application/json',
    });
  });

  it('gives up at its deadline when the server does not answer', async () => {
    const { address } = await authorizationServer();
    const started = Date.now();
    await expect(
      sendCheck({ server: address, method: 'GET', path: '/', headers: [], timeoutMs: 300 }),
    ).rejects.toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED });
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
