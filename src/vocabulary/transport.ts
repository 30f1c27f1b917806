// The front doors a Check can come in by: Envoy's gRPC ext_authz (`grpc`), Envoy's HTTP ext_authz
// (`http_service`, `http`), and the forward-auth protocol of nginx, Traefik and Caddy (`forward_auth`). A closed
// set: it is a metric label.

export const TRANSPORTS = ['grpc', 'http', 'forward_auth'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/**
 * Whether the door carries what Envoy knows of the connection and the route: the peer's and the destination's
 * identity, the route's `context_extensions` and other filters' metadata (jwt_authn's verified claims). Only
 * Envoy's gRPC CheckRequest does; an HTTP request says nothing of them that a client could not have written
 * itself, so a decision that needs them is denied.
 */
export function carriesEnvoyAttributes(transport: Transport): boolean {
  return transport === 'grpc';
}

/** Whether the door carries the request's body: the forward-auth proxies send none. */
export function carriesBody(transport: Transport): boolean {
  return transport !== 'forward_auth';
}
