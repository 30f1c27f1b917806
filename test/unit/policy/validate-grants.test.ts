// The grants: scopes, roles, clients and subjects, the names they refer to, and the issuer each client and
// subject belongs to. Each expected line here was counted by hand from the YAML.
import { describe, expect, test } from 'vitest';
import { formatProblem, parsePolicy } from '../../../src/policy/index.js';
import { LIST_ROUTE, policy, problemsOf } from './fixtures.js';

describe('scopes, roles, clients and subjects', () => {
  test('a permission that no scope grants is unknown, even if a role grants it', () => {
    const text = policy('roles:\n  Auditor: [INV_AUDIT]\n', LIST_ROUTE);
    expect(problemsOf(text)).toEqual(['policy.yaml:12:13: roles.Auditor[0]: unknown permission "INV_AUDIT"']);
  });

  test('a subject role that the roles section does not define is unknown', () => {
    const text = policy(
      `roles:
  Inventory Data Reader: [INV_TRANSACTION_READ]
subjects:
  svc-inventory-sync: { roles: [Inventory Data Reader, Inventory Transaction Manager] }
`,
      LIST_ROUTE,
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:14:56: subjects["svc-inventory-sync"].roles[1]: unknown role "Inventory Transaction Manager"',
    ]);
  });

  test('a subject role is an error when the policy has no roles section at all', () => {
    const text = policy('subjects:\n  svc-inventory-sync: { roles: [Inventory Data Reader] }\n', LIST_ROUTE);
    expect(problemsOf(text)).toEqual([
      'policy.yaml:12:33: subjects["svc-inventory-sync"].roles[0]: role "Inventory Data Reader" is not defined: this policy has no roles section',
    ]);
  });

  test('a client scope that the scopes section does not define is unknown', () => {
    const text = policy(
      'clients:\n  inventory-sync: { scopes: [inventory.read, inventory.writes] }\n',
      LIST_ROUTE,
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:12:46: clients["inventory-sync"].scopes[1]: unknown scope "inventory.writes"; did you mean "inventory.write"?',
    ]);
  });

  test('a location pattern may only use * alone or at the end', () => {
    const text = policy(
      'subjects:\n  svc-inventory-sync: { locations: [WH01, "EU-*", "*", "E*U"] }\n',
      LIST_ROUTE,
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:12:56: subjects["svc-inventory-sync"].locations[3]: location pattern "E*U" may only use "*" alone or at the end (like "EU-*")',
    ]);
  });

  test('a scope name with a space could never be in a token', () => {
    const text = policy('', LIST_ROUTE).replace('  inventory.read:', '  "inventory read":');
    // The route's permission is still known: only the scope's name is wrong.
    expect(problemsOf(text)).toEqual([
      'policy.yaml:9:3: scopes["inventory read"]: scope "inventory read" is not a valid OAuth2 scope name (printable ASCII without spaces, " or \\)',
    ]);
  });
});

describe('subjects and clients belong to an issuer', () => {
  /** `policy()` with a second issuer: `extra` starts at line 15. */
  const twoIssuers = (extra: string) =>
    policy(extra, LIST_ROUTE).replace(
      '      algorithms: [RS256]\n',
      '      algorithms: [RS256]\n    - issuer: https://partner-idp.example.com/\n      audiences: [inventory]\n      jwks: { uri: https://partner-idp.example.com/jwks.json }\n      algorithms: [ES256]\n',
    );

  test('with two issuers, an entry without issuer is refused at its key, naming both issuers', () => {
    const text = twoIssuers(
      'subjects:\n  svc-inventory-sync: { locations: [WH01] }\nclients:\n  inventory-sync: { scopes: [inventory.read] }\n',
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:16:3: subjects["svc-inventory-sync"].issuer: with several issuers, say which one this subject belongs to: issuer: one of https://idp.example.com/, https://partner-idp.example.com/',
      'policy.yaml:18:3: clients["inventory-sync"].issuer: with several issuers, say which one this client belongs to: issuer: one of https://idp.example.com/, https://partner-idp.example.com/',
    ]);
  });

  test('an issuer the policy does not list is unknown, with the closest one suggested', () => {
    const text = twoIssuers('subjects:\n  svc: { issuer: https://idp.example.com, locations: [WH01] }\n');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:16:18: subjects.svc.issuer: unknown issuer "https://idp.example.com"; did you mean "https://idp.example.com/"? (from authentication.issuers)',
    ]);
  });

  test('one name under two issuers is two entries (the key is a label once `subject` names it)', () => {
    const text = twoIssuers(
      'subjects:\n  svc: { issuer: https://idp.example.com/, locations: [WH01] }\n  partner-svc: { issuer: https://partner-idp.example.com/, subject: svc, locations: [WH02] }\n',
    );
    const result = parsePolicy(text, 'policy.yaml');
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([]);
    if (!result.ok) return;
    expect([...result.policy.subjects.get('https://idp.example.com/', 'svc')!.locations.exact]).toEqual([
      'WH01',
    ]);
    expect([
      ...result.policy.subjects.get('https://partner-idp.example.com/', 'svc')!.locations.exact,
    ]).toEqual(['WH02']);
    expect(result.policy.subjects.get('https://other.example/', 'svc')).toBeUndefined();
  });

  test('the same name twice within one issuer is refused, naming the first line', () => {
    const text = policy(
      'subjects:\n  svc: { locations: [WH01] }\n  again: { subject: svc, locations: [WH02] }\n',
      LIST_ROUTE,
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:13:21: subjects.again: subject "svc" of issuer https://idp.example.com/ is already given at line 12',
    ]);
  });

  test('a name no token can carry exactly (control character, surrounding space) is refused', () => {
    const text = policy(
      'subjects:\n  "svc ": { locations: [WH01] }\nclients:\n  app: { client: "a\\tb", scopes: [inventory.read] }\n',
      LIST_ROUTE,
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:12:3: subjects["svc "]: subject name "svc " starts or ends with whitespace, so no token can carry it',
      'policy.yaml:14:18: clients.app.client: client name "a\\tb" contains a control character, so no token can carry it',
    ]);
  });
});

