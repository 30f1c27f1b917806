// gRPC's thin layer over node:http2, for the gRPC edge (grpc.ts holds the services). nghttp2 (inside Node) does
// all of HTTP/2: framing, flow control, HPACK, PING answers, GOAWAY. What is written here is only what gRPC adds
// on top: the 5-byte length-prefixed message framing, the status in trailers, routing by `:path`. It replaced
// the grpc-js server, whose per-call machinery (interceptors, Metadata objects, listeners, deadline timers)
// cost about as much CPU as a whole Check decision; grpc-js stays the client library (tests, bench, CLI).
//
// Behaviour kept from grpc-js 1.14's server, so clients see the same codes (test/integration/grpc-edge.test.ts):
//   - content-type not `application/grpc…`: HTTP 415, no gRPC status;
//   - an unknown method: trailers-only UNIMPLEMENTED;
//   - a message over 4 MiB: RESOURCE_EXHAUSTED, known from its prefix (nothing of it is buffered);
//   - no complete request message: UNIMPLEMENTED; a second one: UNIMPLEMENTED;
//   - bytes that do not decode: INTERNAL "Error deserializing request";
//   - compressed messages: gzip and deflate (`grpc-encoding`) are inflated, bounded to 4 MiB of output
//     (RESOURCE_EXHAUSTED past it, INTERNAL when corrupt); another encoding is UNIMPLEMENTED; the flag set with
//     `identity` (or no grpc-encoding) reads the bytes as they are, as grpc-js does. Envoy never compresses.
// One deliberate difference: grpc-js served any HTTP method; here a method other than POST is HTTP 405.
// Keepalive: Node answers a client's PINGs itself, idle connection or not, and has no ping policy that sends
// GOAWAY for "too many pings" (grpc-js needed `grpc.keepalive_permit_without_calls: 1` for that); the server
// sends no pings of its own and closes no idle connection (no session timeout), as grpc-js's defaults did.
// `grpc-timeout` is ignored (no timer per call): Envoy enforces its own ext_authz timeout and resets the stream
// when it passes, which ends the call here. An invalid one is not refused (grpc-js answered INTERNAL).
import {
  constants,
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { gunzip, inflate } from 'node:zlib';
import type { TlsContents } from '../config/tls.js';
import { tlsServerOptions } from './tls.js';

/** The gRPC status codes this layer and its services send (grpc/status.proto). */
export const GrpcStatus = {
  OK: 0,
  UNKNOWN: 2,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
} as const;
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

export interface GrpcError {
  readonly code: GrpcStatusCode;
  readonly details: string;
}

/** The largest request message taken, compressed or inflated (grpc-js's `grpc.max_receive_message_length`). */
export const MAX_RECEIVE_MESSAGE_BYTES = 4 * 1024 * 1024;
/**
 * Streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS; grpc-js set none). Envoy
 * opens another connection past it. With the message cap, what one connection can make the server hold is
 * bounded: 100 × 4 MiB.
 */
export const MAX_CONCURRENT_STREAMS = 100;

// ---- Framing (pure) ----

/** A message as gRPC frames it: compressed flag 0, its length as uint32 big-endian, its bytes. */
export function frameMessage(message: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(5 + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, 5);
  return framed;
}

/** The one request message of a call, as it arrived (`compressed`: its flag was 1). */
export interface RequestMessage {
  readonly compressed: boolean;
  readonly bytes: Buffer;
}

/**
 * Reads a unary or server-streaming call's request message from its DATA chunks, however they are split. Holds
 * the first message only: its prefix is checked against the limit before any of its bytes are kept, and what
 * follows it is counted, never kept. As grpc-js, a second message counts once it is complete (then the call is
 * refused); trailing bytes that never make one are ignored.
 */
export class UnaryMessageReader {
  /** A prefix split across chunks is gathered here (made only then). */
  private prefix: Buffer | undefined;
  private prefixHave = 0;
  /** The message being read, then the one read; -1 until its prefix is complete. */
  private length = -1;
  private compressed = false;
  private readonly chunks: Buffer[] = [];
  private have = 0;
  private message: RequestMessage | undefined;
  /** After the first message: bytes of the next one still to come (-1: reading its prefix). */
  private nextRemaining = -1;

  constructor(private readonly maxLength = MAX_RECEIVE_MESSAGE_BYTES) {}

  /** Takes the next chunk; a problem means the call is refused with it (push nothing more). */
  push(chunk: Buffer): GrpcError | undefined {
    let at = 0;
    while (at < chunk.length) {
      if (this.message !== undefined) return this.pushAfterMessage(chunk, at);
      if (this.length < 0) {
        let problem: GrpcError | undefined;
        // The common case, a whole prefix (and message) in one chunk: read in place, no copy at all.
        if (this.prefixHave === 0 && chunk.length - at >= 5) {
          problem = this.startMessage(chunk, at);
          at += 5;
        } else {
          at = this.gather(chunk, at);
          if (this.prefixHave < 5) return undefined;
          this.prefixHave = 0;
          problem = this.startMessage(this.prefix!, 0);
        }
        if (problem) return problem;
        continue;
      }
      const take = Math.min(this.length - this.have, chunk.length - at);
      this.chunks.push(at === 0 && take === chunk.length ? chunk : chunk.subarray(at, at + take));
      this.have += take;
      at += take;
      if (this.have === this.length) this.completeMessage();
    }
    return undefined;
  }

  /** At the end of the request: its message, or why there is none. */
  finish(): RequestMessage | GrpcError {
    return this.message ?? { code: GrpcStatus.UNIMPLEMENTED, details: 'Received no request message' };
  }

  /** Copies what `chunk` has of a split prefix; returns where reading goes on. */
  private gather(chunk: Buffer, at: number): number {
    this.prefix ??= Buffer.alloc(5);
    const take = Math.min(5 - this.prefixHave, chunk.length - at);
    chunk.copy(this.prefix, this.prefixHave, at, at + take);
    this.prefixHave += take;
    return at + take;
  }

  private startMessage(prefix: Buffer, at: number): GrpcError | undefined {
    const length = prefix.readUInt32BE(at + 1);
    if (length > this.maxLength) return tooLarge(length, this.maxLength);
    // grpc-js reads only the value 1 as compressed.
    this.compressed = prefix[at] === 1;
    this.length = length;
    if (length === 0) this.completeMessage();
    return undefined;
  }

  private completeMessage(): void {
    const bytes = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.have);
    this.chunks.length = 0;
    this.message = { compressed: this.compressed, bytes };
  }

  private pushAfterMessage(chunk: Buffer, from: number): GrpcError | undefined {
    let at = from;
    while (at < chunk.length) {
      if (this.nextRemaining < 0) {
        at = this.gather(chunk, at);
        if (this.prefixHave < 5) return undefined;
        const length = this.prefix!.readUInt32BE(1);
        if (length > this.maxLength) return tooLarge(length, this.maxLength);
        this.nextRemaining = length;
      }
      const take = Math.min(this.nextRemaining, chunk.length - at);
      this.nextRemaining -= take;
      at += take;
      if (this.nextRemaining === 0)
        return { code: GrpcStatus.UNIMPLEMENTED, details: 'Received a second request message' };
    }
    return undefined;
  }
}

