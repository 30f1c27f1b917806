// The calling workload (the mTLS peer), as Envoy vouches for it: `attributes.source.principal`, the URI SAN of
// the client certificate Envoy verified (a SPIFFE ID under Istio), and, when Envoy sends it
// (`include_peer_certificate`), that certificate, which must name the same one SPIFFE ID. Never a header:
// `x-forwarded-client-cert` says whatever the client wrote unless every hop before Envoy rewrites it.
// Only IDs that pass the SPIFFE rule go on, so a look-alike never reaches a policy's `…/*` entry.
import { X509Certificate } from 'node:crypto';
import type { PeerFacts } from '../request/types.js';
import { deny, type Outcome, ok, spiffeIdProblem } from '../vocabulary/index.js';

/** Larger certificates are refused before parsing (an X.509-SVID is a few KiB). */
export const MAX_PEER_CERTIFICATE_BYTES = 16 * 1024;

/** The peer's SPIFFE ID, or why there is none to trust (peer_missing, peer_not_allowed). */
export function identifyPeer(peer: PeerFacts): Outcome<string> {
  const { principal, certificate } = peer;
  if (principal === undefined && certificate === undefined) {
    return deny(
      'peer_missing',
      'the request came without a peer identity: the hop into Envoy was not mTLS with a client certificate',
      { missing: { peer: null } },
    );
  }
  let id = principal;
  if (certificate !== undefined) {
    const named = spiffeIdOfCertificate(certificate);
    if (!named.ok) return named;
    if (principal !== undefined && principal !== named.value) {
      return deny(
        'peer_not_allowed',
        "Envoy's peer principal and the peer certificate name different identities",
      );
    }
    id = named.value;
  }
  const problem = spiffeIdProblem(id!);
  if (problem !== undefined) {
    return deny('peer_not_allowed', `the peer's identity ${quoted(id!)} is not a SPIFFE ID: it ${problem}`);
  }
  return ok(id!);
}

/** The one URI SAN of a URL-encoded PEM certificate (an X.509-SVID has exactly one). */
function spiffeIdOfCertificate(encoded: string): Outcome<string> {
  const refuse = (why: string) => deny('peer_not_allowed', `the peer certificate ${why}`);
  if (encoded.length > MAX_PEER_CERTIFICATE_BYTES * 3) return refuse('is too large');
  let pem: string;
  try {
    pem = decodeURIComponent(encoded);
  } catch {
    return refuse('is not URL-encoded PEM');
  }
  if (Buffer.byteLength(pem) > MAX_PEER_CERTIFICATE_BYTES) return refuse('is too large');
  let names: string | undefined;
  try {
    names = new X509Certificate(pem).subjectAltName;
  } catch {
    return refuse('cannot be read');
  }
  // Node lists the names as `TYPE:value, …`, quoting a value with a comma or quote in it; such a value, or a
  // second URI, is not one SPIFFE ID, so no spelling trick can make two names look like one.
  const uris = (names ?? '')
    .split(', ')
    .filter((name) => name.startsWith('URI:'))
    .map((name) => name.slice('URI:'.length));
  if (uris.length !== 1) return refuse(`carries ${uris.length} URI SANs; an X.509-SVID carries exactly one`);
  return ok(uris[0]!);
}

function quoted(id: string): string {
  return JSON.stringify(id.length > 100 ? `${id.slice(0, 100)}…` : id);
}
