// Calling workloads as identities (issue 20), through a real Envoy whose listener requires client
// certificates (envoy/envoy-mtls.yaml): a CA, client certificates naming SPIFFE IDs and a server certificate,
// all made here with openssl, and a real HTTPS client presenting them. Envoy verifies the certificate and tells
// scopegate the peer (`source.principal`, and the certificate itself); scopegate decides by the example policy's
// `peers`. The same scopegate behind the plaintext envoy/envoy.yaml has no peer to go on: peer_missing. And a
// client's own x-forwarded-client-cert never becomes a peer, not even when a hop passes it on to scopegate.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ClientTls, EnvoyFront, SendOptions } from '../../src/dev/stack.js';
import {
  type CertificateAuthority,
  type CertifiedKey,
  makePki,
  opensslSuiteName,
  type Pki,
  skipWithoutOpenssl,
} from '../support/certs.js';
import { EXAMPLE_ISSUER } from '../support/policies.js';
import { skipWithoutEnvoy, suiteName } from './envoy-required.js';
import { envoyCounter, type HttpResult, type Stack, startStack } from './stack.js';

// The calling workloads of examples/inventory/policy.yaml's `peers`, and one it does not list.
const ORDERS = 'spiffe://cluster.local/ns/orders/sa/orders-api';
const REPORTS = 'spiffe://cluster.local/ns/reporting/sa/reports';
const BILLING = 'spiffe://cluster.local/ns/billing/sa/billing';

const RESERVATIONS = '/api/inventory/reservations';
const STOCK_REPORT = '/api/inventory/reports/stock';
const reservation = (location: string) => ({ location, item: 'ITEM001', quantity: 2 });

/** What a client that lets every hop on its way forward it would claim, in Envoy's XFCC syntax. */
const xfccNaming = (id: string) => ({
  'x-forwarded-client-cert': `By=spiffe://cluster.local/ns/inventory/sa/inventory;URI=${id}`,
});

