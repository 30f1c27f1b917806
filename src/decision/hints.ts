// What to change, in the user's words, for a denied request: the last line of every support-thread answer.
// Derived from the decision's reason and what it names as missing; used by the demo (and explain).
import type { Missing, Reason } from '../vocabulary/index.js';

export interface Who {
  readonly subject?: string;
  readonly client?: string;
  readonly issuer?: string;
}

const both = (items: readonly string[]) => items.join(' and ');
const either = (items: readonly string[]) => items.join(' or ');

export function fixHints(reason: Reason, missing: Missing | undefined, who: Who = {}): string[] {
  const scopes = missing?.scopes ?? [];
  const roles = missing?.roles ?? [];
  const locations = missing?.locations ?? [];
  const subject = who.subject ?? 'the caller';
  switch (reason) {
    case 'allowed':
      return [];
    case 'token_missing':
      return ['send the access token in the Authorization header: "Authorization: Bearer <token>"'];
    case 'request_malformed':
      return [
        'send one Authorization header, a canonical path (no //, .., %2F, ;) and the token nowhere else',
      ];
    case 'token_expired':
      return [
        'get a fresh token from the token endpoint (client_credentials), and renew it before it expires',
      ];
    case 'token_not_yet_valid':
      return [
        "check the clocks of the identity provider and the gateway (the token's nbf/iat is in the future)",
      ];
    case 'audience_mismatch':
      return ["request the token for this gateway's audience (the policy's issuers[].audiences)"];
    case 'issuer_untrusted':
      return [
        'get the token from an issuer the policy lists, or add the issuer under authentication.issuers',
      ];
    case 'key_unknown':
      return ["the token's signing key is not in the issuer's JWKS: check the issuer and its key rotation"];
    case 'token_invalid':
      return ['get a new token from the identity provider; this one cannot be verified'];
    case 'scope_missing':
      return [`request scope ${both(scopes)} as well`];
    case 'client_scope_not_allowed':
      return (scopes.length > 0 ? scopes : ['this route needs']).map(
        (scope) => `allow client ${who.client ?? '(the client)'} the scope ${scope}`,
      );
    case 'client_unknown':
      return [
        typeof missing?.client === 'string'
          ? `add client ${missing.client} to the policy's clients${who.issuer ? ` (issuer: ${who.issuer})` : ''}, or get the token through a client it lists`
          : 'get the token through a client the policy lists (its clients section); this token names none',
      ];
    case 'grant_type_not_allowed':
      return [`get the token with the ${either(missing?.grantTypes ?? [])} grant`];
    case 'role_missing':
      return roles.length > 0
        ? [`give ${subject} the role ${either(roles)}`]
        : [`no role grants ${both(missing?.permissions ?? [])}: add it to a role in the policy`];
    case 'location_denied': {
      // Missing for the calling workload (token_and_peer, peer routes), or for the token's subject.
      const holder = typeof missing?.peer === 'string' ? `peer ${missing.peer}` : subject;
      return (locations.length > 0 ? locations : ['the request names']).map(
        (location) => `grant location ${location} to ${holder}`,
      );
    }
    case 'peer_missing':
      return [
        'call this route from a workload in the mesh, over mTLS (Istio PeerAuthentication STRICT, or an Envoy listener that requires client certificates)',
      ];
    case 'peer_not_allowed': {
      const peer = typeof missing?.peer === 'string' ? missing.peer : 'the calling workload';
      if (roles.length > 0) return [`give peer ${peer} the role ${either(roles)} (under peers)`];
      if ((missing?.permissions ?? []).length > 0) {
        return [
          `no role grants ${both(missing?.permissions ?? [])}: add it to a role, and give that role to peer ${peer}`,
        ];
      }
      return [`list peer ${peer} under peers, or call from a workload the policy lists`];
    }
    case 'location_missing':
      return ['name the location (warehouse) in the request where the route reads it'];
    case 'body_unreadable':
      return ['send the whole body as JSON (application/json), each field once'];
    case 'route_unknown':
      return ['check the method and path, or add a route for them to the policy'];
    case 'policy_unknown':
      return [
        "give this service a policy: list its host under a policy's match block, or (gRPC door only) name the policy in Envoy (context extension scopegate_policy) or list the destination principal",
      ];
    case 'keys_unavailable':
      return ["retry shortly; if it persists, check that scopegate can reach the issuer's JWKS"];
    case 'internal_error':
      return ['retry; if it persists, report it with the request id'];
  }
}
