// Turns a verified claims set (from our own JWT verification or from Envoy's jwt_authn) into a Principal,
// reading each field from the claim names the policy lists. Strict about types: a scope claim that is a
// number or an object is a broken token, not "no scopes" — guessing here would hide an IdP misconfiguration.
// Strict about text too (DESIGN.md security rule 8): every value is decided on exactly as the upstream will
// receive it in `x-scopegate-*`, so one that an HTTP header cannot carry verbatim (a control character, or
// whitespace at either end, which header parsers trim) is refused here, never trimmed or rewritten later.

import type { ClaimNames } from '../policy/types.js';
import type { Principal } from '../vocabulary/index.js';
import { deny, identityTextProblem, type Outcome, ok } from '../vocabulary/index.js';

/** Caps so one odd token cannot make every later phase slow (security rule 7). */
export const CLAIM_LIMITS = {
  /** Values in one list claim (scopes, roles, locations). */
  maxValues: 256,
  /** Characters in one scope, role or location. */
  maxValueLength: 256,
  /** Characters in the subject, client id or grant type. */
  maxIdLength: 1024,
} as const;

type ListField = 'scopes' | 'roles' | 'locations';

/**
 * A Principal from a claims set. The first claim name (in the policy's order) whose value is present and
 * not null wins. `issuer` is recorded as given (the verified `iss`).
 */
export function principalFromClaims(
  payload: Readonly<Record<string, unknown>>,
  names: ClaimNames,
  issuer?: string,
): Outcome<Principal> {
  if (issuer !== undefined) {
    const problem = identityTextProblem(issuer);
    if (problem !== undefined) return deny('token_invalid', `the issuer ${problem}`);
  }
  const subject = readId(payload, names.subject, 'subject', true);
  if (!subject.ok) return subject;
  const client = readId(payload, names.client, 'client', false);
  if (!client.ok) return client;
  const grantType = readId(payload, names.grantType, 'grant type', false);
  if (!grantType.ok) return grantType;
  const scopes = readList(payload, names.scopes, 'scopes', true);
  if (!scopes.ok) return scopes;
  const roles = readList(payload, names.roles, 'roles', false);
  if (!roles.ok) return roles;
  const locations = readList(payload, names.locations, 'locations', false);
  if (!locations.ok) return locations;

  const exp = payload.exp;
  return ok({
    subject: subject.value!,
    ...(client.value !== undefined && { client: client.value }),
    ...(issuer !== undefined && { issuer }),
    ...(grantType.value !== undefined && { grantType: grantType.value }),
    scopes: new Set(scopes.value),
    roles: new Set(roles.value),
    locations: [...new Set(locations.value)],
    ...(typeof exp === 'number' && Number.isFinite(exp) && { expiresAt: exp }),
  });
}

/** The first listed claim that is present and not null, with the name it was found under. */
function firstPresent(
  payload: Readonly<Record<string, unknown>>,
  names: readonly string[],
): { name: string; value: unknown } | undefined {
  for (const name of names) {
    const value = claimAt(payload, name);
    if (value !== undefined && value !== null) return { name, value };
  }
  return undefined;
}

/**
 * A claim by name; a dotted name (`realm_access.roles`, as Keycloak nests roles) walks nested objects when
 * no top-level claim has that exact name. Own properties only, so `constructor` or `__proto__` never
 * resolve to something the token did not say.
 */
function claimAt(payload: Readonly<Record<string, unknown>>, name: string): unknown {
  if (Object.hasOwn(payload, name)) return payload[name];
  if (!name.includes('.')) return undefined;
  let node: unknown = payload;
  for (const part of name.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.hasOwn(node, part)) {
      return undefined;
    }
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function readId(
  payload: Readonly<Record<string, unknown>>,
  names: readonly string[],
  what: string,
  required: boolean,
): Outcome<string | undefined> {
  const found = firstPresent(payload, names);
  if (found === undefined) {
    return required
      ? deny('token_invalid', `the token has no ${what} claim (${names.join(', ')})`)
      : ok(undefined);
  }
  if (typeof found.value !== 'string' || found.value === '') {
    return deny('token_invalid', `claim ${found.name} must be a non-empty string`);
  }
  if (found.value.length > CLAIM_LIMITS.maxIdLength) {
    return deny('token_invalid', `claim ${found.name} is longer than ${CLAIM_LIMITS.maxIdLength} characters`);
  }
  const problem = identityTextProblem(found.value);
  if (problem !== undefined) return deny('token_invalid', `claim ${found.name} ${problem}`);
  return ok(found.value);
}

/**
 * A list claim. Scopes may be one space-separated string (RFC 8693 `scope`) or an array (`scp`); roles and
 * locations are a single string or an array, since their names may contain spaces ("Inventory Data Reader").
 */
function readList(
  payload: Readonly<Record<string, unknown>>,
  names: readonly string[],
  field: ListField,
  spaceSeparated: boolean,
): Outcome<string[]> {
  const found = firstPresent(payload, names);
  if (found === undefined) return ok([]);
  const shape = spaceSeparated
    ? 'a space-separated string or an array of strings'
    : 'a string or an array of strings';
  let values: string[];
  if (typeof found.value === 'string') {
    // Cap before splitting: a claim from Envoy's metadata has not passed our token size cap.
    if (found.value.length > CLAIM_LIMITS.maxValues * (CLAIM_LIMITS.maxValueLength + 1)) {
      return deny('token_invalid', `claim ${found.name} is too long`);
    }
    values = spaceSeparated ? found.value.split(' ').filter((v) => v !== '') : [found.value];
  } else if (Array.isArray(found.value)) {
    if (!found.value.every((v): v is string => typeof v === 'string')) {
      return deny('token_invalid', `claim ${found.name} must be ${shape}`);
    }
    values = found.value;
  } else {
    return deny('token_invalid', `claim ${found.name} must be ${shape}`);
  }
  if (values.length > CLAIM_LIMITS.maxValues) {
    return deny('token_invalid', `claim ${found.name} has more than ${CLAIM_LIMITS.maxValues} ${field}`);
  }
  if (values.some((v) => v.length > CLAIM_LIMITS.maxValueLength || v === '')) {
    return deny(
      'token_invalid',
      `claim ${found.name} has an empty value or one longer than ${CLAIM_LIMITS.maxValueLength} characters`,
    );
  }
  // Roles and locations are matched exactly as written, and a lone surrogate has no UTF-8 form on the wire.
  for (const value of values) {
    const problem = identityTextProblem(value);
    if (problem !== undefined)
      return deny('token_invalid', `claim ${found.name} has a value that ${problem}`);
  }
  return ok(values);
}