describe.skipIf(skipWithoutEnvoy || skipWithoutOpenssl)(
  suiteName(opensslSuiteName('peers through Envoy: mTLS (envoy/envoy-mtls.yaml) and plaintext (envoy.yaml)')),
  () => {
    let pki: Pki;
    let mesh: CertificateAuthority;
    const workload: Record<'orders' | 'reports' | 'billing' | 'twoIds' | 'noSpiffe', CertifiedKey> =
      {} as never;
    let stranger: CertifiedKey;
    let stack: Stack;
    let plain: EnvoyFront;
    /** The same two configs, but passing a client's x-forwarded-client-cert on to scopegate as it came. */
    let mtlsForwarding: EnvoyFront;
    let plainForwarding: EnvoyFront;
    let userToken: string;

    beforeAll(async () => {
      pki = await makePki();
      mesh = await pki.authority('mesh-ca');
      const server = await mesh.server('envoy');
      workload.orders = await mesh.client('orders', [ORDERS]);
      workload.reports = await mesh.client('reports', [REPORTS]);
      workload.billing = await mesh.client('billing', [BILLING]);
      // Envoy takes the first URI SAN as the principal; the certificate it sends shows there are two.
      workload.twoIds = await mesh.client('two-ids', [REPORTS, ORDERS]);
      workload.noSpiffe = await mesh.client('no-spiffe', []);
      // Another CA's certificate naming the orders service: a forgery as far as the mesh is concerned.
      stranger = await (await pki.authority('stranger-ca')).client('forged-orders', [ORDERS]);

      const tls = { certificateChain: server.certFile, privateKey: server.keyFile, trustedCa: mesh.certFile };
      stack = await startStack('envoy-mtls.yaml', { tls });
      plain = await stack.startEnvoy({ variant: 'envoy.yaml' });
      mtlsForwarding = await stack.startEnvoy({
        variant: 'envoy-mtls.yaml',
        tls,
        envoyForwardsClientCert: true,
      });
      plainForwarding = await stack.startEnvoy({ variant: 'envoy.yaml', envoyForwardsClientCert: true });
      // The user the orders service acts for: may write inventory at WH01, WH02 and EU-*.
      userToken = await stack.clientToken('sync', 'inventory.write');
    });
    afterAll(async () => {
      await stack?.close();
      await pki?.remove();
    });

    const as = (who: CertifiedKey): ClientTls => ({ ca: mesh.cert, cert: who.cert, key: who.key });
    const send = (who: CertifiedKey, request: SendOptions, front: { send: Stack['send'] } = stack) =>
      front.send({ ...request, tls: as(who) });
    const reserve = (who: CertifiedKey, location: string, extra: Partial<SendOptions> = {}) =>
      send(who, {
        method: 'POST',
        path: RESERVATIONS,
        token: userToken,
        json: reservation(location),
        ...extra,
      });

    /**
     * The access log line the mTLS Envoy writes for the request `act` sends, found by the x-request-id it is
     * given (Envoy flushes its log on its own schedule: an earlier request's line may come in after this one).
     */
    async function loggedFor(
      act: (headers: Record<string, string>) => Promise<HttpResult>,
    ): Promise<[HttpResult, Record<string, unknown>]> {
      const requestId = randomUUID();
      const answer = await act({ 'x-request-id': requestId });
      const line = await vi.waitFor(
        () => {
          const entry = stack.envoy.accessLog().find((logged) => logged.request_id === requestId);
          if (entry === undefined) throw new Error(`no access log line yet for ${requestId}`);
          return entry;
        },
        { timeout: 5_000, interval: 50 },
      );
      return [answer, line];
    }

    describe('over mTLS', () => {
      it('the orders service reserves stock for its user: allowed, and the upstream is told both identities', async () => {
        const [answer, logged] = await loggedFor((headers) => reserve(workload.orders, 'WH01', { headers }));
        expect(answer.status).toBe(201);
        expect(answer.json?.reservation).toEqual(reservation('WH01'));
        expect(answer.json?.received_identity).toEqual({
          subject: 'svc-inventory-sync',
          client: 'inventory-sync',
          issuer: EXAMPLE_ISSUER,
          route: 'reserve_stock',
          policy: 'inventory',
          peer: ORDERS,
        });
        expect(logged).toMatchObject({
          status: 201,
          reason: 'allowed',
          route: 'reserve_stock',
          subject: 'svc-inventory-sync',
          peer: ORDERS,
          peer_uri_san: ORDERS,
        });
      });

      it('a warehouse the user may use but the orders service may not (EU-BER) is location_denied for the peer', async () => {
        const answer = await reserve(workload.orders, 'EU-BER');
        expect(answer.status).toBe(403);
        expect(answer.json).toMatchObject({
          reason: 'location_denied',
          route: 'reserve_stock',
          missing: { locations: ['EU-BER'], peer: ORDERS },
        });
      });

      it('WH03, granted to neither, is location_denied for the user first (no peer named)', async () => {
        const answer = await reserve(workload.orders, 'WH03');
        expect(answer.status).toBe(403);
        expect(answer.json).toMatchObject({ reason: 'location_denied', missing: { locations: ['WH03'] } });
        expect((answer.json?.missing as Record<string, unknown> | undefined)?.peer).toBeUndefined();
      });

      it('the orders service without its user’s token is 401: token_and_peer needs both', async () => {
        const answer = await reserve(workload.orders, 'WH01', { token: undefined });
        expect(answer.status).toBe(401);
        expect(answer.json?.reason).toBe('token_missing');
      });

      it('a reporting workload reads the stock report by the namespace’s `…/*` entry: no token, no subject', async () => {
        const answer = await send(workload.reports, { path: STOCK_REPORT });
        expect(answer.status).toBe(200);
        expect(answer.json?.stock).toEqual(expect.any(Object));
        expect(answer.json?.received_identity).toMatchObject({
          subject: null,
          client: null,
          route: 'stock_report',
          policy: 'inventory',
          peer: REPORTS,
        });
      });

      it('a reporting workload may not reserve stock, even with a user’s token: peer_not_allowed naming the role', async () => {
        const before = await stack.upstreamRequests();
        const answer = await reserve(workload.reports, 'WH01');
        expect(answer.status).toBe(403);
        expect(answer.json).toMatchObject({
          reason: 'peer_not_allowed',
          route: 'reserve_stock',
          missing: {
            permissions: ['INV_TRANSACTION_CREATE'],
            roles: ['Inventory Transaction Manager'],
            peer: REPORTS,
          },
        });
        expect(await stack.upstreamRequests()).toBe(before);
      });

      it('a workload the policy does not list is peer_not_allowed, named', async () => {
        const answer = await send(workload.billing, { path: STOCK_REPORT });
        expect(answer.status).toBe(403);
        expect(answer.json).toMatchObject({ reason: 'peer_not_allowed', missing: { peer: BILLING } });
      });

      it('a certificate with two SPIFFE IDs is refused, though Envoy’s principal is the listed first one', async () => {
        const [answer, logged] = await loggedFor((headers) =>
          send(workload.twoIds, { path: STOCK_REPORT, headers }),
        );
        expect(answer.status).toBe(403);
        expect(answer.json?.reason).toBe('peer_not_allowed');
        expect(answer.json?.error_description).toMatch(/carries 2 URI SANs/);
        // Envoy's principal is the first name, a listed workload (its log lists both): only the certificate
        // scopegate was sent lets it see the second.
        expect(logged.peer_uri_san).toBe(`${REPORTS},${ORDERS}`);
        expect(logged.reason).toBe('peer_not_allowed');
      });

      it('a client’s own x-scopegate-peer never reaches the upstream as ours', async () => {
        const answer = await send(workload.reports, {
          path: STOCK_REPORT,
          headers: { 'x-scopegate-peer': ORDERS },
        });
        expect(answer.status).toBe(200);
        expect(answer.json?.received_identity).toMatchObject({ peer: REPORTS });
      });
    });

    describe('the handshake lets in only certificates from the mesh CA that name a SPIFFE ID', () => {
      const REQUESTS_READ = /^http\.inventory_api_mtls\.downstream_rq_total$/;
      const refused = async (tls: ClientTls, counter: RegExp) => {
        const before = {
          upstream: await stack.upstreamRequests(),
          counter: await envoyCounter(stack, counter),
          requests: await envoyCounter(stack, REQUESTS_READ),
        };
        await expect(stack.send({ path: STOCK_REPORT, tls })).rejects.toThrow();
        await vi.waitFor(async () => expect(await envoyCounter(stack, counter)).toBe(before.counter + 1));
        expect(await stack.upstreamRequests()).toBe(before.upstream);
        // No HTTP request was ever read, so none was asked about.
        expect(await envoyCounter(stack, REQUESTS_READ)).toBe(before.requests);
      };

      it('no client certificate', async () => {
        await refused({ ca: mesh.cert }, /^listener\..*\.ssl\.fail_verify_no_cert$/);
      });

      it('a certificate naming the orders service, from another CA', async () => {
        await refused(as(stranger), /^listener\..*\.ssl\.fail_verify_error$/);
      });

      it('a certificate from the mesh CA naming no SPIFFE ID', async () => {
        await refused(as(workload.noSpiffe), /^listener\..*\.ssl\.fail_verify_san$/);
      });
    });

    describe('over plaintext (envoy.yaml)', () => {
      it('the peer-only stock report is 403 peer_missing, and nothing reaches the upstream', async () => {
        const before = await stack.upstreamRequests();
        const answer = await plain.send({ path: STOCK_REPORT });
        expect(answer.status).toBe(403);
        expect(answer.headers['www-authenticate']).toBeUndefined();
        expect(answer.json).toMatchObject({ reason: 'peer_missing', missing: { peer: null } });
        expect(await stack.upstreamRequests()).toBe(before);
      });

      it('reserving stock with a good user token is peer_missing too', async () => {
        const answer = await plain.send({
          method: 'POST',
          path: RESERVATIONS,
          token: userToken,
          json: reservation('WH01'),
        });
        expect(answer.status).toBe(403);
        expect(answer.json?.reason).toBe('peer_missing');
      });

      it('token routes are unchanged, and no peer reaches the upstream', async () => {
        const answer = await plain.send({
          path: '/api/inventory/transactions',
          token: await stack.clientToken('sync', 'inventory.read'),
          headers: { 'x-scopegate-peer': ORDERS },
        });
        expect(answer.status).toBe(200);
        expect(answer.json?.received_identity).toMatchObject({ peer: null });
      });
    });

    // Envoy as shipped removes a client's x-forwarded-client-cert; the forwarding Envoys pass it on, so scopegate
    // does see it there. Either way it is no peer identity.
    describe.each([
      ['as shipped', () => ({ mtls: stack as { send: Stack['send'] }, plaintext: plain })],
      ['passing it on to scopegate', () => ({ mtls: mtlsForwarding, plaintext: plainForwarding })],
    ])('a client-sent x-forwarded-client-cert changes nothing (Envoy %s)', (_how, fronts) => {
      it('plaintext, naming the orders service: still peer_missing, on both peer routes', async () => {
        const { plaintext } = fronts();
        const reserved = await plaintext.send({
          method: 'POST',
          path: RESERVATIONS,
          token: userToken,
          json: reservation('WH01'),
          headers: xfccNaming(ORDERS),
        });
        expect(reserved.status).toBe(403);
        expect(reserved.json?.reason).toBe('peer_missing');
        const report = await plaintext.send({ path: STOCK_REPORT, headers: xfccNaming(REPORTS) });
        expect(report.status).toBe(403);
        expect(report.json?.reason).toBe('peer_missing');
      });

      it('mTLS as the reporting workload, naming the orders service: still the reporting workload', async () => {
        const { mtls } = fronts();
        const reserved = await send(
          workload.reports,
          {
            method: 'POST',
            path: RESERVATIONS,
            token: userToken,
            json: reservation('WH01'),
            headers: xfccNaming(ORDERS),
          },
          mtls,
        );
        expect(reserved.status).toBe(403);
        expect(reserved.json).toMatchObject({ reason: 'peer_not_allowed', missing: { peer: REPORTS } });
        const report = await send(
          workload.reports,
          { path: STOCK_REPORT, headers: xfccNaming(ORDERS) },
          mtls,
        );
        expect(report.status).toBe(200);
        expect(report.json?.received_identity).toMatchObject({ peer: REPORTS });
      });
    });
  },
);
