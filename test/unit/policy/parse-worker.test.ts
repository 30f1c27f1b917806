// The worker thread a large policy is read on (policy/load.ts, parsePolicyOffThread): given {text, file} as
// workerData it posts one plain-data result, the document or every located problem, and ends. Workers run
// compiled code, so this starts the built parse-worker.js from dist/ (test/global-setup.ts builds it from
// src/ first), exactly as load.ts does, and holds its answer to readPolicyDocument run in place.
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../../src/config/problems.js';
import type * as Load from '../../../src/policy/load.js';
import { MAX_POLICY_BYTES, readPolicyDocument } from '../../../src/policy/load.js';
import { DESIGN_SAMPLE, LIST_ROUTE, policy } from './fixtures.js';

const WORKER = new URL('../../../dist/policy/parse-worker.js', import.meta.url);
const built = (await import(new URL('../../../dist/policy/load.js', import.meta.url).href)) as typeof Load;

const FILE = '/etc/scopegate/policies/inventory.yaml';

interface WorkerRun {
  readonly messages: unknown[];
  readonly exitCode: number;
  readonly errors: Error[];
}

/** Starts the worker as load.ts does and collects everything it posts until it ends. */
function runWorker(text: string, file: string): Promise<WorkerRun> {
  const messages: unknown[] = [];
  const errors: Error[] = [];
  const worker = new Worker(WORKER, {
    workerData: { text, file },
    resourceLimits: { maxOldGenerationSizeMb: 512 },
  });
  worker.on('message', (message) => messages.push(message));
  worker.on('error', (err) => errors.push(err));
  return new Promise((resolve) => worker.once('exit', (exitCode) => resolve({ messages, exitCode, errors })));
}

/** n subjects and n routes: well over OFF_THREAD_BYTES for n in the thousands. */
function largePolicy(n: number): string {
  const subjects = Array.from({ length: n }, (_, i) => `  svc-${i}: { locations: [WH${i}] }\n`);
  const routes = Array.from(
    { length: n },
    (_, i) => `  - { name: r${i}, method: GET, path: "/r${i}/{id}", permissions: [INV_TRANSACTION_READ] }\n`,
  );
  return policy(`subjects:\n${subjects.join('')}`, routes.join(''));
}

describe('the parse worker: one policy text in, one plain-data result out', () => {
  it('a valid policy: posts the document and where its claims are written, as readPolicyDocument does in place, then ends', async () => {
    const run = await runWorker(DESIGN_SAMPLE, FILE);
    expect(run.errors).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(run.messages).toHaveLength(1);
    const [posted] = run.messages;
    expect(posted).toMatchObject({ ok: true });
    expect(posted).toEqual(readPolicyDocument(DESIGN_SAMPLE, FILE));
  });

  it('a broken policy: posts every problem, located FILE:LINE:COL in the file it was given', async () => {
    const text = DESIGN_SAMPLE.replace('version: 1', 'versoin: 1').replace(
      '    method: PUT\n',
      '    method: PUTT\n',
    );
    const run = await runWorker(text, FILE);
    expect(run.exitCode).toBe(0);
    expect(run.messages).toHaveLength(1);
    const posted = run.messages[0] as Load.DocumentResult;
    const inPlace = readPolicyDocument(text, FILE);
    expect(posted).toEqual(inPlace);
    if (posted.ok) throw new Error('the broken policy should have problems');
    const lines = posted.problems.map(formatProblem);
    expect(lines.length).toBeGreaterThanOrEqual(3);
    expect(lines[0]).toMatch(
      /^\/etc\/scopegate\/policies\/inventory\.yaml:1:1: versoin: unknown key "versoin"/,
    );
    expect(
      lines.some((line) => /^\/etc\/scopegate\/policies\/inventory\.yaml:\d+:\d+: .*PUTT/.test(line)),
    ).toBe(true);
  });

  it('invalid YAML is posted as a located problem, not a crash of the worker', async () => {
    const text = policy('', LIST_ROUTE).replace(
      '  inventory.read: [INV_TRANSACTION_READ]',
      '  inventory.read: [',
    );
    const run = await runWorker(text, FILE);
    expect(run.errors).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(run.messages).toEqual([readPolicyDocument(text, FILE)]);
    const posted = run.messages[0] as Load.DocumentResult;
    expect(!posted.ok && posted.problems.map(formatProblem)[0]).toMatch(
      /^\/etc\/scopegate\/policies\/inventory\.yaml:10:3: invalid YAML: /,
    );
  });

  it('a text over 1 MiB is refused at its top, before any parsing', async () => {
    const text = `# ${'x'.repeat(MAX_POLICY_BYTES)}\n${policy('', LIST_ROUTE)}`;
    const run = await runWorker(text, FILE);
    expect(run.exitCode).toBe(0);
    expect(run.messages).toEqual([
      {
        ok: false,
        problems: [
          {
            file: FILE,
            line: 1,
            col: 1,
            field: '',
            message: `the policy is ${Buffer.byteLength(text)} bytes; the limit is ${MAX_POLICY_BYTES} bytes (1 MiB)`,
          },
        ],
      },
    ]);
  });
});

describe('parsePolicyOffThread: a large policy through this worker', () => {
  it('compiles to the same revision, routes and subjects as parsePolicy in place', async () => {
    const text = largePolicy(2_000);
    expect(text.length).toBeGreaterThan(built.OFF_THREAD_BYTES);
    const offThread = await built.parsePolicyOffThread(text, FILE);
    const inPlace = built.parsePolicy(text, FILE);
    if (!offThread.ok || !inPlace.ok) throw new Error('both should compile');
    expect(offThread.policy.revision).toBe(inPlace.policy.revision);
    expect(offThread.policy.source).toBe(FILE);
    expect(offThread.policy.routes.map((r) => r.name)).toEqual(inPlace.policy.routes.map((r) => r.name));
    expect(offThread.policy.matchRoute('GET', '/r1999/7')?.route.name).toBe('r1999');
    expect(offThread.policy.owns.sites).toEqual(inPlace.policy.owns.sites);
    expect([
      ...(offThread.policy.subjects.get('https://idp.example.com/', 'svc-1999')?.locations.exact ?? []),
    ]).toEqual(['WH1999']);
  });

  it('a large broken policy gets the same located problems as in place', async () => {
    const text = largePolicy(2_000).replace(
      'path: "/r1500/{id}", permissions:',
      'path: "/r1500/{id}", permisions:',
    );
    const offThread = await built.parsePolicyOffThread(text, FILE);
    const inPlace = built.parsePolicy(text, FILE);
    if (offThread.ok || inPlace.ok) throw new Error('both should be refused');
    expect(offThread.problems.map(formatProblem)).toEqual(inPlace.problems.map(formatProblem));
    expect(offThread.problems.map(formatProblem).join('\n')).toMatch(
      /inventory\.yaml:\d+:\d+: routes\[1500\].*permisions/,
    );
  });
});
