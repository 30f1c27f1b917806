// The admin HTTP edge: /metrics for Prometheus, /healthz (the process is alive) and /readyz (every policy
// file has loaded since start-up and every issuer has usable keys). Kept on its own port so it is never exposed with the gRPC port.
import { createServer, type Server } from 'node:http';

export interface AdminSources {
  /** The Prometheus text exposition of every metric (one process's, or the workers' aggregate). */
  readonly scrape: () => Promise<string>;
  readonly contentType: string;
  /** Safe to show (no secrets): why not ready (none: ready), and what is worth knowing although ready. */
  readonly readiness: () => Readiness | Promise<Readiness>;
}

export interface Readiness {
  /** Why not ready; empty when ready. */
  readonly problems: string[];
  /** Said although ready: a policy file refused after start-up, an edit rejected (its last good revision serves). */
  readonly notes: string[];
}

export function createAdminServer(sources: AdminSources): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      sources.scrape().then(
        (text) => res.writeHead(200, { 'content-type': sources.contentType }).end(text),
        () => res.writeHead(500).end('metrics unavailable\n'),
      );
    } else if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      Promise.resolve()
        .then(sources.readiness)
        .catch((): Readiness => ({ problems: ['readiness could not be determined'], notes: [] }))
        .then(({ problems, notes }) => {
          const ready = problems.length === 0;
          res
            .writeHead(ready ? 200 : 503, { 'content-type': 'application/json' })
            .end(JSON.stringify({ ready, problems, ...(notes.length > 0 && { notes }) }) + '\n');
        });
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  });
}

export function listenHttp(
  server: Server,
  host: string,
  port: number,
): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const address = server.address();
      if (address && typeof address === 'object') resolve({ host: address.address, port: address.port });
      else reject(new Error('admin server has no address'));
    });
  });
}
