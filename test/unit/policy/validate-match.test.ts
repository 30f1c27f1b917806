// A policy's `name` and `match` block (issue 19): the name a set knows it by, the hosts and destination
// principals it owns, and `default`. Each expected line was counted by hand from the YAML (`extra` starts at
// line 11 of the fixture policy).
import { describe, expect, test } from 'vitest';
import { formatProblem, parsePolicy } from '../../../src/policy/index.js';
import { defaultPolicyName, hostProblem } from '../../../src/policy/validate-match.js';
import { LIST_ROUTE, policy, problemsOf } from './fixtures.js';

const INVENTORY_SA = 'spiffe://cluster.local/ns/inventory/sa/inventory-api';

function compiled(extra: string, file = 'policy.yaml') {
  const result = parsePolicy(policy(extra, LIST_ROUTE), file);
  if (!result.ok) throw new Error(result.problems.map(formatProblem).join('\n'));
  return result.policy;
}

describe('name', () => {
  test('defaults to the file name without its extension, wherever the file is', () => {
    expect(compiled('', '/etc/scopegate/policies/inventory.yaml').name).toBe('inventory');
    expect(compiled('', 'orders.v2.yml').name).toBe('orders.v2');
    expect(defaultPolicyName('/a/b/README')).toBe('README');
  });

  test('a name in the file wins over the file name, and is where the conflict report points', () => {
    const p = compiled('name: stock\n', 'inventory.yaml');
    expect(p.name).toBe('stock');
    expect(p.owns.name).toBe('stock');
    expect(p.owns.sites['name stock']).toEqual({ line: 11, col: 7, field: 'name' });
  });

  test('a defaulted name is sited at the top of the file, as the file name', () => {
    expect(compiled('', 'inventory.yaml').owns.sites['name inventory']).toEqual({
      line: 1,
      col: 1,
      field: '(file name)',
    });
  });

  test('a name that could not be a label, a header value or an extension value is refused', () => {
    expect(problemsOf(policy('name: "stock report"\n', LIST_ROUTE))).toEqual([
      'policy.yaml:11:7: name: policy name "stock report" may only use letters, digits, "_", "." and "-", starting with a letter or digit, at most 128 characters',
    ]);
    expect(problemsOf(policy(`name: ${'a'.repeat(129)}\n`, LIST_ROUTE))).toHaveLength(1);
    expect(problemsOf(policy('name: -x\n', LIST_ROUTE))).toHaveLength(1);
  });

  test('without a name, a file name that cannot be one asks for "name:"', () => {
    const result = parsePolicy(policy('', LIST_ROUTE), 'My Policy.yaml');
    expect(result.ok).toBe(false);
    expect(!result.ok && result.problems.map(formatProblem)).toEqual([
      'My Policy.yaml:1:1: name: the policy has no "name" and its file name "My Policy" cannot be one (letters, digits, "_", "." and "-", starting with a letter or digit, at most 128 characters); add "name:"',
    ]);
    // The same file with a name is fine.
    expect(parsePolicy(policy('name: my-policy\n', LIST_ROUTE), 'My Policy.yaml').ok).toBe(true);
  });
});

describe('match', () => {
  test('hosts, destination principals and default are compiled as written, with where each is', () => {
    const p = compiled(`match:
  hosts: [inventory.example.com, "*.inventory.example.com"]
  destinationPrincipals: [${INVENTORY_SA}]
  default: true
`);
    expect(p.owns).toMatchObject({
      name: 'policy',
      hosts: ['inventory.example.com', '*.inventory.example.com'],
      destinationPrincipals: [INVENTORY_SA],
      default: true,
    });
    expect(p.owns.sites).toMatchObject({
      'host inventory.example.com': { line: 12, col: 11, field: 'match.hosts[0]' },
      'host *.inventory.example.com': { line: 12, col: 34, field: 'match.hosts[1]' },
      [`destinationPrincipal ${INVENTORY_SA}`]: {
        line: 13,
        col: 27,
        field: 'match.destinationPrincipals[0]',
      },
      'default ': { line: 14, col: 12, field: 'match.default' },
    });
  });

  test('no match block owns nothing but its name; default: false claims nothing', () => {
    expect(compiled('').owns).toMatchObject({ hosts: [], destinationPrincipals: [], default: false });
    const p = compiled('match: { default: false }\n');
    expect(p.owns.default).toBe(false);
    expect(Object.keys(p.owns.sites)).toEqual(['name policy', 'issuer https://idp.example.com/']);
  });

  test('each bad entry is reported where it is, with why', () => {
    expect(
      problemsOf(
        policy(
          `match:
  hosts: ["*", Inventory.example.com, "inventory.example.com:8443", "a.*.example.com", "bad host"]
  destinationPrincipals: ["SPIFFE://cluster.local/ns/a/sa/b", "spiffe://cluster.local/ns/../sa/b"]
  default: yes
  hostnames: [x]
`,
          LIST_ROUTE,
        ),
      ),
    ).toEqual([
      'policy.yaml:12:11: match.hosts[0]: host "*" matches everything: say "match: { default: true }" for the policy of last resort',
      'policy.yaml:12:16: match.hosts[1]: host "Inventory.example.com" has upper-case letters; write hosts in lower case (they match any case)',
      'policy.yaml:12:39: match.hosts[2]: host "inventory.example.com:8443" has a port; hosts match without their port',
      'policy.yaml:12:69: match.hosts[3]: host "a.*.example.com" has a "*" other than a leading "*." (a wildcard covers the names under a suffix)',
      'policy.yaml:12:88: match.hosts[4]: host "bad host" is not a host name (labels of letters, digits, "-" and "_", separated by ".")',
      'policy.yaml:13:27: match.destinationPrincipals[0]: destination principal "SPIFFE://cluster.local/ns/a/sa/b" is not a SPIFFE ID: it does not start with spiffe:// (the scheme is lower case)',
      'policy.yaml:13:63: match.destinationPrincipals[1]: destination principal "spiffe://cluster.local/ns/../sa/b" is not a SPIFFE ID: it has a "." or ".." path segment',
      'policy.yaml:14:12: match.default: expected true or false, got "yes"',
      'policy.yaml:15:3: match.hostnames: unknown key "hostnames"; expected one of hosts, destinationPrincipals, default',
    ]);
  });

  test('a host listed twice in one file is reported at the second', () => {
    expect(problemsOf(policy('match: { hosts: [a.example.com, a.example.com] }\n', LIST_ROUTE))).toEqual([
      'policy.yaml:11:33: match.hosts[1]: "a.example.com" is listed twice',
    ]);
  });

  test.each([
    ['inventory.example.com', undefined],
    ['*.example.com', undefined],
    ['localhost', undefined],
    ['10.0.0.7', undefined],
    ['[::1]', undefined],
    ['inventory_api.internal', undefined],
    ['*.[::1]', 'is not a host name (labels of letters, digits, "-" and "_", separated by ".")'],
    ['inventory.example.com.', 'ends with "."; write it without the trailing dot (it matches either way)'],
    [
      '-inventory.example.com',
      'is not a host name (labels of letters, digits, "-" and "_", separated by ".")',
    ],
    ['a..b', 'is not a host name (labels of letters, digits, "-" and "_", separated by ".")'],
    [
      `${'a'.repeat(64)}.com`,
      'is not a host name (labels of letters, digits, "-" and "_", separated by ".")',
    ],
    [`${'a.'.repeat(127)}ab`, 'is longer than 253 characters'],
  ])('host %j → %s', (host, problem) => {
    expect(hostProblem(host)).toBe(problem);
  });
});
