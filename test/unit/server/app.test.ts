// `serve` in-process: the policy is loaded and compiled before any port is bound (a broken one is a
// PolicyLoadError naming FILE:LINE:COL), revisions swap live with the last good one kept on a broken edit,
// the verified-token cache is shared by every revision, and stop() drains and closes what was opened, all
// within the drain time (a traced server's flush included); a start that fails while listening closes it all.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { serveSettings } from '../../../src/config/settings.js';
import { KeyRegistry } from '../../../src/identity/index.js';
import { PolicySource } from '../../../src/policy/source.js';
import { PolicyLoadError, startServer } from '../../../src/server/app.js';
import { CertificateFiles } from '../../../src/server/tls.js';
import { DecisionRecords } from '../../../src/telemetry/decision-records.js';
import { createLogger } from '../../../src/telemetry/log.js';
import { Metrics } from '../../../src/telemetry/metrics.js';
import { makePki, opensslSuiteName, type Pki, skipWithoutOpenssl } from '../../support/certs.js';
import { connectHealth } from '../../support/grpc-client.js';
import { sendHttp } from '../../support/http-front.js';
import { captureLog } from '../../support/logs.js';
import { examplePolicyText } from '../../support/policies.js';
import { freePort } from '../../support/reverse-proxies.js';
import { type Harness, type HarnessOptions, onlySnapshot, startHarness } from '../../support/scopegate.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

async function harness(options: HarnessOptions = {}): Promise<Harness> {
  h = await startHarness(undefined, options);
  return h;
}

const LIST = '/api/inventory/transactions';
const GRANT_WH03 = (text: string) =>
  text.replace('locations: [WH01, WH02, "EU-*"]', 'locations: [WH01, WH02, WH03, "EU-*"]');

describe('starting', () => {
  it('a broken policy is a PolicyLoadError naming file, line and column, counted as a failed load', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopegate-app-'));
    const file = join(dir, 'policy.yaml');
    writeFileSync(
      file,
      examplePolicyText().replace(
        'permissions: [INV_TRANSACTION_READ]',
        'permissions: [INV_TRANSACTON_READ]',
      ),
    );
    const metrics = new Metrics({ defaultMetrics: false });
    const settings = serveSettings(
      ['--policy', file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'],
      {},
    );
    const started = startServer(settings, createLogger('silent'), metrics);
    await expect(started).rejects.toBeInstanceOf(PolicyLoadError);
    await expect(started).rejects.toThrow(
      new RegExp(`^${file}:\\d+:\\d+: routes\\[0\\]\\.permissions\\[0\\]: `),
    );
    expect(await metrics.registry.metrics()).toContain(
      'scopegate_policy_reloads_total{policy="",result="error"} 1',
    );
  });

  it('serves gRPC and admin on the addresses it reports, and names the revision it serves', async () => {
    const { running, metrics } = await harness();
    expect(running.grpcAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    expect((await fetch(`http://${running.adminAddress}/healthz`)).status).toBe(200);
    const revision = running.policies()[0]!.revision;
    expect(await metrics.registry.metrics()).toContain(
      `scopegate_policy_revision_info{policy="inventory",revision="${revision}"} 1`,
    );
    expect(running.readiness().problems).toEqual([]);
  });

  it('without the admin edge (a worker of serve --workers N) there is no admin address', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopegate-app-'));
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, examplePolicyText());
    const settings = serveSettings(
      ['--policy', file, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'],
      {},
    );
    const running = await startServer(
      settings,
      createLogger('silent'),
      new Metrics({ defaultMetrics: false }),
      {
        admin: false,
      },
    );
    try {
      expect(running.adminAddress).toBe('');
      expect(running.grpcAddress).toMatch(/^127\.0\.0\.1:\d+$/);
    } finally {
      await running.stop();
    }
  });

  it('an issuer whose keys cannot be fetched is a readiness problem naming the issuer', async () => {
    const { running } = await harness({ jwksDown: true });
    expect(running.readiness().problems.join('\n')).toContain('https://dev-issuer.scopegate.local/');
  });
});

