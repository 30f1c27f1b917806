// `npm run demo`: the support thread replayed through a real Envoy in front of scopegate, with the dev issuer
// and the inventory upstream on loopback. Each step prints the curl command a reader can rerun, what came
// back (status, WWW-Authenticate, reason) and what to change; then the denial counters an SRE would see.

import { fixHints } from '../decision/hints.js';
import type { Missing } from '../vocabulary/index.js';
import { isReason } from '../vocabulary/index.js';
import { findEnvoy, INSTALL_HINT } from './envoy.js';
import type { DevClient } from './issuer.js';
import { type HttpResult, type SendOptions, type Stack, startStack } from './stack.js';

const BOTH = 'inventory.read inventory.write';
const transaction = (location: string) => ({ location, item: 'ITEM001', quantity: 10 });

interface Step {
  readonly title: string;
  /** How the token was obtained, as a shell line a reader can rerun. */
  readonly tokenCommand: (stack: Stack) => string;
  readonly token: (stack: Stack) => Promise<string>;
  readonly request: SendOptions;
  readonly who: { subject: string; client: string };
}

const shellQuote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;

function tokenFromEndpoint(client: DevClient, scope: string, stack: Stack): string {
  return (
    `TOKEN=$(curl -s -u ${client.id}:${client.secret} -d grant_type=client_credentials ` +
    `-d scope=${shellQuote(scope)} ${stack.issuer.tokenUrl} | jq -r .access_token)`
  );
}

function tokenFromKey(stack: Stack, subject: string, client: string, scope: string, extra: string): string {
  const { issuer, audience } = stack.issuerConfig;
  return (
    `TOKEN=$(npx scopegate token --iss ${issuer} --aud ${audience} --key ${stack.keyFile} ` +
    `--sub ${subject} --client ${client} --scope ${shellQuote(scope)} ${extra})`
  );
}

/** A client-credentials step: the token comes from the dev issuer's token endpoint. */
function viaClient(title: string, clientId: string, scope: string, request: SendOptions): Step {
  return {
    title,
    tokenCommand: (stack) => tokenFromEndpoint(stack.client(clientId), scope, stack),
    token: (stack) => stack.clientToken(clientId, scope),
    request,
    who: { subject: '', client: clientId },
  };
}

const post = (location: string): SendOptions => ({
  method: 'POST',
  path: '/api/inventory/transactions',
  json: transaction(location),
});

export const STORY: readonly Step[] = [
  viaClient(
    'GET works: the service account reads transactions with inventory.read',
    'inventory-sync',
    'inventory.read',
    {
      path: '/api/inventory/transactions',
    },
  ),
  viaClient(
    'POST with only inventory.write (the token from the thread) fails — and says why',
    'inventory-sync',
    'inventory.write',
    post('WH01'),
  ),
  viaClient('The fix: request inventory.read as well', 'inventory-sync', BOTH, post('WH01')),
  viaClient(
    'The OAuth2 client was never granted the scope (the IdP gave it, the gateway policy does not)',
    'stock-report',
    BOTH,
    post('WH01'),
  ),
  viaClient(
    'The service account lacks the Inventory Transaction Manager role',
    'new-integration',
    BOTH,
    post('WH01'),
  ),
  viaClient('Warehouse WH03 is not granted to the service account', 'inventory-sync', BOTH, post('WH03')),
  {
    title: 'A token from the authorization_code flow, where this client must use client_credentials',
    tokenCommand: (stack) =>
      tokenFromKey(stack, 'svc-inventory-sync', 'inventory-sync', BOTH, '--gty authorization_code'),
    token: (stack) =>
      stack.mint({
        subject: 'svc-inventory-sync',
        client: 'inventory-sync',
        scope: BOTH,
        grantType: 'authorization_code',
        ttlSeconds: 300,
      }),
    request: post('WH01'),
    who: { subject: 'svc-inventory-sync', client: 'inventory-sync' },
  },
  {
    title: 'An expired token',
    tokenCommand: (stack) => tokenFromKey(stack, 'svc-inventory-sync', 'inventory-sync', BOTH, '--ttl=-60'),
    token: (stack) =>
      stack.mint({
        subject: 'svc-inventory-sync',
        client: 'inventory-sync',
        scope: BOTH,
        grantType: 'client_credentials',
        ttlSeconds: -60,
      }),
    request: post('WH01'),
    who: { subject: 'svc-inventory-sync', client: 'inventory-sync' },
  },
];

