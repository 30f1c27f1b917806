// The Envoy configs we ship are ones Envoy accepts, and the local rewrite the e2e tests run changes only
// where things listen and connect (and, for the mTLS config, where its certificate files are), so the tests
// exercise the very filters docker-compose mounts. The policy-set config asks scopegate as envoy.yaml does and
// names a policy of examples/mesh per virtual host; the mTLS config asks it as envoy.yaml does, on a listener
// that only lets in clients with a certificate from the mesh CA.
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { findEnvoy, localEnvoyConfig, repoRoot } from '../../src/dev/envoy.js';
import { defaultPolicyName } from '../../src/policy/validate-match.js';
import { makePki, opensslSuiteName, skipWithoutOpenssl } from '../support/certs.js';
import { requireEnvoy, skipWithoutEnvoy, suiteName } from './envoy-required.js';

const run = promisify(execFile);
const ENVOY_DIR = join(repoRoot(), 'envoy');
const shippedConfigs = readdirSync(ENVOY_DIR)
  .filter((name) => name.endsWith('.yaml'))
  .map((name) => join(ENVOY_DIR, name));
/** [name, path] pairs, so test titles show the file name rather than this machine's path. */
const configCases = shippedConfigs.map((file) => [basename(file), file] as const);
const PORTS = {
  scopegate: 19191,
  scopegateHttp: 19192,
  inventory: 18081,
  devIssuer: 18090,
  otelCollector: 14317,
  listener: 18080,
  admin: 19901,
};
/** Where the rewrite points a TLS listener's certificate files (only written into the config here). */
const TLS = {
  certificateChain: '/tmp/scopegate-tls/server.crt',
  privateKey: '/tmp/scopegate-tls/server.key',
  trustedCa: '/tmp/scopegate-tls/ca.crt',
};
/** The configs whose listener serves TLS need certificate files to run, and to pass `--mode validate`. */
const servesTls = (file: string) => readFileSync(file, 'utf8').includes('DownstreamTlsContext');
const localConfig = (file: string) => localEnvoyConfig(file, PORTS, servesTls(file) ? TLS : undefined);

async function validate(file: string): Promise<string> {
  const { stdout, stderr } = await run(requireEnvoy(), ['--mode', 'validate', '-c', file, '-l', 'error'], {
    timeout: 20_000,
  });
  return stdout + stderr;
}

/** Every socket address in a config, as "host:port", in document order. */
function socketAddresses(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) socketAddresses(item, found);
  else if (typeof node === 'object' && node !== null) {
    const record = node as Record<string, unknown>;
    const socket = record.socket_address as { address?: unknown; port_value?: unknown } | undefined;
    if (socket !== undefined) found.push(`${socket.address}:${socket.port_value}`);
    for (const value of Object.values(record)) socketAddresses(value, found);
  }
  return found;
}

/** The config with every socket address, cluster type and file name blanked: what must not change locally. */
function withoutAddresses(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutAddresses);
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(
    Object.entries(node as Record<string, unknown>)
      .filter(([key]) => key !== 'socket_address' && key !== 'type' && key !== 'filename')
      .map(([key, value]) => [key, withoutAddresses(value)]),
  );
}

/** Every `filename` in a config, in document order. */
function fileNames(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) fileNames(item, found);
  else if (typeof node === 'object' && node !== null) {
    for (const [key, value] of Object.entries(node as Record<string, unknown>)) {
      if (key === 'filename') found.push(String(value));
      else fileNames(value, found);
    }
  }
  return found;
}

describe('shipped configs', () => {
  it('include the plain, the HTTP, the jwt_authn, the mTLS, the policy-set and the tracing config', () => {
    expect(shippedConfigs.map((file) => file.slice(ENVOY_DIR.length + 1)).sort()).toEqual([
      'envoy-http.yaml',
      'envoy-jwt-authn.yaml',
      'envoy-mtls.yaml',
      'envoy-policy-set.yaml',
      'envoy-tracing.yaml',
      'envoy.yaml',
    ]);
  });

  it.each(configCases)('%s never fails open and bounds the ext_authz call', (_name, file) => {
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/failure_mode_allow: false/);
    expect(text).toMatch(/timeout: 0\.25s/);
    expect(text).toMatch(/max_request_bytes: 65536, allow_partial_message: true/);
  });
});

