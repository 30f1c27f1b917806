// The `routes` section: names, methods, path templates, permissions, locations, and routes that could
// never match. Each expected line here was counted by hand from the YAML.
import { describe, expect, test } from 'vitest';
import { parsePolicy } from '../../../src/policy/index.js';
import { LIST_ROUTE, policy, problemsOf } from './fixtures.js';

describe('routes', () => {
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
      'policy.yaml:14:5: routes[0].tenant: unknown key "tenant"; expected one of name, method, path, permissions, location, mode, identity',
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

  test('wrong types are named with what was found', () => {
    const text = policy(
      '',
      LIST_ROUTE.replace('permissions: [INV_TRANSACTION_READ]', 'permissions: INV_TRANSACTION_READ'),
    );
    expect(problemsOf(text)).toEqual([
      'policy.yaml:15:18: routes[0].permissions: expected a list, got a string',
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
});
