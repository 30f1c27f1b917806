// `scopegate test` as a library: the cases file is read with precise FILE:LINE:COL problems, each case runs
// through the explain trace, and expectations pass or fail with a sentence saying what differed.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  loadCasesFile,
  type PolicyCase,
  parseCases,
  renderResults,
  runCases,
} from '../../../src/explain/cases.js';
import { formatProblem } from '../../../src/policy/index.js';
import { PolicySet } from '../../../src/policy/set.js';
import { loadPolicySet } from '../../../src/policy/source.js';
import { compile, examplePolicyText, shipmentsPolicyText } from '../../support/policies.js';

const policy = compile(examplePolicyText());
/** The example policy as `--policy FILE` serves it: it owns every request. */
const onlyExample = new PolicySet([{ owns: policy.owns, value: policy }], true);

function casesOf(text: string): PolicyCase[] {
  const parsed = parseCases(text, 'cases.yaml');
  if (!parsed.ok) throw new Error(parsed.problems.map(formatProblem).join('\n'));
  return parsed.cases;
}

const WRITE_ONLY = `cases:
  - name: POST with only inventory.write
    claims: { sub: svc-inventory-sync, client_id: inventory-sync, gty: client_credentials, scope: inventory.write }
    request:
      method: POST
      path: /api/inventory/transactions
      body: { location: WH01 }
    expect: EXPECT
`;

describe('running cases', () => {
  it('passes when the reason and the missing names match', async () => {
    const cases = casesOf(
      WRITE_ONLY.replace(
        'EXPECT',
        '{ decision: deny, reason: scope_missing, missing: { scopes: [inventory.read] } }',
      ),
    );
    const [result] = await runCases(onlyExample, cases);
    expect(result?.failures).toEqual([]);
    expect(renderResults([result!])).toEqual(['✓ POST with only inventory.write', '', '1 passed, 0 failed']);
  });

  it('fails with "expected reason X, got Y" and prints the fix', async () => {
    const cases = casesOf(WRITE_ONLY.replace('EXPECT', '{ reason: role_missing }'));
    const results = await runCases(onlyExample, cases);
    expect(results[0]?.failures).toEqual(['expected reason role_missing, got scope_missing']);
    const lines = renderResults(results);
    expect(lines[0]).toBe(
      '✗ POST with only inventory.write — expected reason role_missing, got scope_missing',
    );
    expect(lines).toContain('    at cases.yaml:2');
    expect(lines).toContain('    fix: request scope inventory.read as well');
    expect(lines.at(-1)).toBe('0 passed, 1 failed');
  });

  it('fails when a listed missing name is not named by the decision', async () => {
    const cases = casesOf(WRITE_ONLY.replace('EXPECT', '{ missing: { scopes: [inventory.admin] } }'));
    const [result] = await runCases(onlyExample, cases);
    expect(result?.failures).toEqual([
      'expected missing scopes to include inventory.admin, got inventory.read',
    ]);
  });

  it('fails "expected allow" when the policy denies', async () => {
    const cases = casesOf(WRITE_ONLY.replace('EXPECT', '{ decision: allow }'));
    const [result] = await runCases(onlyExample, cases);
    expect(result?.failures).toEqual(['expected allow, got deny (scope_missing)']);
  });

  it('a mapping body is sent as JSON; a string body is sent as written', async () => {
    const text = `cases:
  - name: string body without content-type
    claims: { sub: svc-inventory-sync, client_id: inventory-sync, gty: client_credentials, scope: inventory.read inventory.write }
    request: { method: POST, path: /api/inventory/transactions, body: '{"location":"WH01"}' }
    expect: { reason: body_unreadable }
  - name: mapping body
    claims: { sub: svc-inventory-sync, client_id: inventory-sync, gty: client_credentials, scope: inventory.read inventory.write }
    request: { method: POST, path: /api/inventory/transactions, body: { location: WH01 } }
    expect: { decision: allow }
`;
    const results = await runCases(onlyExample, casesOf(text));
    expect(results.map((r) => r.failures)).toEqual([[], []]);
  });
});