// biome-ignore lint/suspicious/noExplicitAny: an Envoy bootstrap, read field by field.
type Bootstrap = any;
const connectionManager = (config: Bootstrap) =>
  config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;

/** The policy names of examples/mesh, the set `serve --policy examples/mesh` serves. */
const MESH_DIR = join(repoRoot(), 'examples', 'mesh');
const meshPolicies = readdirSync(MESH_DIR)
  .filter((name) => /\.ya?ml$/.test(name))
  .map(
    (name) => (parse(readFileSync(join(MESH_DIR, name), 'utf8')).name as string) ?? defaultPolicyName(name),
  );

/**
 * How the policy-set config names policies: every virtual host but the catch-all names one policy of the set
 * (`scopegate_policy`) for all its routes; the catch-all names none, so scopegate answers policy_unknown there.
 */
function contextExtensionProblems(config: Bootstrap, policies: readonly string[]): string[] {
  const problems: string[] = [];
  for (const host of connectionManager(config).route_config.virtual_hosts) {
    const perHost = host.typed_per_filter_config?.['envoy.filters.http.ext_authz'];
    const named = perHost?.check_settings?.context_extensions?.scopegate_policy;
    const catchAll = host.domains.includes('*');
    if (host.routes.some((r: Bootstrap) => r.typed_per_filter_config))
      problems.push(`${host.name}: a route overrides the virtual host's ext_authz settings`);
    if (perHost && perHost['@type'] !== EXT_AUTHZ_PER_ROUTE)
      problems.push(`${host.name}: not ExtAuthzPerRoute`);
    if (catchAll && perHost) problems.push(`${host.name}: the catch-all names a policy (${named})`);
    if (!catchAll && !policies.includes(named))
      problems.push(`${host.name}: names no policy of the set (${named})`);
  }
  return problems;
}
const EXT_AUTHZ_PER_ROUTE = 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute';

describe('envoy-tracing.yaml', () => {
  const traced = parse(readFileSync(join(ENVOY_DIR, 'envoy-tracing.yaml'), 'utf8'));
  const plain = parse(readFileSync(join(ENVOY_DIR, 'envoy.yaml'), 'utf8'));

  it("is envoy.yaml plus Envoy's OpenTelemetry tracer exporting to the otel_collector cluster, nothing else", () => {
    const { tracing, ...manager } = connectionManager(traced);
    expect(manager).toEqual(connectionManager(plain));
    expect(tracing.provider.name).toBe('envoy.tracers.opentelemetry');
    expect(tracing.provider.typed_config.grpc_service.envoy_grpc.cluster_name).toBe('otel_collector');
    const clusters = traced.static_resources.clusters;
    expect(clusters.slice(0, -1)).toEqual(plain.static_resources.clusters);
    expect(clusters.at(-1)).toMatchObject({ name: 'otel_collector' });
  });
});

/**
 * What envoy-http.yaml must tell Envoy for scopegate's HTTP door to answer as its gRPC door does (README, "HTTP
 * front doors"): which request headers scopegate is sent, which answer headers reach the upstream and the
 * client, and which become the access log's metadata.
 */
function httpServiceProblems(filter: Bootstrap): string[] {
  const problems: string[] = [];
  const patterns = (list: Bootstrap): string[] =>
    (list?.patterns ?? []).map((p: Record<string, string>) => Object.entries(p)[0]!.join(':'));
  const missing = (where: string, list: Bootstrap, wanted: string[]) => {
    const have = patterns(list);
    for (const pattern of wanted) if (!have.includes(pattern)) problems.push(`${where}: no ${pattern}`);
  };
  const service = filter.http_service;
  missing('allowed_headers', filter.allowed_headers, [
    'exact:content-type',
    'exact:x-request-id',
    'exact:traceparent',
    'exact:tracestate',
    'exact:b3',
    'prefix:x-b3-',
    'prefix:x-scopegate-',
    'prefix:x_scopegate_',
  ]);
  if (service?.authorization_request?.allowed_headers !== undefined)
    problems.push('authorization_request.allowed_headers: deprecated; the filter’s allowed_headers says it');
  const response = service?.authorization_response;
  missing(
    'allowed_upstream_headers',
    response?.allowed_upstream_headers,
    ['subject', 'client', 'issuer', 'route', 'policy', 'peer'].map((name) => `exact:x-scopegate-${name}`),
  );
  // Listing a header that Envoy adds to the client's answer would leak identity or metadata to the client.
  const client = patterns(response?.allowed_client_headers);
  missing('allowed_client_headers', response?.allowed_client_headers, [
    'exact:www-authenticate',
    'exact:content-type',
    'exact:x-scopegate-reason',
  ]);
  if (client.some((p) => p !== 'exact:x-scopegate-reason' && p.includes('x-scopegate-')))
    problems.push('allowed_client_headers: lets identity or metadata headers reach the client');
  missing('dynamic_metadata_from_headers', response?.dynamic_metadata_from_headers, [
    'prefix:x-scopegate-meta-',
  ]);
  if (service?.path_prefix !== undefined) problems.push('path_prefix: set (scopegate is run without one)');
  return problems;
}

