#!/usr/bin/env node
// How long one Check's body read may hold the event loop (issue 16, "no work for strangers"): the location
// phase reads a JSON body in slices of BODY_SCAN_SLICE tokens, yielding between them, so a large or
// odd body is read between other checks. For bodies of the worst shapes we know (a megabyte of tiny
// objects, of keys, of escapes, …) this prints the longest single slice (what every other check on the
// worker may wait; a young-generation GC landing in one is counted in it), the total CPU of the read, and the
// slice count, each the worst of --rounds runs after ten warm-up runs (a server's scan code is hot).
//
//   node bench/body-scan.js                 # 1 MiB bodies (the JSON limit), 5 rounds
//   node bench/body-scan.js --kib 64
import { parseArgs } from 'node:util';

const dist = (path) => import(new URL(`../dist/${path}`, import.meta.url).href);
const { readLocations, BODY_SCAN_SLICE } = await dist('request/locations.js');
const { JsonScanner } = await dist('request/json.js');
const { readRequest } = await dist('request/facts.js');
const { compileLocationSource } = await dist('policy/body-path.js');

const { values } = parseArgs({
  options: { kib: { type: 'string', default: '1024' }, rounds: { type: 'string', default: '5' } },
});
const size = Math.min(Number(values.kib), 1024) * 1024 - 64;
const rounds = Math.min(Number(values.rounds), 50);

const fill = (head, unit, tail) =>
  head + unit.repeat(Math.floor((size - head.length - tail.length) / unit.length)) + tail;
const SHAPES = {
  'support-thread lines': [
    'lines[].location',
    fill('{"lines":[', '{"location":"WH01","item":"ITEM001","quantity":10},', '{"location":"WH01"}]}'),
  ],
  'empty objects': ['location', fill('{"location":"WH01","x":[', '{},', '{}]}')],
  'small objects': ['location', fill('{"location":"WH01","x":[', '{"a":1},', '{}]}')],
  'empty arrays': ['location', fill('{"location":"WH01","x":[', '[],', '[]]}')],
  numbers: ['location', fill('{"location":"WH01","x":[', '1,', '1]}')],
  'keys (10,000 per object)': [
    'location',
    fill(
      '{"location":"WH01","x":[',
      `{${Array.from({ length: 10_000 }, (_, i) => `"${i}":1`).join(',')}},`,
      '{}]}',
    ),
  ],
  'escaped strings (256 KiB each)': [
    'location',
    fill('{"location":"WH01","x":[', `"${'\\u00e9'.repeat(43_000)}",`, '""]}'),
  ],
  'escaped quotes (256 KiB each)': [
    'location',
    fill('{"location":"WH01","x":[', `"${'\\"'.repeat(130_000)}",`, '""]}'),
  ],
  'plain strings': ['location', fill('{"location":"WH01","x":[', `"${'x'.repeat(200_000)}",`, '""]}')],
};

// Time every slice: each call of JsonScanner.run is one stretch the event loop is held.
let slices = [];
const run = JsonScanner.prototype.run;
JsonScanner.prototype.run = function timed(...args) {
  const started = process.hrtime.bigint();
  try {
    return run.apply(this, args);
  } finally {
    slices.push(Number(process.hrtime.bigint() - started) / 1e6);
  }
};

console.log(
  `body-scan: ${(size / 1024).toFixed(0)} KiB bodies, slices of ${BODY_SCAN_SLICE.tokens} tokens or ${BODY_SCAN_SLICE.chars / 1024} KiB, worst of ${rounds} rounds, Node ${process.version}`,
);
console.log('| body | longest slice ms | read CPU ms | slices | answer |');
console.log('|---|---|---|---|---|');
let worst = 0;
for (const [name, [path, text]] of Object.entries(SHAPES)) {
  const match = {
    route: {
      name: 'r',
      index: 0,
      methods: ['POST'],
      path: '/',
      permissions: [],
      mode: 'enforce',
      location: compileLocationSource({ body: path }),
    },
    params: {},
  };
  const request = {
    attributes: {
      request: {
        http: {
          method: 'POST',
          path: '/',
          headers: { 'content-type': 'application/json' },
          body: Buffer.from(text),
        },
      },
    },
  };
  let longest = 0;
  let cpu = 0;
  let count = 0;
  let answer = '';
  // The first rounds warm the JIT (a server's scan code is hot); only the rounds after them count.
  const warmUp = 10;
  for (let round = 0; round < warmUp + rounds; round++) {
    const facts = readRequest(request).value;
    slices = [];
    const before = process.cpuUsage();
    // The first slice runs inside readLocations, with the strict UTF-8 decode before it: timed as one stretch.
    const started = process.hrtime.bigint();
    const pending = readLocations(match, facts);
    const firstStretch = Number(process.hrtime.bigint() - started) / 1e6;
    const found = await pending;
    const used = process.cpuUsage(before);
    if (round < warmUp) continue;
    longest = Math.max(longest, firstStretch, ...slices);
    cpu = Math.max(cpu, (used.user + used.system) / 1000);
    count = slices.length;
    answer = found.ok ? `ok (${found.value.join(',')})` : `${found.reason}`;
  }
  worst = Math.max(worst, longest);
  console.log(`| ${name} | ${longest.toFixed(2)} | ${cpu.toFixed(1)} | ${count} | ${answer} |`);
}
console.log(`longest slice over every body: ${worst.toFixed(2)} ms`);

// Before any of that, grpc-js decodes the CheckRequest in one go: time it for the largest one the gRPC port
// accepts (4 MiB, scopegate's message cap), whose body is then refused by size without being decoded.
const { authorizationService } = await dist('wire/proto.js');
const { checkRequestFor } = await dist('wire/check-request.js');
const largest = checkRequestFor({
  method: 'POST',
  path: '/',
  headers: [['content-type', 'application/json']],
});
largest.attributes.request.http.body = Buffer.alloc(4 * 1024 * 1024 - 4096, 0x20);
const wire = authorizationService.Check.requestSerialize(largest);
let decode = 0;
for (let round = 0; round < 10 + rounds; round++) {
  const started = process.hrtime.bigint();
  authorizationService.Check.requestDeserialize(wire);
  if (round >= 10) decode = Math.max(decode, Number(process.hrtime.bigint() - started) / 1e6);
}
console.log(
  `decoding a ${(wire.length / 2 ** 20).toFixed(1)} MiB CheckRequest: ${decode.toFixed(2)} ms (worst of ${rounds})`,
);
