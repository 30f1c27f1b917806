// How an HTTP front door writes a Check's answer (sendAnswer): the head in one go, its reason phrase, the
// connection kept or closed, and the bare internal_error when the answer itself cannot be written.
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Answer } from '../../../src/response/kept.js';
import { sendAnswer } from '../../../src/server/http-front.js';

let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

/** Serves one answer and returns the raw reply text (head and body) to a GET. */
async function reply(answer: Answer, close = false): Promise<{ text: string; errors: unknown[] }> {
  const errors: unknown[] = [];
  const log = { error: vi.fn((...args: unknown[]) => errors.push(args)) } as unknown as Logger;
  server = createServer((_req, res) => sendAnswer(res, answer, { close, inHeaders: false, log }));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const text = await new Promise<string>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () =>
      socket.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'),
    );
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
  return { text, errors };
}

const headerLines = (text: string) => text.slice(0, text.indexOf('\r\n\r\n')).split('\r\n');

describe('sendAnswer', () => {
  it('writes the deny status with its reason phrase, its headers, the length and the body', async () => {
    const { text, errors } = await reply({
      denied_response: {
        status: { code: 'Forbidden' },
        headers: [{ header: { key: 'X-Scopegate-Reason', value: 'insufficient_scope' } }],
        body: '{"error":"insufficient_scope"}',
      },
    } as unknown as Answer);
    const lines = headerLines(text);
    expect(lines[0]).toBe('HTTP/1.1 403 Forbidden');
    expect(lines).toContain('x-scopegate-reason: insufficient_scope');
    expect(lines).toContain('content-length: 30');
    expect(text.endsWith('\r\n\r\n{"error":"insufficient_scope"}')).toBe(true);
    expect(errors).toEqual([]);
  });

  it('closes the connection when told to', async () => {
    const { text } = await reply({ ok_response: {} } as unknown as Answer, true);
    const lines = headerLines(text);
    expect(lines[0]).toBe('HTTP/1.1 200 OK');
    expect(lines).toContain('connection: close');
    expect(lines).toContain('content-length: 0');
  });

  it('answers a bare 503 internal_error, with its own reason phrase, when a header cannot be written', async () => {
    const { text, errors } = await reply({
      ok_response: { headers: [{ header: { key: 'x-scopegate-subject', value: 'line\nbreak' } }] },
    } as unknown as Answer);
    const lines = headerLines(text);
    expect(lines[0]).toBe('HTTP/1.1 503 Service Unavailable');
    expect(lines).toContain('x-scopegate-reason: internal_error');
    expect(lines.some((line) => line.startsWith('x-scopegate-subject'))).toBe(false);
    expect(errors).toHaveLength(1);
  });
});
