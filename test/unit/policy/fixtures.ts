// Policy texts shared by the policy-phase tests. Line numbers matter: tests assert `FILE:LINE:COL`, so
// BASE's line count is fixed and documented.
import { formatProblem, parsePolicy } from '../../../src/policy/index.js';

/** The problems of a policy that must be rejected, one `FILE:LINE:COL: field: message` line each. */
export function problemsOf(text: string): string[] {
  const result = parsePolicy(text, 'policy.yaml');
  if (result.ok) throw new Error('expected the policy to be rejected, but it was accepted');
  return result.problems.map(formatProblem);
}

/** The sample policy from DESIGN.md, verbatim except `jwks: { file: ./jwks.json }`. */
export const DESIGN_SAMPLE = `version: 1
authentication:
  issuers:
    - issuer: https://idp.example.com/
      audiences: [https://gateway.example.com]
      jwks: { file: ./jwks.json }
      algorithms: [RS256, ES256]
      clockToleranceSeconds: 30
  # optional: trust the payload Envoy's jwt_authn filter already verified
  # envoyJwtAuthn: { metadataKey: jwt_payload }
  claims:                       # where to read things from the token (first present wins)
    scopes: [scope, scp]        # space-separated string or array
    roles: [roles]
    client: [client_id, azp]
    grantType: [gty]
    locations: [locations]
scopes:                         # OAuth2 scope → backend permissions
  inventory.read: [INV_TRANSACTION_READ]
  inventory.write: [INV_TRANSACTION_CREATE, INV_TRANSACTION_UPDATE]
roles:                          # security role → permissions
  Inventory Transaction Manager: [INV_TRANSACTION_CREATE, INV_TRANSACTION_UPDATE]
  Inventory Data Reader: [INV_TRANSACTION_READ]
clients:                        # what each OAuth2 client application may use
  inventory-sync: { scopes: [inventory.read, inventory.write], grantTypes: [client_credentials] }
subjects:                       # service accounts / users: roles and data-level location grants
  svc-inventory-sync: { roles: [Inventory Transaction Manager, Inventory Data Reader], locations: [WH01, WH02, "EU-*"] }
routes:
  - name: create_transaction
    method: POST
    path: /api/inventory/transactions
    permissions: [INV_TRANSACTION_CREATE, INV_TRANSACTION_READ]
    location: { body: location }          # JSON field; also { path: param }, { query: name }, { header: name }
  - name: update_transaction
    method: PUT
    path: /api/inventory/transactions/{id}
    permissions: [INV_TRANSACTION_UPDATE, INV_TRANSACTION_READ]
    location: { body: location }
  - name: list_location_items
    method: GET
    path: /api/inventory/locations/{location}/items
    permissions: [INV_TRANSACTION_READ]
    location: { path: location }
`;

/**
 * A small valid policy: 10 lines of authentication and scopes, then `extra` (starting at line 11), then
 * `routes:` and `routes` (so with an empty `extra`, `routes:` is line 11 and the first route line 12).
 */
export function policy(extra: string, routes: string): string {
  return `version: 1
authentication:
  issuers:
    - issuer: https://idp.example.com/
      audiences: [https://gateway.example.com]
      jwks: { uri: https://idp.example.com/jwks.json }
      algorithms: [RS256]
scopes:
  inventory.read: [INV_TRANSACTION_READ]
  inventory.write: [INV_TRANSACTION_CREATE, INV_TRANSACTION_UPDATE]
${extra}routes:
${routes}`;
}

/** One valid route, as it appears under `routes:`. */
export const LIST_ROUTE = `  - name: list_transactions
    method: GET
    path: /api/inventory/transactions
    permissions: [INV_TRANSACTION_READ]
`;
