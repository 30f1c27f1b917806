// The `routes` section of a policy: each route's name, methods, path template, required permissions, where
// its location is read from and its mode; a route that an earlier one shadows (same method and template)
// is refused, since it could never match.
import { isSeq, type Node } from 'yaml';
import { closest, unknownMessage } from '../config/problems.js';
import type { YamlReader } from '../config/yaml.js';
import { parseBodyPath } from './body-path.js';
import { HTTP_METHODS, parsePathTemplate, templateParams, templateShape } from './routes.js';
import type { IdentityRequirement, LocationSource, RouteDocument } from './types.js';
import { IDENTITY_REQUIREMENTS, POLICY_MODES, type PolicyMode } from './types.js';
import type { DefinedNames } from './validate-names.js';

const LOCATION_KEYS = ['body', 'path', 'query', 'header'] as const;

// Route names become metric labels and the `x-scopegate-route` header value.
const ROUTE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
// RFC 9110 token, lower-case (Envoy hands headers to us lower-cased).
const HEADER_NAME = /^[a-z0-9!#$%&'*+\-.^_`|~]+$/;

/** `routes`, in order; each permission must be one `scopes` defined. */
export function readRoutes(
  r: YamlReader,
  defined: DefinedNames,
  value: Node | null,
): RouteDocument[] | undefined {
  const items = r.list(value, 'routes');
  if (!items) return undefined;
  const out: RouteDocument[] = [];
  const names = new Map<string, Node>();
  // `METHOD shape` → the first route that takes it, so a later identical one is reported unreachable.
  const taken = new Map<string, { name: string; node: Node | null }>();
  items.forEach((item, i) => {
    const f = `routes[${i}]`;
    const s = r.section(item, f, {
      name: true,
      method: true,
      path: true,
      permissions: true,
      location: false,
      mode: false,
      identity: false,
    });
    if (!s) return;
    const name = s.name && r.string(s.name.value, `${f}.name`);
    if (name !== undefined && s.name?.value) {
      const first = names.get(name);
      if (!ROUTE_NAME.test(name)) {
        r.report(
          s.name.value,
          `${f}.name`,
          `route name "${name}" may only use letters, digits and _ . : - (it is a metric label and a header value)`,
        );
      } else if (first) {
        r.report(
          s.name.value,
          `${f}.name`,
          `duplicate route name "${name}" (first at line ${r.pos(first).line})`,
        );
      } else names.set(name, s.name.value);
    }
    const methods = s.method && readMethods(r, s.method.value, `${f}.method`);
    const path = s.path && r.string(s.path.value, `${f}.path`);
    let templateOk = false;
    if (path !== undefined && s.path?.value) {
      const parsed = parsePathTemplate(path);
      if (!parsed.ok) r.report(s.path.value, `${f}.path`, parsed.message);
      templateOk = parsed.ok;
    }
    const permissions =
      s.permissions &&
      r.stringList(s.permissions.value, `${f}.permissions`, { nonEmpty: true, unique: true });
    if (permissions) defined.checkRefs('permission', permissions);
    const location =
      s.location && readLocation(r, s.location.value, `${f}.location`, templateOk ? path : undefined);
    const mode = s.mode && readMode(r, s.mode.value, `${f}.mode`);
    const identity = s.identity && readIdentity(r, defined, s.identity.value, `${f}.identity`);

    if (templateOk && methods && path !== undefined && name !== undefined && s.path) {
      const shape = templateShape(path);
      for (const method of methods) {
        const key = `${method} ${shape}`;
        const first = taken.get(key);
        if (first) {
          r.report(
            s.path.value,
            `${f}.path`,
            `route "${name}" can never match: route "${first.name}" (line ${r.pos(first.node).line}) has the same method ${method} and path template`,
          );
          break;
        }
      }
      for (const method of methods) {
        const key = `${method} ${shape}`;
        if (!taken.has(key)) taken.set(key, { name, node: s.name?.value ?? item });
      }
    }
    if (name !== undefined && methods && path !== undefined && permissions && location !== null) {
      out.push({
        name,
        method: methods.length === 1 ? methods[0]! : methods,
        path,
        permissions: permissions.map((p) => p.value),
        ...(location ? { location } : {}),
        ...(mode ? { mode } : {}),
        ...(identity ? { identity } : {}),
      });
    }
  });
  return out;
}

/** `enforce` (the default) or `dry_run`: denials are counted and logged but the request goes through. */
export function readMode(r: YamlReader, value: Node | null, f: string): PolicyMode | undefined {
  return readOneOf(r, value, f, 'mode', POLICY_MODES);
}

/**
 * `token` (the default), `peer` or `token_and_peer`. Needing a peer means nothing without a `peers` section to
 * grant it anything: every such request would be refused, so the policy is.
 */
export function readIdentity(
  r: YamlReader,
  defined: DefinedNames,
  value: Node | null,
  f: string,
): IdentityRequirement | undefined {
  const identity = readOneOf(r, value, f, 'identity', IDENTITY_REQUIREMENTS);
  if (identity !== undefined && identity !== 'token' && defined.peers === false) {
    r.report(value, f, `identity ${identity} needs a peers section: it lists the workloads that may call`);
  }
  return identity;
}

function readOneOf<T extends string>(
  r: YamlReader,
  value: Node | null,
  f: string,
  what: string,
  choices: readonly T[],
): T | undefined {
  const given = r.string(value, f);
  if (given === undefined) return undefined;
  if ((choices as readonly string[]).includes(given)) return given as T;
  r.report(value, f, unknownMessage(what, given, choices, true));
  return undefined;
}

function readMethods(r: YamlReader, value: Node | null, f: string): string[] | undefined {
  const node = r.deref(value);
  const names = isSeq(node)
    ? r.stringList(node, f, { nonEmpty: true, unique: true })
    : (() => {
        const one = r.string(node, f);
        return one === undefined ? undefined : [{ value: one, node: node as Node, field: f }];
      })();
  if (!names) return undefined;
  let good = true;
  for (const m of names) {
    if ((HTTP_METHODS as readonly string[]).includes(m.value)) continue;
    good = false;
    r.report(m.node, m.field, unknownMessage('HTTP method', m.value, HTTP_METHODS, true));
  }
  return good ? names.map((m) => m.value) : undefined;
}

/** Undefined: no usable location given; null: a location was given but it is broken. */
function readLocation(
  r: YamlReader,
  value: Node | null,
  f: string,
  template: string | undefined,
): LocationSource | null {
  const s = r.section(value, f, Object.fromEntries(LOCATION_KEYS.map((k) => [k, false])));
  if (!s) return null;
  const given = LOCATION_KEYS.filter((k) => s[k]);
  if (given.length !== 1) {
    const at = given.length > 1 ? s[given[1]!]!.keyNode : r.deref(value);
    r.report(
      at,
      f,
      `location needs exactly one of ${LOCATION_KEYS.join(', ')}${given.length > 1 ? `, not ${given.join(' and ')}` : ''}`,
    );
    return null;
  }
  const kind = given[0]!;
  const entry = s[kind]!;
  const fk = `${f}.${kind}`;
  const name = r.string(entry.value, fk);
  if (name === undefined) return null;
  switch (kind) {
    case 'body':
      if (parseBodyPath(name) === undefined) {
        r.report(
          entry.value,
          fk,
          `"${name}" is not a JSON field path; write keys separated by "." like "location" or "lines[].location"`,
        );
        return null;
      }
      return { body: name };
    case 'path': {
      if (template === undefined) return null;
      const params = templateParams(template);
      if (!params.includes(name)) {
        const suggestion = closest(name, params);
        const hint =
          suggestion !== undefined
            ? `; did you mean "${suggestion}"?`
            : params.length === 0
              ? '; it has no parameters'
              : `; it has ${params.map((p) => `"${p}"`).join(', ')}`;
        r.report(entry.value, fk, `"${name}" is not a parameter of path "${template}"${hint}`);
        return null;
      }
      return { path: name };
    }
    case 'query':
      return { query: name };
    case 'header':
      if (name !== name.toLowerCase() && HEADER_NAME.test(name.toLowerCase())) {
        r.report(entry.value, fk, `header names are matched lower-cased; write "${name.toLowerCase()}"`);
        return null;
      }
      if (!HEADER_NAME.test(name)) {
        r.report(entry.value, fk, `"${name}" is not a valid HTTP header name`);
        return null;
      }
      return { header: name };
  }
}
