// `scopegate explain` and `scopegate test` as a user runs them: the real binary, a policy in a temp dir with
// fresh dev keys (`scopegate keys`), tokens minted by `scopegate token`, exit codes 0/1/2.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { EXAMPLE_POLICY_FILE, examplePolicyText } from '../support/policies.js';
import { ROOT, runCli } from '../support/process.js';

const dir = mkdtempSync(join(tmpdir(), 'scopegate-explain-'));
const policy = join(dir, 'policy.yaml');
const post = [
  '--method',
  'POST',
  '--path',
  '/api/inventory/transactions',
  '--header',
  'content-type:application/json',
];
const body = (location: string) => ['--body', JSON.stringify({ location, item: 'ITEM001', quantity: 10 })];

const token = (...args: string[]) => {
  const result = runCli(['token', '--policy', policy, ...args]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim();
};

beforeAll(() => {
  cpSync(EXAMPLE_POLICY_FILE, policy);
  expect(runCli(['keys', join(dir, 'dev-keys')]).code).toBe(0);
});

describe('scopegate explain', () => {
  it('the thread’s token (only inventory.write): verified, scope_missing, "request scope inventory.read as well", exit 1', () => {
    const jwt = token(
      '--sub',
      'svc-inventory-sync',
      '--client',
      'inventory-sync',
      '--scope',
      'inventory.write',
    );
    const result = runCli(['explain', '--policy', policy, '--token', jwt, ...post, ...body('WH01')]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toContain('identity    ✓ token, signature verified');
    expect(result.stdout).toContain('decision    DENY scope_missing (HTTP 403)');
    expect(result.stdout).toContain('fix         request scope inventory.read as well');
    expect(result.stdout).not.toContain('NOT VERIFIED');
    expect(result.stdout).not.toContain(jwt);
  });

  it('the fixed token is allowed, exit 0', () => {
    const jwt = token(
      '--sub',
      'svc-inventory-sync',
      '--client',
      'inventory-sync',
      '--scope',
      'inventory.read inventory.write',
    );
    const result = runCli(['explain', '--policy', policy, '--token', jwt, ...post, ...body('WH01')]);
    expect(result.stderr).toBe('');
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('decision    ALLOW (allowed)');
  });

  it('WH03: "grant location WH03 to svc-inventory-sync"', () => {
    const jwt = token(
      '--sub',
      'svc-inventory-sync',
      '--client',
      'inventory-sync',
      '--scope',
      'inventory.read inventory.write',
    );
    const result = runCli(['explain', '--policy', policy, '--token', jwt, ...post, ...body('WH03')]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toContain('fix         grant location WH03 to svc-inventory-sync');
  });

  it('a token signed by another key is refused when verified, and --no-verify says LOUDLY it did not check', () => {
    const other = mkdtempSync(join(tmpdir(), 'scopegate-other-'));
    const otherPolicy = join(other, 'policy.yaml');
    writeFileSync(otherPolicy, readFileSync(policy));
    expect(runCli(['keys', join(other, 'dev-keys')]).code).toBe(0);
    const forged = runCli([
      'token',
      '--policy',
      otherPolicy,
      '--sub',
      'svc-inventory-sync',
      '--client',
      'inventory-sync',
      '--scope',
      'inventory.read',
    ]).stdout.trim();
    const args = ['explain', '--policy', policy, '--token', forged, '--path', '/api/inventory/transactions'];
    const verified = runCli(args);
    expect(verified.code, verified.stderr).toBe(1);
    expect(verified.stdout).toContain('DENY key_unknown (HTTP 401)');

    const decoded = runCli([...args, '--no-verify']);
    expect(decoded.code, decoded.stderr).toBe(0);
    expect(decoded.stdout.split('\n')[0]).toMatch(
      /^!!! NOT VERIFIED: --no-verify decoded this token WITHOUT checking/,
    );
    const json = runCli([...args, '--no-verify', '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stderr).toMatch(/NOT VERIFIED/);
    expect(JSON.parse(json.stdout)).toMatchObject({ verified: false, decision: 'allow', reason: 'allowed' });
  });

  it('keys that cannot be read: keys_unavailable, why, and the way out', () => {
    const keyless = join(mkdtempSync(join(tmpdir(), 'scopegate-keyless-')), 'policy.yaml');
    writeFileSync(keyless, examplePolicyText());
    const jwt = token(
      '--sub',
      'svc-inventory-sync',
      '--client',
      'inventory-sync',
      '--scope',
      'inventory.read',
    );
    const result = runCli([
      'explain',
      '--policy',
      keyless,
      '--token',
      jwt,
      '--path',
      '/api/inventory/transactions',
    ]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toContain('keys_unavailable');
    expect(result.stdout).toContain('the JWKS file could not be read (ENOENT)');
    expect(result.stdout).toContain('rerun with --no-verify');
  });

  it('--no-verify reads the token with the server’s strict reader: duplicate claims are token_invalid', () => {
    const part = (json: string) => Buffer.from(json).toString('base64url');
    const exp = Math.floor(Date.now() / 1000) + 600;
    const dup = [
      part('{"alg":"RS256","typ":"JWT"}'),
      part(
        `{"iss":"https://dev-issuer.scopegate.local/","aud":"https://gateway.example.com","exp":${exp},` +
          '"sub":"svc-stock-report","sub":"svc-inventory-sync","client_id":"inventory-sync","scope":"inventory.read"}',
      ),
      part('signature'),
    ].join('.');
    const args = ['explain', '--policy', policy, '--token', dup, '--no-verify'];
    const result = runCli([...args, '--path', '/api/inventory/transactions', '--json']);
    expect(result.code, result.stderr).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ verified: false, reason: 'token_invalid' });
  });

  it('a lower-case method is refused as the server refuses it (request_malformed), not decided as GET', () => {
    const claims = JSON.stringify({
      sub: 'svc-stock-report',
      client_id: 'stock-report',
      gty: 'client_credentials',
      scope: 'inventory.read',
    });
    const args = [
      'explain',
      '--policy',
      policy,
      '--claims',
      claims,
      '--path',
      '/api/inventory/transactions',
      '--json',
    ];
    const lower = runCli([...args, '--method', 'get']);
    expect(lower.code, lower.stderr).toBe(1);
    expect(JSON.parse(lower.stdout)).toMatchObject({ decision: 'deny', reason: 'request_malformed' });
    expect(JSON.parse(runCli([...args, '--method', 'GET']).stdout)).toMatchObject({ reason: 'allowed' });
  });

  it('--claims (inline JSON) with --json: one object a machine can read', () => {
    const claims = JSON.stringify({
      sub: 'svc-new-integration',
      client_id: 'inventory-sync',
      gty: 'client_credentials',
      scope: 'inventory.read inventory.write',
    });
    const result = runCli([
      'explain',
      '--policy',
      policy,
      '--claims',
      claims,
      ...post,
      ...body('WH01'),
      '--json',
    ]);
    expect(result.code, result.stderr).toBe(1);
    const trace = JSON.parse(result.stdout);
    expect(trace).toMatchObject({
      credential: 'claims',
      verified: false,
      decision: 'deny',
      reason: 'role_missing',
      status: 403,
      route: { matched: true, name: 'create_transaction' },
      hints: ['give svc-new-integration the role Inventory Transaction Manager'],
    });
  });

  it('--claims from a file', () => {
    const file = join(dir, 'claims.json');
    writeFileSync(
      file,
      JSON.stringify({
        sub: 'svc-stock-report',
        client_id: 'stock-report',
        gty: 'client_credentials',
        scope: 'inventory.read inventory.write',
      }),
    );
    const result = runCli(['explain', '--policy', policy, '--claims', file, ...post, ...body('WH01')]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toContain('fix         allow client stock-report the scope inventory.write');
  });

  it('usage errors exit 2', () => {
    // No credential is no usage error: the request is explained as sent without one.
    expect(runCli(['explain', '--policy', policy, '--path', '/x']).code).toBe(1);
    expect(
      runCli(['explain', '--policy', policy, '--claims', '{}', '--token', 'a.b.c', '--path', '/x']).code,
    ).toBe(2);
    expect(runCli(['explain', '--policy', policy, '--claims', '[1]', '--path', '/x']).code).toBe(2);
    expect(runCli(['explain', '--policy', policy, '--claims', '{}']).code).toBe(2);
    expect(runCli(['explain', '--policy', policy, '--claims', '{}', '--path', '/x', '--bogus']).code).toBe(2);
    const broken = runCli(['explain', '--policy', join(dir, 'nope.yaml'), '--claims', '{}', '--path', '/x']);
    expect(broken.code, broken.stderr).toBe(2);
    expect(broken.stderr).toContain('nope.yaml:1:1: cannot read the policy file (ENOENT)');
  });
});

describe('scopegate test', () => {
  it('the shipped example cases pass against the example policy, exit 0', () => {
    const result = runCli([
      'test',
      '--policy',
      'examples/inventory/policy.yaml',
      'examples/inventory/policy.test.yaml',
    ]);
    expect(result.stderr).toBe('');
    expect(result.code, result.stderr).toBe(0);
    const cases = readFileSync(join(ROOT, 'examples/inventory/policy.test.yaml'), 'utf8').match(
      /^ {2}- name: /gm,
    );
    expect(cases?.length).toBeGreaterThanOrEqual(10);
    expect(result.stdout.trim().split('\n').at(-1)).toBe(`${cases?.length} passed, 0 failed`);
    for (const reason of [
      'scope_missing',
      'client_scope_not_allowed',
      'role_missing',
      'location_denied',
      'grant_type_not_allowed',
      'token_expired',
      'route_unknown',
      'token_missing',
    ]) {
      expect(readFileSync(join(ROOT, 'examples/inventory/policy.test.yaml'), 'utf8')).toContain(
        `reason: ${reason}`,
      );
    }
  });

  it('the example policy set passes its cases, each decided by the policy the server would choose', () => {
    const result = runCli(['test', '--policy', 'examples/mesh', 'examples/mesh.test.yaml']);
    expect(result.stderr).toBe('');
    expect(result.code, result.stderr).toBe(0);
    const cases = readFileSync(join(ROOT, 'examples/mesh.test.yaml'), 'utf8').match(/^ {2}- name: /gm);
    expect(result.stdout.trim().split('\n').at(-1)).toBe(`${cases?.length} passed, 0 failed`);
  });

  it('a policy that no longer grants WH01 fails the cases that need it, exit 1', () => {
    const narrowed = join(dir, 'narrowed.yaml');
    writeFileSync(
      narrowed,
      readFileSync(policy, 'utf8').replace('locations: [WH01, WH02, "EU-*"]', 'locations: [WH02]'),
    );
    const result = runCli(['test', '--policy', narrowed, join(ROOT, 'examples/inventory/policy.test.yaml')]);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toContain(
      '✗ the fixed token (inventory.read and inventory.write) is allowed to POST to WH01 — expected allow, got deny (location_denied)',
    );
    expect(result.stdout).toContain('    fix: grant location WH01 to svc-inventory-sync');
    expect(result.stdout).toMatch(/\n\d+ passed, 1 failed\n?$/);
  });

  it('a malformed cases file: FILE:LINE:COL on stderr, exit 2', () => {
    const file = join(dir, 'broken.test.yaml');
    writeFileSync(
      file,
      'cases:\n  - name: x\n    request: { method: GET, path: / }\n    expect: { reason: alowed }\n',
    );
    const result = runCli(['test', '--policy', policy, file]);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain(
      `${file}:4:23: cases[0].expect.reason: unknown reason "alowed"; did you mean "allowed"?`,
    );
  });

  it('usage errors exit 2', () => {
    expect(runCli(['test', '--policy', policy]).code).toBe(2);
    expect(runCli(['test', 'cases.yaml'], { SCOPEGATE_POLICY: '' }).code).toBe(2);
  });
});
