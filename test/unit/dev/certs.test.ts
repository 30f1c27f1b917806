// The certificates the demo and the e2e tests make with openssl are what an mTLS listener and scopegate's peer
// check expect: a CA, client certificates naming exactly the SPIFFE IDs given (X.509-SVIDs), signed by it, a
// server certificate for loopback; and the tool is found where the README says.
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CertificateAuthority, findOpenssl, makePki, type Pki } from '../../../src/dev/certs.js';
import { opensslSuiteName, skipWithoutOpenssl } from '../../support/certs.js';

describe('findOpenssl', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-openssl-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const fake = join(dir, 'openssl');
  writeFileSync(fake, '#!/bin/sh\n');
  chmodSync(fake, 0o755);
  const notExecutable = join(dir, 'not-executable');
  writeFileSync(notExecutable, '');

  it('takes OPENSSL_BIN when it is executable, and nothing else then', () => {
    expect(findOpenssl({ OPENSSL_BIN: fake, PATH: '' })).toBe(fake);
    expect(findOpenssl({ OPENSSL_BIN: notExecutable, PATH: dir })).toBeUndefined();
  });

  it('else openssl on the PATH', () => {
    expect(findOpenssl({ PATH: `/nonexistent:${dir}` })).toBe(fake);
    expect(findOpenssl({ PATH: '/nonexistent' })).toBeUndefined();
  });
});

const SPIFFE = 'spiffe://cluster.local/ns/reporting/sa/weekly-report';

describe.skipIf(skipWithoutOpenssl)(opensslSuiteName('makePki'), () => {
  let pki: Pki;
  let ca: CertificateAuthority;
  beforeAll(async () => {
    pki = await makePki(findOpenssl()!);
    ca = await pki.authority('mesh-ca');
  });
  afterAll(() => pki?.remove());

  it('a CA that may sign certificates', () => {
    const cert = new X509Certificate(ca.cert);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=mesh-ca');
    expect(existsSync(ca.certFile) && existsSync(ca.keyFile)).toBe(true);
  });

  it('a client certificate: the given SPIFFE ID as its one URI SAN, signed by the CA', async () => {
    const client = new X509Certificate((await ca.client('weekly-report', [SPIFFE])).cert);
    expect(client.subjectAltName).toBe(`URI:${SPIFFE}`);
    expect(client.ca).toBe(false);
    expect(client.checkIssued(new X509Certificate(ca.cert))).toBe(true);
    expect(client.verify(new X509Certificate(ca.cert).publicKey)).toBe(true);
    expect(client.keyUsage).toContain('1.3.6.1.5.5.7.3.2'); // clientAuth
  });

  it('a client certificate without SPIFFE IDs has a DNS name only; two IDs give two URI SANs', async () => {
    expect(new X509Certificate((await ca.client('plain', [])).cert).subjectAltName).toBe('DNS:plain.example');
    const two = new X509Certificate((await ca.client('two', [SPIFFE, `${SPIFFE}-2`])).cert);
    expect(two.subjectAltName).toBe(`URI:${SPIFFE}, URI:${SPIFFE}-2`);
  });

  it("a server certificate for loopback, and another CA's certificates are not this one's", async () => {
    const server = new X509Certificate((await ca.server('envoy')).cert);
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.checkHost('localhost')).toBe('localhost');
    const stranger = await (await pki.authority('stranger-ca')).client('forged', [SPIFFE]);
    expect(new X509Certificate(stranger.cert).checkIssued(new X509Certificate(ca.cert))).toBe(false);
  });

  it('remove() takes the whole directory', async () => {
    const other = await makePki(findOpenssl()!);
    await other.authority('ca');
    expect(existsSync(other.dir)).toBe(true);
    await other.remove();
    expect(existsSync(other.dir)).toBe(false);
  });
});
