// Validates a parsed policy YAML document against the format in DESIGN.md ("Policy file"), reading the
// YAML nodes themselves so every problem points at the exact key or value (line and column) and names
// the field (`routes[2].permissions[0]`). All problems are collected, not just the first: a user fixing
// a policy should see everything wrong in one run. This file reads the top level and decides the order of
// the sections; each section has its own file (validate-authentication, -grants, -routes), and what one
// section defines for later ones to refer to is in DefinedNames (validate-names).

import { type Document, isScalar, type LineCounter, type Node } from 'yaml';
import { YamlReader } from '../config/yaml.js';
import type { ClaimSite, PolicyDocument, PolicyProblem } from './types.js';
import { readAuthentication } from './validate-authentication.js';
import { readClients, readPeers, readRoles, readScopes, readSubjects } from './validate-grants.js';
import { checkDefaultName, readMatch, readName } from './validate-match.js';
import { DefinedNames } from './validate-names.js';
import { readIdentity, readMode, readRoutes } from './validate-routes.js';

export interface ValidateResult {
  /** The document as plain data; present only when there are no problems. */
  readonly document?: PolicyDocument;
  readonly problems: PolicyProblem[];
  /** Where the policy's name and each of its `match` claims are written (for conflicts between files). */
  readonly sites: Record<string, ClaimSite>;
  /** Offsets of duplicate keys already reported here (so the loader can drop yaml's terser duplicate). */
  readonly duplicateKeyOffsets: ReadonlySet<number>;
}

/** Validates a parsed YAML document; `lineCounter` must be the one the document was parsed with. */
export function validatePolicy(doc: Document.Parsed, lineCounter: LineCounter, file: string): ValidateResult {
  const reader = new YamlReader({ doc, lineCounter }, file, { followAliases: true });
  const sites: Record<string, ClaimSite> = {};
  const document = readPolicy(reader, new DefinedNames(reader), doc.contents, file, sites);
  return {
    document: reader.problems.length === 0 ? document : undefined,
    problems: reader.problems,
    sites,
    duplicateKeyOffsets: reader.duplicateKeyOffsets,
  };
}

/** The top level: the sections, read in the order their names depend on each other. */
function readPolicy(
  r: YamlReader,
  defined: DefinedNames,
  root: Node | null,
  file: string,
  sites: Record<string, ClaimSite>,
): PolicyDocument | undefined {
  const node = r.deref(root);
  if (node === null || (isScalar(node) && node.value === null)) {
    r.problems.push({
      ...r.pos(root),
      field: '',
      message: 'the policy is empty; it needs at least "version: 1"',
    });
    return undefined;
  }
  const sections = r.section(node, '', {
    version: true,
    name: false,
    match: false,
    mode: false,
    identity: false,
    authentication: true,
    scopes: true,
    roles: false,
    clients: false,
    subjects: false,
    peers: false,
    routes: true,
  });
  if (!sections) return undefined;

  if (sections.version) {
    const v = r.deref(sections.version.value);
    if (!(isScalar(v) && v.value === 1)) {
      r.report(
        v ?? sections.version.keyNode,
        'version',
        `unsupported version ${r.show(v)}; write "version: 1"`,
      );
    }
  }
  const name = sections.name ? readName(r, sections.name.value, sites) : undefined;
  if (!sections.name) checkDefaultName(r, node, file, sites);
  const match = sections.match ? readMatch(r, sections.match.value, sites) : undefined;
  const mode = sections.mode ? readMode(r, sections.mode.value, 'mode') : undefined;
  // Read in dependency order (scopes define permissions, roles use them, …), whatever the file's order.
  const scopes = sections.scopes ? readScopes(r, defined, sections.scopes.value) : undefined;
  const roles = sections.roles ? readRoles(r, defined, sections.roles.value) : undefined;
  const authentication = sections.authentication
    ? readAuthentication(r, defined, sections.authentication.value, sites)
    : undefined;
  const clients = sections.clients ? readClients(r, defined, sections.clients.value) : undefined;
  const subjects = sections.subjects ? readSubjects(r, defined, sections.subjects.value) : undefined;
  const peers = sections.peers ? readPeers(r, defined, sections.peers.value) : undefined;
  const identity = sections.identity
    ? readIdentity(r, defined, sections.identity.value, 'identity')
    : undefined;
  const routes = sections.routes ? readRoutes(r, defined, sections.routes.value) : undefined;

  if (!authentication || !scopes || !routes) return undefined;
  return {
    version: 1,
    ...(name !== undefined ? { name } : {}),
    ...(match ? { match } : {}),
    ...(mode ? { mode } : {}),
    ...(identity ? { identity } : {}),
    authentication,
    scopes,
    ...(roles ? { roles } : {}),
    ...(clients ? { clients } : {}),
    ...(subjects ? { subjects } : {}),
    ...(peers ? { peers } : {}),
    routes,
  };
}