function tooLarge(length: number, max: number): GrpcError {
  return {
    code: GrpcStatus.RESOURCE_EXHAUSTED,
    details: `Received message larger than max (${length} vs ${max})`,
  };
}

/**
 * `grpc-message` as the gRPC spec encodes it (PROTOCOL-HTTP2.md): the UTF-8 bytes, with every byte outside
 * printable ASCII (0x20–0x7E) and `%` itself written as %XX.
 */
export function percentEncodeGrpcMessage(text: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The response header block grpc-js sent (with the encodings a request may use). */
const RESPONSE_HEADERS = Object.freeze({
  ':status': 200,
  'content-type': 'application/grpc+proto',
  'grpc-accept-encoding': 'identity,deflate,gzip',
  'grpc-encoding': 'identity',
});
const OK_TRAILERS = Object.freeze({ 'grpc-status': '0' });

/** A trailers-only response: the status in the one header block that ends the stream. */
export function trailersOnly({ code, details }: GrpcError): Record<string, string | number> {
  return {
    ':status': 200,
    'content-type': 'application/grpc+proto',
    'grpc-status': String(code),
    'grpc-message': percentEncodeGrpcMessage(details),
  };
}

// ---- Methods ----

/** A unary method: the reply is the response message's bytes (unframed), or a status. */
export interface UnaryMethod<Request> {
  readonly kind: 'unary';
  readonly decode: (bytes: Buffer) => Request;
  readonly handle: (
    request: Request,
    headers: IncomingHttpHeaders,
  ) => Buffer | GrpcError | Promise<Buffer | GrpcError>;
}

/** A server-streaming method: `handle` writes to the call and ends it (or the client goes away). */
export interface ServerStreamingMethod<Request> {
  readonly kind: 'serverStreaming';
  readonly decode: (bytes: Buffer) => Request;
  readonly handle: (request: Request, call: StreamingCall) => void;
}

export interface StreamingCall {
  /** Sends one response message (unframed bytes); nothing once the call is over. */
  write(message: Buffer): void;
  /** Ends the call with status OK. */
  end(): void;
  /** Hears the call closing, however it ends (the client cancelling, the connection dropping). */
  onClose(listener: () => void): void;
}

// biome-ignore lint/suspicious/noExplicitAny: a table of methods of different request types
export type GrpcMethod = UnaryMethod<any> | ServerStreamingMethod<any>;

// ---- The server ----

export interface H2GrpcOptions {
  /** Methods by path, `/package.Service/Method`. */
  readonly methods: ReadonlyMap<string, GrpcMethod>;
  /** Hears what could not be done (a method that threw). */
  readonly onError?: (err: unknown, what: string) => void;
}

/** Certificate files kept current (server/tls.ts CertificateFiles). */
export interface TlsSource {
  readonly current: TlsContents;
  /** Returns what removes the listener. */
  onChange(listener: (contents: TlsContents) => void): () => void;
}

const SERVER_OPTIONS = {
  settings: { maxConcurrentStreams: MAX_CONCURRENT_STREAMS },
  // As grpc-js: Node's accounting (10 MB by default) refuses new streams with ENHANCE_YOUR_CALM once pending
  // frames pass it, a failed Check to Envoy; the streams × message cap above bounds memory instead.
  maxSessionMemory: Number.MAX_SAFE_INTEGER,
} as const;

const ignore = () => {};

/**
 * A gRPC server on node:http2: one or more listeners (plaintext or TLS), every session tracked so a drain can
 * send GOAWAY and a forced stop can cut them.
 */
export class H2GrpcServer {
  private readonly listeners = new Set<Http2Server | Http2SecureServer>();
  private readonly sessions = new Set<Http2Session>();
  private draining = false;

  constructor(private readonly options: H2GrpcOptions) {}

  /** Listens on `host:port` (port 0: any); resolves with the port bound. */
  listen(host: string, port: number, tls?: TlsSource): Promise<number> {
    const server = tls
      ? createSecureServer({ ...SERVER_OPTIONS, ...tlsServerOptions(tls.current) })
      : createServer(SERVER_OPTIONS);
    // A rotated certificate reaches new connections; open ones keep the one they shook hands with. The listener
    // goes when the server closes or fails to listen: files shared by servers must not keep a closed one alive.
    const stopHearing = tls?.onChange((contents) =>
      (server as Http2SecureServer).setSecureContext(tlsServerOptions(contents)),
    );
    if (stopHearing) server.once('close', stopHearing);
    if (tls) {
      // A TLS socket's errors before or outside a session are not the session's (nodejs/node#35824).
      server.on('secureConnection', (socket: TLSSocket) => socket.on('error', ignore));
    }
    server.setTimeout(0);
    server.on('session', (session) => this.track(session));
    // Reported per session too; nothing to do here but not crash (the session is destroyed by Node).
    server.on('sessionError', ignore);
    server.on('stream', (stream, headers) => this.onStream(stream, headers));
    return new Promise((resolve, reject) => {
      const failed = (err: Error) => {
        stopHearing?.();
        reject(err);
      };
      server.once('error', failed);
      server.listen(port, host, () => {
        server.off('error', failed);
        server.on('error', ignore);
        this.listeners.add(server);
        const address = server.address();
        resolve(typeof address === 'object' && address ? address.port : port);
      });
    });
  }

  /**
   * Drains: stops accepting connections, sends GOAWAY on every session (calls in flight finish, new ones go
   * elsewhere), and resolves once every listener and session has closed. Streaming calls must be ended by
   * their owner (HealthStatus.endWatches), or `destroy()` cuts them.
   */
  close(): Promise<void> {
    this.draining = true;
    const closed = [...this.listeners].map(
      (server) => new Promise<void>((resolve) => server.close(() => resolve())),
    );
    for (const session of this.sessions) closeSession(session);
    return Promise.all(closed).then(() => undefined);
  }

  /** Cuts every connection now (RST/GOAWAY CANCEL) and stops listening. */
  destroy(): void {
    this.draining = true;
    for (const server of this.listeners) server.close();
    for (const session of this.sessions) session.destroy(undefined, constants.NGHTTP2_CANCEL);
    this.sessions.clear();
  }

  private track(session: Http2Session): void {
    this.sessions.add(session);
    session.on('error', ignore);
    session.once('close', () => this.sessions.delete(session));
    if (this.draining) closeSession(session);
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    // Errors (a reset, a dropped connection) end in 'close'; the call's listeners handle that.
    stream.on('error', ignore);
    const contentType = headers['content-type'];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      respondAndDiscard(stream, { ':status': 415 });
      return;
    }
    if (headers[':method'] !== 'POST') {
      respondAndDiscard(stream, { ':status': 405 });
      return;
    }
    const path = headers[':path'] ?? '';
    const method = this.options.methods.get(path);
    if (method === undefined) {
      fail(stream, {
        code: GrpcStatus.UNIMPLEMENTED,
        details: `The server does not implement the method ${path}`,
      });
      return;
    }
    const reader = new UnaryMessageReader();
    let refused = false;
    stream.on('data', (chunk: Buffer) => {
      if (refused) return;
      const problem = reader.push(chunk);
      if (problem === undefined) return;
      refused = true;
      fail(stream, problem);
    });
    stream.once('end', () => {
      if (refused) return;
      const message = reader.finish();
      if ('code' in message) fail(stream, message);
      else this.run(stream, headers, method, message, path);
    });
  }

  private run(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    method: GrpcMethod,
    message: RequestMessage,
    path: string,
  ): void {
    if (message.compressed) {
      const encoding = headerText(headers['grpc-encoding']) ?? 'identity';
      if (encoding !== 'identity') {
        decompress(encoding, message.bytes, (result) => {
          if (isGrpcError(result)) fail(stream, result);
          else this.call(stream, headers, method, result, path);
        });
        return;
      }
    }
    this.call(stream, headers, method, message.bytes, path);
  }

  private call(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    method: GrpcMethod,
    bytes: Buffer,
    path: string,
  ): void {
    let request: unknown;
    try {
      request = method.decode(bytes);
    } catch {
      fail(stream, { code: GrpcStatus.INTERNAL, details: 'Error deserializing request' });
      return;
    }
    try {
      if (method.kind === 'serverStreaming') {
        method.handle(request, streamingCall(stream));
        return;
      }
      const reply = method.handle(request, headers);
      if (reply instanceof Promise)
        reply.then(
          (settled) => answer(stream, settled),
          (err) => this.handlerFailed(stream, err, path),
        );
      else answer(stream, reply);
    } catch (err) {
      this.handlerFailed(stream, err, path);
    }
  }

  /** As grpc-js: a handler that throws is UNKNOWN (the Check method never throws; see grpc.ts). */
  private handlerFailed(stream: ServerHttp2Stream, err: unknown, path: string): void {
    this.options.onError?.(err, path);
    fail(stream, { code: GrpcStatus.UNKNOWN, details: 'Unknown error' });
  }
}

