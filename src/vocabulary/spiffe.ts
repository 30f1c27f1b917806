// SPIFFE IDs, as the SPIFFE ID spec defines them: `spiffe://` + a trust domain (lower-case letters, digits,
// `.`, `-`, `_`) + a path of segments made of letters, digits, `.`, `-`, `_`; no empty, `.` or `..` segment,
// no trailing slash, no percent-encoding, no query, fragment, port or user info; at most 2,048 bytes. A
// workload's identity in a mesh (Istio puts the peer's in `attributes.source.principal`, the called
// service's in `attributes.destination.principal`). Anything else is not an ID: one that only looks like one
// (`SPIFFE://`, `spiffe://td/ns/../sa`, `spiffe://td.evil/…`) must never match a policy's ID.

const MAX_ID_BYTES = 2048;
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

/**
 * Why the text is not a SPIFFE ID (undefined when it is). With `wildcard`, the last path segment may be `*`
 * (every workload under that path, such as every service account of a namespace), and nothing else may.
 */
export function spiffeIdProblem(id: string, options: { wildcard?: boolean } = {}): string | undefined {
  if (Buffer.byteLength(id, 'utf8') > MAX_ID_BYTES) return `is longer than ${MAX_ID_BYTES} bytes`;
  if (!id.startsWith('spiffe://')) return 'does not start with spiffe:// (the scheme is lower case)';
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  if (trustDomain === '') return 'has no trust domain';
  if (!TRUST_DOMAIN.test(trustDomain)) {
    return 'has a trust domain with characters other than lower-case letters, digits, ".", "-" and "_"';
  }
  if (slash === -1) return undefined;
  const segments = rest.slice(slash + 1).split('/');
  for (const [i, segment] of segments.entries()) {
    if (segment === '') return 'has an empty path segment (a doubled or trailing "/")';
    if (segment === '.' || segment === '..') return 'has a "." or ".." path segment';
    if (segment === '*' && options.wildcard && i === segments.length - 1) continue;
    if (segment.includes('*'))
      return options.wildcard ? 'uses "*" other than as its whole last segment' : 'contains "*"';
    if (!SEGMENT.test(segment)) {
      return segment.includes('%')
        ? 'is percent-encoded (an ID has one spelling)'
        : 'has a path segment with characters other than letters, digits, ".", "-" and "_"';
    }
  }
  return undefined;
}
