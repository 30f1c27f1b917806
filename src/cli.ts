// scopegate's command line: serve, validate, keys, token. Each command returns an exit code; only `serve`
// keeps running (until SIGTERM/SIGINT).
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { envTwin, parseHostPort, SettingsError, serveSettings } from './config/settings.js';
import { describeResponse, sendCheck } from './dev/check-client.js';
import { runDemo } from './dev/demo.js';
import { loadDevIssuerConfig, startDevIssuer } from './dev/issuer.js';
import { ensureDevKeys, mintToken, SIGNING_KEY_FILE } from './dev/keys.js';
import { startInventoryUpstream } from './dev/upstream.js';
import { explainCommand, testCommand } from './explain/command.js';
import { formatProblem, loadPolicyFile } from './policy/index.js';
import { loadPolicySet } from './policy/source.js';
import { diffCommand } from './review/diff-command.js';
import { replayCommand } from './review/replay-command.js';
import { serveProcess } from './server/serve.js';
import { superviseWorkers } from './server/workers.js';
import { createLogger } from './telemetry/log.js';

const USAGE = `scopegate — Envoy external authorization by OAuth2 scope, role and location

Usage:
  scopegate serve    --policy FILE|DIR [--listen HOST:PORT] [--admin HOST:PORT] [--log-level LEVEL]
                     [--token-cache-size N] [--decision-cache-size N] [--drain-seconds N]
                     [--jwks-timeout-ms N (default 100)] [--deny-hints] [--workers N]
                     [--heap-tuning on|off (default on)] [--tracing] [--trace-identities]
                     [--decision-log PATH|stdout] [--decision-log-allows RATE]
                     [--decision-log-max-size SIZE] [--decision-log-keep N]
                     [--http HOST:PORT] [--http-path-prefix PREFIX] [--forward-auth HOST:PORT]
                     [--tls-cert PEM --tls-key PEM [--tls-client-ca PEM]]
                     gRPC ext_authz on --listen (default 0.0.0.0:9191), /metrics /healthz /readyz on
                     --admin (default 0.0.0.0:9464). Every flag has a SCOPEGATE_* twin (SCOPEGATE_POLICY, …).
                     The policy is watched (and SIGHUP reloads it); SIGTERM drains and exits 0. A DIR
                     serves each *.yaml in it as one policy, chosen per request (README, "Policy sets").
                     --deny-hints adds fix hints to 403 deny bodies (off: they name policy details).
                     --workers N processes share the gRPC port (default: the CPUs; set it to the CPU
                     limit in a container); /metrics adds them up, a reload reaches every one.
                     --heap-tuning off leaves V8's heap growth alone (README, "Memory").
                     --tracing (or OTEL_TRACES_EXPORTER=otlp) exports each Check as an OpenTelemetry
                     span in the caller's trace; OTEL_EXPORTER_OTLP_* and OTEL_TRACES_SAMPLER configure
                     it (README, "Tracing"). --trace-identities adds subject and client to spans.
                     --decision-log PATH|stdout records every deny and a share of allows
                     (--decision-log-allows RATE, default 0.01) as JSON lines for scopegate replay; a file
                     rotates at --decision-log-max-size (default 100Mi), keeping --decision-log-keep files
                     (default 5); a worker of --workers N writes PATH.<worker>.
                     --http serves Envoy's HTTP ext_authz (http_service; --http-path-prefix: its
                     path_prefix, if set); --forward-auth serves nginx auth_request, Traefik ForwardAuth
                     and Caddy forward_auth (README, "HTTP front doors"). Off unless given.
                     --tls-cert and --tls-key serve every Check listener (gRPC, --http, --forward-auth)
                     over TLS (files re-read every minute); --tls-client-ca requires client
                     certificates that CA signed.
  scopegate validate FILE|DIR...
                     Exit 0 if every policy is valid (for a DIR: and the files agree on who owns what),
                     else print FILE:LINE:COL: field: message and exit 1.
  scopegate explain  --policy FILE|DIR [--token JWT | --claims FILE_OR_JSON] --method M --path P
                     [--header k:v]... [--body JSON] [--host H] [--context-extension k=v]...
                     [--destination-principal SPIFFE_ID] [--peer SPIFFE_ID]
                     [--door grpc|http|forward-auth] [--no-verify] [--json]
                     Trace one decision: the policy chosen and why, route, the peer (--peer: the calling
                     workload, as Envoy's mTLS source.principal), token and client scopes, each
                     permission by scope and by role, grant type, locations, the reason, and what to change
                     (exit 0 allowed, 1 denied). --no-verify decodes the token without checking its
                     signature (and says so, loudly). --door judges the request as serve's --http or
                     --forward-auth door would (default grpc): the policy by host or default only, and no
                     peer, destination principal or context extension (forward-auth: no body) to give.
  scopegate test     --policy FILE|DIR CASES.yaml...
                     Policy unit tests: run each case (claims + request + expected decision/reason, and
                     optionally the door: http or forward-auth) and print ✓/✗ per case and
                     "N passed, M failed"; exit 1 if any case fails.
  scopegate diff     OLD NEW [--json]
                     What changed in meaning between two policies (each a FILE or DIR): routes added,
                     removed or changed, permissions a route now requires or no longer requires, the grants
                     of scopes, roles, clients, subjects and peers, locations granted or revoked, mode.
                     Exit 0 when they mean the same, 3 when they differ, 2 when either cannot be read.
  scopegate replay   --policy CANDIDATE(FILE|DIR) [--json] [--fail-on KINDS] [--examples N] RECORDS.jsonl...
                     Re-decide recorded decisions (serve --decision-log; - reads stdin) under a candidate
                     policy, from the records alone, and print what changes: allow → deny, deny → allow,
                     reason changes, enforce ↔ dry-run, by route, caller and reason, with examples; records
                     that cannot be replayed and lines that are not records are counted. Exit 0 when none of
                     --fail-on happened (default: allow-to-deny,deny-to-allow,reason,enforcement; also
                     cannot-replay, not-records), 3 when one did, 2 on a usage error or unreadable input.
  scopegate keys     DIR
                     Create a development RS256 key pair in DIR (signing-key.jwk, jwks.json) unless present.
  scopegate token    (--policy FILE | --iss ISS --aud AUD --key FILE) --sub SUBJECT [--client ID]
                     [--scope "a b"] [--gty GRANT (default client_credentials)] [--roles R1,R2]
                     [--locations L1,L2] [--ttl=SECONDS]
                     Mint a signed development token (default: for the policy's first file-based issuer).
  scopegate check    [--server HOST:PORT] --method M --path P [--token JWT] [--header k:v]... [--body TEXT]
                     [--json] Send one Check as Envoy would for that HTTP request and print the answer
                     (exit 0 allowed, 1 denied). --server defaults to SCOPEGATE_SERVER or 127.0.0.1:9191.
  scopegate dev-upstream [--listen HOST:PORT]
                     A stand-in inventory API (default 127.0.0.1:8081) that echoes the x-scopegate-* identity
                     headers it receives. Not for production.
  scopegate dev-issuer   [--listen HOST:PORT] [--config FILE] [--keys DIR]
                     A development OAuth2 issuer (client credentials, default 127.0.0.1:8090) for the clients
                     in --config (default examples/inventory/dev-issuer.yaml), signing with the keys in --keys
                     (default examples/inventory/dev-keys, created if missing). Not for production.
  scopegate demo     [--keep-running]
                     Replay the support thread through a real Envoy (from .venv, see
                     scripts/install-envoy.sh) in front of scopegate, the dev issuer and the upstream.
`;