/** GOAWAY now; the session closes once its streams have. */
function closeSession(session: Http2Session): void {
  if (!session.closed && !session.destroyed) session.close();
}

function isGrpcError(value: Buffer | GrpcError): value is GrpcError {
  return !Buffer.isBuffer(value);
}

function headerText(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}

function isOpen(stream: ServerHttp2Stream): boolean {
  return !stream.destroyed && !stream.closed && !stream.headersSent;
}

/** The reply of a unary call: its message and status OK, or the status alone. */
function answer(stream: ServerHttp2Stream, reply: Buffer | GrpcError): void {
  if (isGrpcError(reply)) {
    fail(stream, reply);
    return;
  }
  // Reset by the client (Envoy's timeout) while the answer was being made: nobody to answer.
  if (!isOpen(stream)) return;
  try {
    stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    stream.once('wantTrailers', sendOkTrailers);
    stream.end(frameMessage(reply));
  } catch {
    // The stream closed between the check and the write: the same as above.
    stream.destroy();
  }
}

function sendOkTrailers(this: ServerHttp2Stream): void {
  try {
    this.sendTrailers(OK_TRAILERS);
  } catch {
    this.destroy();
  }
}

/** A trailers-only error; what the client still sends is read and dropped (never buffered). */
function fail(stream: ServerHttp2Stream, error: GrpcError): void {
  respondAndDiscard(stream, trailersOnly(error));
}

