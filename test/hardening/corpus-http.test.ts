// The bad-input corpus through the three front doors of one scopegate: every vector HTTP can carry gets, from
// Envoy's HTTP ext_authz door (`serve --http`), the decision the gRPC door gives it, with the same status,
// headers and body; and from the forward-auth door (`serve --forward-auth`: method and URI in headers, a body
// sent along never read), the decision the gRPC door gives it without its body (so a route that reads the body
// is body_unreadable). A vector HTTP cannot carry (a peer, context extensions, two paths …) is named, each with
// why, and what the HTTP door makes of the rest of it never lets it through where the gRPC door would not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckRequest } from '../../src/wire/types.js';
import { type FrontReply, forwardAuthOf, httpOfCheckRequest, sendHttp } from '../support/http-front.js';
import { type Harness, type HttpAnswer, startHarness } from '../support/scopegate.js';
import { CORPUS, type CorpusContext, corpusContext } from './corpus.js';

let h: Harness;
let ctx: CorpusContext;
beforeAll(async () => {
  h = await startHarness(undefined, { flags: ['--http', '127.0.0.1:0', '--forward-auth', '127.0.0.1:0'] });
  ctx = await corpusContext(h.key);
});
afterAll(async () => h?.close());

/**
 * The vectors HTTP cannot carry, and why (support/http-front.ts, httpOfCheckRequest): a vector that became
 * uncarriable, or carriable, by mistake fails. So is every vector of the peer group that has a peer (below).
 */
const NOT_CARRIED: Readonly<Record<string, string>> = {
  'a trailing space after the token': 'a header value with surrounding whitespace',
  'a leading space before Bearer': 'a header value with surrounding whitespace',
  'Bearer with an empty token': 'a header value with surrounding whitespace',
  'headers map and header_map both filled': 'headers given twice',
  "a body in Envoy's text field with a byte that is not UTF-8 (Envoy sends it as '!')":
    "bytes in Envoy's text body field",
  "a body in Envoy's text field without a '!' (nothing was replaced): read":
    "bytes in Envoy's text body field",
  'body and raw_body both sent, naming different locations': 'a body given twice',
  'body and raw_body both sent, the same text': 'a body given twice',
  'an empty CheckRequest': 'no HTTP attributes',
  'attributes without request': 'no HTTP attributes',
  'request without http': 'no HTTP attributes',
  'http with nothing in it': 'no method or path',
  'an empty method': 'no method or path',
  'a method with a space': 'a method with whitespace',
  'method attribute and :method disagree': 'two methods',
  'path attribute and :path disagree': 'two paths',
  'no path at all': 'no method or path',
};
const PEER_NOT_CARRIED = 'the peer (source)';
/** The one vector of the peer group with no peer in it (a header claiming one is an ordinary header). */
const PEER_GROUP_CARRIED = 'no peer, but an x-forwarded-client-cert header naming a listed one';

/** Why HTTP cannot carry the request, or the request Envoy's http_service would send. */
const carriedOverHttp = httpOfCheckRequest;

/**
 * Vectors HTTP/1.1 can write but the listener's parser refuses (a header block over its limit, an unknown or
 * lower-case method, control characters, a target that is not a path): request_malformed, before a request
 * id can be read, whatever the gRPC door decided of the CheckRequest.
 */
const REFUSED_BY_THE_HTTP_PARSER = new Set([
  'a 1 MB token (beyond the 64 KiB header block): a malformed token, 401',
  'a header with an empty name (header_map)',
  'path with a raw NUL',
  'path with a raw tab',
  'path with a raw space',
  'path with no leading slash',
  'an unknown method (BREW)',
  'a lower-case method',
  'a 17-letter method',
  'a 100 KB x-request-id (over the 64 KiB header block)',
  'an x-request-id with control characters and quotes',
]);

/**
 * The same, at the forward-auth door: there the method and path travel as header values, which the parser
 * takes (a space, a lower-case or unknown method, a relative path are the decision's to refuse), so only what
 * no header value or header block may hold is left.
 */
const REFUSED_BY_THE_FORWARD_AUTH_PARSER = new Set([
  'a 1 MB token (beyond the 64 KiB header block): a malformed token, 401',
  'a header with an empty name (header_map)',
  'path with a raw NUL',
  'a 100 KB x-request-id (over the 64 KiB header block)',
  'an x-request-id with control characters and quotes',
]);

function expectSameAnswer(http: FrontReply, grpc: HttpAnswer): void {
  expect(http.headers.get('x-scopegate-meta-reason')).toBe(grpc.reason);
  expect(http.status).toBe(grpc.status);
  for (const [name, value] of grpc.headers) expect(http.headers.get(name), name).toBe(value);
  if (grpc.status === 200) {
    expect(http.text).toBe('');
    const removed = http.headers.get('x-envoy-auth-headers-to-remove');
    expect(removed === undefined ? [] : removed.split(',')).toEqual(grpc.headersToRemove);
  } else if (grpc.reason === 'peer_missing') {
    // The HTTP door says why it has no peer (it cannot carry one); everything else is the same.
    expect({ ...http.body, error_description: '' }).toEqual({ ...grpc.body, error_description: '' });
    expect(http.body?.error_description).toMatch(/HTTP front door cannot carry/);
  } else expect(http.body).toEqual(grpc.body);
}