function usageError(message: string): number {
  console.error(`scopegate: ${message}\n\n${USAGE}`);
  return 2;
}

async function validate(paths: string[]): Promise<number> {
  if (paths.length === 0) return usageError('validate needs at least one FILE or DIR');
  let failed = false;
  for (const path of paths) {
    // A directory is checked as `serve` would load it: every file, and the rules between files.
    const { policies, problems } = await loadPolicySet(path);
    for (const policy of policies) {
      const named = policy.source === path ? '' : `policy ${policy.name}, `;
      console.log(
        `${policy.source}: ok (${named}revision ${policy.revision}, ${policy.routes.length} routes)`,
      );
    }
    for (const problem of problems) console.error(formatProblem(problem));
    failed ||= problems.length > 0;
  }
  return failed ? 1 : 0;
}

async function serve(args: string[]): Promise<number> {
  const settings = serveSettings(args);
  const log = createLogger(settings.logLevel);
  return settings.workers > 1 && cluster.isPrimary
    ? superviseWorkers(settings, log)
    : serveProcess(settings, log);
}

async function keys(args: string[]): Promise<number> {
  if (args.length !== 1) return usageError('keys needs exactly one DIR');
  const result = await ensureDevKeys(resolve(args[0]!));
  console.log(
    result.created
      ? `created ${result.keyFile} and ${result.jwksFile}`
      : `keys already in ${dirname(result.keyFile)}`,
  );
  return 0;
}

