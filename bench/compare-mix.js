// The requests bench/compare.js sends, the same for every contestant: 10 requests round-robin, 8 allowed and
// 2 denied by examples/inventory/policy.yaml, over its routes and its three subjects, with tokens signed by the
// bench's one fresh dev key. Built once as CheckRequests (for ghz, direct) and as HTTP requests (for wrk,
// through Envoy), plus a replay over grpc-js that tells which of them a server allows. The cache-miss mix is
// the same 10 requests with a fresh token each time (distinct jti), for as many requests as asked.
import { readFileSync, writeFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { mintMany } from './mint-many.js';

const dist = (path) => import(new URL(`../dist/${path}`, import.meta.url).href);
const { mintToken } = await dist('dev/keys.js');
const { checkRequestFor } = await dist('wire/check-request.js');
const { loadClients } = await dist('wire/proto.js');

const ISSUER = 'https://dev-issuer.scopegate.local/';
const AUDIENCE = 'https://gateway.example.com';

/** One token per caller in the policy, valid for the whole run. */
async function mintTokens(keyFile) {
  const mint = (subject, client, scope) =>
    mintToken({
      keyFile,
      issuer: ISSUER,
      audience: AUDIENCE,
      subject,
      client,
      scope,
      grantType: 'client_credentials',
      ttlSeconds: 4 * 3600,
    });
  return {
    sync: await mint('svc-inventory-sync', 'inventory-sync', 'inventory.read inventory.write'),
    syncWriteOnly: await mint('svc-inventory-sync', 'inventory-sync', 'inventory.write'),
    report: await mint('svc-stock-report', 'stock-report', 'inventory.read'),
    integration: await mint('svc-new-integration', 'new-integration', 'inventory.read'),
  };
}

const body = (location) => JSON.stringify({ location, item: 'ITEM001', quantity: 10 });

/**
 * The mix, each request with the route and reason scopegate must give it (its answers under load are held to
 * these through its decisions metric). Both denials are ones Envoy's RBAC can express too (a missing scope; a path location), so all
 * three deciders must give the same 8/2 split; the allowed POST/PUT carry body locations RBAC cannot read.
 */
export async function buildMix(keyFile) {
  const t = await mintTokens(keyFile);
  // Who each token is, for the results file (the tokens themselves are not kept).
  const callers = new Map([
    [t.sync, 'svc-inventory-sync / inventory-sync / inventory.read inventory.write'],
    [t.syncWriteOnly, 'svc-inventory-sync / inventory-sync / inventory.write'],
    [t.report, 'svc-stock-report / stock-report / inventory.read'],
    [t.integration, 'svc-new-integration / new-integration / inventory.read'],
  ]);
  const tx = '/api/inventory/transactions';
  const items = (location) => `/api/inventory/locations/${location}/items`;
  const mix = [
    {
      name: 'GET list (sync)',
      allow: true,
      route: 'list_transactions',
      method: 'GET',
      path: tx,
      token: t.sync,
    },
    {
      name: 'GET one (stock-report)',
      allow: true,
      route: 'get_transaction',
      method: 'GET',
      path: `${tx}/txn-1`,
      token: t.report,
    },
    {
      name: 'POST WH01 (sync)',
      allow: true,
      route: 'create_transaction',
      method: 'POST',
      path: tx,
      token: t.sync,
      body: body('WH01'),
    },
    {
      name: 'GET EU-NORTH items (sync)',
      allow: true,
      route: 'list_location_items',
      method: 'GET',
      path: items('EU-NORTH'),
      token: t.sync,
    },
    {
      name: 'POST without inventory.read (scope_missing)',
      allow: false,
      route: 'create_transaction',
      reason: 'scope_missing',
      method: 'POST',
      path: tx,
      token: t.syncWriteOnly,
      body: body('WH01'),
    },
    {
      name: 'PUT WH02 (sync)',
      allow: true,
      route: 'update_transaction',
      method: 'PUT',
      path: `${tx}/txn-1`,
      token: t.sync,
      body: body('WH02'),
    },
    {
      name: 'GET US-EAST items (stock-report)',
      allow: true,
      route: 'list_location_items',
      method: 'GET',
      path: items('US-EAST'),
      token: t.report,
    },
    {
      name: 'GET WH01 items (new-integration)',
      allow: true,
      route: 'list_location_items',
      method: 'GET',
      path: items('WH01'),
      token: t.integration,
    },
    {
      name: 'GET list (new-integration)',
      allow: true,
      route: 'list_transactions',
      method: 'GET',
      path: tx,
      token: t.integration,
    },
    {
      name: 'GET WH03 items (new-integration: location_denied)',
      allow: false,
      route: 'list_location_items',
      reason: 'location_denied',
      method: 'GET',
      path: items('WH03'),
      token: t.integration,
    },
  ];
  return mix.map((r) => ({ reason: 'allowed', ...r, caller: callers.get(r.token) }));
}

const claimsOf = (token) => JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));

