#!/usr/bin/env node
// The Node transport floors for bench/compare.js, ext_authz servers that allow every request without looking
// at it:
//   - gRPC (default): a grpc-js Authorization service on scopegate's protos and loader options
//     (dist/wire/proto.js): the floor of a do-nothing grpc-js server, not of scopegate's own transport.
//     scopegate's gRPC door runs on node:http2 (src/server/h2-grpc.ts), so scopegate ÷ this floor mixes
//     scopegate's own work with the difference between the two gRPC servers.
//   - HTTP (--http HOST:PORT): a node:http server for Envoy's `http_service` that reads the request (body
//     included, as scopegate's --http door does) and answers 200 with no headers: the floor of `serve --http`.
//
//   node bench/noop-authz.js [--listen 127.0.0.1:0 | --http 127.0.0.1:0] [--workers N]
//
// Prints one JSON line {"msg":"listening","grpc":"127.0.0.1:PORT"} (or "http" in HTTP mode) on stdout once
// every worker serves; SIGTERM/SIGINT stops it. --workers N (default 1) forks N processes sharing the port
// (node:cluster), to be compared with a scopegate started with the same number of workers.
import cluster from 'node:cluster';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';

const { values } = parseArgs({
  options: {
    listen: { type: 'string', default: '127.0.0.1:0' },
    http: { type: 'string' },
    workers: { type: 'string', default: '1' },
  },
});
const workers = Math.max(1, Math.min(Number(values.workers) || 1, 64));
/** The listening line's key: which door this floor serves. */
const door = values.http === undefined ? 'grpc' : 'http';

/** An OkHttpResponse with status OK: Envoy forwards the request unchanged. */
const ALLOW = Object.freeze({ status: { code: 0 }, ok_response: {} });

const hostOf = (address) => address.slice(0, address.lastIndexOf(':'));

/** Envoy's http_service allows on 200; the body is read to its end first, as scopegate reads it. */
async function serveHttp() {
  const server = createServer((req, res) => {
    req.on('data', () => {});
    req.on('end', () => res.writeHead(200, { 'content-length': 0 }).end());
  });
  // Envoy keeps its connections to the authz cluster open: do not close them under it.
  server.keepAliveTimeout = 60_000;
  const port = Number(values.http.slice(values.http.lastIndexOf(':') + 1));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, hostOf(values.http), resolve);
  });
  const stop = () => {
    server.closeAllConnections();
    server.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return `${hostOf(values.http)}:${server.address().port}`;
}

async function serve() {
  if (door === 'http') return serveHttp();
  const { authorizationService } = await import(new URL('../dist/wire/proto.js', import.meta.url).href);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(authorizationService, { Check: (_call, callback) => callback(null, ALLOW) });
  const port = await new Promise((resolve, reject) =>
    server.bindAsync(values.listen, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    ),
  );
  const stop = () => {
    server.forceShutdown();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return `${hostOf(values.listen)}:${port}`;
}

const listening = (address) => console.log(JSON.stringify({ msg: 'listening', [door]: address }));

if (workers === 1) {
  listening(await serve());
} else if (cluster.isPrimary) {
  // Workers listening on port 0 through the primary all get the same port; report it once all of them serve.
  const addresses = [];
  for (let i = 0; i < workers; i++) {
    const worker = cluster.fork();
    worker.on('message', (message) => {
      addresses.push(message.address);
      if (addresses.length === workers) listening(addresses[0]);
    });
    worker.on('exit', (code) => {
      if (code !== 0) process.exit(1);
    });
  }
  const stop = () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill('SIGTERM');
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} else {
  process.send?.({ address: await serve() });
  // A worker whose primary is gone has nothing left to do.
  process.once('disconnect', () => process.exit(0));
}
