// Reading a file a person wrote (a policy, a cases file, a JWKS, claims) as text: never more than a cap, so a
// huge or endless file (a FIFO, /dev/zero) costs at most the cap, and only as UTF-8, strictly, so a stray
// byte never becomes U+FFFD inside a permission or a key. What went wrong comes back as a closed set of
// problems that name nothing of the content; each caller words them for its own file.
import { open } from 'node:fs/promises';

export type TextFile =
  | { readonly ok: true; readonly text: string }
  /** `bytes`: the file's size, when it was over the cap before reading (a file may grow while read). */
  | { readonly ok: false; readonly problem: 'too_large'; readonly bytes?: number }
  /** `code`: the system's error code (`ENOENT`, `EACCES`, …), or "unknown error". */
  | { readonly ok: false; readonly problem: 'unreadable'; readonly code: string }
  | { readonly ok: false; readonly problem: 'not_utf8' };

/** Reads `path` as UTF-8 if it holds at most `maxBytes` bytes; never throws. */
export async function readTextFile(path: string, maxBytes: number): Promise<TextFile> {
  let bytes: Uint8Array;
  try {
    const handle = await open(path, 'r');
    try {
      const { size } = await handle.stat();
      if (size > maxBytes) return { ok: false, problem: 'too_large', bytes: size };
      // Sized by the file, not the cap: a SIGHUP re-reads every file of a policy set, and a cap-sized buffer
      // each (1 MiB for a policy) made that hundreds of MiB of garbage, full GCs one after another. One byte
      // past the size sees a file that grew while read; it (or a pipe or device, whose size says nothing)
      // is read on into a larger buffer, never past one byte over the cap, which tells "too large" apart
      // from "exactly at the cap".
      const limit = maxBytes + 1;
      let buffer = Buffer.alloc(Math.min(size + 1, limit));
      let length = 0;
      for (;;) {
        if (length === buffer.length) {
          if (length === limit) break;
          const larger = Buffer.alloc(Math.min(length * 2, limit));
          buffer.copy(larger, 0, 0, length);
          buffer = larger;
        }
        const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
      }
      if (length > maxBytes) return { ok: false, problem: 'too_large' };
      bytes = buffer.subarray(0, length);
    } finally {
      await handle.close();
    }
  } catch (err) {
    return { ok: false, problem: 'unreadable', code: errorCode(err) ?? 'unknown error' };
  }
  try {
    return { ok: true, text: new TextDecoder('utf-8', { fatal: true }).decode(bytes) };
  } catch {
    return { ok: false, problem: 'not_utf8' };
  }
}

/** The `code` of a Node.js or jose error (`ENOENT`, `ERR_JWT_EXPIRED`), if it has one. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
}