function respondAndDiscard(stream: ServerHttp2Stream, headers: Record<string, string | number>): void {
  if (isOpen(stream)) {
    try {
      stream.respond(headers, { endStream: true });
    } catch {
      stream.destroy();
    }
  }
  // Flowing with no listener that keeps anything: the rest of the request is dropped as it comes.
  stream.resume();
}

function streamingCall(stream: ServerHttp2Stream): StreamingCall {
  let started = false;
  let ended = false;
  return {
    write(message) {
      if (ended || stream.destroyed || stream.closed) return;
      try {
        if (!started) {
          started = true;
          stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
          stream.once('wantTrailers', sendOkTrailers);
        }
        stream.write(frameMessage(message));
      } catch {
        stream.destroy();
      }
    },
    end() {
      if (ended) return;
      ended = true;
      if (stream.destroyed || stream.closed) return;
      try {
        if (started) stream.end();
        else stream.respond(trailersOnly({ code: GrpcStatus.OK, details: '' }), { endStream: true });
      } catch {
        stream.destroy();
      }
    },
    onClose(listener) {
      stream.once('close', listener);
    },
  };
}

/** gzip or deflate, inflated to at most the message cap; another encoding is refused as grpc-js refused it. */
function decompress(encoding: string, bytes: Buffer, done: (result: Buffer | GrpcError) => void): void {
  const inflater = encoding === 'gzip' ? gunzip : encoding === 'deflate' ? inflate : undefined;
  if (inflater === undefined) {
    done({
      code: GrpcStatus.UNIMPLEMENTED,
      details: `Received message compressed with unsupported encoding "${encoding}"`,
    });
    return;
  }
  inflater(bytes, { maxOutputLength: MAX_RECEIVE_MESSAGE_BYTES }, (err, inflated) => {
    if (!err) done(inflated);
    else if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      done({
        code: GrpcStatus.RESOURCE_EXHAUSTED,
        details: `Received message that decompresses to a size larger than ${MAX_RECEIVE_MESSAGE_BYTES}`,
      });
    else done({ code: GrpcStatus.INTERNAL, details: 'Failed to decompress message' });
  });
}
