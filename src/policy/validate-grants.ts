// The grants of a policy: `scopes` (OAuth2 scope → permissions), `roles` (role → permissions), `clients`
// (what each OAuth2 client may use), `subjects` (roles and locations of service accounts and users) and
// `peers` (roles and locations of calling workloads, by SPIFFE ID).
// Each client and subject belongs to one issuer and names one identity a token can carry (`readOwner`).
import type { Node } from 'yaml';
import { fieldPath, unknownMessage } from '../config/problems.js';
import type { Entry, YamlReader } from '../config/yaml.js';
import { identityTextProblem, spiffeIdProblem } from '../vocabulary/index.js';
import { locationPatternProblem } from './locations.js';
import type { PeerDocument, PolicyDocument } from './types.js';
import type { DefinedNames } from './validate-names.js';

// RFC 6749 §3.3 scope-token: printable ASCII without space, `"` and `\` (scopes are also quoted in
// `WWW-Authenticate: Bearer scope="…"`, so anything else would break the header).
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** `scopes`; defines the scope names and the permissions they grant, which every later section refers to. */
export function readScopes(
  r: YamlReader,
  defined: DefinedNames,
  value: Node | null,
): Record<string, string[]> | undefined {
  const entries = r.entries(value, 'scopes');
  if (!entries) return undefined;
  const out: Record<string, string[]> = {};
  const permissions = new Set<string>();
  for (const { key, keyNode, value: v } of entries) {
    const f = fieldPath('scopes', key);
    if (!SCOPE_TOKEN.test(key)) {
      r.report(
        keyNode,
        f,
        `scope "${key}" is not a valid OAuth2 scope name (printable ASCII without spaces, " or \\)`,
      );
    }
    const list = r.stringList(v, f, { nonEmpty: true, unique: true });
    if (!list) continue;
    for (const p of list) {
      if (CONTROL_CHARS.test(p.value))
        r.report(p.node, p.field, 'a permission name must not contain control characters');
      permissions.add(p.value);
    }
    setOwn(
      out,
      key,
      list.map((p) => p.value),
    );
  }
  // Known names come from what could be read, so one broken scope does not make every route "unknown".
  defined.scopes = new Set(entries.map((e) => e.key));
  defined.permissions = permissions;
  return out;
}

/** `roles`; defines the role names (null when broken), each granting permissions `scopes` defined. */
export function readRoles(
  r: YamlReader,
  defined: DefinedNames,
  value: Node | null,
): Record<string, string[]> | undefined {
  const entries = r.entries(value, 'roles');
  if (!entries) {
    defined.roles = null;
    return undefined;
  }
  defined.roles = new Set(entries.map((e) => e.key));
  const out: Record<string, string[]> = {};
  for (const { key, value: v } of entries) {
    const f = fieldPath('roles', key);
    const list = r.stringList(v, f, { nonEmpty: true, unique: true });
    if (!list) continue;
    defined.checkRefs('permission', list);
    setOwn(
      out,
      key,
      list.map((p) => p.value),
    );
  }
  return out;
}

/** `clients`: the scopes (defined by `scopes`) and grant types each client of an issuer may use. */
export function readClients(
  r: YamlReader,
  defined: DefinedNames,
  value: Node | null,
): NonNullable<PolicyDocument['clients']> | undefined {
  const entries = r.entries(value, 'clients');
  if (!entries) return undefined;
  const out: NonNullable<PolicyDocument['clients']> = {};
  for (const { key, keyNode, value: v } of entries) {
    const f = fieldPath('clients', key);
    const s = r.section(v, f, { issuer: false, client: false, scopes: true, grantTypes: false });
    if (!s) continue;
    const owner = readOwner(r, defined, 'clients', f, key, keyNode, s.issuer, s.client);
    const scopes = s.scopes && r.stringList(s.scopes.value, `${f}.scopes`, { unique: true });
    if (scopes) defined.checkRefs('scope', scopes);
    const grantTypes =
      s.grantTypes && r.stringList(s.grantTypes.value, `${f}.grantTypes`, { nonEmpty: true, unique: true });
    if (scopes && owner) {
      setOwn(out, key, {
        ...(owner.issuer !== undefined && { issuer: owner.issuer }),
        ...(owner.name !== undefined && { client: owner.name }),
        scopes: scopes.map((x) => x.value),
        ...(grantTypes ? { grantTypes: grantTypes.map((g) => g.value) } : {}),
      });
    }
  }
  return out;
}

/** `subjects`: the roles (defined by `roles`) and location grants of each subject of an issuer. */
export function readSubjects(
  r: YamlReader,
  defined: DefinedNames,
  value: Node | null,
): NonNullable<PolicyDocument['subjects']> | undefined {
  const entries = r.entries(value, 'subjects');
  if (!entries) return undefined;
  const out: NonNullable<PolicyDocument['subjects']> = {};
  for (const { key, keyNode, value: v } of entries) {
    const f = fieldPath('subjects', key);
    const s = r.section(v, f, { issuer: false, subject: false, roles: false, locations: false });
    if (!s) continue;
    const owner = readOwner(r, defined, 'subjects', f, key, keyNode, s.issuer, s.subject);
    if (!owner) continue;
    setOwn(out, key, {
      ...(owner.issuer !== undefined && { issuer: owner.issuer }),
      ...(owner.name !== undefined && { subject: owner.name }),
      ...readGrants(r, defined, f, s.roles, s.locations),
    });
  }
  return out;
}

