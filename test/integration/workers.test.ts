// `serve --workers 2` as users run it: the real binary, connections from separate clients (as separate Envoys
// make), metrics read from the primary's /metrics, a policy edit and a dying worker while it serves; and both
// workers answering on the --http and --forward-auth ports too.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { checkRequestFor } from '../../src/wire/check-request.js';
import type { CheckRequest } from '../../src/wire/types.js';
import { type AuthorizationConnection, connectAuthorization } from '../support/grpc-client.js';
import { sendHttp } from '../support/http-front.js';
import { type JwksServer, startJwksServer } from '../support/jwks-server.js';
import { examplePolicyText, supportThreadClaims } from '../support/policies.js';
import { runCli, type Served, serve } from '../support/process.js';
import { parsePrometheusText } from '../support/prometheus.js';
import { promtool, promtoolSuiteName, skipWithoutPromtool } from '../support/promtool.js';
import { answerOf } from '../support/scopegate.js';
import { mintToken, newSigningKey, type SigningKey } from '../support/tokens.js';

let jwks: JwksServer;
let key: SigningKey;
let served: Served;
let policyFile: string;
let listRequest: CheckRequest;
const connections: AuthorizationConnection[] = [];

/** A client with its own connection: the primary hands each new connection to the next worker. */
function connect(): AuthorizationConnection {
  const connection = connectAuthorization(served.grpc, { ownConnection: true });
  connections.push(connection);
  return connection;
}

const scrape = async () => {
  const response = await fetch(`http://${served.admin}/metrics`);
  expect(response.status).toBe(200);
  return parsePrometheusText(await response.text());
};

let recordsFile: string;
const serveArgs = (policy: string) => [
  '--policy',
  policy,
  '--decision-log',
  recordsFile,
  '--decision-log-allows',
  '1',
  '--listen',
  '127.0.0.1:0',
  '--admin',
  '127.0.0.1:0',
  '--workers',
  '2',
];

const workerPids = (): number[] =>
  execFileSync('pgrep', ['-P', String(served.child.pid)], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .map(Number);

async function until(what: string, condition: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  key = await newSigningKey('RS256');
  jwks = await startJwksServer([key.publicJwk]);
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-workers-'));
  policyFile = join(dir, 'policy.yaml');
  recordsFile = join(dir, 'decisions.jsonl');
  writeFileSync(policyFile, examplePolicyText(jwks.uri));
  served = await serve(serveArgs(policyFile), { SCOPEGATE_LOG_LEVEL: 'debug' });
  const token = await mintToken(key, supportThreadClaims());
  listRequest = checkRequestFor({ method: 'GET', path: '/api/inventory/transactions', token, headers: [] });
});

afterEach(() => {
  // A primary that died mid-suite fails every later test; say why once, with its own words.
  const code = served?.child.exitCode;
  if (code !== null && code !== undefined && code !== 0) {
    expect.soft(served.stderr(), `the primary exited ${served.child.exitCode}`).toBe('');
  }
});

afterAll(async () => {
  for (const connection of connections) connection.close();
  served?.child.kill('SIGTERM');
  await jwks?.close();
});

