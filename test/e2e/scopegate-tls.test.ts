// A real Envoy asking scopegate over mutual TLS, set up as docs/kubernetes.md ("TLS to a central scopegate")
// tells users to: scopegate serving `--tls-cert`, `--tls-key` and `--tls-client-ca` (a CA, scopegate's server
// certificate and Envoy's client certificate, made here with openssl), and Envoy's cluster to scopegate given the
// doc's own UpstreamTlsContext, read from the doc with only its server name and file paths changed. Through both
// doors Envoy can ask by (gRPC, envoy/envoy.yaml; HTTP, envoy/envoy-http.yaml): an allowed request reaches the
// upstream, a denied one gets scopegate's answer, and an Envoy without a client certificate fails closed, with
// scopegate deciding nothing.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { repoRoot } from '../../src/dev/envoy.js';
import type { EnvoyFront, EnvoyVariant } from '../../src/dev/stack.js';
import {
  type CertificateAuthority,
  type CertifiedKey,
  makePki,
  opensslSuiteName,
  type Pki,
  skipWithoutOpenssl,
} from '../support/certs.js';
import { syncIdentity } from '../support/policies.js';
import { parsePrometheusText } from '../support/prometheus.js';
import { skipWithoutEnvoy, suiteName } from './envoy-required.js';
import { envoyCounter, type Stack, startStack, transaction } from './stack.js';

/** The two ways Envoy asks scopegate, the cluster that reaches it, and the `transport` its Checks count under. */
const DOORS: ReadonlyArray<{ variant: EnvoyVariant; cluster: string; transport: 'grpc' | 'http' }> = [
  { variant: 'envoy.yaml', cluster: 'scopegate', transport: 'grpc' },
  { variant: 'envoy-http.yaml', cluster: 'scopegate_http', transport: 'http' },
];

const DOC = 'docs/kubernetes.md';
/** The name scopegate's test certificate is for (ca.server: 127.0.0.1 and localhost). */
const SERVER_NAME = 'localhost';
const TRANSACTIONS = '/api/inventory/transactions';

// biome-ignore lint/suspicious/noExplicitAny: an Envoy transport_socket from the doc, read field by field.
type Socket = any;

