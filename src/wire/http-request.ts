// The CheckRequest an HTTP front door's request describes (server/http-front.ts), for the one Check path:
//   - Envoy's HTTP ext_authz (`http_service`) sends the original method, path (after its `path_prefix`),
//     headers (those `allowed_headers` lets through) and, with `with_request_body`, body, as an HTTP request;
//   - forward auth (nginx `auth_request`, Traefik `forwardAuth`, Caddy `forward_auth`) sends a request of the
//     proxy's own, and says the original method and URI in headers: X-Forwarded-Method and X-Forwarded-Uri
//     (Traefik, Caddy), X-Original-Method and X-Original-URI (nginx, set in its config). Only this door reads
//     them: a client can send them too, and only a proxy that overwrites them makes them the truth.
//     `X-Scopegate-Deny-In-Headers: 1` asks for a deny laid out for nginx `auth_request`, which passes on only
//     401 and 403 and never a body (response/http-reply.ts `denyInHeaders`); it is the door's, not the request's.
// Neither door can carry what Envoy knows of the connection (peer and destination identity) or of its route
// (`context_extensions`, filter metadata): what is built here never has them, whatever a header says.
import type { CheckRequest, HttpRequestAttrs } from './types.js';

/** An HTTP request as a front door's listener received it. */
export interface ReceivedHttp {
  /** The request line's method, as sent. */
  readonly method: string;
  /** The request line's target, as sent (query included). */
  readonly target: string;
  /** Names and values in order, as received (Node's `rawHeaders`): a repeated header is seen twice. */
  readonly rawHeaders: readonly string[];
  /** The body read (Envoy's `with_request_body`); the forward-auth door never reads one. */
  readonly body?: Uint8Array;
  /** The body was longer than the door reads: what was read is only its start. */
  readonly bodyCut?: boolean;
}

/** The CheckRequest, and why the door could not describe the request when it could not (request_malformed). */
export interface Described {
  readonly request: CheckRequest;
  readonly refused?: string;
  /** The proxy asked for a deny laid out in headers (`X-Scopegate-Deny-In-Headers: 1`, forward auth only). */
  readonly denyInHeaders?: boolean;
}

/** Envoy's partial-body flag (request/facts.ts reads it): set on a body cut at the door's limit. */
const PARTIAL_BODY_HEADER = 'x-envoy-auth-partial-body';

/** The connection's own headers (RFC 9110 §7.6.1), never the original request's: Envoy drops them too. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
]);

/** The forward-auth protocol's own headers: they describe the original request, and are not part of it. */
export const FORWARDED_METHOD = ['x-forwarded-method', 'x-original-method'] as const;
export const FORWARDED_URI = ['x-forwarded-uri', 'x-original-uri'] as const;
export const FORWARDED_HOST = 'x-forwarded-host';
/** The proxy's ask for a deny in headers (nginx); never part of the request, so never an identity header. */
export const DENY_IN_HEADERS = 'x-scopegate-deny-in-headers';
const FORWARD_AUTH_OWN = new Set<string>([
  ...FORWARDED_METHOD,
  ...FORWARDED_URI,
  FORWARDED_HOST,
  DENY_IN_HEADERS,
]);

/** Envoy's request's headers that are not the original request's: its host is `:authority`. */
const ENVOY_ASIDE = new Set<string>(['host', ...HOP_BY_HOP]);
/** Forward auth's: also the protocol's own, and the body's (which the door does not read). */
const FORWARD_AUTH_ASIDE = new Set<string>([...ENVOY_ASIDE, 'content-length', ...FORWARD_AUTH_OWN]);

/**
 * In one pass: the request's headers by lower-case name, a repeated one joined with `,` as Envoy joins them,
 * with the names in `aside` kept apart (the door reads them; they are not the original request's); and how
 * many times each name was sent.
 */
function headerMap(
  rawHeaders: readonly string[],
  aside: ReadonlySet<string>,
): { headers: Record<string, string>; asideHeaders: Record<string, string>; seen: Map<string, number> } {
  // No prototype: a header named `__proto__` is a header like any other.
  const headers: Record<string, string> = Object.create(null);
  const asideHeaders: Record<string, string> = Object.create(null);
  const seen = new Map<string, number>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const value = rawHeaders[i + 1]!;
    seen.set(name, (seen.get(name) ?? 0) + 1);
    const into = aside.has(name) ? asideHeaders : headers;
    into[name] = into[name] === undefined ? value : `${into[name]},${value}`;
  }
  return { headers, asideHeaders, seen };
}