/**
 * The cache-miss mix: `count` requests, request i being mix[i % mix.length] with a token of its own (the same
 * claims, a distinct jti, signed with the same key), so no token is seen twice in a pass over it.
 */
export async function buildDistinctMix(mix, keyFile, count) {
  const jwk = JSON.parse(readFileSync(keyFile, 'utf8'));
  const header = JSON.parse(Buffer.from(mix[0].token.split('.')[0], 'base64url').toString('utf8'));
  const perTemplate = Math.ceil(count / mix.length);
  const tokens = [];
  for (const [t, template] of mix.entries()) {
    const { iat: _iat, exp, jti: _jti, ...claims } = claimsOf(template.token);
    const from = t * perTemplate;
    tokens.push(
      await mintMany({ jwk, alg: header.alg, kid: header.kid, claims, from, to: from + perTemplate, exp }),
    );
  }
  return Array.from({ length: count }, (_, i) => ({
    ...mix[i % mix.length],
    token: tokens[i % mix.length][Math.floor(i / mix.length)],
  }));
}

/** The CheckRequest Envoy's ext_authz filter (envoy/envoy.yaml, body included) would send for each request. */
export function checkRequests(mix) {
  return mix.map((r) =>
    checkRequestFor({
      method: r.method,
      path: r.path,
      token: r.token,
      headers: r.body === undefined ? [] : [['content-type', 'application/json']],
      body: r.body,
    }),
  );
}

/** The header naming a request's index in the mix, which Envoy's access log keeps (bench/compare-envoy.js). */
export const CASE_HEADER = 'x-bench-case';

/** The mix as a Lua file for bench/wrk-mix.lua (ASCII only: JSON string escapes are then valid Lua). */
export function writeWrkMix(mix, file) {
  const lua = (value) => {
    const text = JSON.stringify(value);
    if (!/^[\x20-\x7e]*$/.test(text)) throw new Error(`not printable ASCII: ${text}`);
    return text;
  };
  const entries = mix.map((r, i) => {
    // Which request of the mix this is, for the access log's count of what Envoy answered it.
    const headers = [`Authorization = ${lua(`Bearer ${r.token}`)}`, `['${CASE_HEADER}'] = ${lua(String(i))}`];
    if (r.body !== undefined) headers.push(`['Content-Type'] = ${lua('application/json')}`);
    const fields = [
      `method = ${lua(r.method)}`,
      `path = ${lua(r.path)}`,
      `headers = { ${headers.join(', ')} }`,
    ];
    if (r.body !== undefined) fields.push(`body = ${lua(r.body)}`);
    return `  { ${fields.join(', ')} },`;
  });
  writeFileSync(file, `return {\n${entries.join('\n')}\n}\n`);
}

/** Sends each request of the mix once over HTTP (through Envoy) and returns the statuses. */
export async function replayHttp(url, mix) {
  const statuses = [];
  for (const r of mix) {
    const headers = { authorization: `Bearer ${r.token}` };
    if (r.body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${url}${r.path}`, {
      method: r.method,
      headers,
      body: r.body,
      signal: AbortSignal.timeout(5_000),
    });
    await response.arrayBuffer();
    statuses.push(response.status);
  }
  return statuses;
}

/**
 * Sends each CheckRequest once over grpc-js and returns, per request, whether the answer allows it: Envoy
 * allows exactly when the CheckResponse's status code is OK (0).
 */
export async function replay(address, requests) {
  const { AuthorizationClient } = loadClients();
  const client = new AuthorizationClient(address, grpc.credentials.createInsecure());
  try {
    const answers = [];
    for (const request of requests) {
      const response = await new Promise((resolve, reject) =>
        client.Check(request, new grpc.Metadata(), { deadline: Date.now() + 5_000 }, (err, r) =>
          err ? reject(err) : resolve(r),
        ),
      );
      answers.push((response.status?.code ?? 0) === 0);
    }
    return answers;
  } finally {
    client.close();
  }
}