async function token(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      policy: { type: 'string' },
      sub: { type: 'string' },
      client: { type: 'string' },
      scope: { type: 'string' },
      gty: { type: 'string' },
      roles: { type: 'string' },
      locations: { type: 'string' },
      ttl: { type: 'string', default: '3600' },
      aud: { type: 'string' },
      iss: { type: 'string' },
      key: { type: 'string' },
    },
    strict: true,
  });
  if (!values.sub) return usageError('token needs --sub SUBJECT');
  // Issuer, audience and key come from the flags, or else from the policy's first file-based issuer.
  let { iss, aud, key: keyFile } = values;
  if (iss === undefined || aud === undefined || keyFile === undefined) {
    const policyFile = values.policy ?? process.env[envTwin('policy')];
    if (!policyFile)
      return usageError(`token needs --policy FILE (or ${envTwin('policy')}), or --iss, --aud and --key`);
    const loaded = await loadPolicyFile(policyFile);
    if (!loaded.ok) {
      for (const problem of loaded.problems) console.error(formatProblem(problem));
      return 1;
    }
    const issuer = loaded.policy.issuers.find((i) => (iss ? i.issuer === iss : 'file' in i.jwks));
    if (!issuer) return usageError('the policy has no issuer with a jwks file; pass --iss, --aud and --key');
    iss ??= issuer.issuer;
    aud ??= issuer.audiences[0];
    keyFile ??= 'file' in issuer.jwks ? resolve(dirname(issuer.jwks.file), SIGNING_KEY_FILE) : undefined;
    if (aud === undefined || keyFile === undefined) return usageError('pass --aud and --key for this issuer');
  }
  const ttl = Number(values.ttl);
  if (!Number.isInteger(ttl)) return usageError('--ttl must be an integer number of seconds');
  const split = (text?: string) =>
    text
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  try {
    readFileSync(keyFile);
  } catch {
    return usageError(`no signing key at ${keyFile}; create one with: scopegate keys ${dirname(keyFile)}`);
  }
  // A client's token comes from the client_credentials flow unless the caller says otherwise.
  const grantType = values.gty ?? (values.client ? 'client_credentials' : undefined);
  const roles = split(values.roles);
  const locations = split(values.locations);
  const jwt = await mintToken({
    keyFile,
    issuer: iss,
    audience: aud,
    subject: values.sub,
    ttlSeconds: ttl,
    ...(values.client !== undefined && { client: values.client }),
    ...(values.scope !== undefined && { scope: values.scope }),
    ...(grantType !== undefined && { grantType }),
    ...(roles && { roles }),
    ...(locations && { locations }),
  });
  console.log(jwt);
  return 0;
}

