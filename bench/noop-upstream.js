#!/usr/bin/env node
// The upstream behind every Envoy in bench/compare.js: answers 200 with the same small JSON body to every
// request, after reading the request body. Not `scopegate dev-upstream`, whose transaction list grows with
// every allowed POST (up to 10,000 entries in every later GET): a faster contestant would let more POSTs
// through and then pay for bigger GET answers, and PUT on an unknown id is a 404. A constant answer keeps the
// through-Envoy numbers about authorization.
//
// It counts the requests Envoy let through by their x-bench-case header (the request's index in the bench's
// mix) and answers GET /__bench/counts, asked directly (not through Envoy), with those counts as JSON: the
// bench holds them to which requests of the mix must be allowed.
//
//   node bench/noop-upstream.js [--listen 127.0.0.1:0]
//
// Prints {"msg":"listening","url":"http://127.0.0.1:PORT"} on stdout; SIGTERM/SIGINT stops it.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { listen: { type: 'string', default: '127.0.0.1:0' } } });
const host = values.listen.slice(0, values.listen.lastIndexOf(':'));
const port = Number(values.listen.slice(values.listen.lastIndexOf(':') + 1));

const BODY = Buffer.from('{"ok":true}');
/** Larger bodies are not expected from the bench; stop reading rather than buffer without bound. */
const MAX_BODY_BYTES = 1024 * 1024;

/** Requests that reached the upstream, by x-bench-case (absent: "none"). */
const counts = new Map();

const server = createServer((req, res) => {
  if (req.url === '/__bench/counts' && req.headers['x-bench-case'] === undefined) {
    const body = JSON.stringify(Object.fromEntries(counts));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
    return;
  }
  const name = req.headers['x-bench-case'] ?? 'none';
  counts.set(name, (counts.get(name) ?? 0) + 1);
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) req.destroy();
  });
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length });
    res.end(BODY);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(port, host, () => {
  console.log(JSON.stringify({ msg: 'listening', url: `http://${host}:${server.address().port}` }));
});
const stop = () => {
  server.closeAllConnections();
  server.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
