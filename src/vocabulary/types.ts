// Who is calling, once the token (or Envoy's verified jwt_authn payload) has been checked.

export interface Principal {
  /** The `sub` claim (or as mapped); the key into the policy's `subjects`. */
  readonly subject: string;
  /** OAuth2 client id (`client_id` / `azp`), when present. */
  readonly client?: string;
  readonly issuer?: string;
  /** `gty` (or as mapped), e.g. `client_credentials`. */
  readonly grantType?: string;
  readonly scopes: ReadonlySet<string>;
  /** Roles named in the token itself (the policy's subject roles are added by the decision). */
  readonly roles: ReadonlySet<string>;
  /** Locations named in the token itself. */
  readonly locations: readonly string[];
  /** `exp` in seconds since the epoch, when known: no cache may keep this principal longer. */
  readonly expiresAt?: number;
}

/**
 * The published key that verified a token, as the token chose it: enough to tell later, cheaply, whether the
 * JWKS still publishes a key that token would be verified with (same key material, same `kid`, an `alg` the
 * key allows). A removed or re-keyed `kid` no longer matches, so cached answers for its tokens stop.
 */
export interface SigningKeyRef {
  readonly issuer: string;
  /** RFC 7638 thumbprint of the public key. */
  readonly thumbprint: string;
  /** The token's `kid`; undefined when it named none (then any published copy of the key will do). */
  readonly kid?: string;
  /** The token's `alg`. */
  readonly alg: string;
}
