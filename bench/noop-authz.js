#!/usr/bin/env node
// The Node transport floors for bench/compare.js, ext_authz servers that allow every request without looking
// at it:
//   - gRPC (default): a grpc-js Authorization service on scopegate's protos and loader options
//     (dist/wire/proto.js): the floor of a do-nothing grpc-js server, not of scopegate's own transport.
//     scopegate's gRPC door runs on node:http2 (src/server/h2-grpc.ts), so scopegate ÷ this floor mixes
//     scopegate's own work with the difference between the two gRPC servers.
//   - HTTP (--http HOST:PORT): a node:http server for Envoy's `http_service` that reads the request (body
//     included, as scopegate's --http door does) and answers 200 with no headers: the floor of `serve --http`.
//   - Canned (--answers-from HOST:PORT, either door): the same servers, answering each distinct request (method,
//     path, authorization, body) with the answer the server at HOST:PORT gave it, asked once and kept. Behind
//     Envoy, with scopegate there, Envoy does with each answer exactly what it does behind scopegate (identity
//     headers, dynamic metadata, deny bodies) while the server does next to nothing: the floor for scopegate's
//     answers, where the plain floors' empty allow costs Envoy less.
//
//   node bench/noop-authz.js [--listen 127.0.0.1:0 | --http 127.0.0.1:0] [--answers-from HOST:PORT] [--workers N]
//
// Prints one JSON line {"msg":"listening","grpc":"127.0.0.1:PORT"} (or "http" in HTTP mode) on stdout once
// every worker serves; SIGTERM/SIGINT stops it. --workers N (default 1) forks N processes sharing the port
// (node:cluster), to be compared with a scopegate started with the same number of workers.
import cluster from 'node:cluster';
import { createServer, request as httpRequest } from 'node:http';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';

const { values } = parseArgs({
  options: {
    listen: { type: 'string', default: '127.0.0.1:0' },
    http: { type: 'string' },
    workers: { type: 'string', default: '1' },
    'answers-from': { type: 'string' },
  },
});
const workers = Math.max(1, Math.min(Number(values.workers) || 1, 64));
/** The listening line's key: which door this floor serves. */
const door = values.http === undefined ? 'grpc' : 'http';

/** An OkHttpResponse with status OK: Envoy forwards the request unchanged. */
const ALLOW = Object.freeze({ status: { code: 0 }, ok_response: {} });

const hostOf = (address) => address.slice(0, address.lastIndexOf(':'));
const portOf = (address) => Number(address.slice(address.lastIndexOf(':') + 1));

/**
 * Answers kept by request, for --answers-from: each distinct request is asked once (`ask`), and its answer
 * serves every repeat. Bounded: past MAX_KEPT distinct requests, the rest are asked every time.
 */
const MAX_KEPT = 1000;
function cannedAnswers(ask) {
  const kept = new Map();
  return async (key, request) => {
    const answer = kept.get(key);
    if (answer !== undefined) return answer;
    const fresh = await ask(request);
    if (kept.size < MAX_KEPT) kept.set(key, fresh);
    return fresh;
  };
}

/** Headers of the asked server's reply that are its connection's, not its answer's: node:http writes its own. */
const CONNECTION_HEADERS = new Set([
  'date',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
]);

/** The reply the server at `address` gives an HTTP ext_authz request: status, headers (flat), body. */
function askHttp(address) {
  return ({ method, url, headers, body }) =>
    new Promise((resolve, reject) => {
      const asked = httpRequest(
        { host: hostOf(address), port: portOf(address), method, path: url, headers },
        (res) => {
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('error', reject);
          res.on('end', () => {
            const flat = [];
            for (let i = 0; i < res.rawHeaders.length; i += 2) {
              if (!CONNECTION_HEADERS.has(res.rawHeaders[i].toLowerCase()))
                flat.push(res.rawHeaders[i], res.rawHeaders[i + 1]);
            }
            const body = Buffer.concat(chunks);
            // Stated, not left to Node: after writeHead, Node would send the body chunked.
            flat.push('content-length', String(body.length));
            resolve({ status: res.statusCode, headers: flat, body });
          });
        },
      );
      asked.on('error', reject);
      asked.end(body);
    });
}

/**
 * Envoy's http_service allows on 200; the body is read to its end first, as scopegate reads it. Canned: the
 * kept reply for the request instead (a failure to ask is a 503, which Envoy turns into a deny).
 */
async function serveHttp() {
  const canned = values['answers-from'] && cannedAnswers(askHttp(values['answers-from']));
  const server = createServer((req, res) => {
    const chunks = canned ? [] : undefined;
    req.on('data', (chunk) => chunks?.push(chunk));
    req.on('end', () => {
      if (!canned) return res.writeHead(200, { 'content-length': 0 }).end();
      const body = Buffer.concat(chunks);
      const key = `${req.method} ${req.url} ${req.headers.authorization} ${body.toString('latin1')}`;
      canned(key, { method: req.method, url: req.url, headers: req.headers, body }).then(
        (answer) => res.writeHead(answer.status, answer.headers).end(answer.body),
        () => res.writeHead(503, { 'content-length': 0 }).end(),
      );
    });
  });
  // Envoy keeps its connections to the authz cluster open: do not close them under it.
  server.keepAliveTimeout = 60_000;
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(portOf(values.http), hostOf(values.http), resolve);
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
  const { authorizationService, loadClients } = await import(
    new URL('../dist/wire/proto.js', import.meta.url).href
  );
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 4 * 1024 * 1024,
    'grpc.keepalive_permit_without_calls': 1,
  });
  server.addService(authorizationService, {
    Check: values['answers-from']
      ? cannedCheck(loadClients(), values['answers-from'])
      : (_call, callback) => callback(null, ALLOW),
  });
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

/** A Check handler answering each distinct request with the CheckResponse the server at `address` gave it. */
function cannedCheck({ AuthorizationClient }, address) {
  const client = new AuthorizationClient(address, grpc.credentials.createInsecure());
  const ask = (request) =>
    new Promise((resolve, reject) =>
      client.Check(request, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err, answer) =>
        err ? reject(err) : resolve(answer),
      ),
    );
  const canned = cannedAnswers(ask);
  return (call, callback) => {
    const http = call.request.attributes?.request?.http ?? {};
    const body = http.raw_body ? Buffer.from(http.raw_body).toString('latin1') : (http.body ?? '');
    const key = `${http.method} ${http.path} ${http.headers?.authorization} ${body}`;
    canned(key, call.request).then(
      (answer) => callback(null, answer),
      (err) => callback(err),
    );
  };
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
