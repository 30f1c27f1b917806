// The `explain` and `test` commands: flags in, exit code out (0 allowed / all passed, 1 denied / a case
// failed, 2 usage errors and files that cannot be read). cli.ts only dispatches here.
import { parseArgs } from 'node:util';
import { choosePolicy } from '../check/choose.js';
import { formatProblem } from '../config/problems.js';
import { readTextFile } from '../config/text-file.js';
import type { PolicySet } from '../policy/set.js';
import { loadPolicySet } from '../policy/source.js';
import type { CompiledPolicy } from '../policy/types.js';
import { parseStrictJson } from '../request/json.js';
import { carriesEnvoyAttributes, type Transport } from '../vocabulary/index.js';
import { checkRequestFor } from '../wire/check-request.js';
import { loadCasesFile, renderResults, runCases } from './cases.js';
import { DOOR_NAMES, doorNamed, type Uncarried, uncarried, uncarriedProblem } from './door.js';
import {
  decodeClaims,
  envoyOnlyIdentity,
  type HttpRequestSpec,
  StandInSigner,
  unverifiedIdentity,
  unverifiedRequest,
  verifiedIdentity,
} from './identity.js';
import { NOT_VERIFIED_WARNING, renderTrace, traceJson } from './render.js';
import { type Trace, traceCheck, traceUnowned } from './trace.js';

export interface CommandIO {
  /** A line (or block) for stdout. */
  out(text: string): void;
  /** A line for stderr. */
  err(text: string): void;
  /** Reports a usage mistake (with the usage text) and returns the exit code for it. */
  usage(message: string): number;
}

/** Claims given to --claims, inline or in a file, are read up to this size. */
export const MAX_CLAIMS_BYTES = 64 * 1024;

export interface ExplainOptions {
  /** Time for JWKS fetches when verifying (default 2 s: a person is waiting, not Envoy). */
  readonly jwksTimeoutMs?: number;
  readonly now?: () => number;
}

export async function explainCommand(
  args: string[],
  io: CommandIO,
  options: ExplainOptions = {},
): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      policy: { type: 'string' },
      token: { type: 'string' },
      claims: { type: 'string' },
      method: { type: 'string', default: 'GET' },
      path: { type: 'string' },
      header: { type: 'string', multiple: true, default: [] },
      body: { type: 'string' },
      host: { type: 'string' },
      'context-extension': { type: 'string', multiple: true, default: [] },
      'destination-principal': { type: 'string' },
      peer: { type: 'string' },
      door: { type: 'string', default: 'grpc' },
      'no-verify': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const policyPath = values.policy ?? process.env.SCOPEGATE_POLICY;
  if (!policyPath) return io.usage('explain needs --policy FILE|DIR (or SCOPEGATE_POLICY)');
  // Neither: the request as sent without a credential (a peer-only route reads none; a token route shows
  // token_missing).
  if (values.token !== undefined && values.claims !== undefined) {
    return io.usage('explain takes one of --token JWT or --claims FILE_OR_JSON, not both');
  }
  if (!values.path) return io.usage('explain needs --path PATH');
  const door = doorNamed(values.door);
  if (door === undefined) return io.usage(`--door is one of ${DOOR_NAMES.join(', ')}, not "${values.door}"`);
  const headers: Array<[string, string]> = [];
  for (const header of values.header) {
    const colon = header.indexOf(':');
    if (colon <= 0) return io.usage('--header expects name:value');
    headers.push([header.slice(0, colon).trim(), header.slice(colon + 1).trim()]);
  }
  // Without --token, an Authorization header would be read with no signature check while the trace said
  // "no token": the token has one way in, --token (verified) or --no-verify.
  if (values.token === undefined && headers.some(([name]) => name.toLowerCase() === 'authorization'))
    return io.usage('give the token with --token JWT, not --header authorization');
  const contextExtensions: Record<string, string> = {};
  for (const extension of values['context-extension']) {
    const equals = extension.indexOf('=');
    if (equals <= 0)
      return io.usage('--context-extension expects key=value (e.g. scopegate_policy=inventory)');
    contextExtensions[extension.slice(0, equals)] = extension.slice(equals + 1);
  }
  const http: HttpRequestSpec = {
    method: values.method,
    path: values.path,
    headers,
    ...(values.body !== undefined && { body: values.body }),
    ...(values.host !== undefined && { host: values.host }),
    ...(values['context-extension'].length > 0 && { contextExtensions }),
    ...(values['destination-principal'] !== undefined && {
      destinationPrincipal: values['destination-principal'],
    }),
    ...(values.peer !== undefined && { peer: values.peer }),
  };
  const [refused] = uncarried(door, http);
  if (refused !== undefined) {
    const why = uncarriedProblem(refused, values.door, (name) => `--door ${name}`);
    return io.usage(`${FLAG_OF[refused]}: ${why}`);
  }

  let claims: Record<string, unknown> | undefined;
  if (values.claims !== undefined) {
    const read = await readClaims(values.claims);
    if (typeof read === 'string') return io.usage(read);
    claims = read;
  }

  const set = await loadSet(policyPath, io);
  if (!set) return 2;
  // The policy the server's door would choose for this request; the rest of the trace is that policy's.
  const chosen = choosePolicy(set, checkRequestFor(http), door);
  const credential = claims !== undefined ? 'claims' : values.token !== undefined ? 'token' : 'none';
  const verified = credential === 'token' && !values['no-verify'];
  const warnings = values['no-verify'] ? [NOT_VERIFIED_WARNING] : [];
  if (!chosen.ok) {
    return printTrace(traceUnowned(chosen.detail, { door, credential, verified, warnings }), values.json, io);
  }
  const policy = chosen.value;
  const chosenBy = chosen.by;

  const now = options.now ?? Date.now;
  const signer = new StandInSigner();
  let trace: Trace;
  if (credential !== 'token') {
    const prepared = await unverifiedRequest(policy, http, claims, signer, now, door);
    trace = await traceCheck({ door, policy, chosenBy, ...prepared, credential, verified: false });
  } else if (values['no-verify']) {
    trace = await traceCheck({
      door,
      policy,
      chosenBy,
      ...(await decodedTokenRequest(policy, http, values.token!, signer, now, door)),
      credential: 'token',
      verified: false,
      warnings: [NOT_VERIFIED_WARNING],
    });
  } else {
    const { identity, keys } = await verifiedIdentity(policy, {
      fetchTimeoutMs: options.jwksTimeoutMs ?? 2000,
      now,
    });
    try {
      trace = await traceCheck({
        door,
        policy,
        chosenBy,
        request: checkRequestFor({ ...http, token: values.token! }),
        identity,
        credential: 'token',
        verified: true,
        keyProblems: () => keys.problems(policy.issuers),
      });
    } finally {
      keys.close();
    }
  }

  return printTrace(trace, values.json, io);
}

