// readBody, the dev stand-ins' bounded body reader, on a real loopback HTTP server: a body within the limit is
// read whole; one declared or found larger stops at once; a request cut off mid-body is unreadable, not large.
import { createServer, request, type Server } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type BodyRead, readBody } from '../../../src/dev/http.js';
import { listenHttp } from '../../../src/server/admin.js';

const LIMIT = 16;
let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A server reading each body with readBody(LIMIT); resolves with its port and the reads, in order. */
async function reading(): Promise<{ port: number; reads: Promise<BodyRead>[] }> {
  const reads: Promise<BodyRead>[] = [];
  server = createServer((req, res) => {
    const read = readBody(req, LIMIT);
    reads.push(read);
    void read.then(() => res.writeHead(204, { connection: 'close' }).end());
  });
  const { port } = await listenHttp(server, '127.0.0.1', 0);
  return { port, reads };
}

/** Sends a body, chunked (no content-length) unless `declared` is given. */
function send(port: number, chunks: string[], declared?: number): Promise<void> {
  return new Promise((resolve) => {
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      headers: declared === undefined ? {} : { 'content-length': String(declared) },
    });
    req.on('response', (res) => res.resume().on('end', resolve));
    req.on('error', () => resolve());
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe('readBody', () => {
  it('reads a body within the limit, up to the limit exactly', async () => {
    const { port, reads } = await reading();
    await send(port, ['{"loc":', '"WH01"}']);
    await send(port, ['x'.repeat(LIMIT)], LIMIT);
    expect(await reads[0]).toEqual({ ok: true, bytes: Buffer.from('{"loc":"WH01"}') });
    expect(await reads[1]).toEqual({ ok: true, bytes: Buffer.from('x'.repeat(LIMIT)) });
  });

  it('a body with no bytes is an empty read', async () => {
    const { port, reads } = await reading();
    await send(port, [], 0);
    expect(await reads[0]).toEqual({ ok: true, bytes: Buffer.alloc(0) });
  });

  it('a declared length over the limit is too large before a byte is read', async () => {
    const { port, reads } = await reading();
    // Declares more than it will ever send: only the declaration can have decided.
    const socket = connect(port, '127.0.0.1');
    socket.write(`POST / HTTP/1.1\r\nhost: x\r\ncontent-length: ${LIMIT + 1}\r\n\r\n`);
    await until(() => reads.length === 1);
    expect(await reads[0]).toEqual({ ok: false, tooLarge: true });
    socket.destroy();
  });

  it('a chunked body that grows past the limit is too large', async () => {
    const { port, reads } = await reading();
    await send(port, ['x'.repeat(10), 'y'.repeat(10)]);
    expect(await reads[0]).toEqual({ ok: false, tooLarge: true });
  });

  it('a request cut off mid-body is unreadable, not too large', async () => {
    const { port, reads } = await reading();
    const socket = connect(port, '127.0.0.1');
    socket.write(`POST / HTTP/1.1\r\nhost: x\r\ncontent-length: ${LIMIT}\r\n\r\nabc`);
    await until(() => reads.length === 1);
    socket.destroy();
    expect(await reads[0]).toEqual({ ok: false, tooLarge: false });
  });
});

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  if (!condition()) throw new Error('timed out waiting');
}
