// Location grants: which warehouse/location codes a principal may touch. A grant is a list of patterns —
// exact codes (`WH01`), trailing-`*` prefixes (`EU-*`) or `*` for every location. Used for the policy's
// `subjects.<id>.locations` and for locations named in a token's `locations` claim.
import type { LocationGrant } from './types.js';

/** Why a location pattern is not valid, or undefined when it is. */
export function locationPatternProblem(pattern: string): string | undefined {
  if (pattern === '') return 'a location must not be empty';
  if (pattern === '*') return undefined;
  const star = pattern.indexOf('*');
  if (star !== -1 && star !== pattern.length - 1) {
    return `location pattern "${pattern}" may only use "*" alone or at the end (like "EU-*")`;
  }
  return undefined;
}

/**
 * Turns patterns into a grant. Patterns that are not valid grant nothing (fail closed): the policy
 * validator reports them, and a token's claim cannot widen access with a pattern we do not understand.
 */
export function parseLocationGrant(patterns: readonly string[]): LocationGrant {
  let all = false;
  const exact = new Set<string>();
  const prefixes = new Set<string>();
  for (const pattern of patterns) {
    if (typeof pattern !== 'string' || locationPatternProblem(pattern) !== undefined) continue;
    if (pattern === '*') all = true;
    else if (pattern.endsWith('*')) prefixes.add(pattern.slice(0, -1));
    else exact.add(pattern);
  }
  return Object.freeze({ all, exact, prefixes: Object.freeze([...prefixes].sort()) });
}

/** Whether the grant allows the location code. An empty code is never allowed. */
export function locationAllowed(grant: LocationGrant, code: string): boolean {
  if (typeof code !== 'string' || code === '') return false;
  if (grant.all || grant.exact.has(code)) return true;
  return grant.prefixes.some((prefix) => code.startsWith(prefix));
}
