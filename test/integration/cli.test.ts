// The real binary, as a user runs it: validate, keys + token + serve + check on the example policy, env twins,
// SIGHUP reload, and SIGTERM draining in-flight checks before exiting 0.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkRequestFor } from '../../src/wire/check-request.js';
import { connectAuthorization, connectHealth } from '../support/grpc-client.js';
import { startJwksServer } from '../support/jwks-server.js';
import { EXAMPLE_POLICY_FILE, examplePolicyText } from '../support/policies.js';
import { runCli, serve } from '../support/process.js';
import { answerOf } from '../support/scopegate.js';
import { mintToken, newSigningKey } from '../support/tokens.js';

describe('scopegate validate', () => {
  it('accepts the example policy', () => {
    const result = runCli(['validate', EXAMPLE_POLICY_FILE]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/policy\.yaml: ok \(revision [0-9a-f]{12}, 9 routes\)/);
  });

  it('rejects a typo with FILE:LINE:COL: field: message and exit 1', () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopegate-cli-'));
    const file = join(dir, 'broken.yaml');
    const text = readFileSync(EXAMPLE_POLICY_FILE, 'utf8').replace(
      'permissions: [INV_TRANSACTION_UPDATE, INV_TRANSACTION_READ]',
      'permissions: [INV_TRANSACTION_UPDATE, INV_TRANSACTON_READ]',
    );
    writeFileSync(file, text);
    const lines = text.split('\n');
    const line = lines.findIndex((l) => l.includes('INV_TRANSACTON_READ')) + 1;
    const col = lines[line - 1]!.indexOf('INV_TRANSACTON_READ') + 1;
    const result = runCli(['validate', EXAMPLE_POLICY_FILE, file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      `${file}:${line}:${col}: routes[3].permissions[1]: unknown permission "INV_TRANSACTON_READ"`,
    );
  });

  it('exits 2 with usage for an unknown command', () => {
    const result = runCli(['frobnicate']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown command');
  });
});

describe('the README path: keys, token, serve, check (no outside IdP)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scopegate-dev-'));
  const policy = join(dir, 'policy.yaml');
  let served: Awaited<ReturnType<typeof serve>>;

  beforeAll(async () => {
    cpSync(EXAMPLE_POLICY_FILE, policy);
    expect(runCli(['keys', join(dir, 'dev-keys')]).code).toBe(0);
    // Env twins instead of flags.
    served = await serve([], {
      SCOPEGATE_POLICY: policy,
      SCOPEGATE_LISTEN: '127.0.0.1:0',
      SCOPEGATE_ADMIN: '127.0.0.1:0',
      // The listening line is printed whatever the level.
      SCOPEGATE_LOG_LEVEL: 'warn',
    });
  });
  afterAll(() => {
    served?.child.kill('SIGKILL');
  });

  const token = (...extra: string[]) =>
    runCli([
      'token',
      '--policy',
      policy,
      '--sub',
      'svc-inventory-sync',
      '--client',
      'inventory-sync',
      ...extra,
    ]).stdout.trim();
  const check = (jwt: string, location: string) =>
    runCli([
      'check',
      '--server',
      served.grpc.replace('0.0.0.0', '127.0.0.1'),
      '--method',
      'POST',
      '--path',
      '/api/inventory/transactions',
      '--token',
      jwt,
      '--header',
      'content-type:application/json',
      '--body',
      JSON.stringify({ location, item: 'ITEM001', quantity: 10 }),
    ]);

  it('prints one listening line with the bound addresses', () => {
    const listening = served.lines().filter((l) => l.msg === 'listening');
    expect(listening).toHaveLength(1);
    expect(served.grpc).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(served.admin).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('a dev token with only inventory.write is refused naming inventory.read; with both it passes', () => {
    const refused = check(token('--scope', 'inventory.write'), 'WH01');
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('HTTP 403');
    expect(refused.stdout).toContain('scope="inventory.read"');
    const allowed = check(token('--scope', 'inventory.read inventory.write'), 'WH01');
    expect(allowed.stdout).toContain('HTTP 200');
    expect(allowed.stdout).toContain('+ x-scopegate-subject: svc-inventory-sync');
    expect(allowed.code).toBe(0);
  });

  it('an expired dev token is 401 invalid_token', () => {
    const expired = check(token('--scope', 'inventory.read inventory.write', '--ttl=-120'), 'WH01');
    expect(expired.stdout).toContain('HTTP 401');
    expect(expired.stdout).toContain('"reason":"token_expired"');
  });

  it('SIGHUP applies a fixed policy live; a broken one is refused and the last good keeps serving', async () => {
    const jwt = token('--scope', 'inventory.read inventory.write');
    expect(check(jwt, 'WH03').stdout).toContain('"reason":"location_denied"');
    const original = readFileSync(policy, 'utf8');
    writeFileSync(
      policy,
      original.replace('locations: [WH01, WH02, "EU-*"]', 'locations: [WH01, WH02, WH03, "EU-*"]'),
    );
    served.child.kill('SIGHUP');
    let output = '';
    for (let i = 0; i < 50 && !output.includes('HTTP 200'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      output = check(jwt, 'WH03').stdout;
    }
    expect(output).toContain('HTTP 200');

    writeFileSync(policy, 'version: 1\nroutes: [');
    served.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    expect(check(jwt, 'WH03').stdout).toContain('HTTP 200');
    const metrics = await (await fetch(`http://${served.admin}/metrics`)).text();
    expect(metrics).toMatch(/scopegate_policy_reloads_total\{policy="inventory",result="error"\} 1/);
    expect(
      served.lines().some((l) => l.msg === 'policy change rejected; still serving its last good revision'),
    ).toBe(true);
  });
});

describe('SIGTERM', () => {
  it('turns health NOT_SERVING, finishes every in-flight check, then exits 0', async () => {
    const key = await newSigningKey('RS256');
    const jwks = await startJwksServer([key.publicJwk]);
    const dir = mkdtempSync(join(tmpdir(), 'scopegate-term-'));
    const policy = join(dir, 'policy.yaml');
    writeFileSync(policy, examplePolicyText(jwks.uri));
    // A generous key-fetch timeout: on a busy machine the 80 ms JWKS below could pass the default 100 ms, and
    // the answer would be keys_unavailable; this test is about draining, not about that timeout.
    const served = await serve([
      ...['--policy', policy, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0'],
      ...['--jwks-timeout-ms', '2000'],
    ]);
    const grpc = connectAuthorization(served.grpc);
    const health = connectHealth(served.grpc);
    try {
      expect(await health.check('')).toBe('SERVING');
      // Tokens with a kid the JWKS does not have make each check wait on a (slow) on-demand key refresh,
      // so they are genuinely in flight when SIGTERM arrives.
      jwks.setDelay(80);
      const stranger = await newSigningKey('RS256');
      const jwt = await mintToken(stranger, {
        iss: 'https://dev-issuer.scopegate.local/',
        aud: 'https://gateway.example.com',
        sub: 'svc-inventory-sync',
      });
      const request = checkRequestFor({
        method: 'GET',
        path: '/api/inventory/transactions',
        token: jwt,
        headers: [],
      });
      const inFlight = Array.from({ length: 20 }, () => grpc.check(request, 5_000));
      await new Promise((r) => setTimeout(r, 30));
      served.child.kill('SIGTERM');
      const answers = await Promise.allSettled(inFlight);
      expect(answers.filter((a) => a.status === 'rejected')).toEqual([]);
      for (const answer of answers) {
        if (answer.status === 'fulfilled') expect(answerOf(answer.value).reason).toBe('key_unknown');
      }
      expect(await served.exited).toBe(0);
      expect(served.lines().some((l) => l.msg === 'draining')).toBe(true);
    } finally {
      grpc.close();
      health.close();
      await jwks.close();
    }
  });
});
