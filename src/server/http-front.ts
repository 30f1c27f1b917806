// The HTTP front doors (`serve --http`, `serve --forward-auth`): thin, like the gRPC edge. An HTTP request is
// described as the CheckRequest it stands for (wire/http-request.ts), answered by the one Check path
// (check/handle.ts), and the answer is sent as an HTTP reply (response/http-reply.ts). Everything is bounded:
// header bytes and count, body bytes, the time to send headers and the whole request. A failure anywhere is a
// 503 internal_error reply, never an unanswered request a proxy could turn into something else.
import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
  STATUS_CODES,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { type CheckDeps, handleCheck, lastResort } from '../check/handle.js';
import { DEFAULT_REQUEST_LIMITS } from '../request/facts.js';
import { denyInHeaders, type HttpReply, httpReplyFor } from '../response/http-reply.js';
import type { Answer } from '../response/kept.js';
import { carriesBody } from '../vocabulary/index.js';
import {
  type Described,
  describeEnvoyHttp,
  describeForwardAuth,
  type ReceivedHttp,
} from '../wire/http-request.js';
import { type CertificateFiles, tlsServerOptions } from './tls.js';

export interface HttpFrontOptions {
  readonly transport: 'http' | 'forward_auth';
  /** Envoy's `path_prefix` (http only). */
  readonly pathPrefix?: string;
  /** Body bytes read (http only); a longer body is cut, as Envoy cuts one at `max_request_bytes`. */
  readonly maxBodyBytes?: number;
  /** `--tls-cert`: HTTPS only, with the files kept current (and client certificates with a client CA). */
  readonly tls?: CertificateFiles;
}

/** As much as the gRPC door accepts in one CheckRequest (h2-grpc.ts, MAX_RECEIVE_MESSAGE_BYTES). */
export const MAX_BODY_BYTES = 4 * 1024 * 1024;
/** Header bytes Node's parser accepts: the request phase's own header limit and the longest path, and a margin. */
const MAX_HEADER_BYTES =
  DEFAULT_REQUEST_LIMITS.maxHeaderBytes + DEFAULT_REQUEST_LIMITS.maxPathBytes + 8 * 1024;
/**
 * Idle keep-alive connections are closed after this: above the idle timeouts proxies use for their own pools
 * (envoy/envoy-http.yaml sets 50 s), so the proxy, not scopegate, closes an idle connection, and never while
 * it sends a request on it.
 */
const KEEP_ALIVE_MS = 65_000;

export interface HttpFront {
  readonly server: Server;
  /** Stop accepting, let requests in flight finish (bounded by `drainMs`), then close every connection. */
  close(drainMs: number): Promise<void>;
}