/** The CheckRequest without its body: what the forward-auth door can tell the Check path of it. */
function withoutBody(request: CheckRequest): CheckRequest {
  const http = request.attributes?.request?.http;
  if (http === undefined) return request;
  const { body: _body, raw_body: _raw, ...rest } = http;
  return {
    ...request,
    attributes: { ...request.attributes, request: { ...request.attributes!.request, http: rest } },
  };
}

describe('each vector through the gRPC, the HTTP and the forward-auth front doors', () => {
  const carried = { http: [] as string[], forwardAuth: [] as string[] };
  for (const vector of CORPUS) {
    it(`${vector.group}: ${vector.name}`, async () => {
      const request = await vector.request(ctx);
      const sent = carriedOverHttp(request);
      if ('uncarriable' in sent) {
        expect(sent.uncarriable).toBe(vector.group === 'peer' ? PEER_NOT_CARRIED : NOT_CARRIED[vector.name]);
        return;
      }
      expect(NOT_CARRIED[vector.name], 'carried, though listed as not').toBeUndefined();
      const grpc = await h.sendRaw(request);

      const http = await sendHttp(h.running.httpAddress!, sent);
      if (REFUSED_BY_THE_HTTP_PARSER.has(vector.name)) {
        expect([http.status, http.body?.reason]).toEqual([400, 'request_malformed']);
      } else {
        carried.http.push(vector.name);
        expectSameAnswer(http, grpc);
      }

      const proxied = forwardAuthOf(sent);
      if ('uncarriable' in proxied)
        throw new Error(`the forward-auth door cannot carry it: ${proxied.uncarriable}`);
      const forwardAuth = await sendHttp(h.running.forwardAuthAddress!, proxied);
      if (REFUSED_BY_THE_FORWARD_AUTH_PARSER.has(vector.name)) {
        expect([forwardAuth.status, forwardAuth.body?.reason]).toEqual([400, 'request_malformed']);
        return;
      }
      carried.forwardAuth.push(vector.name);
      expectSameAnswer(forwardAuth, sent.body === undefined ? grpc : await h.sendRaw(withoutBody(request)));
      // A body the gRPC door allowed on never reaches the forward-auth door: its route cannot read one there.
      if (sent.body !== undefined && grpc.reason === 'allowed')
        expect(forwardAuth.body?.reason).toBe('body_unreadable');
    });
  }

  it('lists exactly the vectors HTTP cannot carry: every peer vector with a peer, and the ones named', async () => {
    const notCarried: Record<string, string> = {};
    const peers: string[] = [];
    for (const vector of CORPUS) {
      const sent = carriedOverHttp(await vector.request(ctx));
      if (!('uncarriable' in sent)) continue;
      if (vector.group === 'peer' && sent.uncarriable === PEER_NOT_CARRIED) peers.push(vector.name);
      else notCarried[vector.name] = sent.uncarriable;
    }
    expect(notCarried).toEqual(NOT_CARRIED);
    expect(peers).toEqual(
      CORPUS.filter((v) => v.group === 'peer' && v.name !== PEER_GROUP_CARRIED).map((v) => v.name),
    );
    expect(peers).toHaveLength(20);
  });

  it('names only vectors the corpus has as refused by a parser', () => {
    const names = new Set(CORPUS.map((v) => v.name));
    for (const listed of [REFUSED_BY_THE_HTTP_PARSER, REFUSED_BY_THE_FORWARD_AUTH_PARSER])
      expect([...listed].filter((name) => !names.has(name))).toEqual([]);
  });

  it('carries most of the corpus through each door, and every group but peer', () => {
    for (const [door, names] of Object.entries(carried)) {
      expect(names.length, door).toBeGreaterThan(CORPUS.length / 2);
      for (const group of ['token', 'header', 'path', 'body', 'request'] as const)
        expect(
          CORPUS.some((v) => v.group === group && names.includes(v.name)),
          `${door}: ${group}`,
        ).toBe(true);
    }
  });
});

describe('what HTTP cannot carry is never guessed', () => {
  it('a peer-only route is peer_missing over HTTP, whatever x-forwarded-client-cert says', async () => {
    for (const vector of CORPUS.filter((v) => v.group === 'peer')) {
      const request = await vector.request(ctx);
      const { source: _peer, ...attributes } = request.attributes ?? {};
      const sent = httpOfCheckRequest({ attributes });
      if ('uncarriable' in sent) continue;
      const http = await sendHttp(h.running.httpAddress!, {
        ...sent,
        headers: [
          ...sent.headers,
          [
            'x-forwarded-client-cert',
            'By=spiffe://cluster.local/ns/inventory/sa/api;URI=spiffe://cluster.local/ns/ops/sa/sync',
          ],
        ],
      });
      const grpcWithoutPeer = await h.sendRaw({ attributes });
      // Without the peer the gRPC door denies too; with one the HTTP door cannot know it, so it never allows more.
      expect(http.headers.get('x-scopegate-meta-reason'), vector.name).toBe(grpcWithoutPeer.reason);
      if (grpcWithoutPeer.reason !== 'allowed') expect(http.status).not.toBe(200);
    }
  });
});
