// The bad-input corpus through both front doors of one scopegate: every vector HTTP can carry gets, from
// Envoy's HTTP ext_authz door (`serve --http`), the decision the gRPC door gives it, with the same status,
// headers and body. A vector HTTP cannot carry (a peer, context extensions, two paths …) is named, and what
// the HTTP door makes of the rest of it never lets it through where the gRPC door would not.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckRequest } from '../../src/wire/types.js';
import { type FrontReply, httpOfCheckRequest, sendHttp } from '../support/http-front.js';
import { type Harness, type HttpAnswer, startHarness } from '../support/scopegate.js';
import { CORPUS, type CorpusContext, corpusContext } from './corpus.js';

let h: Harness;
let ctx: CorpusContext;
beforeAll(async () => {
  h = await startHarness(undefined, { flags: ['--http', '127.0.0.1:0'] });
  ctx = await corpusContext(h.key);
});
afterAll(async () => h?.close());

/** Sent over HTTP, or the reason Node's own HTTP client refuses to write it (HTTP/1.1 cannot carry it). */
async function overHttp(request: CheckRequest): Promise<FrontReply | string> {
  const sent = httpOfCheckRequest(request);
  if ('uncarriable' in sent) return sent.uncarriable;
  try {
    return await sendHttp(h.running.httpAddress!, sent);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (
      code === 'ERR_INVALID_CHAR' ||
      code === 'ERR_UNESCAPED_CHARACTERS' ||
      code === 'ERR_INVALID_HTTP_TOKEN'
    )
      return `HTTP/1.1 cannot write it (${code})`;
    throw err;
  }
}

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

describe('each vector through the gRPC and the HTTP front doors', () => {
  const carried: string[] = [];
  const notCarried: string[] = [];
  for (const vector of CORPUS) {
    it(`${vector.group}: ${vector.name}`, async () => {
      const request = await vector.request(ctx);
      const grpc = await h.sendRaw(request);
      const http = await overHttp(request);
      if (typeof http === 'string') {
        notCarried.push(`${vector.name}: ${http}`);
        return;
      }
      if (REFUSED_BY_THE_HTTP_PARSER.has(vector.name)) {
        expect(http.status).toBe(400);
        expect(http.body?.reason).toBe('request_malformed');
        return;
      }
      carried.push(vector.name);
      expectSameAnswer(http, grpc);
    });
  }

  it('names only vectors the corpus has as refused by the parser', () => {
    const names = new Set(CORPUS.map((v) => v.name));
    expect([...REFUSED_BY_THE_HTTP_PARSER].filter((name) => !names.has(name))).toEqual([]);
  });

  it('carries most of the corpus, and every group of it', () => {
    expect(carried.length).toBeGreaterThan(CORPUS.length / 2);
    for (const group of ['token', 'header', 'path', 'body', 'request'] as const)
      expect(
        CORPUS.some((v) => v.group === group && carried.includes(v.name)),
        group,
      ).toBe(true);
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