export function createHttpFront(deps: CheckDeps, options: HttpFrontOptions): HttpFront {
  const frontDeps: CheckDeps = {
    ...deps,
    transport: options.transport,
    log: deps.log.child({ transport: options.transport }),
  };
  const maxBodyBytes = options.maxBodyBytes ?? MAX_BODY_BYTES;
  let draining = false;
  const describe = (received: ReceivedHttp): Described =>
    options.transport === 'http'
      ? describeEnvoyHttp(received, options.pathPrefix ?? '')
      : describeForwardAuth(received);

  const serverOptions = {
    maxHeaderSize: MAX_HEADER_BYTES,
    requestTimeout: 30_000,
    headersTimeout: 10_000,
    keepAliveTimeout: KEEP_ALIVE_MS,
  };
  const onRequest = (req: IncomingMessage, res: ServerResponse) => {
    void answer(req, res).catch((err) => {
      frontDeps.log.error({ err: { message: (err as Error)?.message } }, 'check answer not sent');
      res.destroy();
    });
  };
  const { tls } = options;
  const server: Server = tls
    ? createHttpsServer({ ...serverOptions, ...tlsServerOptions(tls.current) }, onRequest)
    : createServer(serverOptions, onRequest);
  // A rotated certificate reaches new connections; the ones open keep the one they shook hands with. The
  // listener goes when the server closes: files shared by servers must not keep a closed one alive.
  const stopHearing = tls?.onChange((contents) =>
    (server as ReturnType<typeof createHttpsServer>).setSecureContext(tlsServerOptions(contents)),
  );
  if (stopHearing) server.once('close', stopHearing);
  // Node drops headers past its count limit without a word; the request phase refuses too many itself.
  server.maxHeadersCount = 0;
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => refuseUnparsed(err, socket));

  async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = carriesBody(options.transport) ? await readBody(req, maxBodyBytes) : undefined;
    if (res.destroyed) return;
    const described = describe({
      method: req.method ?? '',
      target: req.url ?? '',
      rawHeaders: req.rawHeaders,
      ...(body && { body: body.bytes, bodyCut: body.cut }),
    });
    // The proxy's trace context (or the client's, passed on) is in this request's headers: the span's parent.
    const traceHeaders = frontDeps.tracing && ((name: string) => headerText(req.headers[name]));
    const answered = handleCheck(described.request, frontDeps, traceHeaders, described.refused);
    const answer = answered instanceof Promise ? await answered : answered;
    sendAnswer(res, answer, {
      close: !req.complete || draining,
      inHeaders: described.denyInHeaders === true,
      log: frontDeps.log,
    });
  }

  /** Connections whose refusal is under way. */
  const refusing = new WeakSet<Socket>();

  /** A request Node's parser refused (bad syntax, headers too large) is request_malformed, through the pipeline. */
  function refuseUnparsed(err: NodeJS.ErrnoException, socket: Socket): void {
    // The parser reports every later chunk of a refused connection again: it is answered once.
    if (refusing.has(socket)) return;
    refusing.add(socket);
    const code = typeof err.code === 'string' && /^HPE_[A-Z_]{1,40}$/.test(err.code) ? err.code : undefined;
    if (code === undefined || !socket.writable) {
      socket.destroy();
      return;
    }
    const answered = handleCheck({}, frontDeps, undefined, `the HTTP request could not be parsed (${code})`);
    void Promise.resolve(answered).then((answer) => {
      let reply: HttpReply;
      try {
        reply = httpReplyFor(answer);
      } catch {
        reply = httpReplyFor(lastResort());
      }
      const body = Buffer.from(reply.body, 'utf8');
      const head = [
        `HTTP/1.1 ${reply.status} ${STATUS_CODES[reply.status] ?? ''}`,
        ...reply.headers.map(([name, value]) => `${name}: ${value}`),
        `content-length: ${body.length}`,
        'connection: close',
        '',
        '',
      ].join('\r\n');
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      socket.end(Buffer.concat([Buffer.from(head, 'latin1'), body]));
      lingerThenClose(socket);
    });
  }

  return {
    server,
    close(drainMs) {
      draining = true;
      return new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), drainMs);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
    },
  };
}

/** How long a refused connection's remaining bytes are read and dropped before it is closed. */
const LINGER_MS = 2_000;

/**
 * After the refusal is written, what the client is still sending (the rest of an oversized header block) is
 * read and dropped for a moment, as web servers do: closing with unread bytes makes the kernel reset the
 * connection, and the client could lose the answer before it reads it (Node.js 24 closes at once).
 */
function lingerThenClose(socket: Socket): void {
  socket.on('data', () => {});
  socket.resume();
  const timer = setTimeout(() => socket.destroy(), LINGER_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}

/**
 * The reply to a Check, or (when even that fails: say a header value Node will not write) a bare
 * internal_error. `close`: the connection is not kept. `inHeaders`: a deny laid out for nginx (denyInHeaders).
 */
export function sendAnswer(
  res: ServerResponse,
  answer: Answer,
  how: { readonly close: boolean; readonly inHeaders: boolean; readonly log: Logger },
): void {
  const layout = (reply: HttpReply) => (how.inHeaders ? denyInHeaders(reply) : reply);
  try {
    write(res, layout(httpReplyFor(answer)), how.close);
  } catch (err) {
    how.log.error({ err: { message: (err as Error)?.message } }, 'check answer could not be sent');
    if (res.headersSent) res.destroy();
    else write(res, layout(httpReplyFor(lastResort())), how.close);
  }
}

function write(res: ServerResponse, reply: HttpReply, close: boolean): void {
  // One writeHead with every header: Node validates each once, as it lays out the head (setHeader would
  // validate and store each first). The reason phrase is given, so a second try after a throw states its own.
  const head: string[] = [];
  for (const [name, value] of reply.headers) head.push(name, value);
  head.push('content-length', String(Buffer.byteLength(reply.body, 'utf8')));
  // A body left unread (cut, or sent to the forward-auth door) is not read to find the next request.
  if (close) head.push('connection', 'close');
  res.writeHead(reply.status, STATUS_CODES[reply.status] ?? '', head);
  // A string, not a Buffer: Node sends it in one write with the head (a Buffer goes out as a second chunk).
  res.end(reply.body, 'utf8');
}

/** The body's first `max` bytes, and whether there was more (then reading stops). */
function readBody(req: IncomingMessage, max: number): Promise<{ bytes: Buffer; cut: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = (cut: boolean) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      resolve({ bytes: Buffer.concat(chunks, Math.min(length, max)), cut });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length > max) {
        req.pause();
        done(true);
      }
    };
    const onEnd = () => done(false);
    // What arrived before the error is not the whole body.
    const onError = () => done(true);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onError);
  });
}

function headerText(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}
