// A raw HTTP/2 client for the gRPC edge's protocol cases that a gRPC client library will not send: wrong
// content types and methods, split or oversized frames, several messages, resets mid-message.
import { type ClientHttp2Session, connect, type IncomingHttpHeaders } from 'node:http2';

export interface RawReply {
  /** The response header block (for a trailers-only response, the status is here). */
  readonly headers: IncomingHttpHeaders;
  readonly trailers: IncomingHttpHeaders | undefined;
  readonly data: Buffer;
  /** grpc-status from the trailers or a trailers-only header block; undefined when there is none. */
  readonly grpcStatus: number | undefined;
  readonly grpcMessage: string | undefined;
}

export function rawSession(address: string): ClientHttp2Session {
  const session = connect(`http://${address}`);
  session.on('error', () => {});
  return session;
}

export function framed(message: Buffer, flag = 0): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out[0] = flag;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/**
 * One request: `chunks` are written one by one (each its own DATA frame), and the request ends after them
 * unless `end` is false.
 */
export function rawCall(
  session: ClientHttp2Session,
  path: string,
  chunks: Buffer[],
  options: { headers?: Record<string, string>; end?: boolean } = {},
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...options.headers,
    });
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const data: Buffer[] = [];
    stream.on('response', (h) => {
      headers = h;
    });
    stream.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('data', (chunk: Buffer) => data.push(chunk));
    stream.on('error', reject);
    if (options.end === false) stream.on('end', () => stream.close());
    // The server's side ending is the reply, whether or not the request has ended (a refusal comes early).
    const settle = () => {
      const status = trailers?.['grpc-status'] ?? headers['grpc-status'];
      const message = trailers?.['grpc-message'] ?? headers['grpc-message'];
      resolve({
        headers,
        trailers,
        data: Buffer.concat(data),
        grpcStatus: status === undefined ? undefined : Number(status),
        grpcMessage: typeof message === 'string' ? decodeURIComponent(message) : undefined,
      });
    };
    stream.once('end', settle);
    stream.once('close', settle);
    for (const chunk of chunks) stream.write(chunk);
    if (options.end !== false) stream.end();
  });
}

/** The response messages in a reply's DATA, unframed. */
export function messagesIn(data: Buffer): Buffer[] {
  const messages: Buffer[] = [];
  for (let at = 0; at + 5 <= data.length; ) {
    const length = data.readUInt32BE(at + 1);
    messages.push(data.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return messages;
}
