// What the request phase extracts from a CheckRequest: plain data the other phases read.

export interface RequestBody {
  /**
   * The body as Envoy sent it: bytes off the wire (`body` or `raw_body`), or text from an in-process caller;
   * undefined when none was sent. Decoded (strict UTF-8) only by a route that reads a location from it.
   */
  readonly content?: string | Uint8Array;
  /** Envoy cut the body at max_request_bytes (`x-envoy-auth-partial-body: true`). */
  readonly partial: boolean;
  /**
   * The bytes came in Envoy's text field (`body`, without `pack_as_bytes`), where Envoy writes `!` in place of
   * each byte that is not UTF-8: then a `!` in them may not be what the upstream receives.
   */
  readonly envoyText?: true;
}

/**
 * What Envoy says of the calling workload on the connection it checked (mTLS): read only from the
 * CheckRequest's `attributes.source`, never from a header a client could write.
 */
export interface PeerFacts {
  /** `source.principal`: the URI SAN of the verified client certificate (a SPIFFE ID under Istio). */
  readonly principal?: string;
  /** `source.certificate`: the client certificate, URL-encoded PEM (`include_peer_certificate`). */
  readonly certificate?: string;
}

export interface RequestFacts {
  /** Envoy's `x-request-id` (or the attribute id); generated when absent. Safe to log. */
  readonly requestId: string;
  /** Upper-case HTTP method. */
  readonly method: string;
  /** The path without its query string, in the one canonical form (security rule 2). */
  readonly path: string;
  /** Query parameters, percent-decoded, repeated names keep every value in order. */
  readonly query: ReadonlyMap<string, readonly string[]>;
  /** Headers by lower-case name; repeated headers joined with `,` as Envoy does. Pseudo-headers included. */
  readonly headers: ReadonlyMap<string, string>;
  readonly body: RequestBody;
  /** `attributes.context_extensions` from the route's ExtAuthzPerRoute. */
  readonly contextExtensions: Readonly<Record<string, string>>;
  /** Claims Envoy's jwt_authn filter verified, keyed by filter_metadata key, as plain JSON. */
  readonly jwtAuthnPayloads: ReadonlyMap<string, unknown>;
  /** The calling workload, as Envoy saw its connection; empty without mTLS. */
  readonly peer: PeerFacts;
}
