// The admin HTTP edge on a real loopback port: /metrics as the sources scrape it, /healthz always 200 while
// the process runs, /readyz 200 or 503 with the problems named, and nothing else (404, 405).
import type { Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { type AdminSources, createAdminServer, listenHttp } from '../../../src/server/admin.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

const healthy: AdminSources = {
  scrape: async () => '# HELP up_total x\nup_total 1\n',
  contentType: 'text/plain; version=0.0.4; charset=utf-8',
  readiness: () => ({ problems: [], notes: [] }),
};

/** The admin server for these sources, listening on 127.0.0.1 port 0; returns its base URL. */
async function admin(sources: Partial<AdminSources> = {}): Promise<string> {
  const server = createAdminServer({ ...healthy, ...sources });
  servers.push(server);
  const { host, port } = await listenHttp(server, '127.0.0.1', 0);
  return `http://${host}:${port}`;
}

const readyz = async (base: string, path = '/readyz') => {
  const response = await fetch(base + path);
  return { status: response.status, body: await response.json() };
};

describe('/metrics', () => {
  it('is the scrape, with the registry’s content type', async () => {
    const response = await fetch(`${await admin()}/metrics`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(await response.text()).toBe('# HELP up_total x\nup_total 1\n');
  });

  it('a scrape that fails is a 500, never an empty 200 that would look like counters reset', async () => {
    const base = await admin({ scrape: () => Promise.reject(new Error('a worker did not answer')) });
    const response = await fetch(`${base}/metrics`);
    expect(response.status).toBe(500);
    expect(await response.text()).toBe('metrics unavailable\n');
  });
});

describe('/healthz and /readyz', () => {
  it('/healthz is 200 even when not ready: the process is alive', async () => {
    const base = await admin({
      readiness: () => ({ problems: ['no usable keys for https://idp.example/'], notes: [] }),
    });
    const response = await fetch(`${base}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe('ok\n');
  });

  it('/readyz is 200 with no problems, and ignores a query string', async () => {
    const base = await admin();
    expect(await readyz(base)).toEqual({ status: 200, body: { ready: true, problems: [] } });
    expect(await readyz(base, '/readyz?verbose=1')).toEqual({
      status: 200,
      body: { ready: true, problems: [] },
    });
  });

  it('/readyz is 503 naming each problem, whether they come at once or later', async () => {
    const problems = ['no usable keys for https://idp.example/', '1 of 2 workers not serving'];
    const said = { problems, notes: [] };
    for (const readiness of [() => said, async () => said]) {
      expect(await readyz(await admin({ readiness }))).toEqual({
        status: 503,
        body: { ready: false, problems },
      });
    }
  });

  it('/readyz says its notes, ready or not: a policy file refused after start-up does not make it unready', async () => {
    const notes = [
      'policy file /p/orders.yaml owns nothing: /p/orders.yaml:3:1: routes: required key "routes" is missing',
    ];
    expect(await readyz(await admin({ readiness: () => ({ problems: [], notes }) }))).toEqual({
      status: 200,
      body: { ready: true, problems: [], notes },
    });
    expect(await readyz(await admin({ readiness: () => ({ problems: ['x'], notes }) }))).toEqual({
      status: 503,
      body: { ready: false, problems: ['x'], notes },
    });
  });

  it('/readyz is 503 when readiness cannot be determined (the source throws or rejects)', async () => {
    const failing = [
      () => {
        throw new Error('boom');
      },
      () => Promise.reject(new Error('boom')),
    ];
    for (const readiness of failing) {
      expect(await readyz(await admin({ readiness }))).toEqual({
        status: 503,
        body: { ready: false, problems: ['readiness could not be determined'] },
      });
    }
  });
});

describe('anything else', () => {
  it('an unknown path is 404, a trailing slash included', async () => {
    const base = await admin();
    for (const path of ['/', '/metrics/', '/ready', '/healthz/x'])
      expect((await fetch(base + path)).status, path).toBe(404);
  });

  it('a method other than GET or HEAD is 405 naming the allowed ones; HEAD is answered', async () => {
    const base = await admin();
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const response = await fetch(`${base}/metrics`, { method });
      expect(response.status, method).toBe(405);
      expect(response.headers.get('allow')).toBe('GET, HEAD');
    }
    const head = await fetch(`${base}/healthz`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });
});

describe('listenHttp', () => {
  it('resolves with the bound address, and rejects when the port is taken', async () => {
    const base = await admin();
    const { port } = new URL(base);
    const second = createAdminServer(healthy);
    await expect(listenHttp(second, '127.0.0.1', Number(port))).rejects.toMatchObject({ code: 'EADDRINUSE' });
    expect(second.listening).toBe(false);
  });
});
