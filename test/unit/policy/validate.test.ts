// The policy validator's entry: the top level (version, mode, the known sections) and the contract every
// section keeps, a broken policy rejected with FILE:LINE:COL: field: message, one line per problem, all of
// them, in file order: the way `scopegate validate` prints them. Each expected line here was counted by hand from the YAML.
import { readFileSync } from 'node:fs';
import { describe, expect, test } from 'vitest';
import { formatProblem, parsePolicy } from '../../../src/policy/index.js';
import { DESIGN_SAMPLE, LIST_ROUTE, policy, problemsOf } from './fixtures.js';

describe('a policy is rejected with FILE:LINE:COL: field: message', () => {
  test('the DESIGN.md sample policy (jwks from a file) is valid', () => {
    const result = parsePolicy(DESIGN_SAMPLE, 'policy.yaml');
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([]);
  });

  test('an unknown top-level key suggests the closest known key', () => {
    const text = policy('rolez:\n  Inventory Data Reader: [INV_TRANSACTION_READ]\n', LIST_ROUTE);
    expect(problemsOf(text)).toEqual(['policy.yaml:11:1: rolez: unknown key "rolez"; did you mean "roles"?']);
  });

  test('a missing version is reported at the top of the file', () => {
    const text = policy('', LIST_ROUTE).replace('version: 1\n', '');
    expect(problemsOf(text)).toEqual(['policy.yaml:1:1: version: required key "version" is missing']);
  });

  test('a version other than 1 is refused', () => {
    const text = policy('', LIST_ROUTE).replace('version: 1\n', 'version: 2\n');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:1:10: version: unsupported version 2; write "version: 1"',
    ]);
  });

  test('an empty file asks for at least a version', () => {
    expect(problemsOf('')).toEqual(['policy.yaml:1:1: the policy is empty; it needs at least "version: 1"']);
  });

  test('a file that is not a map says so', () => {
    expect(problemsOf('- version: 1\n')).toEqual(['policy.yaml:1:1: expected a map, got a list']);
  });

  test('a file with many mistakes lists every one of them, sorted by line', () => {
    const text = `version: 1
authentication:
  issuers:
    - issuer: https://idp.example.com/
      audiences: [https://gateway.example.com]
      jwks: { uri: https://idp.example.com/jwks.json }
      algorithms: [HS256]
scopes:
  inventory.read: [INV_TRANSACTION_READ]
  inventory.write: [INV_TRANSACTION_CREATE, INV_TRANSACTION_UPDATE]
rolez:
  Inventory Data Reader: [INV_TRANSACTION_READ]
clients:
  inventory-sync: { scopes: [inventory.writ] }
subjects:
  svc-inventory-sync: { roles: [Inventory Data Reader] }
routes:
  - name: create_transaction
    method: POST
    path: /api/inventory/transactions/
    permissions: [INV_TRANSACTION_CREATE, INV_TRANSACTON_READ]
  - name: create_transaction
    method: PUT
    path: /api/inventory/transactions/{id}
    permissions: [INV_TRANSACTION_UPDATE]
`;
    expect(problemsOf(text)).toEqual([
      'policy.yaml:7:20: authentication.issuers[0].algorithms[0]: algorithm "HS256" is not allowed: HMAC (HS*) needs a shared secret, and verifying it with a public key lets anyone forge tokens',
      'policy.yaml:11:1: rolez: unknown key "rolez"; did you mean "roles"?',
      'policy.yaml:14:30: clients["inventory-sync"].scopes[0]: unknown scope "inventory.writ"; did you mean "inventory.write"?',
      'policy.yaml:16:33: subjects["svc-inventory-sync"].roles[0]: role "Inventory Data Reader" is not defined: this policy has no roles section',
      'policy.yaml:20:11: routes[0].path: path template "/api/inventory/transactions/" must not end with "/"',
      'policy.yaml:21:43: routes[0].permissions[1]: unknown permission "INV_TRANSACTON_READ"; did you mean "INV_TRANSACTION_READ"?',
      'policy.yaml:22:11: routes[1].name: duplicate route name "create_transaction" (first at line 18)',
    ]);
  });
});

describe('mode: enforce | dry_run', () => {
  test('an unknown mode is refused at its line with the choices', () => {
    const text = readFileSync(
      new URL('../../../examples/inventory/policy.yaml', import.meta.url),
      'utf8',
    ).replace('version: 1\n', 'version: 1\nmode: audit\n');
    const result = parsePolicy(text, 'policy.yaml');
    expect(result.ok).toBe(false);
    if (!result.ok) {
      const line = text.split('\n').indexOf('mode: audit') + 1;
      expect(result.problems.map(formatProblem)).toEqual([
        `policy.yaml:${line}:7: mode: unknown mode "audit"; expected one of enforce, dry_run`,
      ]);
    }
  });

  test('routes inherit the policy mode unless they set their own', () => {
    const text = readFileSync(new URL('../../../examples/inventory/policy.yaml', import.meta.url), 'utf8')
      .replace('version: 1\n', 'version: 1\nmode: dry_run\n')
      .replace(
        '    path: /api/inventory/transactions/{id}\n    permissions: [INV_TRANSACTION_UPDATE',
        '    path: /api/inventory/transactions/{id}\n    mode: enforce\n    permissions: [INV_TRANSACTION_UPDATE',
      );
    const result = parsePolicy(text, 'policy.yaml');
    if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
    expect(result.policy.mode).toBe('dry_run');
    expect(Object.fromEntries(result.policy.routes.map((r) => [r.name, r.mode]))).toMatchObject({
      create_transaction: 'dry_run',
      update_transaction: 'enforce',
    });
  });
});