describe('envoy-http.yaml', () => {
  const http = parse(readFileSync(join(ENVOY_DIR, 'envoy-http.yaml'), 'utf8'));
  const plain = parse(readFileSync(join(ENVOY_DIR, 'envoy.yaml'), 'utf8'));
  const extAuthz = (config: Bootstrap) => connectionManager(config).http_filters[0].typed_config;

  it('is envoy.yaml but for how scopegate is asked: routes, limits, failure handling and the upstream alike', () => {
    const { route_config, access_log, http_filters, ...manager } = connectionManager(http);
    const plainManager = connectionManager(plain);
    expect(route_config).toEqual(plainManager.route_config);
    expect({ ...manager, route_config: 0, access_log: 0, http_filters: 0 }).toEqual({
      ...plainManager,
      route_config: 0,
      access_log: 0,
      http_filters: 0,
    });
    expect(http_filters.map((f: Bootstrap) => f.name)).toEqual(
      plainManager.http_filters.map((f: Bootstrap) => f.name),
    );
    const { http_service, allowed_headers, ...rest } = extAuthz(http);
    // The peer certificate is not part of what http_service sends: envoy.yaml's include_peer_certificate is left out.
    const { grpc_service, include_peer_certificate, ...plainRest } = extAuthz(plain);
    expect(rest).toEqual(plainRest);
    expect(http_service.server_uri).toMatchObject({
      cluster: 'scopegate_http',
      timeout: grpc_service.timeout,
    });
    const [authz, ...others] = http.static_resources.clusters;
    expect(authz).toMatchObject({ name: 'scopegate_http', connect_timeout: '0.25s' });
    expect(authz.typed_extension_protocol_options).toBeUndefined();
    expect(others).toEqual(plain.static_resources.clusters.slice(1));
  });

  it('logs the same fields as envoy.yaml, read from the metadata scopegate’s x-scopegate-meta-* headers make', () => {
    const format = (config: Bootstrap) =>
      connectionManager(config).access_log[0].typed_config.log_format.json_format;
    const fromHeaders = Object.fromEntries(
      Object.entries(format(http)).map(([field, value]) => [
        field,
        String(value).replace(/ext_authz:x-scopegate-meta-/, 'ext_authz:'),
      ]),
    );
    expect(fromHeaders).toEqual(format(plain));
    expect(JSON.stringify(format(http))).toContain('ext_authz:x-scopegate-meta-reason');
  });

  it('passes scopegate what it reads and lets through what it answers', () => {
    expect(httpServiceProblems(extAuthz(http))).toEqual([]);
  });

  it('the check can fail: a client header unsent, an identity header dropped, metadata shown to clients', () => {
    const broken = extAuthz(structuredClone(http));
    broken.allowed_headers.patterns = broken.allowed_headers.patterns.filter(
      (p: Bootstrap) => p.prefix !== 'x-scopegate-',
    );
    const response = broken.http_service.authorization_response;
    response.allowed_upstream_headers.patterns.shift();
    response.allowed_client_headers.patterns.push({ prefix: 'x-scopegate-meta-' });
    broken.http_service.authorization_request = { allowed_headers: { patterns: [] } };
    expect(httpServiceProblems(broken)).toEqual([
      'allowed_headers: no prefix:x-scopegate-',
      'authorization_request.allowed_headers: deprecated; the filter’s allowed_headers says it',
      'allowed_upstream_headers: no exact:x-scopegate-subject',
      'allowed_client_headers: lets identity or metadata headers reach the client',
    ]);
  });
});