describe('peers and the identities a route needs', () => {
  const ROLES = 'roles:\n  Reader: [INV_TRANSACTION_READ]\n';

  test('peers are SPIFFE IDs, or IDs whose last segment is *; anything else is refused where written', () => {
    const text = policy(
      `${ROLES}peers:
  spiffe://cluster.local/ns/orders/sa/orders-api: { roles: [Reader], locations: [WH01] }
  spiffe://cluster.local/ns/reporting/sa/*: { roles: [Reader] }
  SPIFFE://cluster.local/ns/x/sa/y: {}
  spiffe://cluster.local/ns/*/sa/y: {}
  spiffe://cluster.local/ns/x/sa/: {}
  orders.example.com: {}
`,
      LIST_ROUTE,
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:16:3: peers["SPIFFE://cluster.local/ns/x/sa/y"]: peer "SPIFFE://cluster.local/ns/x/sa/y" is not a SPIFFE ID (or one ending in /*): it does not start with spiffe:// (the scheme is lower case)',
      'policy.yaml:17:3: peers["spiffe://cluster.local/ns/*/sa/y"]: peer "spiffe://cluster.local/ns/*/sa/y" is not a SPIFFE ID (or one ending in /*): it uses "*" other than as its whole last segment',
      'policy.yaml:18:3: peers["spiffe://cluster.local/ns/x/sa/"]: peer "spiffe://cluster.local/ns/x/sa/" is not a SPIFFE ID (or one ending in /*): it has an empty path segment (a doubled or trailing "/")',
      'policy.yaml:19:3: peers["orders.example.com"]: peer "orders.example.com" is not a SPIFFE ID (or one ending in /*): it does not start with spiffe:// (the scheme is lower case)',
    ]);
  });

  test("a peer's roles must be defined, its locations valid, and peers need a roles section", () => {
    expect(
      problemsOf(
        policy(
          `${ROLES}peers:\n  spiffe://td/ns/a/sa/b: { roles: [Writer], locations: ["W*H"] }\n`,
          LIST_ROUTE,
        ),
      ),
    ).toEqual([
      'policy.yaml:14:36: peers["spiffe://td/ns/a/sa/b"].roles[0]: unknown role "Writer"',
      'policy.yaml:14:57: peers["spiffe://td/ns/a/sa/b"].locations[0]: location pattern "W*H" may only use "*" alone or at the end (like "EU-*")',
    ]);
    expect(problemsOf(policy('peers:\n  spiffe://td/ns/a/sa/b: {}\n', LIST_ROUTE))).toEqual([
      "policy.yaml:12:3: peers: peers need a roles section: a peer's permissions come from its roles",
    ]);
  });

  test('identity is token, peer or token_and_peer; needing a peer needs a peers section', () => {
    const peerRoute = LIST_ROUTE.replace('    permissions:', '    identity: peer\n    permissions:');
    expect(problemsOf(policy('', peerRoute))).toEqual([
      'policy.yaml:15:15: routes[0].identity: identity peer needs a peers section: it lists the workloads that may call',
    ]);
    expect(problemsOf(policy('identity: mtls\n', LIST_ROUTE))).toEqual([
      'policy.yaml:11:11: identity: unknown identity "mtls"; expected one of token, peer, token_and_peer',
    ]);
    const result = parsePolicy(
      policy(
        `${ROLES}identity: token_and_peer\npeers:\n  spiffe://td/ns/a/sa/*: { roles: [Reader] }\n`,
        peerRoute,
      ),
      'policy.yaml',
    );
    expect(result.ok && [result.policy.identity, result.policy.routes[0]?.identity]).toEqual([
      'token_and_peer',
      'peer',
    ]);
    expect(result.ok && result.policy.peers.size).toBe(1);
  });
});