/** The one `transport_socket` with an UpstreamTlsContext in the doc's YAML blocks, as written there. */
function documentedTransportSocket(): Socket {
  const text = readFileSync(join(repoRoot(), DOC), 'utf8');
  const blocks = [...text.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((match) => match[1]!)
    .filter((block) => block.includes('UpstreamTlsContext'));
  if (blocks.length !== 1) throw new Error(`${DOC}: ${blocks.length} YAML blocks with an UpstreamTlsContext`);
  return parse(blocks[0]!).transport_socket;
}

/**
 * The doc's transport_socket with only its places changed: scopegate's name (SNI and the SAN Envoy checks)
 * becomes the test certificate's, the files the test's. Without `client`, Envoy presents no certificate.
 */
function localTransportSocket(ca: CertificateAuthority, client?: CertifiedKey): Socket {
  const socket = documentedTransportSocket();
  const tls = socket.typed_config;
  const documentedName = tls.sni;
  const validation = tls.common_tls_context.validation_context;
  const sans = validation.match_typed_subject_alt_names;
  if (sans.length !== 1 || sans[0].matcher.exact !== documentedName)
    throw new Error(`${DOC}: the UpstreamTlsContext no longer checks the SAN its sni names`);
  tls.sni = SERVER_NAME;
  sans[0].matcher.exact = SERVER_NAME;
  validation.trusted_ca.filename = ca.certFile;
  const [certificate, ...more] = tls.common_tls_context.tls_certificates;
  if (more.length > 0) throw new Error(`${DOC}: more than one client certificate`);
  if (client === undefined) delete tls.common_tls_context.tls_certificates;
  else {
    certificate.certificate_chain.filename = client.certFile;
    certificate.private_key.filename = client.keyFile;
  }
  return socket;
}

for (const { variant, cluster, transport } of DOORS) {
  describe.skipIf(skipWithoutEnvoy || skipWithoutOpenssl)(
    suiteName(opensslSuiteName(`Envoy to scopegate over mutual TLS as ${DOC} shows it (envoy/${variant})`)),
    () => {
      let pki: Pki;
      let stack: Stack;
      /** The same Envoy config, but its UpstreamTlsContext without the client certificate. */
      let withoutCertificate: EnvoyFront;

      beforeAll(async () => {
        pki = await makePki();
        const ca = await pki.authority('scopegate-ca');
        const server = await ca.server('scopegate');
        const envoy = await ca.client('envoy', []);
        stack = await startStack(variant, {
          serveFlags: [
            '--tls-cert',
            server.certFile,
            '--tls-key',
            server.keyFile,
            '--tls-client-ca',
            ca.certFile,
          ],
          scopegateTransportSocket: localTransportSocket(ca, envoy),
        });
        withoutCertificate = await stack.startEnvoy({
          variant,
          scopegateTransportSocket: localTransportSocket(ca),
        });
      });
      afterAll(async () => {
        await stack?.close();
        await pki?.remove();
      });

      /** scopegate's decisions counted so far through this door, by decision. */
      const decisions = async (decision: 'allow' | 'deny') =>
        parsePrometheusText(await stack.metrics.registry.metrics()).value('scopegate_decisions_total', {
          decision,
          transport,
        });
      const handshakes = (front: { readonly envoy: EnvoyFront['envoy'] }) =>
        envoyCounter(front, new RegExp(`^cluster\\.${cluster}\\.ssl\\.handshake$`));

      it('an allowed GET reaches the upstream, decided by scopegate over TLS', async () => {
        const before = { upstream: await stack.upstreamRequests(), allowed: await decisions('allow') };
        const answer = await stack.send({
          path: TRANSACTIONS,
          token: await stack.clientToken('sync', 'inventory.read'),
        });
        expect(answer.status).toBe(200);
        expect(answer.json?.received_identity).toEqual(syncIdentity('list_transactions'));
        expect(await stack.upstreamRequests()).toBe(before.upstream + 1);
        expect(await decisions('allow')).toBe(before.allowed + 1);
        expect(await handshakes(stack)).toBeGreaterThan(0);
      });

      it('a denied POST gets scopegate’s 403 with its reason, and nothing reaches the upstream', async () => {
        const before = { upstream: await stack.upstreamRequests(), denied: await decisions('deny') };
        const answer = await stack.send({
          method: 'POST',
          path: TRANSACTIONS,
          token: await stack.clientToken('sync', 'inventory.write'),
          json: transaction('WH01'),
        });
        expect(answer.status).toBe(403);
        expect(answer.headers['x-scopegate-reason']).toBe('scope_missing');
        expect(answer.headers['www-authenticate']).toContain('error="insufficient_scope"');
        expect(answer.json).toMatchObject({
          reason: 'scope_missing',
          route: 'create_transaction',
          missing: { scopes: ['inventory.read'] },
        });
        expect(await stack.upstreamRequests()).toBe(before.upstream);
        expect(await decisions('deny')).toBe(before.denied + 1);
      });

      it('an Envoy without a client certificate fails closed: 503 for a request scopegate would allow, and scopegate decides nothing', async () => {
        const token = await stack.clientToken('sync', 'inventory.read');
        const count = (pattern: RegExp) => envoyCounter(withoutCertificate, pattern);
        const UPSTREAM = /^cluster\.inventory\.upstream_rq_total$/;
        const AUTHZ_ERRORS = /^http\.inventory_api\.ext_authz\.error$/;
        const before = {
          upstream: await count(UPSTREAM),
          authzErrors: await count(AUTHZ_ERRORS),
          allowed: await decisions('allow'),
          denied: await decisions('deny'),
        };
        for (let i = 0; i < 3; i++) {
          const answer = await withoutCertificate.send({ path: TRANSACTIONS, token });
          // failure_mode_allow: false, and the shipped configs' status_on_error: 503 rather than Envoy's 403.
          expect(answer.status).toBe(503);
          expect(answer.headers['x-scopegate-reason']).toBeUndefined();
          expect(answer.json).toBeUndefined();
        }
        // Each Check failed as a call (scopegate refused the handshake), not as a deny scopegate answered.
        expect(await count(AUTHZ_ERRORS)).toBe(before.authzErrors + 3);
        expect(await count(new RegExp(`^cluster\\.${cluster}\\.ssl\\.connection_error$`))).toBeGreaterThan(0);
        expect(await handshakes(withoutCertificate)).toBe(0);
        expect(await count(UPSTREAM)).toBe(before.upstream);
        expect(await decisions('allow')).toBe(before.allowed);
        expect(await decisions('deny')).toBe(before.denied);
        // The same request through the Envoy that presents its certificate is allowed.
        expect((await stack.send({ path: TRANSACTIONS, token })).status).toBe(200);
      });
    },
  );
}
