// What the deploy pieces assume of scopegate, held against the real thing: the central overlay's policy
// directory (rendered, laid out as its projected volume lays it out, its JWKS URI pointed at a local key
// server) served by `scopegate serve --policy DIR` in-process, and asked over real gRPC Check calls.
//   - Envoy (envoy/envoy-policy-set.yaml) and Envoy Gateway (deploy/envoy-gateway) name policies in
//     `scopegate_policy` that the set serves, and each comes back as `policy` in the ext_authz dynamic metadata
//     that Envoy's access log reads (every key it reads is one scopegate writes);
//   - Istio's two services are chosen by their SPIFFE IDs, and the calling workload Istio sends
//     (`source.principal`, no certificate) opens the inventory policy's peer routes; without it, peer_missing;
//   - a policy_unknown deny is logged with the fields the runbook sends an SRE to (request_id, detail), and
//     without the request's host or policy name, which the runbook must not promise;
//   - a file added broken later is counted under its file's name in a series that did not exist before (so
//     ScopegatePolicyReloadFailed must catch a series that appears at 1, as alerts.test.yaml shows), and a
//     rejected edit of a served policy in its existing series; the runbook quotes the log lines as written.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { serveSettings } from '../../src/config/settings.js';
import { type Running, startServer } from '../../src/server/app.js';
import { Metrics } from '../../src/telemetry/metrics.js';
import { checkRequestFor, type HttpCall } from '../../src/wire/check-request.js';
import type { ReceivedCheckResponse } from '../../src/wire/proto.js';
import {
  type AuthorizationConnection,
  connectAuthorization,
  deniedHttpStatus,
} from '../support/grpc-client.js';
import { type JwksServer, startJwksServer } from '../support/jwks-server.js';
import { type CapturedLog, captureLog } from '../support/logs.js';
import { mintToken, newSigningKey, type SigningKey } from '../support/tokens.js';
import { podTemplates, policyFiles } from './checks.js';
import { type K8sObject, kustomizeSuiteName, render, repoRoot, skipWithoutKustomize } from './kustomize.js';

// biome-ignore lint/suspicious/noExplicitAny: rendered objects and Envoy config, read field by field.
type Any = any;

const ISSUER = 'https://idp.example.com/';
const AUDIENCE = 'https://gateway.example.com';
const SHIPPED_JWKS = 'https://idp.example.com/.well-known/jwks.json';

/** What a Check answered, as Envoy and its access log see it. */
interface Answered {
  readonly metadata: Record<string, string>;
  readonly status: number;
}

function answered(raw: ReceivedCheckResponse): Answered {
  const fields = raw.dynamic_metadata?.fields ?? {};
  return {
    metadata: Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v.string_value)])),
    status: deniedHttpStatus(raw) ?? 200,
  };
}

/** envoy/envoy-policy-set.yaml's listener: its virtual hosts and the ext_authz metadata its access log reads. */
function envoyPolicySet(): { hosts: Array<{ domain: string; policy?: string }>; loggedKeys: string[] } {
  const config = parse(readText('envoy/envoy-policy-set.yaml'));
  const manager = config.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
  const hosts = manager.route_config.virtual_hosts.map((v: Any) => ({
    domain: v.domains[0],
    policy:
      v.typed_per_filter_config?.['envoy.filters.http.ext_authz']?.check_settings?.context_extensions
        ?.scopegate_policy,
  }));
  const format = JSON.stringify(manager.access_log[0].typed_config.log_format.json_format);
  const loggedKeys = [...format.matchAll(/%DYNAMIC_METADATA\(envoy\.filters\.http\.ext_authz:(\w+)\)%/g)].map(
    (m) => m[1]!,
  );
  return { hosts, loggedKeys };
}

function readText(path: string): string {
  return readFileSync(join(repoRoot, path), 'utf8');
}

