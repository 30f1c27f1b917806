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
