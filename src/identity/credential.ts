// What the caller presents, read once per Check: a bearer token, the claims Envoy's jwt_authn filter already
// verified, or nothing. Anything ambiguous about it (two tokens, a token in the URL, a broken header) is
// request_malformed here, before any verification.
import { tokenHash } from '../cache/tokens.js';
import type { CompiledPolicy } from '../policy/types.js';
import type { RequestFacts } from '../request/types.js';
import { type Outcome, ok } from '../vocabulary/index.js';
import { extractBearer } from './bearer.js';

export type Credential =
  | BearerToken
  /** Claims Envoy's jwt_authn verified (`envoyJwtAuthn` in the policy); they win over a bearer token. */
  | { readonly kind: 'envoy'; readonly payload: unknown }
  | { readonly kind: 'none' };

const NONE: Credential = Object.freeze({ kind: 'none' });

export function readCredential(
  facts: Pick<RequestFacts, 'headers' | 'query' | 'jwtAuthnPayloads'>,
  policy: Pick<CompiledPolicy, 'envoyJwtAuthn'>,
): Outcome<Credential> {
  // Checked even when Envoy vouches: an ambiguous Authorization header is refused whatever else is sent.
  const bearer = extractBearer(facts);
  if (!bearer.ok) return bearer;
  const envoy = policy.envoyJwtAuthn;
  if (envoy !== undefined && facts.jwtAuthnPayloads.has(envoy.metadataKey)) {
    return ok({ kind: 'envoy', payload: facts.jwtAuthnPayloads.get(envoy.metadataKey) });
  }
  return ok(bearer.value === undefined ? NONE : new BearerToken(bearer.value));
}

/** A bearer token, with its SHA-256 worked out at most once per Check (both caches key on it). */
export class BearerToken {
  readonly kind = 'bearer' as const;
  private digest: string | undefined;

  constructor(readonly token: string) {}

  get hash(): string {
    this.digest ??= tokenHash(this.token);
    return this.digest;
  }
}