describe('envoy-policy-set.yaml', () => {
  const policySet = parse(readFileSync(join(ENVOY_DIR, 'envoy-policy-set.yaml'), 'utf8'));
  const plain = parse(readFileSync(join(ENVOY_DIR, 'envoy.yaml'), 'utf8'));

  it('asks scopegate exactly as envoy.yaml does: the same ext_authz filter and clusters', () => {
    expect(connectionManager(policySet).http_filters).toEqual(connectionManager(plain).http_filters);
    expect(policySet.static_resources.clusters).toEqual(plain.static_resources.clusters);
  });

  it('names a policy of examples/mesh per virtual host, and none on the catch-all', () => {
    expect(meshPolicies.sort()).toEqual(['inventory', 'shipments']);
    expect(contextExtensionProblems(policySet, meshPolicies)).toEqual([]);
    const hosts = connectionManager(policySet).route_config.virtual_hosts;
    expect(hosts.map((h: { domains: string[] }) => h.domains[0])).toEqual([
      'inventory.example.com',
      'shipments.example.com',
      '*',
    ]);
  });

  it('the check can fail: a misspelt policy name, an extension on the catch-all, a route overriding it', () => {
    const broken = structuredClone(policySet);
    const [inventory, shipments, catchAll] = connectionManager(broken).route_config.virtual_hosts;
    inventory.typed_per_filter_config[
      'envoy.filters.http.ext_authz'
    ].check_settings.context_extensions.scopegate_policy = 'inventroy';
    catchAll.typed_per_filter_config = shipments.typed_per_filter_config;
    shipments.routes[0].typed_per_filter_config = {};
    expect(contextExtensionProblems(broken, meshPolicies)).toEqual([
      'inventory: names no policy of the set (inventroy)',
      "shipments: a route overrides the virtual host's ext_authz settings",
      'unowned: the catch-all names a policy (shipments)',
    ]);
  });
});

/**
 * What makes envoy-mtls.yaml's peer trustworthy: every filter chain requires a client certificate, validates
 * it against a CA file (never accepting untrusted chains) and only for this trust domain's SPIFFE IDs, sends
 * it to scopegate, and removes a client's own x-forwarded-client-cert.
 */
function peerTrustProblems(config: Bootstrap): string[] {
  const problems: string[] = [];
  for (const listener of config.static_resources.listeners) {
    for (const chain of listener.filter_chains) {
      const where = listener.name;
      const tls = chain.transport_socket?.typed_config;
      if (tls?.['@type'] !== DOWNSTREAM_TLS) {
        problems.push(`${where}: a filter chain without TLS`);
        continue;
      }
      if (tls.require_client_certificate !== true) problems.push(`${where}: client certificate optional`);
      const validation = tls.common_tls_context?.validation_context ?? {};
      if (typeof validation.trusted_ca?.filename !== 'string')
        problems.push(`${where}: no CA file to validate`);
      if ((validation.trust_chain_verification ?? 'VERIFY_TRUST_CHAIN') !== 'VERIFY_TRUST_CHAIN')
        problems.push(`${where}: accepts untrusted chains`);
      const sans = validation.match_typed_subject_alt_names ?? [];
      if (
        !sans.some((m: Bootstrap) => m.san_type === 'URI' && m.matcher?.prefix === 'spiffe://cluster.local/')
      )
        problems.push(`${where}: any subject alternative name accepted`);
      const manager = chain.filters[0].typed_config;
      if ((manager.forward_client_cert_details ?? 'SANITIZE') !== 'SANITIZE')
        problems.push(`${where}: passes on a client's x-forwarded-client-cert`);
      for (const filter of manager.http_filters)
        if (
          filter.name === 'envoy.filters.http.ext_authz' &&
          filter.typed_config.include_peer_certificate !== true
        )
          problems.push(`${where}: ext_authz is not sent the peer certificate`);
    }
  }
  return problems;
}
const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

