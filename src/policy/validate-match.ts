// A policy's `name` and `match` block: what it is called (a metric label, the `x-scopegate-policy` value, the
// `scopegate_policy` context extension Envoy sets) and which requests it owns when it is one of a set
// (policy/set.ts). Each claim keeps where it is written, so two files claiming one host can both be named.
import { basename, extname } from 'node:path';
import { isScalar, type Node } from 'yaml';
import type { YamlReader } from '../config/yaml.js';
import { spiffeIdProblem } from '../vocabulary/index.js';
import type { ClaimSite, MatchDocument } from './types.js';

/** Policy names: a metric label, a header value and a context extension value, with one spelling. */
export const POLICY_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const NAME_RULE = 'letters, digits, "_", "." and "-", starting with a letter or digit, at most 128';

// A DNS name in lower case (labels of letters, digits, "-" and "_"), an IPv4 address, or a bracketed IPv6.
const HOST_LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;
const IPV6_LITERAL = /^\[[0-9a-f:.]+\]$/;
const MAX_HOST_LENGTH = 253;

/** What `name` and `match` say, with where each claim is written. */
export interface ReadClaims {
  readonly name?: string;
  readonly match?: MatchDocument;
  /** Claim key (`claimKey`) → where it is written. */
  readonly sites: Record<string, ClaimSite>;
}

/**
 * The key one claim is known by across the files of a set: two files with the same key collide (for an
 * issuer, only when their key sources differ).
 */
export function claimKey(
  kind: 'name' | 'host' | 'destinationPrincipal' | 'default' | 'issuer',
  value = '',
): string {
  return `${kind} ${value}`;
}

/** The name a policy gets without a `name` key: its file's name without the extension. */
export function defaultPolicyName(file: string): string {
  const base = basename(file);
  return base.slice(0, base.length - extname(base).length);
}

export function readName(
  r: YamlReader,
  value: Node | null,
  sites: Record<string, ClaimSite>,
): string | undefined {
  const name = r.string(value, 'name');
  if (name === undefined) return undefined;
  if (!POLICY_NAME.test(name)) {
    r.report(value, 'name', `policy name "${name}" may only use ${NAME_RULE} characters`);
    return undefined;
  }
  sites[claimKey('name', name)] = site(r, value, 'name');
  return name;
}

/** Without a `name` key, the file's name must make one (a file `My Policy.yaml` needs `name:`). */
export function checkDefaultName(
  r: YamlReader,
  root: Node | null,
  file: string,
  sites: Record<string, ClaimSite>,
): void {
  const name = defaultPolicyName(file);
  if (POLICY_NAME.test(name)) {
    sites[claimKey('name', name)] = { line: 1, col: 1, field: '(file name)' };
    return;
  }
  r.report(
    root,
    'name',
    `the policy has no "name" and its file name "${name}" cannot be one (${NAME_RULE} characters); add "name:"`,
  );
}

export function readMatch(
  r: YamlReader,
  value: Node | null,
  sites: Record<string, ClaimSite>,
): MatchDocument | undefined {
  const s = r.section(value, 'match', { hosts: false, destinationPrincipals: false, default: false });
  if (!s) return undefined;
  const out: { hosts?: string[]; destinationPrincipals?: string[]; default?: boolean } = {};
  let good = true;
  if (s.hosts) {
    const hosts = r.stringList(s.hosts.value, 'match.hosts', { unique: true });
    if (hosts) {
      for (const h of hosts) {
        const problem = hostProblem(h.value);
        if (problem) {
          r.report(h.node, h.field, `host "${h.value}" ${problem}`);
          good = false;
        } else sites[claimKey('host', h.value)] = site(r, h.node, h.field);
      }
      out.hosts = hosts.map((h) => h.value);
    } else good = false;
  }
  if (s.destinationPrincipals) {
    const ids = r.stringList(s.destinationPrincipals.value, 'match.destinationPrincipals', { unique: true });
    if (ids) {
      for (const id of ids) {
        const problem = spiffeIdProblem(id.value);
        if (problem) {
          r.report(
            id.node,
            id.field,
            `destination principal "${id.value}" is not a SPIFFE ID: it ${problem}`,
          );
          good = false;
        } else sites[claimKey('destinationPrincipal', id.value)] = site(r, id.node, id.field);
      }
      out.destinationPrincipals = ids.map((id) => id.value);
    } else good = false;
  }
  if (s.default) {
    const node = r.deref(s.default.value);
    if (isScalar(node) && typeof node.value === 'boolean') {
      out.default = node.value;
      if (node.value) sites[claimKey('default')] = site(r, node, 'match.default');
    } else {
      r.report(node, 'match.default', `expected true or false, got ${r.show(node)}`);
      good = false;
    }
  }
  return good ? out : undefined;
}

/** Why a `match.hosts` entry is not one (undefined when it is): one spelling, as the set looks hosts up. */
export function hostProblem(host: string): string | undefined {
  if (host === '*') return 'matches everything: say "match: { default: true }" for the policy of last resort';
  if (host !== host.toLowerCase())
    return 'has upper-case letters; write hosts in lower case (they match any case)';
  if (host.endsWith('.')) return 'ends with "."; write it without the trailing dot (it matches either way)';
  const name = host.startsWith('*.') ? host.slice(2) : host;
  if (name.includes('*'))
    return 'has a "*" other than a leading "*." (a wildcard covers the names under a suffix)';
  if (IPV6_LITERAL.test(name) && name === host) return undefined;
  if (/:\d*$/.test(name)) return 'has a port; hosts match without their port';
  if (name.length > MAX_HOST_LENGTH) return `is longer than ${MAX_HOST_LENGTH} characters`;
  if (!name.split('.').every((label) => HOST_LABEL.test(label))) {
    return 'is not a host name (labels of letters, digits, "-" and "_", separated by ".")';
  }
  return undefined;
}

function site(r: YamlReader, node: Node | null, field: string): ClaimSite {
  const { line, col } = r.pos(node);
  return { line, col, field };
}
