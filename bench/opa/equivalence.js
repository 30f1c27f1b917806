#!/usr/bin/env node
// Proves the OPA comparator decides like scopegate before the two are raced (issues 11 and 22): replays
// bench/opa/cases.json over gRPC — the same tokens, minted once with the dev key, and the same CheckRequests —
// and compares allow/deny and the HTTP status (the comparator has no reason codes), with scopegate and with
// each case's `expect`. A gRPC error counts as the 403 Envoy answers for it (status_on_error's default), as an
// OPA-Envoy user would see it: OPA-Envoy fails a Check whose JSON body does not parse.
//
// Two kinds of comparator: `--opa` runs bench/opa/policy.rego with bench/opa/request-shape.rego (query
// data.envoy.authz.shape.result) and must answer every case; `--opa-timed` (repeatable) runs the timed policy
// alone and must answer every case but those marked "requestShape": true, which only scopegate's request-shape
// checks decide (shown for it, not counted).
//
//   node bench/opa/equivalence.js --scopegate 127.0.0.1:P1 --opa 127.0.0.1:P2 [--opa-timed 127.0.0.1:P3]
//        --key DIR/signing-key.jwk
//
// Any address may be left out to check the others against the expectations alone. Exit 1 on any mismatch.
// The orchestrator imports `checkEquivalence` (and the case helpers) instead.
//
// A case's token spec is the claims to mint with (sub, client_id, scope, gty, anything else as is), or null
// for no token; these flags change the token instead of adding a claim: expired (exp 1 h ago),
// wrongAudience, wrongIssuer, badSignature (last signature characters changed), issuedInFuture (iat + 1 h).
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as grpc from '@grpc/grpc-js';

const { checkRequestFor } = await import(new URL('../../dist/wire/check-request.js', import.meta.url).href);
const { mintToken } = await import(new URL('../../dist/dev/keys.js', import.meta.url).href);
const { loadClients, httpStatusNumber } = await import(
  new URL('../../dist/wire/proto.js', import.meta.url).href
);

/** Issuer and audience of examples/inventory/policy.yaml; bench/opa/policy.rego names the same. */
export const ISSUER = 'https://dev-issuer.scopegate.local/';
export const AUDIENCE = 'https://gateway.example.com';
export const CASES_FILE = fileURLToPath(new URL('./cases.json', import.meta.url));

const FLAGS = new Set(['expired', 'wrongAudience', 'wrongIssuer', 'badSignature', 'issuedInFuture']);

export function loadCases(file = CASES_FILE) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** The token a case's spec describes, signed with the dev key in `keyFile`; undefined for `null`. */
export async function mintCaseToken(spec, keyFile) {
  if (spec === null || spec === undefined) return undefined;
  const { sub, client_id, scope, gty, ...rest } = spec;
  const extraClaims = Object.fromEntries(Object.entries(rest).filter(([name]) => !FLAGS.has(name)));
  const now = Date.now();
  const token = await mintToken({
    keyFile,
    issuer: spec.wrongIssuer ? 'https://untrusted-issuer.example.com/' : ISSUER,
    audience: spec.wrongAudience ? 'https://other-gateway.example.com' : AUDIENCE,
    subject: sub,
    ...(client_id !== undefined && { client: client_id }),
    ...(scope !== undefined && { scope }),
    ...(gty !== undefined && { grantType: gty }),
    ttlSeconds: spec.expired ? -3600 : 3600,
    extraClaims,
    // An iat an hour ahead, with exp an hour after that: valid but for the issue time.
    ...(spec.issuedInFuture && { now: now + 3_600_000 }),
  });
  if (!spec.badSignature) return token;
  // Change the last four characters of the signature (not just the last one, whose low bits may be padding).
  const cut = token.slice(0, -4);
  return cut + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
}

/** The CheckRequest Envoy would send for a case, with its token (if any) as a bearer Authorization header. */
export function checkRequestForCase(testCase, token) {
  const headers = [...(testCase.headers ?? [])];
  if (testCase.contentType !== undefined) headers.push(['content-type', testCase.contentType]);
  return checkRequestFor({
    method: testCase.method,
    path: testCase.path,
    ...(token !== undefined && { token }),
    headers,
    ...(testCase.body !== undefined && { body: testCase.body }),
  });
}

/**
 * allow/deny and HTTP status as Envoy would act on them, plus scopegate's deny `reason` when it has one (shown,
 * not compared); a gRPC error is Envoy's 403 (status_on_error), with the error kept for the table.
 */
function answerOf(err, response) {
  if (err) {
    const error = `gRPC ${grpc.status[err.code] ?? err.code}: ${err.details ?? err.message}`;
    return { allowed: false, status: 403, error };
  }
  const denied = response?.denied_response;
  if (denied === undefined || denied === null) return { allowed: true, status: 200 };
  return {
    allowed: false,
    status: httpStatusNumber(denied.status?.code) ?? 403,
    ...(reasonIn(denied.body) && { reason: reasonIn(denied.body) }),
  };
}

