// Reads an issuer's JWKS document, from its URL or its file, within a time and size budget. Over HTTP(S) it
// refuses redirects and reports the response's `Cache-Control: max-age` (the key store's refresh period).
// Every failure is a KeyLoadError whose message is safe to show: never the URL (it may hold credentials).
import { open } from 'node:fs/promises';
import type { CompiledIssuer } from '../policy/types.js';
import { errorCode, KeyLoadError } from './errors.js';

/** A JWKS document as read, not yet parsed. */
export interface JwksDocument {
  readonly text: string;
  /** Seconds the HTTP response said it may be reused (see maxAgeOf); undefined for a file or no header. */
  readonly maxAgeSeconds?: number;
}

export interface JwksBudget {
  /** Time an HTTP(S) fetch may take. */
  readonly timeoutMs: number;
  /** Largest document accepted, in bytes. */
  readonly maxBytes: number;
}

/** The issuer's JWKS document from wherever the policy says it is. */
export function readJwks(source: CompiledIssuer['jwks'], budget: JwksBudget): Promise<JwksDocument> {
  return 'uri' in source
    ? fetchJwks(source.uri, budget.timeoutMs, budget.maxBytes)
    : readJwksFile(source.file, budget.maxBytes).then((text) => ({ text }));
}

/** GET a JWKS over HTTP(S) within a time and size budget, with the response's `max-age`. */
export async function fetchJwks(uri: string, timeoutMs: number, maxBytes: number): Promise<JwksDocument> {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new KeyLoadError('the JWKS URI is not a valid URL');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw new KeyLoadError('the JWKS URI must be http(s)');
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    // Redirects are refused: a key source that moves is a configuration change, not something to follow.
    const response = await fetch(url, {
      signal,
      redirect: 'error',
      headers: { accept: 'application/jwk-set+json, application/json' },
    });
    if (!response.ok) {
      await response.body?.cancel();
      throw new KeyLoadError(`the JWKS endpoint answered HTTP ${response.status}`);
    }
    const declared = Number(response.headers.get('content-length'));
    if (Number.isFinite(declared) && declared > maxBytes) {
      await response.body?.cancel();
      throw tooLarge(maxBytes);
    }
    const text = await readCapped(response.body, maxBytes);
    const maxAgeSeconds = maxAgeOf(response.headers.get('cache-control'));
    return maxAgeSeconds === undefined ? { text } : { text, maxAgeSeconds };
  } catch (err) {
    if (signal.aborted) throw new KeyLoadError(`the JWKS fetch took longer than ${timeoutMs} ms`);
    if (err instanceof KeyLoadError) throw err;
    throw new KeyLoadError('the JWKS endpoint could not be reached');
  }
}

/**
 * Seconds a `Cache-Control` header lets the response be reused: `max-age`, 0 for `no-cache`/`no-store`,
 * undefined when it says neither (or is malformed). The caller clamps it.
 */
export function maxAgeOf(cacheControl: string | null): number | undefined {
  if (cacheControl === null) return undefined;
  let maxAge: number | undefined;
  // Bounded: a header is client-of-ours input too; 1 KiB holds any honest Cache-Control.
  for (const directive of cacheControl.slice(0, 1024).split(',')) {
    const equals = directive.indexOf('=');
    const name = (equals === -1 ? directive : directive.slice(0, equals)).trim().toLowerCase();
    if (name === 'no-cache' || name === 'no-store') return 0;
    if (name !== 'max-age' || maxAge !== undefined || equals === -1) continue;
    const value = /^\s*"?(\d{1,10})"?\s*$/.exec(directive.slice(equals + 1));
    if (value) maxAge = Number(value[1]);
  }
  return maxAge;
}

async function readCapped(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<string> {
  if (body === null) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      // Leaving the loop early cancels the stream, so the rest is never downloaded.
      throw tooLarge(maxBytes);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A JWKS file's text, refused past maxBytes; the message names the error code (ENOENT, …), never the path. */
export async function readJwksFile(path: string, maxBytes: number): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(path, 'r');
    const buffer = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await handle.read(buffer, 0, maxBytes + 1, 0);
    if (bytesRead > maxBytes) throw tooLarge(maxBytes);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } catch (err) {
    if (err instanceof KeyLoadError) throw err;
    const code = errorCode(err);
    throw new KeyLoadError(`the JWKS file could not be read${code ? ` (${code})` : ''}`);
  } finally {
    await handle?.close();
  }
}

function tooLarge(maxBytes: number): Error {
  return new KeyLoadError(`the key set is larger than ${maxBytes} bytes`);
}