describe.skipIf(skipWithoutKustomize)(kustomizeSuiteName('the central policy set, served'), () => {
  let key: SigningKey;
  let jwks: JwksServer;
  let dir: string;
  let captured: CapturedLog;
  let running: Running;
  let grpc: AuthorizationConnection;
  let served: Map<string, { hosts: string[]; destinationPrincipals: string[] }>;
  /** The policy files' text, as the overlay ships them. */
  let policyTexts: string[];

  const check = async (call: Omit<HttpCall, 'headers'> & { headers?: HttpCall['headers'] }) =>
    answered(await grpc.check(checkRequestFor({ headers: [], ...call })));
  const scrape = async () => (await fetch(`http://${running.adminAddress}/metrics`)).text();
  const series = (text: string, name: string, labels: string) =>
    text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));

  beforeAll(async () => {
    key = await newSigningKey('RS256');
    jwks = await startJwksServer([key.publicJwk]);
    const central = render('deploy/kubernetes/overlays/central');
    const volume = podTemplates(central)[0]!.template.spec!.volumes!.find((v) => v.name === 'policies')!;
    const { files, problems } = policyFiles(central, volume);
    expect(problems).toEqual([]);
    dir = mkdtempSync(join(tmpdir(), 'scopegate-central-'));
    served = new Map();
    policyTexts = files.map((f) => f.text);
    for (const file of files) {
      expect(file.text).toContain(SHIPPED_JWKS);
      writeFileSync(join(dir, file.path), file.text.replaceAll(SHIPPED_JWKS, jwks.uri));
      const { name, match } = parse(file.text);
      served.set(name, { hosts: match.hosts, destinationPrincipals: match.destinationPrincipals });
    }
    captured = captureLog('info');
    const settings = serveSettings(
      ['--policy', dir, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--jwks-timeout-ms', '2000'],
      {},
    );
    running = await startServer(settings, captured.log, new Metrics());
    grpc = connectAuthorization(running.grpcAddress);
  }, 60_000);
  afterAll(async () => {
    grpc?.close();
    await running?.stop();
    await jwks?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the two policies of the overlay, ready', async () => {
    expect(running.policies().map((p) => p.name)).toEqual(['inventory', 'shipments']);
    expect((await fetch(`http://${running.adminAddress}/readyz`)).status).toBe(200);
  });

  it("each of envoy-policy-set.yaml's virtual hosts gets its policy; the catch-all gets policy_unknown", async () => {
    const { hosts } = envoyPolicySet();
    expect(hosts.filter((h) => h.policy !== undefined).length).toBeGreaterThan(1);
    for (const { domain, policy } of hosts) {
      const host = domain === '*' ? 'nobody.example.com' : domain;
      const answer = await check({
        method: 'GET',
        path: '/',
        host,
        ...(policy !== undefined && { contextExtensions: { scopegate_policy: policy } }),
      });
      if (policy === undefined) {
        expect(answer.metadata, host).toMatchObject({ reason: 'policy_unknown' });
        expect(answer.metadata.policy, host).toBeUndefined();
        expect(answer.status, host).toBe(403);
      } else expect(answer.metadata.policy, host).toBe(policy);
    }
  });

  it('every ext_authz metadata key its access log reads is one scopegate writes (an allowed request)', async () => {
    const token = await mintToken(key, {
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'svc-inventory-sync',
      client_id: 'inventory-sync',
      gty: 'client_credentials',
      scope: 'inventory.read',
    });
    const answer = await check({
      method: 'GET',
      path: '/api/inventory/transactions',
      token,
      host: 'inventory.example.com',
      contextExtensions: { scopegate_policy: 'inventory' },
    });
    expect(answer.metadata).toMatchObject({
      decision: 'allow',
      policy: 'inventory',
      subject: 'svc-inventory-sync',
    });
    const { loggedKeys } = envoyPolicySet();
    expect(loggedKeys).toContain('policy');
    expect(loggedKeys.filter((k) => !(k in answer.metadata))).toEqual([]);
  });

  it('each Envoy Gateway SecurityPolicy gets the policy it names, and its route hosts get it without the name', async () => {
    const objects = render('deploy/envoy-gateway') as Any[];
    const policies = objects.filter((o: K8sObject) => o.kind === 'SecurityPolicy');
    expect(policies.length).toBeGreaterThan(1);
    for (const policy of policies) {
      const name = policy.spec.extAuth.contextExtensions[0].value;
      const route = objects.find(
        (o) => o.kind === 'HTTPRoute' && o.metadata.name === policy.spec.targetRefs[0].name,
      );
      for (const host of route.spec.hostnames) {
        const named = await check({
          method: 'GET',
          path: '/',
          host,
          contextExtensions: { scopegate_policy: name },
        });
        expect(named.metadata.policy, `${host} named ${name}`).toBe(name);
        expect((await check({ method: 'GET', path: '/', host })).metadata.policy, host).toBe(name);
      }
    }
  });

  it("each policy's workload, called through Istio, is chosen by its SPIFFE ID whatever the host", async () => {
    for (const [name, { destinationPrincipals }] of served)
      for (const principal of destinationPrincipals) {
        const answer = await check({
          method: 'GET',
          path: '/',
          host: '10.0.0.1:8080',
          destinationPrincipal: principal,
        });
        expect(answer.metadata.policy, principal).toBe(name);
      }
  });

  describe('calling workloads, as the sidecar of an Istio workload in STRICT mTLS sends them', () => {
    // Istio's gRPC provider sends the caller's verified SPIFFE ID as `source.principal`, never the certificate
    // (it has no include_peer_certificate), and the called workload's as `destination.principal`.
    const INVENTORY = 'spiffe://cluster.local/ns/inventory/sa/inventory';
    const ORDERS = 'spiffe://cluster.local/ns/orders/sa/orders-api';
    const REPORTS = 'spiffe://cluster.local/ns/reporting/sa/weekly-report';
    const INGRESS = 'spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account';
    const toInventory = (call: Omit<HttpCall, 'headers'> & { headers?: HttpCall['headers'] }) =>
      check({ host: 'inventory.inventory:8080', destinationPrincipal: INVENTORY, ...call });
    const reservation = async (peer: string | undefined) =>
      toInventory({
        method: 'POST',
        path: '/api/inventory/reservations',
        token: await mintToken(key, {
          iss: ISSUER,
          aud: AUDIENCE,
          sub: 'svc-inventory-sync',
          client_id: 'inventory-sync',
          gty: 'client_credentials',
          scope: 'inventory.write',
        }),
        headers: [['content-type', 'application/json']],
        body: JSON.stringify({ location: 'WH01', item: 'ITEM001', quantity: 2 }),
        ...(peer !== undefined && { peer }),
      });

    const expectDenied = (answer: Answered, reason: string) => {
      expect(answer.status).toBe(403);
      expect(answer.metadata).toMatchObject({ decision: 'deny', reason, policy: 'inventory' });
    };

    it("every peer of every served policy is Istio's SPIFFE form, in the trust domain of the mesh's workloads", () => {
      const trustDomains = new Set(
        [...served.values()].flatMap((p) => p.destinationPrincipals.map((id) => new URL(id).host)),
      );
      expect([...trustDomains]).toEqual(['cluster.local']);
      const peers = policyTexts.flatMap((text) => Object.keys(parse(text).peers ?? {}));
      expect(peers.length).toBeGreaterThan(0);
      for (const peer of peers)
        expect(peer).toMatch(/^spiffe:\/\/cluster\.local\/ns\/[a-z0-9-]+\/sa\/([a-z0-9-]+|\*)$/);
    });

    it('the orders service reserves stock for its user; the same user through the ingress gateway does not', async () => {
      expect((await reservation(ORDERS)).metadata).toMatchObject({
        decision: 'allow',
        policy: 'inventory',
        route: 'reserve_stock',
        subject: 'svc-inventory-sync',
        peer: ORDERS,
      });
      // From outside, the peer is the gateway (its sidecar's identity), which the policy does not list.
      expectDenied(await reservation(INGRESS), 'peer_not_allowed');
    });

    it('a reporting workload reads the stock report; a plaintext caller (PERMISSIVE) is peer_missing', async () => {
      const report = { method: 'GET', path: '/api/inventory/reports/stock' };
      expect((await toInventory({ ...report, peer: REPORTS })).metadata).toMatchObject({
        decision: 'allow',
        route: 'stock_report',
        peer: REPORTS,
      });
      // Like a request without a token, a caller without an identity is not told (nor counted) which route.
      expectDenied(await toInventory(report), 'peer_missing');
      expectDenied(await reservation(undefined), 'peer_missing');
      expect(await scrape()).toMatch(
        /^scopegate_decisions_total\{decision="deny",reason="peer_missing",route="",policy="inventory",transport="grpc"\} 2$/m,
      );
    });
  });

  it('a policy_unknown deny is logged with request_id and a detail naming the host or the policy name asked for', async () => {
    const before = captured.lines.length;
    await check({ method: 'GET', path: '/', host: 'nobody.example.com' });
    await check({
      method: 'GET',
      path: '/',
      host: 'inventory.example.com',
      contextExtensions: { scopegate_policy: 'billing' },
    });
    const lines = captured.lines.slice(before).filter((l) => l.reason === 'policy_unknown');
    expect(lines.length).toBe(2);
    for (const line of lines) {
      expect(Object.keys(line).sort()).toEqual(
        [
          'decision',
          'detail',
          'duration_ms',
          'level',
          'msg',
          'policy_revision',
          'reason',
          'request_id',
          'service',
          'time',
          'transport',
        ].sort(),
      );
      expect(line).toMatchObject({
        msg: 'decision',
        decision: 'deny',
        policy_revision: '',
        transport: 'grpc',
      });
    }
    // The detail says which rule failed and on what: the host no policy claims, or the name no file has.
    expect(lines[0]!.detail).toBe(
      'no policy owns host "nobody.example.com" (by context extension, destination principal or host)',
    );
    expect(lines[1]!.detail).toContain('"billing"');
    expect(lines[1]!.detail).toContain('scopegate_policy');
  });

  it('the ScopegateRequestsWithoutPolicy runbook sends the SRE to what that line has, not to a host it lacks', () => {
    const rules = parse(readText('deploy/prometheus/alerts.yaml')).groups[0].rules as Any[];
    const runbook = rules.find((r) => r.alert === 'ScopegateRequestsWithoutPolicy').annotations
      .runbook as string;
    expect(runbook).toContain('request_id');
    expect(runbook).toMatch(/access log/);
    expect(runbook).toMatch(/detail names the policy/);
  });

  describe('files that cannot be served', () => {
    it('a file added broken later: counted under its file name in a new series, logged, noted, its requests policy_unknown', async () => {
      const errorSeries = 'policy="billing",result="error"';
      expect(series(await scrape(), 'scopegate_policy_reloads_total', errorSeries)).toBeUndefined();
      const before = captured.lines.length;
      writeFileSync(join(dir, 'billing.yaml'), 'version: 1\nname: invoices\nroutes: [oops\n');
      expect(await running.reload()).toBe(false);
      const text = await scrape();
      // Appears at 1, not 0 then 1: alerts.test.yaml has ScopegatePolicyReloadFailed fire on such a series.
      expect(series(text, 'scopegate_policy_reloads_total', errorSeries)).toBe(
        `scopegate_policy_reloads_total{${errorSeries}} 1`,
      );
      expect(text).not.toContain('policy="invoices"');
      expect(series(text, 'scopegate_policy_revision_info', 'policy="billing"')).toBeUndefined();
      const logged = captured.lines.slice(before).find((l) => l.level === 'error');
      expect(logged).toMatchObject({ msg: 'policy file not served', policy_file: join(dir, 'billing.yaml') });
      expect((logged!.problems as string[]).length).toBeGreaterThan(0);
      const ready = await fetch(`http://${running.adminAddress}/readyz`);
      expect(ready.status).toBe(200);
      expect(JSON.stringify(await ready.json())).toContain('billing.yaml');
      const answer = await check({
        method: 'GET',
        path: '/',
        contextExtensions: { scopegate_policy: 'billing' },
      });
      expect(answer.metadata.reason).toBe('policy_unknown');
    });

    it('a broken edit of a served policy: counted in its existing series, logged with its last good revision', async () => {
      const errorSeries = 'policy="shipments",result="error"';
      expect(series(await scrape(), 'scopegate_policy_reloads_total', errorSeries)).toBe(
        `scopegate_policy_reloads_total{${errorSeries}} 0`,
      );
      const revision = running.policies().find((p) => p.name === 'shipments')!.revision;
      const before = captured.lines.length;
      writeFileSync(join(dir, 'shipments.yaml'), 'version: 1\nname: shipments\nroutes: [oops\n');
      expect(await running.reload()).toBe(false);
      expect(series(await scrape(), 'scopegate_policy_reloads_total', errorSeries)).toBe(
        `scopegate_policy_reloads_total{${errorSeries}} 1`,
      );
      expect(captured.lines.slice(before).find((l) => l.level === 'error')).toMatchObject({
        msg: 'policy change rejected; still serving its last good revision',
        policy: 'shipments',
        policy_file: join(dir, 'shipments.yaml'),
        policy_revision: revision,
      });
      const answer = await check({
        method: 'GET',
        path: '/',
        contextExtensions: { scopegate_policy: 'shipments' },
      });
      expect(answer.metadata).toMatchObject({ policy: 'shipments', policy_revision: revision });
    });

    it('the ScopegatePolicyReloadFailed runbook quotes those log lines as scopegate writes them', () => {
      const rules = parse(readText('deploy/prometheus/alerts.yaml')).groups[0].rules as Any[];
      const runbook = rules.find((r) => r.alert === 'ScopegatePolicyReloadFailed').annotations
        .runbook as string;
      const logged = new Set(captured.lines.map((l) => l.msg));
      const quoted = [...runbook.matchAll(/`([^`]+)`/g)]
        .map((m) => m[1]!)
        .filter((q) => !q.startsWith('scopegate '));
      expect(quoted).toEqual([
        'policy change rejected; still serving its last good revision',
        'policy file not served',
      ]);
      for (const message of quoted) expect(logged.has(message), message).toBe(true);
    });
  });
});
