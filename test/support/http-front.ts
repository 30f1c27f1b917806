// A client for scopegate's HTTP front doors (`serve --http`, `--forward-auth`), and the translation of a
// CheckRequest into the HTTP request Envoy's `http_service` would send for it, where HTTP can carry it (and
// into a forward-auth proxy's request describing it).
import { connect } from 'node:net';
import { headerValueText } from '../../src/response/encode.js';
import {
  DENY_IN_HEADERS,
  FORWARDED_HOST,
  FORWARDED_METHOD,
  FORWARDED_URI,
} from '../../src/wire/http-request.js';
import type { CheckRequest } from '../../src/wire/types.js';

export interface FrontRequest {
  readonly method: string;
  /** The request target as sent, query included. */
  readonly target: string;
  /** Names and values in order; a name given twice is sent as two header lines. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body?: string | Buffer;
}

export interface FrontReply {
  readonly status: number;
  /** Lower-case names; values as received (UTF-8 bytes decoded). */
  readonly headers: ReadonlyMap<string, string>;
  readonly text: string;
  readonly body: Record<string, unknown> | undefined;
}

/**
 * Sends the request byte for byte over a socket of its own (Node's client would upper-case a method, add
 * headers, refuse odd ones): what the listener's parser makes of it is what is tested. Header values are sent
 * as their UTF-8 bytes.
 */
export function sendHttp(address: string, sent: FrontRequest): Promise<FrontReply> {
  const [host, port] = splitAddress(address);
  const body = sent.body === undefined ? Buffer.alloc(0) : Buffer.from(sent.body);
  const lines = [`${sent.method} ${sent.target} HTTP/1.1`];
  if (!hasHost(sent)) lines.push(`host: ${address}`);
  for (const [name, value] of sent.headers) lines.push(`${name}: ${value}`);
  if (body.length > 0) lines.push(`content-length: ${body.length}`);
  lines.push('connection: close', '', '');
  const head = Buffer.from(lines.join('\r\n'), 'utf8');
  return new Promise((resolve, reject) => {
    // Written, not ended: a client that half-closes is one that gave up, and a server may drop its answer.
    const socket = connect({ host, port }, () => socket.write(Buffer.concat([head, body])));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      if (split === -1) return reject(new Error(`no HTTP reply: ${JSON.stringify(all.toString('latin1'))}`));
      const [statusLine, ...headerLines] = all.subarray(0, split).toString('latin1').split('\r\n');
      const headers = new Map<string, string>();
      for (const line of headerLines) {
        const colon = line.indexOf(':');
        headers.set(
          line.slice(0, colon).toLowerCase(),
          Buffer.from(line.slice(colon + 1).trim(), 'latin1').toString('utf8'),
        );
      }
      const text = all.subarray(split + 4).toString('utf8');
      let parsed: Record<string, unknown> | undefined;
      try {
        parsed = text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>);
      } catch {
        parsed = undefined;
      }
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, text, body: parsed });
    });
  });
}

function hasHost(sent: FrontRequest): boolean {
  return sent.headers.some(([name]) => name.toLowerCase() === 'host');
}

function splitAddress(address: string): [string, number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon).replace(/^\[|\]$/g, ''), Number(address.slice(colon + 1))];
}

/** Headers that frame the HTTP request itself: a CheckRequest's copy of them cannot be sent as they are. */
const FRAMING = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
]);

/**
 * The request Envoy's `http_service` would send for this CheckRequest, or why HTTP cannot carry it: what Envoy
 * knows of the connection and the route (peer, destination, context extensions, filter metadata), a method or
 * path given twice with two values, a body given twice, pseudo-headers HTTP/1.1 has no place for.
 */
