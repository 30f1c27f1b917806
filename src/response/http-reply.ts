// An answer as an HTTP front door sends it (server/http-front.ts): the same CheckResponse the gRPC door sends,
// laid out as Envoy's `http_service` and the forward-auth proxies read a reply.
//   - Allow: 200, the identity headers (`x-scopegate-*`) for the proxy to copy upstream (Envoy
//     `allowed_upstream_headers`, Traefik `authResponseHeaders`, Caddy `copy_headers`, nginx
//     `auth_request_set`), and the client-sent identity headers to remove in `x-envoy-auth-headers-to-remove`
//     (Envoy's http_service reads it; the other proxies' configs strip them themselves).
//   - Deny: the status, headers (`WWW-Authenticate`, `x-scopegate-reason`, …) and JSON body of the gRPC
//     answer's denied_response.
//   - Both: the dynamic metadata as `x-scopegate-meta-<key>` headers, for Envoy's
//     `dynamic_metadata_from_headers` (Envoy keys the metadata by header name).
// For nginx `auth_request`, which passes on a 401 or 403 only and drops every body, the forward-auth door lays a
// deny out in headers when the proxy asks (`denyInHeaders`): see that function.
// A kept (pre-encoded) answer is decoded from its bytes, so the reply is what the gRPC door would have sent;
// an allow kept whole is laid out once, and a kept deny's status and headers once per decision.
import { httpStatusNumber, type ReceivedCheckResponse } from '../wire/proto.js';
import type { CheckResponse, HeaderValueOption } from '../wire/types.js';
import { headerValueText } from './encode.js';
import { type Answer, decodeAnswer, EncodedAnswer, SplicedDeny } from './kept.js';

/** Envoy's http_service removes these request headers before the upstream (a comma-separated list). */
export const HEADERS_TO_REMOVE = 'x-envoy-auth-headers-to-remove';
/** The dynamic metadata's headers: `x-scopegate-meta-reason`, `x-scopegate-meta-policy-revision`, … */
export const METADATA_HEADER_PREFIX = 'x-scopegate-meta-';

export interface HttpReply {
  readonly status: number;
  /**
   * Lower-case names and values. A value is its UTF-8 bytes read as latin1, as Node writes a header value
   * byte for byte: an identity that is not ASCII reaches the proxy as the same bytes the gRPC answer carries.
   */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: string;
}

type AnyCheckResponse = CheckResponse | ReceivedCheckResponse;

/**
 * Replies of kept answers that are kept whole (an allow answers every repeat with the same bytes): laid out
 * once, not decoded on every Check. A kept deny's body differs per Check (its request id): see `denyHeads`.
 */
const laidOut = new WeakMap<EncodedAnswer, HttpReply>();
/** A kept deny's status and headers, by its template: laid out once; each Check brings only its body. */
const denyHeads = new WeakMap<object, HttpReply>();

export function httpReplyFor(answer: Answer): HttpReply {
  if (!(answer instanceof EncodedAnswer)) return httpReplyOf(answer);
  if (answer instanceof SplicedDeny) {
    let head = denyHeads.get(answer.template);
    if (head === undefined) {
      head = Object.freeze(httpReplyOf(decodeAnswer(answer)));
      denyHeads.set(answer.template, head);
    }
    return { status: head.status, headers: head.headers, body: answer.body };
  }
  let reply = laidOut.get(answer);
  if (reply === undefined) {
    reply = Object.freeze(httpReplyOf(decodeAnswer(answer)));
    if (reply.status === 200) laidOut.set(answer, reply);
  }
  return reply;
}

export function httpReplyOf(response: AnyCheckResponse): HttpReply {
  const metadata = metadataHeaders(response);
  const denied = response.denied_response;
  if (denied === undefined) {
    const headers = [...valuesOf(response.ok_response?.headers), ...metadata];
    const remove = response.ok_response?.headers_to_remove ?? [];
    if (remove.length > 0) headers.push([HEADERS_TO_REMOVE, remove.join(',')]);
    return { status: 200, headers, body: '' };
  }
  return {
    status: httpStatusNumber(denied.status?.code) ?? 403,
    headers: [...valuesOf(denied.headers), ...metadata],
    body: denied.body ?? '',
  };
}

/** The deny's real status (400, 401, 403, 503) when the reply's own is 403: `denyInHeaders`. */
export const STATUS_HEADER = 'x-scopegate-status';
/** The deny's JSON body, every character outside printable ASCII written as a JSON `\\uXXXX` escape. */
export const BODY_HEADER = 'x-scopegate-body';

/**
 * A deny as nginx `auth_request` can pass it on: status 403 (nginx turns every status but 2xx, 401 and 403
 * into 500, and answers a 401 with a challenge of its own making), the real status in `x-scopegate-status`
 * and the JSON body in `x-scopegate-body`, which the shipped config (proxies/nginx) reads with
 * `auth_request_set` and answers with. The body header is the same JSON value as the body, in ASCII: a header
 * value carries no raw control character, and nginx's `return` sends it byte for byte. An allow is unchanged.
 */
export function denyInHeaders(reply: HttpReply): HttpReply {
  if (reply.status === 200) return reply;
  return {
    status: 403,
    headers: [...reply.headers, [STATUS_HEADER, String(reply.status)], [BODY_HEADER, asciiJson(reply.body)]],
    body: reply.body,
  };
}

/** JSON text with everything outside printable ASCII escaped: the same value, in bytes a header may carry. */
function asciiJson(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function valuesOf(headers: readonly HeaderValueOption[] | undefined): Array<[string, string]> {
  return (headers ?? []).map(({ header }) => [header.key.toLowerCase(), wireText(headerValueText(header))]);
}

function metadataHeaders(response: AnyCheckResponse): Array<[string, string]> {
  const fields = response.dynamic_metadata?.fields ?? {};
  const headers: Array<[string, string]> = [];
  for (const [key, value] of Object.entries(fields)) {
    if (typeof value.string_value !== 'string') continue;
    headers.push([`${METADATA_HEADER_PREFIX}${key.replaceAll('_', '-')}`, wireText(value.string_value)]);
  }
  return headers;
}

/** UTF-8 bytes as a latin1 string, which Node writes as those bytes. */
function wireText(text: string): string {
  return Buffer.from(text, 'utf8').toString('latin1');
}