describe('a start that fails while listening leaves nothing behind', () => {
  afterEach(() => vi.restoreAllMocks());

  /** A server holding 127.0.0.1:`port` (0: any), as another process would; rejects when the port is taken. */
  async function hold(port = 0): Promise<Server> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
    return server;
  }
  const release = (server: Server) => new Promise<void>((resolve) => server.close(() => resolve()));

  /**
   * `serve` with gRPC, both front doors, admin and decision records, `taken`'s port held by another server:
   * the start fails with EADDRINUSE, and every port it bound can be bound again.
   */
  async function failToStart(taken: 'admin' | 'forward-auth', flags: string[] = []): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'scopegate-app-'));
    writeFileSync(join(dir, 'policy.yaml'), examplePolicyText());
    const held = await hold();
    const ports = {
      listen: await freePort(),
      http: await freePort(),
      'forward-auth': await freePort(),
      admin: await freePort(),
      [taken]: (held.address() as { port: number }).port,
    };
    const settings = serveSettings(
      [
        ...['--policy', join(dir, 'policy.yaml'), '--decision-log', join(dir, 'decisions.jsonl')],
        ...Object.entries(ports).flatMap(([flag, port]) => [`--${flag}`, `127.0.0.1:${port}`]),
        ...flags,
      ],
      {},
    );
    try {
      await expect(
        startServer(settings, createLogger('silent'), new Metrics({ defaultMetrics: false })),
      ).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await release(held);
    }
    for (const [flag, port] of Object.entries(ports))
      if (flag !== taken) await expect(hold(port).then(release), `--${flag}`).resolves.toBeUndefined();
  }

  it.each(['admin', 'forward-auth'] as const)(
    '--%s on a port taken: the ports bound before are free again; keys, policy source and records are closed',
    async (taken) => {
      // A failed start returns nothing to ask: what closed is seen on the classes.
      const closed = {
        keys: vi.spyOn(KeyRegistry.prototype, 'close'),
        source: vi.spyOn(PolicySource.prototype, 'close'),
        records: vi.spyOn(DecisionRecords.prototype, 'close'),
      };
      await failToStart(taken);
      expect(
        Object.fromEntries(Object.entries(closed).map(([name, spy]) => [name, spy.mock.calls.length])),
      ).toEqual({ keys: 1, source: 1, records: 1 });
    },
  );

  describe.skipIf(skipWithoutOpenssl)(opensslSuiteName('with TLS'), () => {
    let pki: Pki;
    let tls: string[];
    beforeAll(async () => {
      pki = await makePki();
      const { certFile, keyFile } = await (await pki.authority('failed-start-ca')).server('scopegate');
      tls = ['--tls-cert', certFile, '--tls-key', keyFile];
    }, 30_000);
    afterAll(() => pki?.remove());

    it.each(['admin', 'forward-auth'] as const)(
      '--%s on a port taken: the certificate files are closed and no listener is left on them',
      async (taken) => {
        const heard = vi.spyOn(CertificateFiles.prototype, 'onChange');
        const closed = vi.spyOn(CertificateFiles.prototype, 'close');
        await failToStart(taken, tls);
        const files = heard.mock.contexts[0] as CertificateFiles;
        expect(closed.mock.contexts).toHaveLength(1);
        expect(closed.mock.contexts[0]).toBe(files);
        // A destroyed gRPC listener stops hearing once its server has closed, a moment later (tls.test.ts).
        await new Promise((resolve) => setImmediate(resolve));
        expect(files.listenerCount).toBe(0);
      },
    );
  });
});

