#!/usr/bin/env node
// What recording a decision costs the Check that made it (issue 23): building the record from what the Check
// read (record/build.ts) and serialising it, on the Check's own thread; the write itself happens later, in
// the background. A typical deny of the support thread (POST to WH03), 200,000 times, 3 rounds. An allow that
// sampling leaves out costs one random number. Needs `npm run build` first.
import { loadPolicySet } from '../dist/policy/source.js';
import { recordOf } from '../dist/record/build.js';
import { readRequest } from '../dist/request/facts.js';
import { checkRequestFor } from '../dist/wire/check-request.js';

const { policies } = await loadPolicySet(
  new URL('../examples/inventory/policy.yaml', import.meta.url).pathname,
);
const policy = policies[0];
const request = checkRequestFor({
  method: 'POST',
  path: '/api/inventory/transactions',
  token: 'a.b.c',
  headers: [['content-type', 'application/json']],
  body: '{"location":"WH03","item":"ITEM001","quantity":10}',
});
const facts = readRequest(request).value;
const principal = {
  subject: 'svc-inventory-sync',
  client: 'inventory-sync',
  issuer: policy.issuers[0].issuer,
  grantType: 'client_credentials',
  scopes: new Set(['inventory.read', 'inventory.write']),
  roles: new Set(),
  locations: [],
};
const route = policy.routes.find((r) => r.name === 'create_transaction');
const decided = {
  decision: {
    reason: 'location_denied',
    detail: 'svc-inventory-sync may not access location WH03',
    policy: policy.name,
    revision: policy.revision,
    route: route.name,
    subject: principal.subject,
    missing: { locations: ['WH03'] },
  },
  label: 'deny',
  facts,
  gathered: {
    identity: { ok: true, value: principal },
    locations: { source: route.location, found: { ok: true, value: ['WH03'] } },
  },
};
let bytes = 0;
for (let round = 1; round <= 3; round++) {
  const n = 200_000;
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    bytes += JSON.stringify(
      recordOf(request, decided, { time: new Date(), requestId: 'r', sampledAt: 1, policy }),
    ).length;
  }
  const micros = Number(process.hrtime.bigint() - started) / n / 1000;
  console.log(
    `round ${round}: ${micros.toFixed(2)} µs per recorded decision (build + serialise), ${Math.round(bytes / n / round)} bytes`,
  );
}
