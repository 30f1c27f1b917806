// The calling workload as scopegate trusts it (src/identity/peer.ts): only Envoy's source principal and, when
// Envoy sends it, the certificate it verified, which must name the same one SPIFFE ID. Anything that only looks
// like a SPIFFE ID is refused, so it can never reach a policy's `…/*` entry. Certificates are real, made by
// openssl for this run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { identifyPeer } from '../../../src/identity/peer.js';

const ORDERS = 'spiffe://cluster.local/ns/orders/sa/orders-api';
const dir = mkdtempSync(join(tmpdir(), 'scopegate-peer-'));

/** A self-signed EC certificate with the given subjectAltName, as Envoy sends it: URL-encoded PEM. */
function certificate(name: string, san: string): string {
  const key = join(dir, `${name}.key`);
  const pem = join(dir, `${name}.pem`);
  execFileSync(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
      ...[
        '-keyout',
        key,
        '-out',
        pem,
        '-days',
        '1',
        '-subj',
        `/CN=${name}`,
        '-addext',
        `subjectAltName=${san}`,
      ],
    ],
    { stdio: 'ignore' },
  );
  return encodeURIComponent(readFileSync(pem, 'utf8'));
}

let svid: string;
let twoUris: string;
let dnsOnly: string;
beforeAll(() => {
  svid = certificate('svid', `URI:${ORDERS}`);
  twoUris = certificate('two', `URI:${ORDERS},URI:spiffe://cluster.local/ns/admin/sa/root`);
  dnsOnly = certificate('dns', 'DNS:orders.example.com');
});

describe('identifyPeer', () => {
  it('no principal and no certificate: peer_missing, naming no peer', () => {
    expect(identifyPeer({})).toMatchObject({ ok: false, reason: 'peer_missing', missing: { peer: null } });
  });

  it('a principal that is a SPIFFE ID is the peer', () => {
    expect(identifyPeer({ principal: ORDERS })).toEqual({ ok: true, value: ORDERS });
  });

  it.each([
    ['SPIFFE://cluster.local/ns/orders/sa/orders-api', 'does not start with spiffe://'],
    ['spiffe://Cluster.local/ns/orders/sa/orders-api', 'trust domain'],
    ['spiffe://cluster.local/ns/orders/sa/', 'empty path segment'],
    ['spiffe://cluster.local/ns/orders/sa/../../admin/sa/root', '"." or ".." path segment'],
    ['spiffe://cluster.local/ns/orders/sa/orders%2Dapi', 'percent-encoded'],
    ['spiffe://cluster.local/ns/orders/sa/*', 'contains "*"'],
    ['orders-api.orders.svc.cluster.local', 'does not start with spiffe://'],
  ])('a principal that only looks like one (%s) is peer_not_allowed', (principal, why) => {
    const outcome = identifyPeer({ principal });
    expect(outcome).toMatchObject({ ok: false, reason: 'peer_not_allowed' });
    expect(!outcome.ok && outcome.detail).toContain(why);
  });

  it('a certificate naming one SPIFFE ID is that peer, with or without the principal', () => {
    expect(identifyPeer({ certificate: svid })).toEqual({ ok: true, value: ORDERS });
    expect(identifyPeer({ principal: ORDERS, certificate: svid })).toEqual({ ok: true, value: ORDERS });
  });

  it('a certificate and a principal that disagree are refused, whichever is right', () => {
    const outcome = identifyPeer({ principal: 'spiffe://cluster.local/ns/admin/sa/root', certificate: svid });
    expect(outcome).toMatchObject({ ok: false, reason: 'peer_not_allowed' });
    expect(!outcome.ok && outcome.detail).toContain('name different identities');
  });

  it('a certificate with two URI SANs, or none, or that is not a certificate, is refused', () => {
    for (const [certificate, why] of [
      [twoUris, 'carries 2 URI SANs'],
      [dnsOnly, 'carries 0 URI SANs'],
      [
        encodeURIComponent('-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n'),
        'cannot be read',
      ],
      ['%E0%A4%A', 'is not URL-encoded PEM'],
      ['x'.repeat(16 * 1024 * 3 + 1), 'is too large'],
    ] as const) {
      const outcome = identifyPeer({ certificate });
      expect(outcome, why).toMatchObject({ ok: false, reason: 'peer_not_allowed' });
      expect(!outcome.ok && outcome.detail).toContain(why);
    }
  });
});
