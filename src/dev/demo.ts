// `npm run demo`: the support thread replayed through a real Envoy in front of scopegate, with the dev issuer
// and the inventory upstream on loopback. Each step prints the curl command a reader can rerun, what came
// back (status, WWW-Authenticate, reason) and what to change; then a calling workload (mTLS peer) denied on
// the plaintext Envoy and let through a second Envoy that requires client certificates, with certificates the
// demo makes; then the denial counters an SRE would see.

import { fixHints } from '../decision/hints.js';
import type { Missing } from '../vocabulary/index.js';
import { isReason } from '../vocabulary/index.js';
import { type CertifiedKey, findOpenssl, makePki, OPENSSL_INSTALL_HINT, type Pki } from './certs.js';
import { findEnvoy, INSTALL_HINT } from './envoy.js';
import type { DevClient } from './issuer.js';
import { type EnvoyFront, type HttpResult, type SendOptions, type Stack, startStack } from './stack.js';

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

/** A reporting workload's SPIFFE ID: the example policy's `spiffe://cluster.local/ns/reporting/sa/*` lists it. */
export const REPORTING_WORKLOAD = 'spiffe://cluster.local/ns/reporting/sa/weekly-report';

/** A step of the calling workload's story: no token, only the workload's identity (or none). */
interface PeerStep {
  readonly title: string;
  readonly request: SendOptions;
  /** Sent through the mTLS Envoy with this workload's client certificate; absent: the plaintext Envoy. */
  readonly workload?: string;
}

const STOCK_REPORT: SendOptions = { path: '/api/inventory/reports/stock' };

export const PEER_STORY: readonly PeerStep[] = [
  {
    title: 'A reporting workload asks for the stock report over plaintext: no calling workload to go on',
    request: STOCK_REPORT,
  },
  {
    title: `The fix: the same request over mTLS, the workload presenting its certificate (${REPORTING_WORKLOAD})`,
    request: STOCK_REPORT,
    workload: REPORTING_WORKLOAD,
  },
];

/** The files curl needs for an mTLS request: the CA to trust Envoy by, and the client's certificate and key. */
export interface CurlTls {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** A path as one shell word: as it is when it needs no quoting (the usual temp paths), else quoted. */
const shellWord = (text: string) => (/^[\w./:@%+=-]+$/.test(text) ? text : shellQuote(text));

/** The curl line for a request through the Envoy at `baseUrl`: with the step's token, or its certificate. */
export function curlCommand(
  baseUrl: string,
  request: SendOptions,
  how: { readonly token: boolean; readonly tls?: CurlTls },
): string {
  const parts = [`curl -i`, `${baseUrl}${request.path}`];
  if (how.tls) {
    const { caFile, certFile, keyFile } = how.tls;
    parts.push(`--cacert ${shellWord(caFile)} --cert ${shellWord(certFile)} --key ${shellWord(keyFile)}`);
  }
  if (how.token) parts.push(`-H "Authorization: Bearer $TOKEN"`);
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
    const identity = body.received_identity as
      | { subject?: string | null; peer?: string | null; route?: string }
      | undefined;
    // A peer-only route has no subject; the calling workload is named when the route needed one.
    const received = [
      ...(identity?.subject || !identity?.peer ? [`x-scopegate-subject: ${identity?.subject}`] : []),
      ...(identity?.peer ? [`x-scopegate-peer: ${identity.peer}`] : []),
    ];
    lines.push(`  allowed: the upstream received ${received.join(', ')}, route ${identity?.route}`);
    return lines;
  }
  if (reason) lines.push(`  reason: ${reason} — ${body.error_description}`);
  if (reason && isReason(reason)) {
    for (const hint of fixHints(reason, body.missing as Missing | undefined, who))
      lines.push(`  fix: ${hint}`);
  }
  return lines;
}

/** A second Envoy, requiring client certificates (envoy/envoy-mtls.yaml), and the certificates the demo made. */
interface MtlsFront {
  readonly front: EnvoyFront;
  readonly pki: Pki;
  /** The mesh CA: it signed Envoy's certificate and the workload's, and Envoy trusts only it. */
  readonly ca: CertifiedKey;
  readonly workload: CertifiedKey;
}

async function startMtlsFront(stack: Stack, opensslBin: string): Promise<MtlsFront> {
  const pki = await makePki(opensslBin);
  try {
    const ca = await pki.authority('mesh-ca');
    const server = await ca.server('envoy');
    const workload = await ca.client('weekly-report', [REPORTING_WORKLOAD]);
    const front = await stack.startEnvoy({
      variant: 'envoy-mtls.yaml',
      tls: { certificateChain: server.certFile, privateKey: server.keyFile, trustedCa: ca.certFile },
    });
    return { front, pki, ca, workload };
  } catch (error) {
    await pki.remove();
    throw error;
  }
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
  const opensslBin = findOpenssl();
  let mtls: MtlsFront | undefined;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await stack.close();
    await mtls?.pki.remove();
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
    if (opensslBin !== undefined) mtls = await startMtlsFront(stack, opensslBin);
    write('');
    write(`  Envoy (ext_authz → scopegate)  ${stack.envoy.url}`);
    if (mtls)
      write(`  Envoy, mTLS listener           ${mtls.front.envoy.url}  (certificates in ${mtls.pki.dir})`);
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
      write(`   $ ${curlCommand(stack.envoy.url, step.request, { token: true })}`);
      for (const line of describeStep(result, { subject, client: step.who.client })) write(`   ${line}`);
    }
    for (const [index, step] of PEER_STORY.entries()) {
      if (wasInterrupted) return 130;
      write('');
      write(`${STORY.length + index + 1}. ${step.title}`);
      if (step.workload === undefined) {
        write(`   $ ${curlCommand(stack.envoy.url, step.request, { token: false })}`);
        const result = await stack.send(step.request);
        for (const line of describeStep(result, { subject: '', client: '' })) write(`   ${line}`);
      } else if (mtls === undefined) {
        write(`   (skipped: openssl not found, so no certificates to show it with; ${OPENSSL_INSTALL_HINT})`);
      } else {
        const { front, ca, workload } = mtls;
        const tls = { caFile: ca.certFile, certFile: workload.certFile, keyFile: workload.keyFile };
        write(`   $ ${curlCommand(front.envoy.url, step.request, { token: false, tls })}`);
        const result = await front.send({
          ...step.request,
          tls: { ca: ca.cert, cert: workload.cert, key: workload.key },
        });
        for (const line of describeStep(result, { subject: '', client: '' })) write(`   ${line}`);
      }
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