export function httpOfCheckRequest(check: CheckRequest): FrontRequest | { readonly uncarriable: string } {
  const attributes = check.attributes ?? {};
  if (attributes.source !== undefined) return { uncarriable: 'the peer (source)' };
  if (attributes.destination !== undefined) return { uncarriable: 'the destination' };
  if (attributes.context_extensions !== undefined) return { uncarriable: 'context extensions' };
  if (attributes.metadata_context !== undefined) return { uncarriable: 'filter metadata' };
  const http = attributes.request?.http;
  if (http === undefined) return { uncarriable: 'no HTTP attributes' };
  const pairs: Array<[string, string]> = [];
  const mapEntries = Object.entries(http.headers ?? {});
  const rawEntries = http.header_map?.headers ?? [];
  if (mapEntries.length > 0 && rawEntries.length > 0) return { uncarriable: 'headers given twice' };
  for (const [name, value] of mapEntries) pairs.push([name, value]);
  for (const header of rawEntries) pairs.push([header.key ?? '', headerValueText(header)]);
  let method = http.method ?? '';
  let target = http.path ?? '';
  const sent: Array<[string, string]> = [];
  for (const [rawName, value] of pairs) {
    const name = rawName.toLowerCase();
    if (name === ':method') {
      if (method !== '' && method !== value) return { uncarriable: 'two methods' };
      method = value;
    } else if (name === ':path') {
      if (target !== '' && target !== value) return { uncarriable: 'two paths' };
      target = value;
    } else if (name === ':authority') sent.push(['host', value]);
    else if (name === ':scheme') continue;
    else if (name.startsWith(':')) return { uncarriable: `the pseudo-header ${name}` };
    else if (FRAMING.has(name)) return { uncarriable: `the framing header ${name}` };
    else sent.push([rawName, value]);
  }
  if (method === '' || target === '') return { uncarriable: 'no method or path' };
  // A request line is METHOD SP TARGET SP VERSION: a space in the method makes another request line.
  if (/\s/.test(method)) return { uncarriable: 'a method with whitespace' };
  // RFC 9110 §5.5: a field value has no surrounding whitespace; a parser drops it (Envoy's too).
  if (sent.some(([, value]) => value !== value.trim() && value.trim() !== ''))
    return { uncarriable: 'a header value with surrounding whitespace' };
  // Bytes in Envoy's text `body` field (not pack_as_bytes): '!' there may stand for a byte that was not UTF-8.
  if (http.body !== undefined && typeof http.body !== 'string' && http.body.length > 0)
    return { uncarriable: "bytes in Envoy's text body field" };
  const body = nonEmpty(http.body);
  const raw = nonEmpty(http.raw_body);
  if (body !== undefined && raw !== undefined) return { uncarriable: 'a body given twice' };
  const bytes = body ?? raw;
  return {
    method,
    target,
    headers: sent,
    ...(bytes !== undefined && { body: typeof bytes === 'string' ? bytes : Buffer.from(bytes) }),
  };
}

/** The forward-auth protocol's own headers: a request sending them is not one a proxy would describe so. */
const FORWARD_AUTH_OWN = new Set<string>([
  ...FORWARDED_METHOD,
  ...FORWARDED_URI,
  FORWARDED_HOST,
  DENY_IN_HEADERS,
]);

/**
 * The auth request a forward-auth proxy (Traefik, Caddy) sends for the request `http`: a call of its own, with
 * the original method, URI and host in X-Forwarded-* headers and the other headers as they are. The body goes
 * too, as a proxy set to forward it sends it (Traefik's `forwardBody`): the door must read none of it.
 */
export function forwardAuthOf(http: FrontRequest): FrontRequest | { readonly uncarriable: string } {
  const headers: Array<[string, string]> = [];
  for (const [name, value] of http.headers) {
    const lower = name.toLowerCase();
    if (FORWARD_AUTH_OWN.has(lower)) return { uncarriable: `the forward-auth header ${lower}` };
    headers.push(lower === 'host' ? [FORWARDED_HOST, value] : [name, value]);
  }
  headers.push(['x-forwarded-method', http.method], ['x-forwarded-uri', http.target]);
  return { method: 'GET', target: '/auth', headers, ...(http.body !== undefined && { body: http.body }) };
}

function nonEmpty(value: string | Uint8Array | undefined | null): string | Uint8Array | undefined {
  return value === undefined || value === null || value.length === 0 ? undefined : value;
}