describe('reloading', () => {
  it('a fixed policy swaps in: a new revision, counted and logged with both revisions', async () => {
    const captured = captureLog('info');
    const { running, policyFile, metrics } = await harness({ log: captured.log });
    const before = running.policies()[0]!.revision;
    writeFileSync(policyFile, GRANT_WH03(readFileSync(policyFile, 'utf8')));
    expect(await running.reload()).toBe(true);
    const after = running.policies()[0]!.revision;
    expect(after).not.toBe(before);
    const text = await metrics.registry.metrics();
    expect(text).toContain('scopegate_policy_reloads_total{policy="inventory",result="success"} 2');
    expect(text).toContain(`scopegate_policy_revision_info{policy="inventory",revision="${after}"} 1`);
    expect(text).not.toContain(`revision="${before}"`);
    expect(captured.lines).toContainEqual(
      expect.objectContaining({
        msg: 'policy reloaded',
        previous_revision: before,
        policy_revision: after,
        changes: { locations: 1 },
      }),
    );
  });

  it('a reload says what the change means: counted by kind, every change at debug (as scopegate diff)', async () => {
    const captured = captureLog('debug');
    const { running, policyFile, metrics } = await harness({ log: captured.log });
    const text = readFileSync(policyFile, 'utf8');
    writeFileSync(
      policyFile,
      GRANT_WH03(text).replace(
        'permissions: [INV_TRANSACTION_CREATE, INV_TRANSACTION_READ]',
        'permissions: [INV_TRANSACTION_CREATE]',
      ),
    );
    expect(await running.reload()).toBe(true);
    const scrape = await metrics.registry.metrics();
    expect(scrape).toContain('scopegate_policy_changes_total{policy="inventory",kind="locations"} 1');
    expect(scrape).toContain('scopegate_policy_changes_total{policy="inventory",kind="route_permissions"} 1');
    const diff = captured.lines.find((l) => l.msg === 'policy diff');
    expect(diff?.changes).toEqual([
      'route create_transaction: no longer requires INV_TRANSACTION_READ',
      'subject svc-inventory-sync (https://dev-issuer.scopegate.local/): locations granted WH03',
    ]);
    // Saving the same meaning again (a comment) is a new revision that changes nothing.
    writeFileSync(policyFile, `${readFileSync(policyFile, 'utf8')}\n# no change\n`);
    expect(await running.reload()).toBe(true);
    expect(captured.lines.filter((l) => l.msg === 'policy reloaded').at(-1)?.changes).toEqual({});
  });

  it('reloading an unchanged file is fine and changes nothing', async () => {
    const { running } = await harness();
    const snapshot = running.current();
    expect(await running.reload()).toBe(true);
    expect(running.current()).toBe(snapshot);
  });

  it('a broken edit is refused: the last good revision keeps serving, and the problem is logged', async () => {
    const captured = captureLog('info');
    const { running, policyFile, metrics } = await harness({ log: captured.log });
    const served = running.current();
    const snapshot = onlySnapshot(running);
    writeFileSync(policyFile, 'version: 1\nroutes: [');
    expect(await running.reload()).toBe(false);
    expect(running.current()).toBe(served);
    expect(await metrics.registry.metrics()).toContain(
      `scopegate_policy_reloads_total{policy="${snapshot.policy.name}",result="error"} 1`,
    );
    expect(captured.lines).toContainEqual(
      expect.objectContaining({
        level: 'error',
        msg: 'policy change rejected; still serving its last good revision',
        policy: snapshot.policy.name,
        policy_revision: snapshot.policy.revision,
      }),
    );
  });

  it('the verified-token cache outlives the reload; the decision cache starts afresh with the revision', async () => {
    const current = await harness();
    const token = await current.syncToken('inventory.read');
    expect((await current.send({ method: 'GET', path: LIST, token })).status).toBe(200);
    const tokenLookups = (result: string) =>
      current.sample(`scopegate_cache_lookups_total{cache="token",result="${result}"}`);
    const decisionLookups = (result: string) =>
      current.sample(`scopegate_cache_lookups_total{cache="decision",result="${result}"}`);
    expect([await tokenLookups('miss'), await tokenLookups('hit'), await decisionLookups('miss')]).toEqual([
      1, 0, 1,
    ]);

    writeFileSync(current.policyFile, GRANT_WH03(readFileSync(current.policyFile, 'utf8')));
    expect(await current.running.reload()).toBe(true);
    expect((await current.send({ method: 'GET', path: LIST, token })).status).toBe(200);
    // Not verified again: the token cache answered. The new revision's decision cache had nothing for it.
    expect([await tokenLookups('miss'), await tokenLookups('hit')]).toEqual([1, 1]);
    expect([await decisionLookups('miss'), await decisionLookups('hit')]).toEqual([2, 0]);
  });
});

describe('stopping', () => {
  it('turns health NOT_SERVING, closes both edges, and is the same drain however often it is asked', async () => {
    const { running } = await harness();
    const health = connectHealth(running.grpcAddress);
    try {
      expect(await health.watchFirst('')).toBe('SERVING');
      const stopping = running.stop();
      expect(running.stop()).toBe(stopping);
      await stopping;
      await expect(fetch(`http://${running.adminAddress}/healthz`)).rejects.toThrow();
      await expect(health.check('', 500)).rejects.toBeDefined();
    } finally {
      health.close();
    }
  });

  it('traced, a request held until the drain ends and a collector that never answers: all within the drain time', async () => {
    // A collector that takes connections and never answers them.
    const sockets = new Set<Socket>();
    const collector = createServer((socket) => void sockets.add(socket));
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    const { port } = collector.address() as { port: number };
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      // Nothing is exported before the shutdown: the flush is the only export.
      OTEL_BSP_SCHEDULE_DELAY: '60000',
    };
    // The exporter and the batch processor read these from the process's environment.
    const saved = { ...process.env };
    Object.assign(process.env, env);
    let held: Socket | undefined;
    try {
      const { running } = await harness({
        flags: ['--tracing', '--http', '127.0.0.1:0', '--drain-seconds', '2'],
        env,
      });
      const address = running.httpAddress!;
      const target = '/api/inventory/transactions';
      // One traced Check: its span waits in the queue.
      expect((await sendHttp(address, { method: 'GET', target, headers: [] })).status).toBe(401);
      // A request whose body never comes: in flight until the drain gives up on it.
      const [host, httpPort] = address.split(':');
      held = connect({ host: host!, port: Number(httpPort) }, () =>
        held!.write(`POST ${target} HTTP/1.1\r\nhost: ${address}\r\ncontent-length: 10\r\n\r\n`),
      );
      held.on('error', () => {});
      await new Promise((resolve) => setTimeout(resolve, 200));

      const started = Date.now();
      await running.stop();
      const took = Date.now() - started;
      // The drain waited for the held request (until 2 s less the flush's share, 0.5 s)...
      expect(took).toBeGreaterThanOrEqual(1_400);
      // ...and the flush, which the collector never lets finish, ended with the drain time, not after it.
      expect(took).toBeLessThan(2_000 + 400);
    } finally {
      process.env = saved;
      held?.destroy();
      for (const socket of sockets) socket.destroy();
      collector.close();
    }
  });
});