describe('a malformed cases file is reported as FILE:LINE:COL: field: message', () => {
  const problemsOf = (text: string) => {
    const parsed = parseCases(text, 'cases.yaml');
    return parsed.ok ? [] : parsed.problems.map(formatProblem);
  };

  it('an unknown reason, with a suggestion', () => {
    const text = WRITE_ONLY.replace('EXPECT', '{ reason: scope_misisng }');
    const line = text.split('\n').findIndex((l) => l.includes('scope_misisng')) + 1;
    const col = text.split('\n')[line - 1]!.indexOf('scope_misisng') + 1;
    expect(problemsOf(text)).toEqual([
      `cases.yaml:${line}:${col}: cases[0].expect.reason: unknown reason "scope_misisng"; did you mean "scope_missing"?`,
    ]);
  });

  it('a typo in a key, a missing request, and an expectation that says nothing', () => {
    const text = `cases:
  - name: one
    claim: { sub: a }
    expect: { decision: allow }
  - name: two
    request: { method: GET, path: / }
    expect: {}
`;
    expect(problemsOf(text)).toEqual([
      'cases.yaml:3:5: cases[0]: unknown key "claim"; did you mean "claims"?',
      'cases.yaml:2:5: cases[0]: required key "request" is missing',
      'cases.yaml:7:13: cases[1].expect: say what to expect: a decision (allow or deny), a reason, the policy, or several of them',
    ]);
  });

  it('a decision that contradicts the reason, and duplicate case names', () => {
    const text = `cases:
  - name: same
    request: { method: GET, path: / }
    expect: { decision: allow, reason: scope_missing }
  - name: same
    request: { method: GET, path: / }
    expect: { decision: deny }
`;
    expect(problemsOf(text)).toEqual([
      'cases.yaml:4:40: cases[0].expect.reason: reason scope_missing contradicts decision allow',
      'cases.yaml:5:11: cases[1].name: "same" is also the name of cases[0]',
    ]);
  });

  it('invalid YAML and duplicate keys', () => {
    expect(problemsOf('cases:\n  - name: a\n    name: b\n')[0]).toMatch(/^cases\.yaml:3:5: invalid YAML: /);
    expect(problemsOf('cases: [\n')[0]).toMatch(/^cases\.yaml:\d+:\d+: invalid YAML: /);
  });

  it('an alias reads as its anchor; one inside the node it names is refused, not left to crash the run', () => {
    const shared = `cases:
  - name: first
    request: &list { method: GET, path: /api/inventory/transactions }
    expect: { reason: token_missing }
  - name: second
    request: *list
    expect: { reason: token_missing }
`;
    expect(casesOf(shared).map((c) => c.request.path)).toEqual([
      '/api/inventory/transactions',
      '/api/inventory/transactions',
    ]);
    const circular = `cases:
  - name: loop
    claims: &c { sub: svc, self: *c }
    request: { method: GET, path: / }
    expect: { decision: deny }
`;
    expect(problemsOf(circular)).toEqual(['cases.yaml:3:34: alias "*c" refers to a node that contains it']);
  });

  it('not a list of cases', () => {
    expect(problemsOf('tests: []\n')).toEqual([
      'cases.yaml:1:1: unknown key "tests" (known: cases)',
      'cases.yaml:1:1: cases: required: a list of cases',
    ]);
  });

  it('files that cannot be read, or are too large, are problems too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scopegate-cases-'));
    const missing = await loadCasesFile(join(dir, 'nope.yaml'));
    expect(missing.ok ? [] : missing.problems.map(formatProblem)).toEqual([
      `${join(dir, 'nope.yaml')}:1:1: cannot read the cases file (ENOENT)`,
    ]);
    const big = join(dir, 'big.yaml');
    writeFileSync(big, `# ${'x'.repeat(1024 * 1024)}\ncases: []\n`);
    const loaded = await loadCasesFile(big);
    expect(loaded.ok ? [] : loaded.problems.map((p) => p.message)).toEqual([
      'the cases file is larger than the limit of 1048576 bytes (1 MiB)',
    ]);
  });
});

describe('cases against a policy set', () => {
  const MESH_CASES = `cases:
  - name: shipments by host
    claims: &dispatch { sub: svc-dispatch, client_id: dispatch, gty: client_credentials, scope: shipments.write }
    request: { method: DELETE, path: /api/shipments/S1, host: shipments.example.com }
    expect: { decision: allow, policy: shipments }
  - name: inventory by Envoy's extension, whatever the host
    claims: *dispatch
    request:
      method: DELETE
      path: /api/shipments/S1
      host: shipments.example.com
      contextExtensions: { scopegate_policy: inventory }
    expect: { reason: route_unknown, policy: inventory }
  - name: shipments by the called workload
    claims: *dispatch
    request: { method: GET, path: /api/shipments, destinationPrincipal: "spiffe://cluster.local/ns/shipments/sa/shipments" }
    expect: { policy: shipments }
  - name: nobody owns orders
    claims: *dispatch
    request: { method: GET, path: /api/orders, host: orders.example.com }
    expect: { reason: policy_unknown }
`;

  it('each case runs on the policy the server would choose for it, and may say which one that must be', async () => {
    const mesh = await loadPolicySet(join(import.meta.dirname, '../../../examples/mesh'));
    expect(mesh.problems).toEqual([]);
    const results = await runCases(mesh.set, casesOf(MESH_CASES));
    expect(results.map((r) => [r.case.name, r.failures])).toEqual([
      ['shipments by host', []],
      ["inventory by Envoy's extension, whatever the host", []],
      ['shipments by the called workload', []],
      ['nobody owns orders', []],
    ]);
    // The expectation can fail, and says what decided instead.
    const wrong = casesOf(
      MESH_CASES.replace('expect: { decision: allow, policy: shipments }', 'expect: { policy: inventory }'),
    );
    expect((await runCases(mesh.set, wrong))[0]?.failures).toEqual([
      'expected policy inventory, got shipments',
    ]);
    const none = casesOf(
      MESH_CASES.replace('expect: { reason: policy_unknown }', 'expect: { policy: orders }'),
    );
    expect((await runCases(mesh.set, none))[3]?.failures).toEqual([
      'expected policy orders, got none (policy_unknown)',
    ]);
  });

  it('routing keys that are not strings are reported where they are', () => {
    const parsed = parseCases(
      `cases:
  - name: bad
    request: { method: GET, path: /x, host: [a], contextExtensions: { scopegate_policy: [x] } }
    expect: { policy: "" }
`,
      'cases.yaml',
    );
    expect(!parsed.ok && parsed.problems.map(formatProblem)).toEqual([
      'cases.yaml:3:45: cases[0].request.host: must be a non-empty string',
      'cases.yaml:3:89: cases[0].request.contextExtensions.scopegate_policy: an extension value must be a string (quote it)',
      'cases.yaml:4:23: cases[0].expect.policy: must be a non-empty string',
    ]);
  });
});

