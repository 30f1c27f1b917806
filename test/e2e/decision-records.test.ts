// Decision records through a real Envoy (envoy/envoy.yaml): the support thread's requests, with tokens from the
// dev issuer's endpoint and bodies as Envoy buffers them, recorded by `serve --decision-log FILE`; then
// `scopegate replay` of that file: against the policy served, nothing changes; against the policy granting
// WH03, exactly the WH03 deny becomes an allow; against the policy whose create_transaction no longer requires
// INV_TRANSACTION_READ, exactly the write-only POSTs flip, each to the reason the candidate gives.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { replayCommand } from '../../src/review/replay-command.js';
import { skipWithoutEnvoy, suiteName } from './envoy-required.js';
import { startStack, transaction } from './stack.js';

const dir = mkdtempSync(join(tmpdir(), 'scopegate-e2e-records-'));
const records = join(dir, 'decisions.jsonl');
let policyText = '';

async function replay(policy: string) {
  const out: string[] = [];
  const code = await replayCommand(['--policy', policy, '--json', records], {
    out: (t) => void out.push(t),
    err: (t) => void out.push(t),
    usage: () => 2,
  });
  return { code, report: JSON.parse(out.join('\n')) };
}

function candidate(name: string, from: string, to: string): string {
  const text = policyText.replace(from, to);
  expect(text).not.toBe(policyText);
  writeFileSync(join(dir, name), text);
  return join(dir, name);
}

describe.skipIf(skipWithoutEnvoy)(suiteName('decision records of the support thread through Envoy'), () => {
  beforeAll(async () => {
    const stack = await startStack('envoy.yaml', {
      serveFlags: ['--decision-log', records, '--decision-log-allows', '1'],
    });
    try {
      policyText = readFileSync(stack.policyPath, 'utf8');
      const path = '/api/inventory/transactions';
      const post = async (token: string, location: string) =>
        (await stack.send({ method: 'POST', path, token, json: transaction(location) })).status;
      const full = await stack.clientToken('sync', 'inventory.read inventory.write');
      const writeOnly = await stack.clientToken('sync', 'inventory.write');
      expect(
        (await stack.send({ path, token: await stack.clientToken('sync', 'inventory.read') })).status,
      ).toBe(200);
      expect(await post(full, 'WH01')).toBe(201);
      expect(await post(writeOnly, 'WH01')).toBe(403);
      expect(await post(writeOnly, 'WH02')).toBe(403);
      expect(await post(full, 'WH03')).toBe(403);
      expect(
        await post(await stack.clientToken('newIntegration', 'inventory.read inventory.write'), 'WH01'),
      ).toBe(403);
      expect(
        await post(await stack.clientToken('stockReport', 'inventory.read inventory.write'), 'WH01'),
      ).toBe(403);
      expect((await stack.send({ path })).status).toBe(401);
    } finally {
      await stack.close(); // drains the record writer
    }
    writeFileSync(join(dir, 'policy.yaml'), policyText);
  }, 60_000);

  it('records every decision Envoy asked for; replayed against the same policy, nothing changes', async () => {
    expect(readFileSync(records, 'utf8').trim().split('\n')).toHaveLength(8);
    const { code, report } = await replay(join(dir, 'policy.yaml'));
    expect([code, report.records, report.unchanged]).toEqual([0, 8, 8]);
  });

  it('granting WH03 flips exactly the WH03 deny', async () => {
    const granted = candidate(
      'granted.yaml',
      'locations: [WH01, WH02, "EU-*"]',
      'locations: [WH01, WH02, WH03, "EU-*"]',
    );
    const { code, report } = await replay(granted);
    expect(code).toBe(3);
    expect(report.changes['deny-to-allow']).toMatchObject({
      count: 1,
      by_reason: { 'location_denied → allowed': 1 },
    });
    expect(report.unchanged).toBe(7);
  });

  it('one permission removed: exactly the write-only POSTs flip, with the reasons the candidate gives', async () => {
    const fewer = candidate(
      'fewer.yaml',
      'permissions: [INV_TRANSACTION_CREATE, INV_TRANSACTION_READ]',
      'permissions: [INV_TRANSACTION_CREATE]',
    );
    const { code, report } = await replay(fewer);
    expect(code).toBe(3);
    expect(report.changes['deny-to-allow']).toMatchObject({
      count: 2,
      by_reason: { 'scope_missing → allowed': 2 },
    });
    expect(report.unchanged).toBe(6);
  });
});