describe('envoy-mtls.yaml', () => {
  const mtls = parse(readFileSync(join(ENVOY_DIR, 'envoy-mtls.yaml'), 'utf8'));
  const plain = parse(readFileSync(join(ENVOY_DIR, 'envoy.yaml'), 'utf8'));

  it('asks scopegate exactly as envoy.yaml does: the same ext_authz filter and clusters', () => {
    expect(connectionManager(mtls).http_filters).toEqual(connectionManager(plain).http_filters);
    expect(mtls.static_resources.clusters).toEqual(plain.static_resources.clusters);
    expect(connectionManager(mtls).route_config).toEqual(connectionManager(plain).route_config);
  });

  it('lets in only clients with a certificate from the CA, naming a SPIFFE ID, and sends it to scopegate', () => {
    expect(peerTrustProblems(mtls)).toEqual([]);
  });

  it('the check can fail: optional or untrusted client certificates, XFCC passed on, no certificate sent', () => {
    const broken = structuredClone(mtls);
    const chain = broken.static_resources.listeners[0].filter_chains[0];
    const tls = chain.transport_socket.typed_config;
    tls.require_client_certificate = false;
    tls.common_tls_context.validation_context.trust_chain_verification = 'ACCEPT_UNTRUSTED';
    delete tls.common_tls_context.validation_context.match_typed_subject_alt_names;
    chain.filters[0].typed_config.forward_client_cert_details = 'ALWAYS_FORWARD_ONLY';
    delete chain.filters[0].typed_config.http_filters[0].typed_config.include_peer_certificate;
    expect(peerTrustProblems(broken)).toEqual([
      'inventory_api_mtls: client certificate optional',
      'inventory_api_mtls: accepts untrusted chains',
      'inventory_api_mtls: any subject alternative name accepted',
      "inventory_api_mtls: passes on a client's x-forwarded-client-cert",
      'inventory_api_mtls: ext_authz is not sent the peer certificate',
    ]);
    // And a plaintext listener is no peer's listener at all.
    expect(peerTrustProblems(plain)).toEqual(['inventory_api: a filter chain without TLS']);
  });
});

describe('local rewrite', () => {
  it.each(configCases)(
    '%s: only addresses move to 127.0.0.1, every filter stays as shipped',
    (_name, file) => {
      const shipped = parse(readFileSync(file, 'utf8'));
      const local = parse(localConfig(file));
      expect(withoutAddresses(local)).toEqual(withoutAddresses(shipped));
      // Certificate files are the only files a config names, and only the TLS one names them.
      expect(fileNames(local)).toEqual(
        servesTls(file) ? [TLS.certificateChain, TLS.privateKey, TLS.trustedCa] : [],
      );
      const addresses = socketAddresses(local);
      expect(new Set(addresses.map((address) => address.split(':')[0]))).toEqual(new Set(['127.0.0.1']));
      const ports = addresses.map((address) => Number(address.split(':')[1]));
      expect(ports).toEqual(expect.arrayContaining([PORTS.inventory, PORTS.listener, PORTS.admin]));
      // One scopegate door per config: gRPC, or HTTP for envoy-http.yaml.
      expect(ports.filter((port) => port === PORTS.scopegate || port === PORTS.scopegateHttp)).toEqual([
        basename(file) === 'envoy-http.yaml' ? PORTS.scopegateHttp : PORTS.scopegate,
      ]);
      const types = (local.static_resources.clusters as Array<{ type: string }>).map(
        (cluster) => cluster.type,
      );
      expect(new Set(types)).toEqual(new Set(['STATIC']));
    },
  );

  it('the jwt_authn config needs the dev issuer port and says so', () => {
    const { devIssuer: _, ...withoutIssuer } = PORTS;
    expect(() => localEnvoyConfig(join(ENVOY_DIR, 'envoy-jwt-authn.yaml'), withoutIssuer)).toThrow(
      /no local port given for cluster "dev_issuer"/,
    );
  });

  it('the HTTP config needs the port of scopegate’s --http door and says so', () => {
    const { scopegateHttp: _, ...withoutHttp } = PORTS;
    expect(() => localEnvoyConfig(join(ENVOY_DIR, 'envoy-http.yaml'), withoutHttp)).toThrow(
      /no local port given for cluster "scopegate_http"/,
    );
  });

  it('the mTLS config needs certificate files and says so; a plaintext config refuses them', () => {
    expect(() => localEnvoyConfig(join(ENVOY_DIR, 'envoy-mtls.yaml'), PORTS)).toThrow(
      /listener 0 serves TLS; no local certificate files given/,
    );
    expect(() => localEnvoyConfig(join(ENVOY_DIR, 'envoy.yaml'), PORTS, TLS)).toThrow(
      /certificate files given, but no listener serves TLS/,
    );
  });
});

