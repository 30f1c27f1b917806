// gRPC's layer over HTTP/2, its pure parts: a request message read from DATA chunks however they are split,
// refused as grpc-js refused it (too large from its prefix alone, none, a second one), its compressed flag
// kept; response framing; grpc-message percent-encoded as the gRPC spec says.
import { describe, expect, it } from 'vitest';
import {
  frameMessage,
  GrpcStatus,
  percentEncodeGrpcMessage,
  trailersOnly,
  UnaryMessageReader,
} from '../../../src/server/h2-grpc.js';

const framed = (bytes: Buffer | string, flag = 0) => {
  const body = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  const out = Buffer.alloc(5 + body.length);
  out[0] = flag;
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
};

/** Feeds `data` in chunks of the given sizes (the rest in one), and returns the problem or the message. */
function read(data: Buffer, sizes: number[] = [], max?: number) {
  const reader = new UnaryMessageReader(max);
  let at = 0;
  for (const size of [...sizes, data.length]) {
    if (at >= data.length) break;
    const problem = reader.push(data.subarray(at, Math.min(at + size, data.length)));
    at += size;
    if (problem) return problem;
  }
  return reader.finish();
}

describe('reading the request message', () => {
  it('reads a message in one chunk without copying it', () => {
    const data = framed('hello');
    const message = read(data);
    expect(message).toEqual({ compressed: false, bytes: Buffer.from('hello') });
    expect((message as { bytes: Buffer }).bytes.buffer).toBe(data.buffer);
  });

  it('reads a message split anywhere: inside the prefix, byte by byte, across the prefix and body', () => {
    const data = framed('a CheckRequest spread over many DATA frames');
    for (const sizes of [[1, 1, 1, 1, 1], [3, 4], Array(data.length).fill(1), [5], [7, 2, 30]])
      expect(read(data, sizes)).toEqual({ compressed: false, bytes: Buffer.from(data.subarray(5)) });
  });

  it('reads an empty message (an empty CheckRequest)', () => {
    expect(read(framed(''))).toEqual({ compressed: false, bytes: Buffer.alloc(0) });
  });

  it('keeps the compressed flag (only the value 1 means compressed, as grpc-js reads it)', () => {
    expect(read(framed('x', 1))).toMatchObject({ compressed: true });
    expect(read(framed('x', 2))).toMatchObject({ compressed: false });
  });

  it('refuses a message over the limit from its prefix alone, RESOURCE_EXHAUSTED, none of it kept', () => {
    const prefix = Buffer.from([0, 0, 0x50, 0, 0]); // 5 MiB announced
    const reader = new UnaryMessageReader();
    expect(reader.push(prefix.subarray(0, 3))).toBeUndefined();
    expect(reader.push(prefix.subarray(3))).toEqual({
      code: GrpcStatus.RESOURCE_EXHAUSTED,
      details: 'Received message larger than max (5242880 vs 4194304)',
    });
    // Exactly the limit is taken.
    expect(read(framed(Buffer.alloc(16)), [], 16)).toMatchObject({ compressed: false });
    expect(read(framed(Buffer.alloc(17)), [], 16)).toMatchObject({ code: GrpcStatus.RESOURCE_EXHAUSTED });
  });

  it('no message, or only part of one: UNIMPLEMENTED (grpc-js: no request message)', () => {
    expect(new UnaryMessageReader().finish()).toEqual({
      code: GrpcStatus.UNIMPLEMENTED,
      details: 'Received no request message',
    });
    expect(read(framed('hello').subarray(0, 7))).toMatchObject({ code: GrpcStatus.UNIMPLEMENTED });
    expect(read(framed('hello').subarray(0, 3))).toMatchObject({ code: GrpcStatus.UNIMPLEMENTED });
  });

  it('a second complete message: UNIMPLEMENTED, its bytes counted, not kept', () => {
    const two = Buffer.concat([framed('one'), framed('two')]);
    expect(read(two)).toEqual({
      code: GrpcStatus.UNIMPLEMENTED,
      details: 'Received a second request message',
    });
    expect(read(two, Array(two.length).fill(1))).toMatchObject({ code: GrpcStatus.UNIMPLEMENTED });
    expect(read(Buffer.concat([framed('one'), framed('')]))).toMatchObject({
      code: GrpcStatus.UNIMPLEMENTED,
    });
    // A second one over the limit is refused from its prefix, as the first would be.
    expect(read(Buffer.concat([framed('one'), Buffer.from([0, 0xff, 0, 0, 0])]))).toMatchObject({
      code: GrpcStatus.RESOURCE_EXHAUSTED,
    });
  });

  it('trailing bytes that never make a second message are ignored, as grpc-js ignored them', () => {
    expect(read(Buffer.concat([framed('one'), Buffer.from([0, 0, 0, 0, 9, 1])]))).toEqual({
      compressed: false,
      bytes: Buffer.from('one'),
    });
  });
});

describe('response framing and status', () => {
  it('frames a message: flag 0, big-endian length, the bytes', () => {
    expect(frameMessage(Buffer.from('abc'))).toEqual(Buffer.from([0, 0, 0, 0, 3, 0x61, 0x62, 0x63]));
    expect(frameMessage(Buffer.alloc(0))).toEqual(Buffer.alloc(5));
    expect(frameMessage(Buffer.alloc(70_000)).readUInt32BE(1)).toBe(70_000);
  });

  it('percent-encodes grpc-message as the spec says: printable ASCII but % as is, the rest as UTF-8 %XX', () => {
    expect(percentEncodeGrpcMessage('unknown service')).toBe('unknown service');
    expect(percentEncodeGrpcMessage('100% sure')).toBe('100%25 sure');
    expect(percentEncodeGrpcMessage('café\n')).toBe('caf%C3%A9%0A');
    expect(percentEncodeGrpcMessage('a\u0000b\u007f')).toBe('a%00b%7F');
    expect(decodeURIComponent(percentEncodeGrpcMessage('entrepôt "WH01" ✓'))).toBe('entrepôt "WH01" ✓');
  });

  it('a trailers-only response is HTTP 200 with the status and its message', () => {
    expect(trailersOnly({ code: GrpcStatus.NOT_FOUND, details: 'unknown service' })).toEqual({
      ':status': 200,
      'content-type': 'application/grpc+proto',
      'grpc-status': '5',
      'grpc-message': 'unknown service',
    });
  });
});