describe('cases at an HTTP front door (door: http, door: forward-auth)', () => {
  const withoutPrincipals = (text: string) => text.replace(/^ {2}destinationPrincipals: .*\n/m, '');
  const inventory = compile(withoutPrincipals(examplePolicyText()), 'inventory.yaml');
  const shipments = compile(withoutPrincipals(shipmentsPolicyText()), 'shipments.yaml');
  /** The mesh as a set an HTTP door can serve: each policy owns its hosts, none is chosen by destination. */
  const byHost = new PolicySet([inventory, shipments].map((p) => ({ owns: p.owns, value: p })));
  const DISPATCH =
    '{ sub: svc-dispatch, client_id: dispatch, gty: client_credentials, scope: shipments.write }';

  it('each case is decided as its door decides: the policy by host, or the whole set refused', async () => {
    const text = `cases:
  - name: over HTTP, shipments by its host
    claims: ${DISPATCH}
    request: { method: DELETE, path: /api/shipments/S1, host: shipments.example.com }
    door: http
    expect: { decision: allow, policy: shipments }
  - name: forward auth, the same
    claims: ${DISPATCH}
    request: { method: DELETE, path: /api/shipments/S1, host: shipments.example.com }
    door: forward-auth
    expect: { decision: allow, policy: shipments }
`;
    const results = await runCases(byHost, casesOf(text));
    expect(results.map((r) => [r.trace.door, r.failures])).toEqual([
      ['http', []],
      ['forward_auth', []],
    ]);

    // The mesh as shipped chooses by destination principal: no HTTP door serves it, as the server says.
    const mesh = await loadPolicySet(join(import.meta.dirname, '../../../examples/mesh'));
    const [refused] = await runCases(mesh.set, casesOf(text.replace('decision: allow', 'reason: allowed')));
    expect(refused?.failures).toEqual([
      'expected reason allowed, got policy_unknown',
      'expected policy shipments, got none (policy_unknown)',
    ]);
    expect(refused?.trace.detail).toBe(
      'this policy set chooses policies by destination principal, which the HTTP front door cannot carry: use the gRPC front door',
    );
  });

  it('a door that is not one, and what a door cannot carry, are problems where they are written', () => {
    const parsed = parseCases(
      `cases:
  - name: typo
    request: { method: GET, path: /x }
    door: htp
    expect: { decision: deny }
  - name: peer over HTTP
    request: { method: GET, path: /x, peer: "spiffe://cluster.local/ns/a/sa/b", contextExtensions: { scopegate_policy: a } }
    door: http
    expect: { decision: deny }
  - name: body over forward auth
    request: { method: POST, path: /x, body: { location: WH01 } }
    door: forward-auth
    expect: { decision: deny }
`,
      'cases.yaml',
    );
    expect(!parsed.ok && parsed.problems.map(formatProblem)).toEqual([
      'cases.yaml:4:11: cases[0].door: unknown door "htp"; did you mean "http"?',
      "cases.yaml:7:45: cases[1].request.peer: door: http never carries the calling workload's identity (mTLS peer): leave it out, or use door: grpc",
      "cases.yaml:7:100: cases[1].request.contextExtensions: door: http never carries Envoy's context extensions: leave it out, or use door: grpc",
      'cases.yaml:11:46: cases[2].request.body: door: forward-auth never carries a body: leave it out, or use door: grpc or door: http',
    ]);
  });
});