async function checkCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      server: { type: 'string' },
      method: { type: 'string', default: 'GET' },
      path: { type: 'string' },
      token: { type: 'string' },
      header: { type: 'string', multiple: true, default: [] },
      body: { type: 'string' },
      json: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '2000' },
    },
    strict: true,
  });
  if (!values.path) return usageError('check needs --path PATH');
  const headers: Array<[string, string]> = [];
  for (const header of values.header) {
    const colon = header.indexOf(':');
    if (colon <= 0) return usageError(`--header expects name:value, got "${header}"`);
    headers.push([header.slice(0, colon).trim(), header.slice(colon + 1).trim()]);
  }
  const server = values.server ?? process.env.SCOPEGATE_SERVER ?? '127.0.0.1:9191';
  const response = await sendCheck({
    server,
    method: values.method,
    path: values.path,
    headers,
    timeoutMs: Number(values.timeout) || 2000,
    ...(values.token !== undefined && { token: values.token }),
    ...(values.body !== undefined && { body: values.body }),
  }).catch((err: Error) => err);
  if (response instanceof Error) {
    console.error(`scopegate: Check to ${server} failed: ${response.message}`);
    return 2;
  }
  console.log(values.json ? JSON.stringify(response, null, 2) : describeResponse(response));
  return response.denied_response ? 1 : 0;
}

/** Prints the one `listening` line scripts wait for, then serves until SIGTERM/SIGINT (exit 0). */
function serveUntilSignalled(
  listening: Record<string, unknown>,
  close: () => Promise<void>,
): Promise<number> {
  console.log(JSON.stringify({ msg: 'listening', ...listening }));
  return new Promise((resolveExit) => {
    const stop = () => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      void close().then(() => resolveExit(0));
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

async function devUpstream(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { listen: { type: 'string', default: '127.0.0.1:8081' } } });
  const listen = parseHostPort(values.listen, '--listen');
  const upstream = await startInventoryUpstream(listen);
  return serveUntilSignalled({ url: upstream.url }, upstream.close);
}

async function devIssuer(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      listen: { type: 'string', default: '127.0.0.1:8090' },
      config: { type: 'string', default: 'examples/inventory/dev-issuer.yaml' },
      keys: { type: 'string', default: 'examples/inventory/dev-keys' },
    },
  });
  const listen = parseHostPort(values.listen, '--listen');
  const loaded = await loadDevIssuerConfig(values.config);
  if (!loaded.ok) {
    for (const problem of loaded.problems) console.error(problem);
    return 1;
  }
  const issuer = await startDevIssuer({ ...loaded.config, ...listen, keysDir: resolve(values.keys) });
  return serveUntilSignalled(
    { url: issuer.url, jwks_uri: issuer.jwksUri, token_url: issuer.tokenUrl },
    issuer.close,
  );
}

/** How a command that prints reports speaks: stdout, stderr, and usage errors with the usage text. */
const CONSOLE = {
  out: (text: string) => console.log(text),
  err: (text: string) => console.error(text),
  usage: usageError,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        return await serve(rest);
      case 'validate':
        return await validate(rest);
      case 'keys':
        return await keys(rest);
      case 'token':
        return await token(rest);
      case 'check':
        return await checkCommand(rest);
      case 'explain':
        return await explainCommand(rest, CONSOLE);
      case 'test':
        return await testCommand(rest, CONSOLE);
      case 'diff':
        return await diffCommand(rest, CONSOLE);
      case 'replay':
        return await replayCommand(rest, { ...CONSOLE, stdin: process.stdin });
      case 'demo': {
        const { values } = parseArgs({
          args: rest,
          options: { 'keep-running': { type: 'boolean', default: false } },
        });
        return await runDemo({ keepRunning: values['keep-running'], write: (line) => console.log(line) });
      }
      case 'dev-upstream':
        return await devUpstream(rest);
      case 'dev-issuer':
        return await devIssuer(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 2 : 0;
      default:
        return usageError(`unknown command "${command}"`);
    }
  } catch (err) {
    // Bad flags or values, from parseArgs or from settings validation, are usage errors (exit 2).
    if (err instanceof SettingsError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      return usageError((err as Error).message);
    }
    throw err;
  }
}