function curlCommand(stack: Stack, request: SendOptions): string {
  const parts = [`curl -i`, `${stack.envoy.url}${request.path}`, `-H "Authorization: Bearer $TOKEN"`];
  if (request.method && request.method !== 'GET' && request.json === undefined)
    parts.push(`-X ${request.method}`);
  if (request.json !== undefined) {
    parts.push(`-H 'content-type: application/json'`, `-d ${shellQuote(JSON.stringify(request.json))}`);
  }
  return parts.join(' ');
}

const header = (result: HttpResult, name: string) => {
  const value = result.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
};

export function describeStep(result: HttpResult, who: { subject: string; client: string }): string[] {
  const lines = [`→ HTTP ${result.status}`];
  const challenge = header(result, 'www-authenticate');
  if (challenge) lines.push(`  WWW-Authenticate: ${challenge}`);
  const body = result.json ?? {};
  const reason = typeof body.reason === 'string' ? body.reason : undefined;
  if (result.status < 300) {
    const identity = body.received_identity as { subject?: string; route?: string } | undefined;
    lines.push(
      `  allowed: the upstream received x-scopegate-subject: ${identity?.subject}, route ${identity?.route}`,
    );
    return lines;
  }
  if (reason) lines.push(`  reason: ${reason} — ${body.error_description}`);
  if (reason && isReason(reason)) {
    for (const hint of fixHints(reason, body.missing as Missing | undefined, who))
      lines.push(`  fix: ${hint}`);
  }
  return lines;
}

export interface DemoOptions {
  readonly keepRunning: boolean;
  readonly write: (line: string) => void;
}

/** Runs the story; resolves with the exit code once everything is stopped (or, with keepRunning, on Ctrl-C). */
export async function runDemo(options: DemoOptions): Promise<number> {
  const { write } = options;
  const envoyBin = findEnvoy();
  if (envoyBin === undefined) {
    write(`Envoy not found (ENVOY_BIN, .venv/bin/envoy, PATH): ${INSTALL_HINT}`);
    return 1;
  }
  write('Starting the dev issuer, the inventory upstream, scopegate and Envoy on 127.0.0.1 …');
  const stack = await startStack({ envoyBin });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await stack.close();
  };
  // Ctrl-C (or SIGTERM) ends the story after the current step, or ends --keep-running; either way every
  // process and server is stopped before we return.
  let interrupt = () => {};
  const interrupted = new Promise<void>((resolve) => {
    interrupt = resolve;
  });
  let wasInterrupted = false;
  const onSignal = () => {
    wasInterrupted = true;
    interrupt();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    write('');
    write(`  Envoy (ext_authz → scopegate)  ${stack.envoy.url}`);
    write(
      `  scopegate                      gRPC ${stack.scopegate.grpcAddress}, metrics http://${stack.scopegate.adminAddress}/metrics`,
    );
    write(`  dev OAuth2 issuer              ${stack.issuer.tokenUrl}  (JWKS ${stack.issuer.jwksUri})`);
    write(`  inventory upstream             ${stack.upstream.url}`);
    for (const [index, step] of STORY.entries()) {
      if (wasInterrupted) return 130;
      const token = await step.token(stack);
      const result = await stack.send({ ...step.request, token });
      const subject = step.who.subject || stack.client(step.who.client).subject;
      write('');
      write(`${index + 1}. ${step.title}`);
      write(`   $ ${step.tokenCommand(stack)}`);
      write(`   $ ${curlCommand(stack, step.request)}`);
      for (const line of describeStep(result, { subject, client: step.who.client })) write(`   ${line}`);
    }
    if (wasInterrupted) return 130;
    write('');
    write(
      `What an SRE sees: denials by reason and route (curl -s http://${stack.scopegate.adminAddress}/metrics)`,
    );
    const metrics = await (await fetch(`http://${stack.scopegate.adminAddress}/metrics`)).text();
    for (const line of metrics.split('\n')) {
      if (/^scopegate_(decisions_total|missing_permissions_total)\{/.test(line)) write(`   ${line}`);
    }
    if (options.keepRunning) {
      write('');
      write('Everything keeps running: try the curl commands above. Ctrl-C stops it all.');
      await interrupted;
    }
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await stop();
    write('Stopped.');
  }
}
