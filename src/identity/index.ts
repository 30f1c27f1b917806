// The identity phase's public surface: who is calling, from a bearer JWT or Envoy's verified jwt_authn claims.

export type { Principal } from '../vocabulary/index.js';
export { Authenticator, type AuthenticatorOptions } from './authenticate.js';
export { extractBearer } from './bearer.js';
export { CLAIM_LIMITS, principalFromClaims } from './claims.js';
export { KeysUnavailableError } from './errors.js';
export { KeyRegistry } from './key-registry.js';
export { type KeySource, KeyStore, type KeyStoreOptions } from './key-store.js';
export { denialForJoseError, type VerifiedToken, type VerifyContext, verifyToken } from './verify.js';