describe('serve --workers 2', () => {
  it('prints one listening line naming both workers, and serves from both', async () => {
    const listening = served.lines().filter((l) => l.msg === 'listening');
    expect(listening).toHaveLength(1);
    expect(listening[0]).toMatchObject({ workers: 2 });
    expect(workerPids()).toHaveLength(2);

    for (const connection of [connect(), connect(), connect(), connect()]) {
      for (let i = 0; i < 5; i++) expect(answerOf(await connection.check(listRequest)).status).toBe(200);
    }
    // Allows are logged at debug, each by the worker that decided it.
    await until('both workers to log their decisions', async () => {
      const workers = served
        .lines()
        .filter((l) => l.reason === 'allowed')
        .map((l) => l.worker);
      return workers.length === 20;
    });
    const byWorker = new Set(
      served
        .lines()
        .filter((l) => l.reason === 'allowed')
        .map((l) => l.worker),
    );
    expect([...byWorker].sort()).toEqual([1, 2]);
    // Each worker records its own decisions in its own file: PATH.<worker>.
    await until('both workers to write their records', async () => {
      const lines = [1, 2].flatMap((worker) =>
        existsSync(`${recordsFile}.${worker}`)
          ? readFileSync(`${recordsFile}.${worker}`, 'utf8').trim().split('\n')
          : [],
      );
      return lines.length === 20;
    });
    for (const worker of [1, 2]) {
      const records = readFileSync(`${recordsFile}.${worker}`, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(records.length).toBeGreaterThan(0);
      expect(new Set(records.map((r) => r.reason))).toEqual(new Set(['allowed']));
    }
    expect(existsSync(recordsFile)).toBe(false);
  });

  it('adds the workers’ metrics up on the primary’s /metrics', async () => {
    const metrics = await scrape();
    const allowed = { decision: 'allow', reason: 'allowed', route: 'list_transactions' };
    expect(metrics.value('scopegate_decisions_total', allowed)).toBe(20);
    expect(metrics.value('scopegate_check_duration_seconds_count', { decision: 'allow' })).toBe(20);
    // Each worker loaded the policy once: counted as one load, not two.
    expect(metrics.value('scopegate_policy_reloads_total', { policy: 'inventory', result: 'success' })).toBe(
      1,
    );
    expect(metrics.samples.filter((s) => s.name === 'scopegate_policy_revision_info')).toHaveLength(1);
    const ready = await fetch(`http://${served.admin}/readyz`);
    expect(await ready.json()).toEqual({ ready: true, problems: [] });
  });

  it('a policy edit reaches every worker', async () => {
    const before = answerOf(await connect().check(listRequest)).raw.dynamic_metadata?.fields?.policy_revision;
    // The service account loses its reader role: the same token is denied by the new revision.
    const edited = readFileSync(policyFile, 'utf8').replace(
      'roles: [Inventory Transaction Manager, Inventory Data Reader]',
      'roles: [Inventory Transaction Manager]',
    );
    expect(edited).not.toBe(readFileSync(policyFile, 'utf8'));
    writeFileSync(policyFile, edited);
    await until('every worker to serve the new revision', async () => {
      const revisions = (await scrape()).samples.filter((s) => s.name === 'scopegate_policy_revision_info');
      return revisions.length === 1 && revisions[0]!.labels.revision !== before?.string_value;
    });
    const fresh = [connect(), connect(), connect(), connect()];
    for (const connection of fresh) {
      const answer = answerOf(await connection.check(listRequest));
      expect(answer.status).toBe(403);
      expect(answer.raw.dynamic_metadata?.fields?.policy_revision?.string_value).not.toBe(
        before?.string_value,
      );
    }
    expect(
      (await scrape()).value('scopegate_policy_reloads_total', { policy: 'inventory', result: 'success' }),
    ).toBe(2);
  });

  it('replaces a worker that dies; the other keeps serving meanwhile', async () => {
    const [victim, survivor] = workerPids();
    // Ask the primary about readiness while the worker dies under it: questions to a worker whose channel is
    // closing must come back unanswered, not take the primary down.
    const asking = Array.from({ length: 40 }, (_, i) =>
      new Promise((r) => setTimeout(r, i)).then(() => fetch(`http://${served.admin}/readyz`)),
    );
    process.kill(victim!, 'SIGKILL');
    for (const response of await Promise.all(asking)) expect([200, 503]).toContain(response.status);
    await until('the primary to notice', async () => {
      const ready = (await (await fetch(`http://${served.admin}/readyz`)).json()) as { problems: string[] };
      return ready.problems.includes('1 of 2 workers not serving');
    });
    // Served by the survivor: no gRPC error on a new connection.
    expect(answerOf(await connect().check(listRequest)).status).toBe(403);
    await until('a replacement to serve', async () => (await fetch(`http://${served.admin}/readyz`)).ok);
    const now = workerPids();
    expect(now).toHaveLength(2);
    expect(now).toContain(survivor);
    expect(now).not.toContain(victim);
    expect(served.lines().some((l) => l.msg === 'worker exited; replacing it')).toBe(true);
  });

  it.skipIf(skipWithoutPromtool)(
    promtoolSuiteName('the aggregated scrape passes promtool check metrics'),
    async () => {
      const run = promtool(['check', 'metrics'], { stdin: (await scrape()).text });
      expect(run.output).toBe('');
      expect(run.code).toBe(0);
    },
  );

  it('SIGTERM drains every worker, then the primary exits 0 leaving none behind', async () => {
    const workers = workerPids();
    served.child.kill('SIGTERM');
    expect(await served.exited).toBe(0);
    for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
  });
});

describe('a broken policy with --workers 2', () => {
  it('exits 1 and reports each problem once, as a single process does', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'scopegate-workers-')), 'policy.yaml');
    writeFileSync(
      file,
      examplePolicyText().replace('permissions: [INV_TRANSACTION_READ]', 'permisions: [X]'),
    );
    const run = runCli(['serve', ...serveArgs(file)]);
    expect(run.code).toBe(1);
    const problems = run.stderr.split('\n').filter((l) => l.startsWith(`${file}:`));
    expect(problems.some((l) => l.includes('permisions'))).toBe(true);
    expect(new Set(problems).size).toBe(problems.length);
  });
});

