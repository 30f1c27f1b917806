import { readFileSync } from 'node:fs';
// A broken policy is rejected with the file, line, column and field named, one line per problem — the
// way `scopegate validate` prints them. Each expected line here was counted by hand from the YAML.
import { describe, expect, test } from 'vitest';
import { formatProblem, parsePolicy } from '../../../src/policy/index.js';
import { DESIGN_SAMPLE, LIST_ROUTE, policy } from './fixtures.js';

function problemsOf(text: string): string[] {
  const result = parsePolicy(text, 'policy.yaml');
  if (result.ok) throw new Error('expected the policy to be rejected, but it was accepted');
  return result.problems.map(formatProblem);
}

describe('a policy is rejected with FILE:LINE:COL: field: message', () => {
  test('the DESIGN.md sample policy (jwks from a file) is valid', () => {
    const result = parsePolicy(DESIGN_SAMPLE, 'policy.yaml');
    expect(result.ok ? [] : result.problems.map(formatProblem)).toEqual([]);
  });

  test('a typo in a route permission (INV_TRANSACTON_READ) names the permission it probably meant', () => {
    const text = policy(
      '',
      `  - name: list_transactions
    method: GET
    path: /api/inventory/transactions
    permissions: [INV_TRANSACTON_READ]
`,
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:15:19: routes[0].permissions[0]: unknown permission "INV_TRANSACTON_READ"; did you mean "INV_TRANSACTION_READ"?',
    ]);
  });

  test('a permission that no scope grants is unknown, even if a role grants it', () => {
    const text = policy('roles:\n  Auditor: [INV_AUDIT]\n', LIST_ROUTE);
    expect(problemsOf(text)).toEqual(['policy.yaml:12:13: roles.Auditor[0]: unknown permission "INV_AUDIT"']);
  });

  test('an unknown top-level key suggests the closest known key', () => {
    const text = policy('rolez:\n  Inventory Data Reader: [INV_TRANSACTION_READ]\n', LIST_ROUTE);
    expect(problemsOf(text)).toEqual(['policy.yaml:11:1: rolez: unknown key "rolez"; did you mean "roles"?']);
  });

  test('an unknown key inside a route is reported with the key it misspells, and the missing key too', () => {
    const text = policy(
      '',
      `  - name: list_transactions
    method: GET
    path: /api/inventory/transactions
    permision: [INV_TRANSACTION_READ]
`,
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:12:5: routes[0].permissions: required key "permissions" is missing',
      'policy.yaml:15:5: routes[0].permision: unknown key "permision"; did you mean "permissions"?',
    ]);
  });

  test('an unknown key with no close match lists the keys that are allowed', () => {
    const text = policy('', LIST_ROUTE.replace('    method: GET\n', '    method: GET\n    tenant: acme\n'));
    expect(problemsOf(text)).toEqual([
      'policy.yaml:14:5: routes[0].tenant: unknown key "tenant"; expected one of name, method, path, permissions, location, mode',
    ]);
  });

  test('a duplicate route name is reported at the second one, naming the line of the first', () => {
    const text = policy(
      '',
      `${LIST_ROUTE}  - name: list_transactions
    method: GET
    path: /api/inventory/transactions/{id}
    permissions: [INV_TRANSACTION_READ]
`,
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:16:11: routes[1].name: duplicate route name "list_transactions" (first at line 12)',
    ]);
  });

  test('a route with the same method and template as an earlier one can never match', () => {
    const text = policy(
      '',
      `  - name: get_transaction
    method: [GET, HEAD]
    path: /api/inventory/transactions/{id}
    permissions: [INV_TRANSACTION_READ]
  - name: get_transaction_again
    method: GET
    path: /api/inventory/transactions/{txid}
    permissions: [INV_TRANSACTION_READ]
`,
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:18:11: routes[1].path: route "get_transaction_again" can never match: route "get_transaction" (line 12) has the same method GET and path template',
    ]);
  });

  test.each([
    ['//', 'path template "//" has an empty segment ("//")'],
    ['/a//b', 'path template "/a//b" has an empty segment ("//")'],
    ['/a/../b', 'path template "/a/../b" has a ".." segment; templates are canonical paths'],
    ['/a/./b', 'path template "/a/./b" has a "." segment; templates are canonical paths'],
    ['/a/{id', 'path template "/a/{id": "{id" must be a whole segment "{name}"'],
    ['/a/x{id}', 'path template "/a/x{id}": "x{id}" must be a whole segment "{name}"'],
    ['/{id}/{id}', 'path template "/{id}/{id}" names parameter "{id}" twice'],
    ['/a/', 'path template "/a/" must not end with "/"'],
    ['api/items', 'path template "api/items" must start with "/"'],
    ['/a/{1x}', 'path template "/a/{1x}": parameter "1x" must be a name ([A-Za-z_][A-Za-z0-9_]*)'],
    [
      '/a/b%2Fc',
      `path template "/a/b%2Fc": segment "b%2Fc" may only use letters, digits and - . _ ~ ! $ & ' ( ) * + , = : @`,
    ],
    [
      '/a;v=1',
      `path template "/a;v=1": segment "a;v=1" may only use letters, digits and - . _ ~ ! $ & ' ( ) * + , = : @`,
    ],
  ])('the path template %s is rejected', (template, message) => {
    const text = policy('', LIST_ROUTE.replace('/api/inventory/transactions', JSON.stringify(template)));
    expect(problemsOf(text)).toEqual([`policy.yaml:14:11: routes[0].path: ${message}`]);
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

  test('alg none is refused', () => {
    const text = policy('', LIST_ROUTE).replace('algorithms: [RS256]', 'algorithms: [none]');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:7:20: authentication.issuers[0].algorithms[0]: algorithm "none" is never allowed: unsigned tokens prove nothing',
    ]);
  });

  test('HS256 is refused: a shared-secret algorithm cannot be checked with a public key', () => {
    const text = policy('', LIST_ROUTE).replace('algorithms: [RS256]', 'algorithms: [RS256, HS256]');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:7:27: authentication.issuers[0].algorithms[1]: algorithm "HS256" is not allowed: HMAC (HS*) needs a shared secret, and verifying it with a public key lets anyone forge tokens',
    ]);
  });

  test('an algorithm in the wrong case suggests the right spelling', () => {
    const text = policy('', LIST_ROUTE).replace('algorithms: [RS256]', 'algorithms: [rs256]');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:7:20: authentication.issuers[0].algorithms[0]: unknown algorithm "rs256"; did you mean "RS256"?',
    ]);
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

  test('invalid YAML is reported where the parser stopped', () => {
    const text = policy('', LIST_ROUTE).replace(
      'permissions: [INV_TRANSACTION_READ]',
      'permissions: [INV_TRANSACTION_READ',
    );
    const problems = problemsOf(text);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]).toMatch(/^policy\.yaml:16:1: invalid YAML: /);
  });

  test('a tab used for indentation is invalid YAML, at its line', () => {
    const text = policy('', LIST_ROUTE).replace('    method: GET', '\tmethod: GET');
    expect(problemsOf(text)[0]).toMatch(/^policy\.yaml:13:1: invalid YAML: /);
  });

  test('a key written twice is refused, naming where it was first', () => {
    const text = policy('', LIST_ROUTE).replace('    method: GET\n', '    method: GET\n    method: POST\n');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:14:5: routes[0].method: duplicate key "method" (first at line 13)',
    ]);
  });

  test('an empty file asks for at least a version', () => {
    expect(problemsOf('')).toEqual(['policy.yaml:1:1: the policy is empty; it needs at least "version: 1"']);
  });

  test('a file that is not a map says so', () => {
    expect(problemsOf('- version: 1\n')).toEqual(['policy.yaml:1:1: expected a map, got a list']);
  });

  test('wrong types are named with what was found', () => {
    const text = policy(
      '',
      LIST_ROUTE.replace('permissions: [INV_TRANSACTION_READ]', 'permissions: INV_TRANSACTION_READ'),
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:15:18: routes[0].permissions: expected a list, got a string',
    ]);
  });

  test('an issuer needs exactly one of jwks uri or file', () => {
    const both = policy('', LIST_ROUTE).replace(
      'jwks: { uri: https://idp.example.com/jwks.json }',
      'jwks: { uri: https://idp.example.com/jwks.json, file: ./jwks.json }',
    );
    expect(problemsOf(both)).toEqual([
      'policy.yaml:6:55: authentication.issuers[0].jwks.file: jwks must have exactly one of "uri" or "file", not both',
    ]);
    const neither = policy('', LIST_ROUTE).replace(
      'jwks: { uri: https://idp.example.com/jwks.json }',
      'jwks: {}',
    );
    expect(problemsOf(neither)).toEqual([
      'policy.yaml:6:13: authentication.issuers[0].jwks: jwks needs exactly one of "uri" (an http(s) URL) or "file" (a JWKS file)',
    ]);
  });

  test('a jwks uri must be an http(s) URL', () => {
    const text = policy('', LIST_ROUTE).replace('https://idp.example.com/jwks.json', 'file:///etc/jwks.json');
    expect(problemsOf(text)).toEqual([
      'policy.yaml:6:20: authentication.issuers[0].jwks.uri: jwks uri must be an http(s) URL, got "file:///etc/jwks.json"',
    ]);
  });

  test('clockToleranceSeconds is bounded to 0..300', () => {
    const text = policy('', LIST_ROUTE).replace(
      'algorithms: [RS256]',
      'algorithms: [RS256]\n      clockToleranceSeconds: 3600',
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:8:30: authentication.issuers[0].clockToleranceSeconds: expected a whole number from 0 to 300, got 3600',
    ]);
  });

  test('maxTokenBytes is bounded to 1024..65536', () => {
    const text = policy('', LIST_ROUTE).replace(
      'authentication:\n',
      'authentication:\n  maxTokenBytes: 100\n',
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:3:18: authentication.maxTokenBytes: expected a whole number from 1024 to 65536, got 100',
    ]);
  });

  test('the same issuer twice is refused at the second', () => {
    const issuer = `    - issuer: https://idp.example.com/
      audiences: [https://gateway.example.com]
      jwks: { uri: https://idp.example.com/jwks.json }
      algorithms: [RS256]
`;
    const text = policy('', LIST_ROUTE).replace(issuer, issuer + issuer);
    expect(problemsOf(text)).toEqual([
      'policy.yaml:8:15: authentication.issuers[1].issuer: duplicate issuer "https://idp.example.com/" (first at line 4)',
    ]);
  });

  test('without an issuer or envoyJwtAuthn nobody could authenticate', () => {
    const text = `version: 1
authentication:
  realm: inventory
scopes:
  inventory.read: [INV_TRANSACTION_READ]
routes: []
`;
    expect(problemsOf(text)).toEqual([
      'policy.yaml:3:3: authentication: no way to authenticate callers: list at least one issuer, or set envoyJwtAuthn',
    ]);
  });

  test('envoyJwtAuthn alone is a way to authenticate', () => {
    const text = `version: 1
authentication:
  envoyJwtAuthn: { metadataKey: jwt_payload }
scopes:
  inventory.read: [INV_TRANSACTION_READ]
routes: []
`;
    expect(parsePolicy(text, 'policy.yaml').ok).toBe(true);
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

  test('route locations: a path location must name a parameter of that route', () => {
    const text = policy(
      '',
      `  - name: list_location_items
    method: GET
    path: /api/inventory/locations/{location}/items
    permissions: [INV_TRANSACTION_READ]
    location: { path: locaton }
`,
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:16:23: routes[0].location.path: "locaton" is not a parameter of path "/api/inventory/locations/{location}/items"; did you mean "location"?',
    ]);
  });

  test('route locations: headers are named lower-case, body paths are JSON field paths, one source only', () => {
    const route = (location: string) => `${LIST_ROUTE}    location: ${location}\n`;
    expect(problemsOf(policy('', route('{ header: X-Location }')))).toEqual([
      'policy.yaml:16:25: routes[0].location.header: header names are matched lower-cased; write "x-location"',
    ]);
    expect(problemsOf(policy('', route('{ body: "lines[0].location" }')))).toEqual([
      'policy.yaml:16:23: routes[0].location.body: "lines[0].location" is not a JSON field path; write keys separated by "." like "location" or "lines[].location"',
    ]);
    expect(problemsOf(policy('', route('{ body: location, query: location }')))).toEqual([
      'policy.yaml:16:33: routes[0].location: location needs exactly one of body, path, query, header, not body and query',
    ]);
    expect(parsePolicy(policy('', route('{ body: "lines[].location" }')), 'policy.yaml').ok).toBe(true);
  });

  test('a method must be an upper-case HTTP method', () => {
    const text = policy('', LIST_ROUTE.replace('method: GET', 'method: [GET, post]'));
    expect(problemsOf(text)).toEqual([
      'policy.yaml:13:19: routes[0].method[1]: unknown HTTP method "post"; did you mean "POST"?',
    ]);
  });

  test('a scope name with a space could never be in a token', () => {
    const text = policy('', LIST_ROUTE).replace('  inventory.read:', '  "inventory read":');
    // The route's permission is still known: only the scope's name is wrong.
    expect(problemsOf(text)).toEqual([
      'policy.yaml:9:3: scopes["inventory read"]: scope "inventory read" is not a valid OAuth2 scope name (printable ASCII without spaces, " or \\)',
    ]);
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

  test('unlistedClients is deny or allow', () => {
    const text = policy('', LIST_ROUTE).replace(
      'authentication:\n',
      'authentication:\n  unlistedClients: permit\n',
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:3:20: authentication.unlistedClients: unknown choice "permit"; expected one of deny, allow',
    ]);
  });
});
