// What a token's outcome rests on in a policy, as a short digest: the claim mapping, the token size cap,
// Envoy's jwt_authn metadata key, and the issuer settings a token is verified against (the issuer's own for a
// verified caller; every issuer's for a refusal, since which issuer would have vouched is not known). A record
// keeps the digest beside the outcome, so replay reuses the outcome exactly when the candidate would verify
// the same token the same way, and says "cannot replay" otherwise: the token itself is never kept.
import { hash } from 'node:crypto';
import type { CompiledPolicy } from '../policy/types.js';

const byPolicy = new WeakMap<CompiledPolicy, Map<string, string>>();

/** The digest for a caller from `issuer` (undefined: a refusal, or a caller of an issuer the policy lacks). */
export function tokenBasis(policy: CompiledPolicy, issuer?: string): string {
  let known = byPolicy.get(policy);
  if (known === undefined) {
    known = new Map();
    byPolicy.set(policy, known);
  }
  const own = issuer === undefined ? undefined : policy.issuerByName.get(issuer);
  const key = own === undefined ? '' : own.issuer;
  let basis = known.get(key);
  if (basis === undefined) {
    const issuers = own === undefined ? policy.issuers.map((i) => i.basis).sort() : [own.basis];
    const parts = [
      policy.claimsKey,
      String(policy.maxTokenBytes),
      policy.envoyJwtAuthn?.metadataKey ?? '',
      ...issuers,
    ];
    basis = hash('sha256', JSON.stringify(parts), 'base64url').slice(0, 16);
    known.set(key, basis);
  }
  return basis;
}
