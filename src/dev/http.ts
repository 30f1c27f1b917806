// Small HTTP helpers shared by the dev stand-ins (issuer, upstream).
import type { IncomingMessage } from 'node:http';

export type BodyRead =
  | { readonly ok: true; readonly bytes: Buffer }
  | { readonly ok: false; readonly tooLarge: boolean };

/** Reads at most `limit` bytes; a declared or actual larger body stops reading at once. */
export function readBody(req: IncomingMessage, limit: number): Promise<BodyRead> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve({ ok: false, tooLarge: true });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    req.on('data', (chunk: Buffer) => {
      length += chunk.length;
      if (length > limit) {
        req.removeAllListeners('data');
        req.pause();
        resolve({ ok: false, tooLarge: true });
      } else {
        chunks.push(chunk);
      }
    });
    req.on('end', () => resolve({ ok: true, bytes: Buffer.concat(chunks, length) }));
    req.on('error', () => resolve({ ok: false, tooLarge: false }));
  });
}
