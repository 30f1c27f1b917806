// Finds the bearer token in a request, refusing anything ambiguous (DESIGN.md security rule 3): Envoy joins a
// repeated header with `,`, so two tokens would otherwise be checked as one; a token in the URL leaks into
// every access log on the way.

import type { RequestFacts } from '../request/types.js';
import { deny, type Outcome, ok } from '../vocabulary/index.js';

/** RFC 6750 §2.1: `Bearer` (any case), exactly one space, then a token68. */
const BEARER_HEADER = /^bearer ([A-Za-z0-9\-._~+/]+=*)$/i;

/**
 * The bearer token from the `Authorization` header; `undefined` when the request carries none (the caller
 * decides whether that is `token_missing`). Every other shape is `request_malformed`.
 */
export function extractBearer(facts: Pick<RequestFacts, 'headers' | 'query'>): Outcome<string | undefined> {
  if (facts.query.has('access_token')) {
    return deny(
      'request_malformed',
      'an access_token query parameter is not accepted (URLs end up in logs); send it in the Authorization header',
    );
  }
  const header = facts.headers.get('authorization');
  if (header === undefined) return ok(undefined);
  if (header.includes(',')) {
    return deny('request_malformed', 'two Authorization values were sent; send exactly one bearer token');
  }
  const match = BEARER_HEADER.exec(header);
  if (match === null) {
    return deny('request_malformed', describeMalformed(header));
  }
  return ok(match[1]!);
}

/** Says what is wrong with the header without repeating it: it may hold a credential. */
function describeMalformed(header: string): string {
  const expected = 'the Authorization header must be exactly "Bearer <token>"';
  if (header.trim() === '') return `${expected}; it is empty`;
  const scheme = /^[^\s]+/.exec(header)?.[0] ?? '';
  if (scheme.toLowerCase() !== 'bearer') {
    // The scheme name is not secret, but cap it: it is client input.
    const shown = /^[A-Za-z][A-Za-z0-9\-_]{0,19}$/.test(scheme) ? ` (got scheme "${scheme}")` : '';
    return `${expected}${shown}`;
  }
  return `${expected}: one space after "Bearer", then the token with no other characters`;
}