describe('serve --workers 2 with the HTTP front doors', () => {
  let doors: Served;
  beforeAll(async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'scopegate-workers-')), 'policy.yaml');
    writeFileSync(file, examplePolicyText(jwks.uri));
    doors = await serve(
      [
        '--policy',
        file,
        '--listen',
        '127.0.0.1:0',
        '--admin',
        '127.0.0.1:0',
        '--http',
        '127.0.0.1:0',
        '--forward-auth',
        '127.0.0.1:0',
        '--workers',
        '2',
      ],
      { SCOPEGATE_LOG_LEVEL: 'debug' },
    );
  });
  afterAll(() => doors?.child.kill('SIGTERM'));

  it('both workers answer on each door’s one port, and answer right', async () => {
    expect([doors.http, doors.forwardAuth]).toEqual([expect.any(String), expect.any(String)]);
    const token = await mintToken(key, supportThreadClaims());
    const auth: [string, string] = ['authorization', `Bearer ${token}`];
    const forwarded = (method: string, path: string): Array<[string, string]> => [
      ['x-forwarded-method', method],
      ['x-forwarded-uri', path],
    ];
    // Each request on a connection of its own: the primary hands each to the next worker.
    for (let i = 0; i < 4; i++) {
      const list = await sendHttp(doors.http!, {
        method: 'GET',
        target: '/api/inventory/transactions',
        headers: [auth],
      });
      expect([list.status, list.headers.get('x-scopegate-route')]).toEqual([200, 'list_transactions']);
      const denied = await sendHttp(doors.http!, {
        method: 'GET',
        target: '/api/inventory/locations/WH99/items',
        headers: [auth],
      });
      expect([denied.status, denied.body?.reason]).toEqual([403, 'location_denied']);
      const proxied = await sendHttp(doors.forwardAuth!, {
        method: 'GET',
        target: '/auth',
        headers: [auth, ...forwarded('GET', '/api/inventory/transactions')],
      });
      expect([proxied.status, proxied.headers.get('x-scopegate-route')]).toEqual([200, 'list_transactions']);
      const unread = await sendHttp(doors.forwardAuth!, {
        method: 'GET',
        target: '/auth',
        headers: [auth, ...forwarded('POST', '/api/inventory/transactions')],
      });
      expect([unread.status, unread.body?.reason]).toEqual([403, 'body_unreadable']);
    }
    // Each decision is logged (allows at debug) by the worker that made it, under the door it came in by.
    const workersOn = (transport: string) =>
      new Set(
        doors
          .lines()
          .filter((l) => l.msg === 'decision' && l.transport === transport)
          .map((l) => l.worker),
      );
    await until(
      'every decision to be logged',
      async () => doors.lines().filter((l) => l.msg === 'decision').length === 16,
    );
    expect([...workersOn('http')].sort()).toEqual([1, 2]);
    expect([...workersOn('forward_auth')].sort()).toEqual([1, 2]);
    // And the primary's /metrics adds both workers' decisions up under each door.
    const metrics = parsePrometheusText(await (await fetch(`http://${doors.admin}/metrics`)).text());
    for (const transport of ['http', 'forward_auth'])
      expect(metrics.value('scopegate_decisions_total', { transport }), transport).toBe(8);
  });
});
