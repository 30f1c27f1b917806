// Reading a JWKS document: over HTTP(S) within a time and size budget, redirects refused, the response's
// Cache-Control read for the refresh period; from a file within a size budget. Every failure is a message
// safe to show: never the URL or the path.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { fetchJwks, maxAgeOf, readJwks, readJwksFile } from '../../../src/identity/jwks-fetch.js';

const DOCUMENT = JSON.stringify({ keys: [] });

/** An HTTP server whose answer each test sets; counts requests per path. */
let server: Server;
let base: string;
let answer: (req: IncomingMessage, res: ServerResponse) => void;
let hits: Map<string, number>;

beforeAll(async () => {
  server = createServer((req, res) => {
    hits.set(req.url ?? '', (hits.get(req.url ?? '') ?? 0) + 1);
    answer(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
beforeEach(() => {
  hits = new Map();
  answer = (_, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(DOCUMENT);
});

/** The message a fetch fails with (it must fail). */
async function failure(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('expected the read to fail');
}

describe('Cache-Control: how long the response may be reused', () => {
  it.each([
    ['max-age=600', 600],
    ['public, max-age="120", must-revalidate', 120],
    ['MAX-AGE=5', 5],
    ['no-cache', 0],
    ['no-store, max-age=600', 0],
    ['max-age=soon', undefined],
    ['s-maxage=100', undefined],
    ['max-age=99999999999', undefined],
    ['max-age=0', 0],
    ['max-age=9999999999', 9_999_999_999],
    [' max-age = 60 ', 60],
    ['private, max-age=30', 30],
    ['max-age=60, max-age=120', 60],
    ['max-age=oops, max-age=120', 120],
    ['max-age=120, no-cache', 0],
    ['no-cache="set-cookie", max-age=60', 0],
    ['NO-STORE', 0],
    ['max-age', undefined],
    ['max-age=', undefined],
    ['max-age=-1', undefined],
    ['max-age=1.5', undefined],
    ['max-age=1e3', undefined],
    ['', undefined],
    ['must-revalidate', undefined],
  ])('"%s" → %s seconds', (header, seconds) => {
    expect(maxAgeOf(header)).toBe(seconds);
  });

  it('no header: undefined (the configured interval applies)', () => {
    expect(maxAgeOf(null)).toBeUndefined();
  });

  it('only the first 1 KiB of the header is read', () => {
    const padding = `${'x'.repeat(1020)}, `;
    expect(maxAgeOf(`max-age=60, ${padding}`)).toBe(60);
    expect(maxAgeOf(`${padding}max-age=60`)).toBeUndefined();
  });
});

describe('fetching a JWKS over HTTP', () => {
  it('returns the document and the max-age the response gave', async () => {
    answer = (_, res) => res.writeHead(200, { 'cache-control': 'public, max-age=900' }).end(DOCUMENT);
    expect(await fetchJwks(`${base}/jwks`, 2000, 1024)).toEqual({ text: DOCUMENT, maxAgeSeconds: 900 });
  });

  it('with no Cache-Control, no max-age at all', async () => {
    const fetched = await fetchJwks(`${base}/jwks`, 2000, 1024);
    expect(fetched).toEqual({ text: DOCUMENT });
    expect('maxAgeSeconds' in fetched).toBe(false);
  });

  it('asks for a JWK set', async () => {
    let accept: string | undefined;
    answer = (req, res) => {
      accept = req.headers.accept;
      res.end(DOCUMENT);
    };
    await fetchJwks(`${base}/jwks`, 2000, 1024);
    expect(accept).toBe('application/jwk-set+json, application/json');
  });

  it('an error status is refused, naming the status', async () => {
    answer = (_, res) => res.writeHead(500).end('oops');
    expect(await failure(fetchJwks(`${base}/jwks`, 2000, 1024))).toBe('the JWKS endpoint answered HTTP 500');
  });

  it('a redirect is refused and not followed', async () => {
    answer = (req, res) => {
      if (req.url === '/moved') res.writeHead(302, { location: '/jwks' }).end();
      else res.end(DOCUMENT);
    };
    expect(await failure(fetchJwks(`${base}/moved`, 2000, 1024))).toBe(
      'the JWKS endpoint could not be reached',
    );
    expect(hits.get('/jwks')).toBeUndefined();
  });

  it('a Content-Length over the budget is refused before the body is read', async () => {
    answer = (_, res) => res.writeHead(200, { 'content-length': 2048 }).end('x'.repeat(2048));
    expect(await failure(fetchJwks(`${base}/jwks`, 2000, 1024))).toBe(
      'the key set is larger than 1024 bytes',
    );
  });

  it('a body over the budget with no Content-Length is refused as it streams', async () => {
    answer = (_, res) => {
      res.writeHead(200, { 'transfer-encoding': 'chunked' });
      for (let i = 0; i < 4; i++) res.write('x'.repeat(512));
      res.end();
    };
    expect(await failure(fetchJwks(`${base}/jwks`, 2000, 1024))).toBe(
      'the key set is larger than 1024 bytes',
    );
  });

  it('a body of exactly the budget is read', async () => {
    const text = 'x'.repeat(1024);
    answer = (_, res) => res.end(text);
    expect((await fetchJwks(`${base}/jwks`, 2000, 1024)).text).toBe(text);
  });

  it('a slow endpoint is given up on after the timeout', async () => {
    answer = (_, res) => {
      const timer = setTimeout(() => res.end(DOCUMENT), 1500);
      res.on('close', () => clearTimeout(timer));
    };
    const started = performance.now();
    expect(await failure(fetchJwks(`${base}/jwks`, 50, 1024))).toBe('the JWKS fetch took longer than 50 ms');
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('an endpoint that cannot be reached', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expect(await failure(fetchJwks(`http://127.0.0.1:${port}/jwks`, 2000, 1024))).toBe(
      'the JWKS endpoint could not be reached',
    );
  });

  it.each([
    ['not a URL', 'jwks.json', 'the JWKS URI is not a valid URL'],
    ['a file URL', 'file:///etc/passwd', 'the JWKS URI must be http(s)'],
    ['a data URL', 'data:application/json,{"keys":[]}', 'the JWKS URI must be http(s)'],
  ])('%s is refused', async (_, uri, message) => {
    expect(await failure(fetchJwks(uri, 2000, 1024))).toBe(message);
  });

  it('no message names the URL, which may hold a credential', async () => {
    const messages: string[] = [];
    for (const status of [401, 503]) {
      answer = (_, res) => res.writeHead(status).end();
      messages.push(await failure(fetchJwks(`${base}/jwks?access_token=s3cret`, 2000, 1024)));
    }
    answer = (_, res) => res.writeHead(302, { location: '/jwks?access_token=s3cret' }).end();
    messages.push(await failure(fetchJwks(`${base}/moved?access_token=s3cret`, 2000, 1024)));
    messages.push(await failure(fetchJwks('https://user:s3cret@[::1', 2000, 1024)));
    for (const message of messages) {
      expect(message).not.toContain('s3cret');
      expect(message).not.toContain('127.0.0.1');
    }
  });
});

describe('reading a JWKS file', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scopegate-jwks-file-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('reads the file as UTF-8', async () => {
    const file = join(dir, 'jwks.json');
    await writeFile(file, '{"keys":[],"note":"josé"}');
    expect(await readJwksFile(file, 1024)).toBe('{"keys":[],"note":"josé"}');
  });

  it('a file over the budget is refused; one of exactly the budget is read', async () => {
    const file = join(dir, 'large.json');
    await writeFile(file, 'x'.repeat(1025));
    expect(await failure(readJwksFile(file, 1024))).toBe('the key set is larger than 1024 bytes');
    await writeFile(file, 'x'.repeat(1024));
    expect(await readJwksFile(file, 1024)).toHaveLength(1024);
  });

  it('a missing file names the error code, not the path', async () => {
    const message = await failure(readJwksFile(join(dir, 'secret-name.json'), 1024));
    expect(message).toBe('the JWKS file could not be read (ENOENT)');
  });

  it('a directory cannot be read as a JWKS', async () => {
    const sub = join(dir, 'a-directory');
    await mkdir(sub, { recursive: true });
    expect(await failure(readJwksFile(sub, 1024))).toBe('the JWKS file could not be read (EISDIR)');
  });
});

describe("reading the issuer's JWKS wherever the policy says it is", () => {
  it('from a URL, with its max-age', async () => {
    answer = (_, res) => res.writeHead(200, { 'cache-control': 'max-age=60' }).end(DOCUMENT);
    expect(await readJwks({ uri: `${base}/jwks` }, { timeoutMs: 2000, maxBytes: 1024 })).toEqual({
      text: DOCUMENT,
      maxAgeSeconds: 60,
    });
  });

  it('from a file, with no max-age, within the same size budget', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'scopegate-jwks-file-'));
    try {
      const file = join(dir, 'jwks.json');
      await writeFile(file, DOCUMENT);
      expect(await readJwks({ file }, { timeoutMs: 2000, maxBytes: 1024 })).toEqual({ text: DOCUMENT });
      expect(await failure(readJwks({ file }, { timeoutMs: 2000, maxBytes: 4 }))).toBe(
        'the key set is larger than 4 bytes',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