function reasonIn(body) {
  try {
    const reason = JSON.parse(body ?? '').reason;
    return typeof reason === 'string' ? reason : undefined;
  } catch {
    return undefined;
  }
}

function check(client, request) {
  return new Promise((resolve) => {
    client.Check(request, new grpc.Metadata(), { deadline: new Date(Date.now() + 5000) }, (err, response) =>
      resolve(answerOf(err, response)),
    );
  });
}

const same = (a, b) => a.allowed === b.allowed && a.status === b.status;
const show = (a) =>
  a === undefined
    ? '-'
    : `${a.allowed ? 'allow' : 'deny'} ${a.status}${a.reason ? ` ${a.reason}` : ''}${a.error ? ` (${a.error})` : ''}`;

/**
 * Replays every case against the servers given (gRPC addresses, each optional; `opaTimed` maps a name to the
 * address of a comparator running the timed policy alone). A mismatch is a case where a server disagrees with
 * the case's `expect` (a timed comparator: on a case not marked requestShape). `skipped` counts, per timed
 * comparator, the requestShape cases it answered otherwise.
 */
export async function checkEquivalence({ scopegate, opa, opaTimed = {}, keyFile, cases = loadCases() }) {
  const { AuthorizationClient } = loadClients();
  const servers = Object.entries({ scopegate, opa, ...opaTimed }).filter(
    ([, address]) => address !== undefined,
  );
  const timed = new Set(Object.keys(opaTimed));
  const clients = servers.map(([name, address]) => [
    name,
    new AuthorizationClient(address, grpc.credentials.createInsecure()),
  ]);
  const results = [];
  const mismatches = [];
  const skipped = Object.fromEntries([...timed].map((name) => [name, 0]));
  try {
    for (const testCase of cases) {
      const request = checkRequestForCase(testCase, await mintCaseToken(testCase.token, keyFile));
      const result = { name: testCase.name, expect: testCase.expect };
      for (const [name, client] of clients) result[name] = await check(client, request);
      results.push(result);
      const problems = [];
      for (const [name] of clients) {
        if (same(result[name], testCase.expect)) continue;
        if (timed.has(name) && testCase.requestShape) skipped[name] += 1;
        else problems.push(`${name} differs from expect`);
      }
      if (problems.length > 0) mismatches.push({ ...result, problems });
    }
  } finally {
    for (const [, client] of clients) client.close();
  }
  return { mismatches, results, skipped };
}

function printTable(results) {
  const names = Object.keys(results[0] ?? {}).filter((key) => key !== 'name' && key !== 'expect');
  const width = Math.max(...results.map((r) => r.name.length));
  console.log(
    `${'case'.padEnd(width)}  ${'expect'.padEnd(10)}  ${names.map((n) => n.padEnd(34)).join('  ')}`,
  );
  for (const r of results) {
    const answers = names.map((n) => show(r[n]).padEnd(34)).join('  ');
    console.log(`${r.name.padEnd(width)}  ${show(r.expect).padEnd(10)}  ${answers}`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      scopegate: { type: 'string' },
      opa: { type: 'string' },
      'opa-timed': { type: 'string', multiple: true, default: [] },
      key: { type: 'string' },
      cases: { type: 'string', default: CASES_FILE },
      all: { type: 'boolean', default: false },
    },
  });
  const opaTimed = Object.fromEntries(
    values['opa-timed'].map((address, i) => [`opa-timed-${i + 1}`, address]),
  );
  if (!values.key || (!values.scopegate && !values.opa && values['opa-timed'].length === 0)) {
    console.error(
      'usage: node bench/opa/equivalence.js [--scopegate HOST:PORT] [--opa HOST:PORT] [--opa-timed HOST:PORT ...]' +
        ' --key signing-key.jwk [--cases FILE] [--all]',
    );
    process.exit(2);
  }
  const { mismatches, results, skipped } = await checkEquivalence({
    scopegate: values.scopegate,
    opa: values.opa,
    opaTimed,
    keyFile: values.key,
    cases: loadCases(values.cases),
  });
  if (values.all) printTable(results);
  if (mismatches.length > 0) {
    console.log(`\n${mismatches.length} of ${results.length} cases do not match:`);
    printTable(mismatches);
    for (const m of mismatches) console.log(`  ${m.name}: ${m.problems.join('; ')}`);
    process.exit(1);
  }
  const servers = Object.keys(results[0] ?? {}).filter((key) => key !== 'name' && key !== 'expect');
  console.log(`all ${results.length} cases match (${[...servers, 'expect'].join(' = ')})`);
  for (const [name, n] of Object.entries(skipped)) {
    console.log(
      `${name}: ${n} requestShape case(s) answered otherwise (not counted: no request-shape checks)`,
    );
  }
}
