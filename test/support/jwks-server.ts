// A real JWKS endpoint for tests: an HTTP server on 127.0.0.1 (port 0) whose key set, availability and
// latency and Cache-Control header can be changed while a test runs, and which counts the fetches it answered.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { JWK } from 'jose';

export interface JwksServer {
  /** The JWKS URL (http://127.0.0.1:PORT/.well-known/jwks.json). */
  readonly uri: string;
  /** Requests received for the JWKS path so far, whatever the answer. */
  readonly fetches: number;
  /** Serve these public keys from now on. */
  setKeys(keys: JWK[]): void;
  /** While false, every request gets HTTP 503. */
  setAvailable(available: boolean): void;
  /** Wait this long before answering (to test fetch timeouts). */
  setDelay(ms: number): void;
  /** Serve this exact body instead of the key set (invalid JSON, oversized documents, …); undefined to stop. */
  setRawBody(body: string | undefined): void;
  /** Send this `Cache-Control` header with the key set; undefined to send none. */
  setCacheControl(value: string | undefined): void;
  resetFetches(): void;
  close(): Promise<void>;
}

export const JWKS_PATH = '/.well-known/jwks.json';

export async function startJwksServer(keys: JWK[] = []): Promise<JwksServer> {
  let current = keys;
  let available = true;
  let delayMs = 0;
  let rawBody: string | undefined;
  let cacheControl: string | undefined;
  let fetches = 0;
  const pending = new Set<NodeJS.Timeout>();

  const server: Server = createServer((req, res) => {
    if (req.url !== JWKS_PATH) {
      res.writeHead(404).end();
      return;
    }
    fetches += 1;
    const answer = () => {
      if (res.destroyed) return;
      if (!available) {
        res.writeHead(503, { 'content-type': 'text/plain' }).end('down\n');
        return;
      }
      const body = rawBody ?? JSON.stringify({ keys: current });
      res
        .writeHead(200, {
          'content-type': 'application/json',
          ...(cacheControl !== undefined && { 'cache-control': cacheControl }),
        })
        .end(body);
    };
    if (delayMs > 0) {
      const timer = setTimeout(() => {
        pending.delete(timer);
        answer();
      }, delayMs);
      pending.add(timer);
    } else {
      answer();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    uri: `http://127.0.0.1:${port}${JWKS_PATH}`,
    get fetches() {
      return fetches;
    },
    setKeys: (next) => {
      current = next;
    },
    setAvailable: (next) => {
      available = next;
    },
    setDelay: (ms) => {
      delayMs = ms;
    },
    setRawBody: (body) => {
      rawBody = body;
    },
    setCacheControl: (value) => {
      cacheControl = value;
    },
    resetFetches: () => {
      fetches = 0;
    },
    close: async () => {
      for (const timer of pending) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
