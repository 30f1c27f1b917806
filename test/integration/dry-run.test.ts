// mode: dry_run — roll out a stricter policy safely: a would-be deny goes through, is counted as
// dry_run_deny with its reason, logged, and put in Envoy's dynamic metadata; malformed requests never pass.
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/telemetry/log.js';
import { examplePolicyText } from '../support/policies.js';
import { parsePrometheusText } from '../support/prometheus.js';
import { type Harness, JSON_BODY, startHarness, transaction } from '../support/scopegate.js';

const logLines: Array<Record<string, unknown>> = [];
const sink = new Writable({
  write(chunk, _encoding, done) {
    for (const line of String(chunk).split('\n')) if (line) logLines.push(JSON.parse(line));
    done();
  },
});

let h: Harness;
beforeAll(async () => {
  // create_transaction in dry_run; everything else enforced.
  const policy = (uri: string) =>
    examplePolicyText(uri).replace(
      '  - name: create_transaction\n',
      '  - name: create_transaction\n    mode: dry_run\n',
    );
  h = await startHarness(policy, { log: createLogger('info', sink) });
});
afterAll(async () => h?.close());

const post = (token: string) => ({
  method: 'POST',
  path: '/api/inventory/transactions',
  token,
  headers: JSON_BODY,
  body: transaction('WH01'),
});

describe('a dry_run route', () => {
  it('lets a would-be deny through, counted as dry_run_deny with its reason and in the metadata', async () => {
    const before = parsePrometheusText(await h.scrape());
    const answer = await h.send(post(await h.syncToken('inventory.write')));
    expect(answer.status).toBe(200);
    expect(answer.grpcCode).toBe(0);
    expect(answer.headers.get('x-scopegate-subject')).toBe('svc-inventory-sync');
    expect(answer.raw.dynamic_metadata?.fields?.decision?.string_value).toBe('dry_run_deny');
    expect(answer.reason).toBe('scope_missing');
    const after = parsePrometheusText(await h.scrape());
    const labels = { decision: 'dry_run_deny', reason: 'scope_missing', route: 'create_transaction' };
    expect(
      after.value('scopegate_decisions_total', labels) - before.value('scopegate_decisions_total', labels),
    ).toBe(1);
    expect(after.value('scopegate_decisions_total', { decision: 'deny', route: 'create_transaction' })).toBe(
      before.value('scopegate_decisions_total', { decision: 'deny', route: 'create_transaction' }),
    );
    const logged = logLines.find((l) => l.decision === 'dry_run_deny' && l.reason === 'scope_missing');
    expect(logged).toMatchObject({
      route: 'create_transaction',
      subject: 'svc-inventory-sync',
      level: 'info',
    });
  });

  it('a token failure on a dry_run route goes through too (the mode is the route’s, whoever calls)', async () => {
    const answer = await h.send({ ...post('not-a-jwt'), token: 'not.a.jwt' });
    expect(answer.status).toBe(200);
    expect(answer.reason).toBe('token_invalid');
    expect(answer.raw.dynamic_metadata?.fields?.decision?.string_value).toBe('dry_run_deny');
  });

  it('a malformed request is still refused: ambiguity never reaches the upstream', async () => {
    const token = await h.syncToken('inventory.read inventory.write');
    const answer = await h.send({ ...post(token), path: '/api/inventory//transactions' });
    expect(answer.status).toBe(400);
    expect(answer.reason).toBe('request_malformed');
  });

  it('a real allow stays an allow', async () => {
    const answer = await h.send(post(await h.syncToken('inventory.read inventory.write')));
    expect(answer.raw.dynamic_metadata?.fields?.decision?.string_value).toBe('allow');
  });
});

describe('an enforced route beside it', () => {
  it('denies as usual', async () => {
    const token = await h.syncToken('inventory.write');
    const answer = await h.send({ method: 'GET', path: '/api/inventory/transactions', token });
    expect(answer.status).toBe(403);
    expect(answer.raw.dynamic_metadata?.fields?.decision?.string_value).toBe('deny');
  });
});