describe('findEnvoy', () => {
  it('takes ENVOY_BIN first, as given', () => {
    expect(findEnvoy({ ENVOY_BIN: '/opt/custom/envoy', PATH: '' })).toBe('/opt/custom/envoy');
  });

  it('finds an executable envoy on the PATH (after the repo .venv, when the install script has run)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopegate-path-'));
    const fake = join(dir, 'envoy');
    writeFileSync(fake, '#!/bin/sh\n');
    chmodSync(fake, 0o755);
    expect([fake, join(repoRoot(), '.venv', 'bin', 'envoy')]).toContain(findEnvoy({ PATH: dir }));
  });
});

describe.skipIf(skipWithoutEnvoy)(suiteName('envoy --mode validate'), () => {
  it('an Envoy binary is there to run (under CI=true a missing one fails here, with the fix)', async () => {
    const { stdout } = await run(requireEnvoy(), ['--version'], { timeout: 20_000 });
    expect(stdout).toMatch(/version: [0-9a-f]+\/1\.\d+\.\d+\//);
  });

  // Envoy reads certificate files even to validate, so the mTLS config is checked below, with certificates.
  const plaintextCases = configCases.filter(([, file]) => !servesTls(file));

  it.each(plaintextCases)('accepts %s as shipped', async (_name, file) => {
    expect(await validate(file)).toContain('OK');
  });

  it.each(plaintextCases)('accepts %s rewritten for loopback', async (_name, file) => {
    const local = join(mkdtempSync(join(tmpdir(), 'scopegate-validate-')), 'envoy.yaml');
    writeFileSync(local, localEnvoyConfig(file, PORTS));
    expect(await validate(local)).toContain('OK');
  });

  it('rejects a config with a misspelt field (the check can fail)', async () => {
    const broken = join(mkdtempSync(join(tmpdir(), 'scopegate-validate-')), 'envoy.yaml');
    const text = readFileSync(join(ENVOY_DIR, 'envoy.yaml'), 'utf8').replace(
      'failure_mode_allow',
      'failure_mode_alow',
    );
    writeFileSync(broken, text);
    await expect(validate(broken)).rejects.toThrow();
  });
});

describe.skipIf(skipWithoutEnvoy || skipWithoutOpenssl)(
  suiteName(opensslSuiteName('envoy --mode validate, with certificates')),
  () => {
    const tlsCases = configCases.filter(([, file]) => servesTls(file));

    it('the mTLS config is among them', () => {
      expect(tlsCases.map(([name]) => name)).toEqual(['envoy-mtls.yaml']);
    });

    it.each(tlsCases)(
      'accepts %s as shipped, with /etc/envoy/tls holding a CA and a server certificate',
      async (_name, file) => {
        const pki = await makePki();
        try {
          const ca = await pki.authority('ca');
          await ca.server('server');
          const config = join(pki.dir, 'envoy.yaml');
          writeFileSync(config, readFileSync(file, 'utf8').replaceAll('/etc/envoy/tls/', `${pki.dir}/`));
          expect(await validate(config)).toContain('OK');
        } finally {
          await pki.remove();
        }
      },
    );

    it.each(tlsCases)('accepts %s rewritten for loopback', async (_name, file) => {
      const pki = await makePki();
      try {
        const ca = await pki.authority('ca');
        const server = await ca.server('server');
        const config = join(pki.dir, 'envoy.yaml');
        const tls = { certificateChain: server.certFile, privateKey: server.keyFile, trustedCa: ca.certFile };
        writeFileSync(config, localEnvoyConfig(file, PORTS, tls));
        expect(await validate(config)).toContain('OK');
      } finally {
        await pki.remove();
      }
    });
  },
);