/**
 * `peers`: the roles (defined by `roles`) and location grants of each calling workload, keyed by SPIFFE ID,
 * or by an ID whose last segment is `*` (every workload under that path). A peer has no scopes: its
 * permissions come from its roles only, so peers need a `roles` section.
 */
export function readPeers(
  r: YamlReader,
  defined: DefinedNames,
  value: Node | null,
): Record<string, PeerDocument> | undefined {
  const entries = r.entries(value, 'peers');
  if (!entries) return undefined;
  defined.peers = true;
  if (defined.roles === undefined) {
    r.report(r.deref(value), 'peers', "peers need a roles section: a peer's permissions come from its roles");
  }
  const out: Record<string, PeerDocument> = {};
  for (const { key, keyNode, value: v } of entries) {
    const f = fieldPath('peers', key);
    const problem = spiffeIdProblem(key, { wildcard: true });
    if (problem !== undefined) {
      r.report(
        keyNode,
        f,
        `peer "${key.slice(0, 80)}" is not a SPIFFE ID (or one ending in /*): it ${problem}`,
      );
      continue;
    }
    const s = r.section(v, f, { roles: false, locations: false });
    if (s) setOwn(out, key, readGrants(r, defined, f, s.roles, s.locations));
  }
  return out;
}

/** The `roles` (each one `roles` defines) and `locations` (codes and patterns) of a subject or a peer. */
function readGrants(
  r: YamlReader,
  defined: DefinedNames,
  f: string,
  rolesEntry: Entry | undefined,
  locationsEntry: Entry | undefined,
): { roles?: string[]; locations?: string[] } {
  const out: { roles?: string[]; locations?: string[] } = {};
  if (rolesEntry) {
    const roles = r.stringList(rolesEntry.value, `${f}.roles`, { unique: true });
    if (roles) {
      defined.checkRefs('role', roles);
      out.roles = roles.map((role) => role.value);
    }
  }
  if (locationsEntry) {
    const locations = r.stringList(locationsEntry.value, `${f}.locations`, { unique: true });
    if (locations) {
      for (const l of locations) {
        const problem = locationPatternProblem(l.value);
        if (problem) r.report(l.node, l.field, problem);
      }
      out.locations = locations.map((l) => l.value);
    }
  }
  return out;
}

/**
 * Whose entry this is: the `issuer` it belongs to (required when the policy lists several, one of them
 * either way) and the name tokens carry (`subject`/`client`, default the key). The name must be one a
 * token can carry exactly, and each name is given once per issuer. Undefined when broken (reported).
 */
function readOwner(
  r: YamlReader,
  defined: DefinedNames,
  section: 'subjects' | 'clients',
  f: string,
  key: string,
  keyNode: Node,
  issuerEntry: Entry | undefined,
  nameEntry: Entry | undefined,
): { issuer?: string; name?: string } | undefined {
  const nameField = section === 'subjects' ? 'subject' : 'client';
  const listed = defined.issuers;
  let issuer: string | undefined;
  let good = true;
  if (issuerEntry) {
    issuer = r.string(issuerEntry.value, `${f}.issuer`);
    if (issuer === undefined) good = false;
    else if (listed !== null && listed.length > 0 && !listed.includes(issuer)) {
      r.report(
        issuerEntry.value,
        `${f}.issuer`,
        unknownMessage('issuer', issuer, listed, true) + ' (from authentication.issuers)',
      );
      good = false;
    }
  } else if (listed !== null && listed.length > 1) {
    r.report(
      keyNode,
      `${f}.issuer`,
      `with several issuers, say which one this ${nameField} belongs to: issuer: one of ${listed.join(', ')}`,
    );
    good = false;
  }
  let name: string | undefined;
  if (nameEntry) {
    name = r.string(nameEntry.value, `${f}.${nameField}`);
    if (name === undefined) good = false;
  }
  const effective = name ?? key;
  // The identity phase refuses tokens whose names break this rule, so such an entry would match nothing.
  const problem = identityTextProblem(effective);
  if (problem !== undefined) {
    r.report(
      nameEntry?.value ?? keyNode,
      nameEntry ? `${f}.${nameField}` : f,
      `${nameField} name ${JSON.stringify(effective.slice(0, 60))} ${problem}, so no token can carry it`,
    );
    good = false;
  }
  if (!good) return undefined;
  const owner = issuer ?? (listed?.length === 1 ? listed[0] : undefined) ?? '';
  const seen = defined.identities[section];
  const id = `${owner}\n${effective}`;
  const first = seen.get(id);
  if (first) {
    const whose = owner === '' ? '' : ` of issuer ${owner}`;
    r.report(
      nameEntry?.value ?? keyNode,
      f,
      `${nameField} "${effective}"${whose} is already given at line ${r.pos(first).line}`,
    );
    return undefined;
  }
  seen.set(id, nameEntry?.value ?? keyNode);
  return { ...(issuer !== undefined && { issuer }), ...(name !== undefined && { name }) };
}

// A user-chosen key such as "__proto__" must become a plain own property, never a prototype change.
function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
