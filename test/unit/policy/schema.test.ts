// policy.schema.json is what editors check a policy with; scopegate's validator is what the server
// checks it with. They must agree on what a valid policy looks like, and on the obvious mistakes.
// No src/policy/schema.ts exists for this file to mirror: the schema is a file at the repository root (shipped
// in the package), and its test lives here, beside the validator's, because what it holds the schema to is
// src/policy/validate*.ts (a new policy field goes in both; see docs/architecture.md).
import { readFile } from 'node:fs/promises';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { beforeAll, describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { parsePolicy } from '../../../src/policy/index.js';
import { DESIGN_SAMPLE, LIST_ROUTE, policy } from './fixtures.js';

let validateSchema: (data: unknown) => boolean;

beforeAll(async () => {
  const schema = JSON.parse(await readFile(new URL('../../../policy.schema.json', import.meta.url), 'utf8'));
  // strict: the schema itself must not use unknown keywords or ambiguous constructs.
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  const validate = ajv.compile(schema);
  validateSchema = (data) => validate(data) === true;
});

function bothVerdicts(text: string): { schema: boolean; validator: boolean } {
  return { schema: validateSchema(parse(text)), validator: parsePolicy(text, 'policy.yaml').ok };
}

const COMPLETE = `version: 1
authentication:
  realm: inventory
  maxTokenBytes: 16384
  issuers:
    - issuer: https://idp.example.com/
      audiences: [https://gateway.example.com]
      jwks: { uri: https://idp.example.com/.well-known/jwks.json }
      algorithms: [RS256, PS256, ES256, EdDSA]
      clockToleranceSeconds: 60
    - issuer: https://staff-idp.example.com/
      audiences: [inventory]
      jwks: { file: ./staff-jwks.json }
      algorithms: [ES384]
  envoyJwtAuthn: { metadataKey: jwt_payload }
  unlistedClients: deny
  claims:
    subject: [sub]
    scopes: [scope, scp]
    roles: [roles, groups]
    client: [client_id, azp]
    grantType: [gty]
    locations: [locations]
scopes:
  inventory.read: [INV_TRANSACTION_READ]
  inventory.write: [INV_TRANSACTION_CREATE, INV_TRANSACTION_UPDATE]
roles:
  Inventory Transaction Manager: [INV_TRANSACTION_CREATE, INV_TRANSACTION_UPDATE]
  Inventory Data Reader: [INV_TRANSACTION_READ]
clients:
  inventory-sync: { issuer: https://idp.example.com/, scopes: [inventory.read, inventory.write], grantTypes: [client_credentials] }
  portal: { issuer: https://staff-idp.example.com/, scopes: [inventory.read] }
  staff-sync: { issuer: https://staff-idp.example.com/, client: inventory-sync, scopes: [inventory.read] }
subjects:
  svc-inventory-sync: { issuer: https://idp.example.com/, roles: [Inventory Transaction Manager, Inventory Data Reader], locations: [WH01, "EU-*"] }
  staff-sync: { issuer: https://staff-idp.example.com/, subject: svc-inventory-sync, locations: [WH01] }
  auditor: { issuer: https://staff-idp.example.com/, locations: ["*"] }
routes:
  - name: create_transaction
    method: POST
    path: /api/inventory/transactions
    permissions: [INV_TRANSACTION_CREATE, INV_TRANSACTION_READ]
    location: { body: "lines[].location" }
  - name: get_transaction
    method: [GET, HEAD]
    path: /api/inventory/transactions/{id}
    permissions: [INV_TRANSACTION_READ]
    location: { header: x-warehouse }
  - name: list_location_items
    method: GET
    path: /api/inventory/locations/{location}/items
    permissions: [INV_TRANSACTION_READ]
    location: { path: location }
  - name: search
    method: GET
    path: /api/inventory/search
    permissions: [INV_TRANSACTION_READ]
    location: { query: warehouse }
  - name: root
    method: OPTIONS
    path: /
    permissions: [INV_TRANSACTION_READ]
`;

describe('policy.schema.json agrees with the validator', () => {
  test('a complete policy using every section passes both', () => {
    expect(bothVerdicts(COMPLETE)).toEqual({ schema: true, validator: true });
  });

  test('the DESIGN.md sample passes both', () => {
    expect(bothVerdicts(DESIGN_SAMPLE)).toEqual({ schema: true, validator: true });
  });

  test.each([
    ['an unknown top-level key', policy('rolez:\n  Reader: [INV_TRANSACTION_READ]\n', LIST_ROUTE)],
    [
      'an unknown key in a route',
      policy('', LIST_ROUTE.replace('method: GET', 'method: GET\n    tenant: acme')),
    ],
    [
      'a wrong type (permissions as a string)',
      policy('', LIST_ROUTE.replace('[INV_TRANSACTION_READ]', 'INV_TRANSACTION_READ')),
    ],
    ['a wrong type (version as a string)', policy('', LIST_ROUTE).replace('version: 1', 'version: "1"')],
    ['alg none', policy('', LIST_ROUTE).replace('algorithms: [RS256]', 'algorithms: [none]')],
    ['alg HS256', policy('', LIST_ROUTE).replace('algorithms: [RS256]', 'algorithms: [HS256]')],
    ['an empty algorithm list', policy('', LIST_ROUTE).replace('algorithms: [RS256]', 'algorithms: []')],
    [
      'jwks with both uri and file',
      policy('', LIST_ROUTE).replace('jwks: { uri:', 'jwks: { file: ./k.json, uri:'),
    ],
    ['a lower-case method', policy('', LIST_ROUTE.replace('method: GET', 'method: get'))],
    [
      'a clock tolerance over 300 s',
      policy('', LIST_ROUTE).replace(
        'algorithms: [RS256]',
        'algorithms: [RS256]\n      clockToleranceSeconds: 301',
      ),
    ],
    [
      'a path template with a trailing slash',
      policy('', LIST_ROUTE.replace('/transactions', '/transactions/')),
    ],
    [
      'a location with two sources',
      `${policy('', LIST_ROUTE)}    location: { body: location, query: location }\n`,
    ],
    [
      'a location pattern with * in the middle',
      policy('subjects:\n  s: { locations: ["E*U"] }\n', LIST_ROUTE),
    ],
    ['a missing version', policy('', LIST_ROUTE).replace('version: 1\n', '')],
    [
      'two issuers and a subject that does not say whose it is',
      policy('subjects:\n  svc: { locations: [WH01] }\n', LIST_ROUTE).replace(
        '      algorithms: [RS256]\n',
        '      algorithms: [RS256]\n    - issuer: https://partner.example.com/\n      audiences: [a]\n      jwks: { file: ./k.json }\n      algorithms: [RS256]\n',
      ),
    ],
    [
      'a subject name with a trailing space',
      policy('subjects:\n  s: { subject: "svc ", locations: [WH01] }\n', LIST_ROUTE),
    ],
    [
      'unlistedClients: maybe',
      policy('', LIST_ROUTE).replace('authentication:\n', 'authentication:\n  unlistedClients: maybe\n'),
    ],
  ])('%s fails both', (_what, text) => {
    expect(bothVerdicts(text)).toEqual({ schema: false, validator: false });
  });
});
