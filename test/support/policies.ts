// The example policy, compiled for tests, with its JWKS pointed wherever the test needs it.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parsePolicy } from '../../src/policy/index.js';
import type { CompiledPolicy } from '../../src/policy/types.js';

export const EXAMPLE_POLICY_FILE = fileURLToPath(
  new URL('../../examples/inventory/policy.yaml', import.meta.url),
);
export const EXAMPLE_ISSUER = 'https://dev-issuer.scopegate.local/';
export const EXAMPLE_AUDIENCE = 'https://gateway.example.com';

/** The support thread's service account, as the example issuer would describe it, with the given scopes. */
export function supportThreadClaims(scope = 'inventory.read inventory.write') {
  return {
    iss: EXAMPLE_ISSUER,
    aud: EXAMPLE_AUDIENCE,
    sub: 'svc-inventory-sync',
    client_id: 'inventory-sync',
    gty: 'client_credentials',
    scope,
  };
}

/** The second API of the example policy set (examples/mesh): shipments, beside inventory. */
export const SHIPMENTS_POLICY_FILE = fileURLToPath(
  new URL('../../examples/mesh/shipments.yaml', import.meta.url),
);

/** The example policy text, with `jwks: { file: … }` replaced by the given JWKS URI when one is passed. */
export function examplePolicyText(jwksUri?: string, file = EXAMPLE_POLICY_FILE): string {
  const text = readFileSync(file, 'utf8');
  if (!jwksUri) return text;
  const replaced = text.replace(/jwks: \{ file: [^}]+\}/, `jwks: { uri: "${jwksUri}" }`);
  if (replaced === text) throw new Error(`${file} has no jwks file line to replace`);
  return replaced;
}

/** The shipments policy of the example set, with its JWKS at the given URI. */
export function shipmentsPolicyText(jwksUri?: string): string {
  return examplePolicyText(jwksUri, SHIPMENTS_POLICY_FILE);
}

/** A policy that verifies no token itself: only Envoy's jwt_authn vouches for callers, by its metadata. */
export const JWT_AUTHN_ONLY_POLICY_TEXT = `version: 1
authentication:
  envoyJwtAuthn: { metadataKey: jwt_payload }
scopes:
  inventory.read: [INV_TRANSACTION_READ]
routes:
  - { name: list_transactions, method: GET, path: /api/inventory/transactions, permissions: [INV_TRANSACTION_READ] }
`;

export function compile(text: string, file = 'policy.yaml'): CompiledPolicy {
  const result = parsePolicy(text, file);
  if (!result.ok)
    throw new Error(result.problems.map((p) => `${p.line}:${p.col}: ${p.field}: ${p.message}`).join('\n'));
  return result.policy;
}

export function examplePolicy(jwksUri?: string): CompiledPolicy {
  return compile(examplePolicyText(jwksUri));
}

/** What the inventory upstream echoes as `received_identity` for the example's inventory-sync client on a route. */
export function syncIdentity(route: string) {
  return {
    subject: 'svc-inventory-sync',
    client: 'inventory-sync',
    issuer: EXAMPLE_ISSUER,
    route,
    policy: 'inventory',
    peer: null,
  };
}