/** The flag that sets each part of the request a door may not carry. */
const FLAG_OF: Readonly<Record<Uncarried, string>> = {
  peer: '--peer',
  destinationPrincipal: '--destination-principal',
  contextExtensions: '--context-extension',
  body: '--body',
};

function printTrace(trace: Trace, json: boolean, io: CommandIO): number {
  if (json) {
    // Whoever pipes the JSON into jq still sees that nothing was verified.
    for (const warning of trace.warnings) io.err(warning);
    io.out(traceJson(trace));
  } else {
    io.out(renderTrace(trace));
  }
  return trace.decision === 'allow' ? 0 : 1;
}

/**
 * --no-verify: the token as sent, read without its signature. A policy that trusts only Envoy's jwt_authn
 * gets the decoded claims as jwt_authn metadata, as Envoy would pass them on through the gRPC door; an HTTP
 * door passes on only the token.
 */
async function decodedTokenRequest(
  policy: CompiledPolicy,
  http: HttpRequestSpec,
  token: string,
  signer: StandInSigner,
  now: () => number,
  door: Transport,
) {
  const request = checkRequestFor({ ...http, token });
  if (policy.issuers.length > 0) return { request, identity: unverifiedIdentity(policy, signer, now) };
  const claims = decodeClaims(token);
  if (claims === undefined || !carriesEnvoyAttributes(door))
    return { request, identity: envoyOnlyIdentity(policy, now) };
  return unverifiedRequest(policy, http, claims, signer, now, door);
}

export async function testCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { policy: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  const policyPath = values.policy ?? process.env.SCOPEGATE_POLICY;
  if (!policyPath) return io.usage('test needs --policy FILE|DIR (or SCOPEGATE_POLICY)');
  if (positionals.length === 0) return io.usage('test needs a CASES.yaml file');

  const set = await loadSet(policyPath, io);
  if (!set) return 2;
  const signer = new StandInSigner();
  let failed = false;
  for (const file of positionals) {
    const loaded = await loadCasesFile(file);
    if (!loaded.ok) {
      for (const problem of loaded.problems) io.err(formatProblem(problem));
      return 2;
    }
    const results = await runCases(set, loaded.cases, { signer });
    if (positionals.length > 1) io.out(`${file}:`);
    io.out(renderResults(results).join('\n'));
    failed ||= results.some((r) => r.failures.length > 0);
  }
  return failed ? 1 : 0;
}

/** The policy file, or the directory of them, as the server would serve it; any problem is a usage error. */
async function loadSet(path: string, io: CommandIO): Promise<PolicySet<CompiledPolicy> | undefined> {
  const { set, problems } = await loadPolicySet(path);
  if (problems.length === 0) return set;
  for (const problem of problems) io.err(formatProblem(problem));
  return undefined;
}

/** A claims object from inline JSON (starts with `{`) or a file; a sentence on failure (never the content). */
async function readClaims(given: string): Promise<Record<string, unknown> | string> {
  let text = given;
  if (!given.trimStart().startsWith('{')) {
    const read = await readTextFile(given, MAX_CLAIMS_BYTES);
    if (!read.ok) {
      switch (read.problem) {
        case 'too_large':
          return `--claims file is larger than ${MAX_CLAIMS_BYTES} bytes`;
        case 'unreadable':
          return `--claims: cannot read the file (${read.code}); give a file or inline JSON`;
        case 'not_utf8':
          return '--claims file is not valid UTF-8';
      }
    }
    text = read.text;
  }
  const parsed = parseStrictJson(text, { maxBytes: MAX_CLAIMS_BYTES });
  if (!parsed.ok) return `--claims is not valid JSON: ${parsed.problem}`;
  const value = parsed.value;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return '--claims must be a JSON object of claims';
  }
  return value as Record<string, unknown>;
}