function checkRequest(
  method: string,
  path: string,
  host: string | undefined,
  headers: Record<string, string>,
  body: Pick<HttpRequestAttrs, 'raw_body'>,
): CheckRequest {
  headers[':method'] = method;
  headers[':path'] = path;
  if (host !== undefined) headers[':authority'] = host;
  return {
    attributes: {
      request: {
        http: {
          method,
          path,
          ...(host !== undefined && { host }),
          headers,
          protocol: 'HTTP/1.1',
          ...body,
        },
      },
    },
  };
}

/**
 * Envoy's `http_service` request: its method, path and headers are the original's. `pathPrefix` is what
 * Envoy's `path_prefix` put before the path (`serve --http-path-prefix`); a path without it was not sent
 * by that Envoy, and is refused rather than read some other way.
 */
export function describeEnvoyHttp(received: ReceivedHttp, pathPrefix = ''): Described {
  const { headers, asideHeaders } = headerMap(received.rawHeaders, ENVOY_ASIDE);
  const host = asideHeaders.host;
  let path = received.target;
  let refused: string | undefined;
  if (pathPrefix !== '') {
    if (path.startsWith(`${pathPrefix}/`)) path = path.slice(pathPrefix.length);
    else
      refused =
        'the path does not start with the path prefix Envoy is configured to add (--http-path-prefix)';
  }
  // Cut here: the decision must not read a location from the start of a body as if it were all of it.
  if (received.bodyCut === true) headers[PARTIAL_BODY_HEADER] = 'true';
  const body = received.body !== undefined && received.body.length > 0 ? { raw_body: received.body } : {};
  const request = checkRequest(received.method, path, host, headers, body);
  return refused === undefined ? { request } : { request, refused };
}

/**
 * A forward-auth request: the original method, URI and host from the forwarded headers alone (the request's
 * own method and path are the proxy's auth call), the other headers as the original request's. No body: the
 * proxies send none, so a route that reads its location from the body is denied body_unreadable.
 */
export function describeForwardAuth(received: ReceivedHttp): Described {
  const { headers, asideHeaders, seen } = headerMap(received.rawHeaders, FORWARD_AUTH_ASIDE);
  const method = oneOf(FORWARDED_METHOD, asideHeaders, seen);
  const uri = oneOf(FORWARDED_URI, asideHeaders, seen);
  const host = oneOf([FORWARDED_HOST], asideHeaders, seen);
  const refused =
    (typeof method === 'object' && method.refused) ||
    (typeof uri === 'object' && uri.refused) ||
    (typeof host === 'object' && host.refused) ||
    undefined;
  const request = checkRequest(
    typeof method === 'string' ? method : '',
    typeof uri === 'string' ? uri : '',
    typeof host === 'string' ? host : undefined,
    headers,
    {},
  );
  // Asked for once, exactly: a client's own copy next to the proxy's (sent twice, or joined) is no ask.
  const denyInHeaders = seen.get(DENY_IN_HEADERS) === 1 && asideHeaders[DENY_IN_HEADERS] === '1';
  return {
    request,
    ...(refused !== undefined && { refused }),
    ...(denyInHeaders && { denyInHeaders }),
  };
}

/**
 * The one value the named headers give: each sent at most once, and the same value when more than one of them
 * is sent. Undefined when none is sent; an object saying why when they are not one value.
 */
function oneOf(
  names: readonly string[],
  joined: Record<string, string>,
  seen: ReadonlyMap<string, number>,
): string | undefined | { refused: string } {
  const given = names.filter((name) => seen.has(name));
  const repeated = given.find((name) => seen.get(name)! > 1);
  if (repeated !== undefined) return { refused: `forward auth: ${repeated} was sent more than once` };
  const values = new Set(given.map((name) => joined[name]!));
  if (values.size > 1) return { refused: `forward auth: ${given.join(' and ')} disagree` };
  const value = given.length > 0 ? joined[given[0]!] : undefined;
  if (value === undefined) {
    // The host is optional (a set of one policy needs none); the method and URI are the request.
    if (names.length === 1) return undefined;
    return { refused: `forward auth: the proxy sent no ${names.join(' or ')} header` };
  }
  return value;
}
