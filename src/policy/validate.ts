// Validates a parsed policy YAML document against the format in DESIGN.md ("Policy file"), reading the
// YAML nodes themselves so every problem points at the exact key or value (line and column) and names
// the field (`routes[2].permissions[0]`). All problems are collected, not just the first: a user fixing
// a policy should see everything wrong in one run.

import { type Document, isScalar, isSeq, type LineCounter, type Node } from 'yaml';
import { closest, fieldPath, unknownMessage } from '../config/problems.js';
import { type Entry, type Located, YamlReader } from '../config/yaml.js';
import { identityTextProblem } from '../vocabulary/index.js';
import { parseBodyPath } from './body-path.js';
import { locationPatternProblem } from './locations.js';
import { HTTP_METHODS, parsePathTemplate, templateParams, templateShape } from './routes.js';
import type {
  ClaimsDocument,
  IssuerDocument,
  LocationSource,
  PolicyDocument,
  PolicyProblem,
  RouteDocument,
  SubjectDocument,
  UnlistedClients,
} from './types.js';
import { POLICY_MODES, type PolicyMode, UNLISTED_CLIENTS } from './types.js';

/** Asymmetric algorithms only: `none` and HS* (a shared secret verified with a public key) are never allowed. */
export const ALLOWED_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
] as const;

export const CLOCK_TOLERANCE_MAX_SECONDS = 300;
export const MAX_TOKEN_BYTES_RANGE = { min: 1024, max: 65536 } as const;

export interface ValidateResult {
  /** The document as plain data; present only when there are no problems. */
  readonly document?: PolicyDocument;
  readonly problems: PolicyProblem[];
  /** Offsets of duplicate keys already reported here (so the loader can drop yaml's terser duplicate). */
  readonly duplicateKeyOffsets: ReadonlySet<number>;
}

const CLAIM_KEYS = ['subject', 'scopes', 'roles', 'client', 'grantType', 'locations'] as const;
const LOCATION_KEYS = ['body', 'path', 'query', 'header'] as const;

// RFC 6749 §3.3 scope-token: printable ASCII without space, `"` and `\` (scopes are also quoted in
// `WWW-Authenticate: Bearer scope="…"`, so anything else would break the header).
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
// Route names become metric labels and the `x-scopegate-route` header value.
const ROUTE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]*$/;
// RFC 9110 token, lower-case (Envoy hands headers to us lower-cased).
const HEADER_NAME = /^[a-z0-9!#$%&'*+\-.^_`|~]+$/;
// The realm is quoted in `WWW-Authenticate: Bearer realm="…"`.
const REALM = /^[\x20\x21\x23-\x5B\x5D-\x7E]{1,128}$/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** Validates a parsed YAML document; `lineCounter` must be the one the document was parsed with. */
export function validatePolicy(doc: Document.Parsed, lineCounter: LineCounter, file: string): ValidateResult {
  const reader = new Reader(doc, lineCounter, file);
  const document = reader.readPolicy(doc.contents);
  return {
    document: reader.problems.length === 0 ? document : undefined,
    problems: reader.problems,
    duplicateKeyOffsets: reader.duplicateKeyOffsets,
  };
}

class Reader extends YamlReader {
  private suggestionBudget = 200;
  private knownPermissions?: Set<string>;
  private knownScopes?: Set<string>;
  /** Undefined: no `roles` section; null: a `roles` section too broken to check against. */
  private knownRoles?: Set<string> | null;
  /** The issuers listed (empty: none, Envoy's jwt_authn vouches); null: the list is broken. */
  private issuerNames: string[] | null = [];
  /** `issuer\nname` → where it is given, per section: each name may be given once within its issuer. */
  private readonly identities = { subjects: new Map<string, Node>(), clients: new Map<string, Node>() };

  constructor(doc: Document.Parsed, lineCounter: LineCounter, file: string) {
    super({ doc, lineCounter }, file, { followAliases: true });
  }

  // ── the policy, section by section ──────────────────────────────────────────────────────────────

  readPolicy(root: Node | null): PolicyDocument | undefined {
    const node = this.deref(root);
    if (node === null || (isScalar(node) && node.value === null)) {
      this.problems.push({
        ...this.pos(root),
        field: '',
        message: 'the policy is empty; it needs at least "version: 1"',
      });
      return undefined;
    }
    const sections = this.section(node, '', {
      version: true,
      mode: false,
      authentication: true,
      scopes: true,
      roles: false,
      clients: false,
      subjects: false,
      routes: true,
    });
    if (!sections) return undefined;

    if (sections.version) {
      const v = this.deref(sections.version.value);
      if (!(isScalar(v) && v.value === 1)) {
        this.report(
          v ?? sections.version.keyNode,
          'version',
          `unsupported version ${this.show(v)}; write "version: 1"`,
        );
      }
    }
    const mode = sections.mode ? this.readMode(sections.mode.value, 'mode') : undefined;
    // Read in dependency order (scopes define permissions, roles use them, …), whatever the file's order.
    const scopes = sections.scopes ? this.readScopes(sections.scopes.value) : undefined;
    const roles = sections.roles ? this.readRoles(sections.roles.value) : undefined;
    const authentication = sections.authentication
      ? this.readAuthentication(sections.authentication.value)
      : undefined;
    const clients = sections.clients ? this.readClients(sections.clients.value) : undefined;
    const subjects = sections.subjects ? this.readSubjects(sections.subjects.value) : undefined;
    const routes = sections.routes ? this.readRoutes(sections.routes.value) : undefined;

    if (!authentication || !scopes || !routes) return undefined;
    return {
      version: 1,
      ...(mode ? { mode } : {}),
      authentication,
      scopes,
      ...(roles ? { roles } : {}),
      ...(clients ? { clients } : {}),
      ...(subjects ? { subjects } : {}),
      routes,
    };
  }

  private readAuthentication(value: Node | null): PolicyDocument['authentication'] | undefined {
    const f = 'authentication';
    const s = this.section(value, f, {
      realm: false,
      maxTokenBytes: false,
      issuers: false,
      envoyJwtAuthn: false,
      claims: false,
      unlistedClients: false,
    });
    if (!s) return undefined;
    const out: PolicyDocument['authentication'] = {};
    if (s.unlistedClients) {
      const choice = this.string(s.unlistedClients.value, `${f}.unlistedClients`);
      if (choice !== undefined && (UNLISTED_CLIENTS as readonly string[]).includes(choice)) {
        out.unlistedClients = choice as UnlistedClients;
      } else if (choice !== undefined) {
        this.report(
          s.unlistedClients.value,
          `${f}.unlistedClients`,
          unknownMessage('choice', choice, UNLISTED_CLIENTS, true),
        );
      }
    }
    if (s.realm) {
      const realm = this.string(s.realm.value, `${f}.realm`);
      if (realm !== undefined && !REALM.test(realm)) {
        this.report(
          s.realm.value,
          `${f}.realm`,
          'realm must be 1 to 128 printable ASCII characters without " or \\ (it is quoted in WWW-Authenticate)',
        );
      } else if (realm !== undefined) out.realm = realm;
    }
    if (s.maxTokenBytes) {
      const n = this.integer(
        s.maxTokenBytes.value,
        `${f}.maxTokenBytes`,
        MAX_TOKEN_BYTES_RANGE.min,
        MAX_TOKEN_BYTES_RANGE.max,
      );
      if (n !== undefined) out.maxTokenBytes = n;
    }
    if (s.issuers) {
      const issuers = this.readIssuers(s.issuers.value, `${f}.issuers`);
      if (issuers) out.issuers = issuers;
      // What `issuer:` on subjects and clients may name; null: the list is too broken to check against.
      this.issuerNames = issuers ? issuers.map((i) => i.issuer) : null;
    }
    if (s.envoyJwtAuthn) {
      const e = this.section(s.envoyJwtAuthn.value, `${f}.envoyJwtAuthn`, { metadataKey: true });
      const key = e?.metadataKey && this.string(e.metadataKey.value, `${f}.envoyJwtAuthn.metadataKey`);
      if (key) out.envoyJwtAuthn = { metadataKey: key };
    }
    if (s.claims) {
      const c = this.section(
        s.claims.value,
        `${f}.claims`,
        Object.fromEntries(CLAIM_KEYS.map((k) => [k, false])),
      );
      if (c) {
        const claims: ClaimsDocument = {};
        for (const k of CLAIM_KEYS) {
          const entry = c[k];
          if (!entry) continue;
          const names = this.stringList(entry.value, `${f}.claims.${k}`, { nonEmpty: true });
          if (names) claims[k] = names.map((n) => n.value);
        }
        out.claims = claims;
      }
    }
    const issuerList = s.issuers ? this.deref(s.issuers.value) : null;
    const hasIssuers = isSeq(issuerList) && issuerList.items.length > 0;
    if (!hasIssuers && !s.envoyJwtAuthn) {
      this.report(
        s.issuers?.value ?? this.deref(value),
        s.issuers ? `${f}.issuers` : f,
        'no way to authenticate callers: list at least one issuer, or set envoyJwtAuthn',
      );
    }
    return out;
  }

  private readIssuers(value: Node | null, f: string): IssuerDocument[] | undefined {
    const items = this.list(value, f);
    if (!items) return undefined;
    const out: IssuerDocument[] = [];
    const seen = new Map<string, Node>();
    items.forEach((item, i) => {
      const fi = `${f}[${i}]`;
      const s = this.section(item, fi, {
        issuer: true,
        audiences: true,
        jwks: true,
        algorithms: true,
        clockToleranceSeconds: false,
      });
      if (!s) return;
      const issuer = s.issuer && this.url(s.issuer.value, `${fi}.issuer`, 'issuer');
      if (issuer && s.issuer?.value) {
        const first = seen.get(issuer);
        if (first) {
          this.report(
            s.issuer.value,
            `${fi}.issuer`,
            `duplicate issuer "${issuer}" (first at line ${this.pos(first).line})`,
          );
        } else seen.set(issuer, s.issuer.value);
      }
      const audiences =
        s.audiences && this.stringList(s.audiences.value, `${fi}.audiences`, { nonEmpty: true });
      const jwks = s.jwks && this.readJwks(s.jwks.value, `${fi}.jwks`);
      const algorithms = s.algorithms && this.readAlgorithms(s.algorithms.value, `${fi}.algorithms`);
      let clockToleranceSeconds: number | undefined;
      if (s.clockToleranceSeconds) {
        clockToleranceSeconds = this.integer(
          s.clockToleranceSeconds.value,
          `${fi}.clockToleranceSeconds`,
          0,
          CLOCK_TOLERANCE_MAX_SECONDS,
        );
      }
      if (issuer && audiences && jwks && algorithms) {
        out.push({
          issuer,
          audiences: audiences.map((a) => a.value),
          jwks,
          algorithms,
          ...(clockToleranceSeconds !== undefined ? { clockToleranceSeconds } : {}),
        });
      }
    });
    return out;
  }

  private readJwks(value: Node | null, f: string): IssuerDocument['jwks'] | undefined {
    const s = this.section(value, f, { uri: false, file: false });
    if (!s) return undefined;
    if (s.uri && s.file) {
      this.report(s.file.keyNode, `${f}.file`, 'jwks must have exactly one of "uri" or "file", not both');
      return undefined;
    }
    if (s.uri) {
      const uri = this.url(s.uri.value, `${f}.uri`, 'jwks uri');
      return uri ? { uri } : undefined;
    }
    if (s.file) {
      const file = this.string(s.file.value, `${f}.file`);
      return file ? { file } : undefined;
    }
    this.report(
      this.deref(value),
      f,
      'jwks needs exactly one of "uri" (an http(s) URL) or "file" (a JWKS file)',
    );
    return undefined;
  }

  private readAlgorithms(value: Node | null, f: string): string[] | undefined {
    const names = this.stringList(value, f, { nonEmpty: true, unique: true });
    if (!names) return undefined;
    let good = true;
    for (const { value: alg, node, field } of names) {
      if ((ALLOWED_ALGORITHMS as readonly string[]).includes(alg)) continue;
      good = false;
      if (alg.toLowerCase() === 'none') {
        this.report(node, field, 'algorithm "none" is never allowed: unsigned tokens prove nothing');
      } else if (/^HS\d+$/i.test(alg)) {
        this.report(
          node,
          field,
          `algorithm "${alg}" is not allowed: HMAC (HS*) needs a shared secret, and verifying it with a public key lets anyone forge tokens`,
        );
      } else {
        this.report(node, field, unknownMessage('algorithm', alg, ALLOWED_ALGORITHMS, true));
      }
    }
    return good ? names.map((n) => n.value) : undefined;
  }

  private readScopes(value: Node | null): Record<string, string[]> | undefined {
    const entries = this.entries(value, 'scopes');
    if (!entries) return undefined;
    const out: Record<string, string[]> = {};
    const permissions = new Set<string>();
    for (const { key, keyNode, value: v } of entries) {
      const f = fieldPath('scopes', key);
      if (!SCOPE_TOKEN.test(key)) {
        this.report(
          keyNode,
          f,
          `scope "${key}" is not a valid OAuth2 scope name (printable ASCII without spaces, " or \\)`,
        );
      }
      const list = this.stringList(v, f, { nonEmpty: true, unique: true });
      if (!list) continue;
      for (const p of list) {
        if (CONTROL_CHARS.test(p.value))
          this.report(p.node, p.field, 'a permission name must not contain control characters');
        permissions.add(p.value);
      }
      setOwn(
        out,
        key,
        list.map((p) => p.value),
      );
    }
    // Known names come from what could be read, so one broken scope does not make every route "unknown".
    this.knownScopes = new Set(entries.map((e) => e.key));
    this.knownPermissions = permissions;
    return out;
  }

  private readRoles(value: Node | null): Record<string, string[]> | undefined {
    const entries = this.entries(value, 'roles');
    if (!entries) {
      this.knownRoles = null;
      return undefined;
    }
    this.knownRoles = new Set(entries.map((e) => e.key));
    const out: Record<string, string[]> = {};
    for (const { key, value: v } of entries) {
      const f = fieldPath('roles', key);
      const list = this.stringList(v, f, { nonEmpty: true, unique: true });
      if (!list) continue;
      this.checkRefs('permission', list);
      setOwn(
        out,
        key,
        list.map((p) => p.value),
      );
    }
    return out;
  }

  private readClients(value: Node | null): NonNullable<PolicyDocument['clients']> | undefined {
    const entries = this.entries(value, 'clients');
    if (!entries) return undefined;
    const out: NonNullable<PolicyDocument['clients']> = {};
    for (const { key, keyNode, value: v } of entries) {
      const f = fieldPath('clients', key);
      const s = this.section(v, f, { issuer: false, client: false, scopes: true, grantTypes: false });
      if (!s) continue;
      const owner = this.readOwner('clients', f, key, keyNode, s.issuer, s.client);
      const scopes = s.scopes && this.stringList(s.scopes.value, `${f}.scopes`, { unique: true });
      if (scopes) this.checkRefs('scope', scopes);
      const grantTypes =
        s.grantTypes &&
        this.stringList(s.grantTypes.value, `${f}.grantTypes`, { nonEmpty: true, unique: true });
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

  private readSubjects(value: Node | null): NonNullable<PolicyDocument['subjects']> | undefined {
    const entries = this.entries(value, 'subjects');
    if (!entries) return undefined;
    const out: NonNullable<PolicyDocument['subjects']> = {};
    for (const { key, keyNode, value: v } of entries) {
      const f = fieldPath('subjects', key);
      const s = this.section(v, f, { issuer: false, subject: false, roles: false, locations: false });
      if (!s) continue;
      const owner = this.readOwner('subjects', f, key, keyNode, s.issuer, s.subject);
      if (!owner) continue;
      const subject: SubjectDocument = {
        ...(owner.issuer !== undefined && { issuer: owner.issuer }),
        ...(owner.name !== undefined && { subject: owner.name }),
      };
      if (s.roles) {
        const roles = this.stringList(s.roles.value, `${f}.roles`, { unique: true });
        if (roles) {
          this.checkRefs('role', roles);
          subject.roles = roles.map((r) => r.value);
        }
      }
      if (s.locations) {
        const locations = this.stringList(s.locations.value, `${f}.locations`, { unique: true });
        if (locations) {
          for (const l of locations) {
            const problem = locationPatternProblem(l.value);
            if (problem) this.report(l.node, l.field, problem);
          }
          subject.locations = locations.map((l) => l.value);
        }
      }
      setOwn(out, key, subject);
    }
    return out;
  }

  /**
   * Whose entry this is: the `issuer` it belongs to (required when the policy lists several, one of them
   * either way) and the name tokens carry (`subject`/`client`, default the key). The name must be one a
   * token can carry exactly, and each name is given once per issuer. Undefined when broken (reported).
   */
  private readOwner(
    section: 'subjects' | 'clients',
    f: string,
    key: string,
    keyNode: Node,
    issuerEntry: Entry | undefined,
    nameEntry: Entry | undefined,
  ): { issuer?: string; name?: string } | undefined {
    const nameField = section === 'subjects' ? 'subject' : 'client';
    const listed = this.issuerNames;
    let issuer: string | undefined;
    let good = true;
    if (issuerEntry) {
      issuer = this.string(issuerEntry.value, `${f}.issuer`);
      if (issuer === undefined) good = false;
      else if (listed !== null && listed.length > 0 && !listed.includes(issuer)) {
        this.report(
          issuerEntry.value,
          `${f}.issuer`,
          unknownMessage('issuer', issuer, listed, true) + ' (from authentication.issuers)',
        );
        good = false;
      }
    } else if (listed !== null && listed.length > 1) {
      this.report(
        keyNode,
        `${f}.issuer`,
        `with several issuers, say which one this ${nameField} belongs to: issuer: one of ${listed.join(', ')}`,
      );
      good = false;
    }
    let name: string | undefined;
    if (nameEntry) {
      name = this.string(nameEntry.value, `${f}.${nameField}`);
      if (name === undefined) good = false;
    }
    const effective = name ?? key;
    // The identity phase refuses tokens whose names break this rule, so such an entry would match nothing.
    const problem = identityTextProblem(effective);
    if (problem !== undefined) {
      this.report(
        nameEntry?.value ?? keyNode,
        nameEntry ? `${f}.${nameField}` : f,
        `${nameField} name ${JSON.stringify(effective.slice(0, 60))} ${problem}, so no token can carry it`,
      );
      good = false;
    }
    if (!good) return undefined;
    const owner = issuer ?? (listed?.length === 1 ? listed[0] : undefined) ?? '';
    const seen = this.identities[section];
    const id = `${owner}\n${effective}`;
    const first = seen.get(id);
    if (first) {
      const whose = owner === '' ? '' : ` of issuer ${owner}`;
      this.report(
        nameEntry?.value ?? keyNode,
        f,
        `${nameField} "${effective}"${whose} is already given at line ${this.pos(first).line}`,
      );
      return undefined;
    }
    seen.set(id, nameEntry?.value ?? keyNode);
    return { ...(issuer !== undefined && { issuer }), ...(name !== undefined && { name }) };
  }

  private readRoutes(value: Node | null): RouteDocument[] | undefined {
    const items = this.list(value, 'routes');
    if (!items) return undefined;
    const out: RouteDocument[] = [];
    const names = new Map<string, Node>();
    // `METHOD shape` → the first route that takes it, so a later identical one is reported unreachable.
    const taken = new Map<string, { name: string; node: Node | null }>();
    items.forEach((item, i) => {
      const f = `routes[${i}]`;
      const s = this.section(item, f, {
        name: true,
        method: true,
        path: true,
        permissions: true,
        location: false,
        mode: false,
      });
      if (!s) return;
      const name = s.name && this.string(s.name.value, `${f}.name`);
      if (name !== undefined && s.name?.value) {
        const first = names.get(name);
        if (!ROUTE_NAME.test(name)) {
          this.report(
            s.name.value,
            `${f}.name`,
            `route name "${name}" may only use letters, digits and _ . : - (it is a metric label and a header value)`,
          );
        } else if (first) {
          this.report(
            s.name.value,
            `${f}.name`,
            `duplicate route name "${name}" (first at line ${this.pos(first).line})`,
          );
        } else names.set(name, s.name.value);
      }
      const methods = s.method && this.readMethods(s.method.value, `${f}.method`);
      const path = s.path && this.string(s.path.value, `${f}.path`);
      let templateOk = false;
      if (path !== undefined && s.path?.value) {
        const parsed = parsePathTemplate(path);
        if (!parsed.ok) this.report(s.path.value, `${f}.path`, parsed.message);
        templateOk = parsed.ok;
      }
      const permissions =
        s.permissions &&
        this.stringList(s.permissions.value, `${f}.permissions`, { nonEmpty: true, unique: true });
      if (permissions) this.checkRefs('permission', permissions);
      const location =
        s.location && this.readLocation(s.location.value, `${f}.location`, templateOk ? path : undefined);
      const mode = s.mode && this.readMode(s.mode.value, `${f}.mode`);

      if (templateOk && methods && path !== undefined && name !== undefined && s.path) {
        const shape = templateShape(path);
        for (const method of methods) {
          const key = `${method} ${shape}`;
          const first = taken.get(key);
          if (first) {
            this.report(
              s.path.value,
              `${f}.path`,
              `route "${name}" can never match: route "${first.name}" (line ${this.pos(first.node).line}) has the same method ${method} and path template`,
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
        });
      }
    });
    return out;
  }

  /** `enforce` (the default) or `dry_run`: denials are counted and logged but the request goes through. */
  private readMode(value: Node | null, f: string): PolicyMode | undefined {
    const mode = this.string(value, f);
    if (mode === undefined) return undefined;
    if ((POLICY_MODES as readonly string[]).includes(mode)) return mode as PolicyMode;
    this.report(value, f, unknownMessage('mode', mode, POLICY_MODES, true));
    return undefined;
  }

  private readMethods(value: Node | null, f: string): string[] | undefined {
    const node = this.deref(value);
    const names = isSeq(node)
      ? this.stringList(node, f, { nonEmpty: true, unique: true })
      : (() => {
          const one = this.string(node, f);
          return one === undefined ? undefined : [{ value: one, node: node as Node, field: f }];
        })();
    if (!names) return undefined;
    let good = true;
    for (const m of names) {
      if ((HTTP_METHODS as readonly string[]).includes(m.value)) continue;
      good = false;
      this.report(m.node, m.field, unknownMessage('HTTP method', m.value, HTTP_METHODS, true));
    }
    return good ? names.map((m) => m.value) : undefined;
  }

  /** Undefined: no usable location given; null: a location was given but it is broken. */
  private readLocation(value: Node | null, f: string, template: string | undefined): LocationSource | null {
    const s = this.section(value, f, Object.fromEntries(LOCATION_KEYS.map((k) => [k, false])));
    if (!s) return null;
    const given = LOCATION_KEYS.filter((k) => s[k]);
    if (given.length !== 1) {
      const at = given.length > 1 ? s[given[1]!]!.keyNode : this.deref(value);
      this.report(
        at,
        f,
        `location needs exactly one of ${LOCATION_KEYS.join(', ')}${given.length > 1 ? `, not ${given.join(' and ')}` : ''}`,
      );
      return null;
    }
    const kind = given[0]!;
    const entry = s[kind]!;
    const fk = `${f}.${kind}`;
    const name = this.string(entry.value, fk);
    if (name === undefined) return null;
    switch (kind) {
      case 'body':
        if (parseBodyPath(name) === undefined) {
          this.report(
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
          this.report(entry.value, fk, `"${name}" is not a parameter of path "${template}"${hint}`);
          return null;
        }
        return { path: name };
      }
      case 'query':
        return { query: name };
      case 'header':
        if (name !== name.toLowerCase() && HEADER_NAME.test(name.toLowerCase())) {
          this.report(entry.value, fk, `header names are matched lower-cased; write "${name.toLowerCase()}"`);
          return null;
        }
        if (!HEADER_NAME.test(name)) {
          this.report(entry.value, fk, `"${name}" is not a valid HTTP header name`);
          return null;
        }
        return { header: name };
    }
  }

  // ── references between sections ───────────────────────────────────────────────────────────────────

  private checkRefs(kind: 'permission' | 'scope' | 'role', refs: readonly Located[]): void {
    if (kind === 'role' && this.knownRoles === undefined) {
      for (const r of refs) {
        this.report(r.node, r.field, `role "${r.value}" is not defined: this policy has no roles section`);
      }
      return;
    }
    const known =
      kind === 'permission' ? this.knownPermissions : kind === 'scope' ? this.knownScopes : this.knownRoles;
    // The section itself is broken (already reported): checking against it would only add noise.
    if (!known) return;
    const candidates = [...known];
    for (const r of refs) {
      if (known.has(r.value)) continue;
      // Suggestions cost a scan of every known name; a file full of typos gets them for the first ones only.
      const suggest = this.suggestionBudget-- > 0;
      this.report(r.node, r.field, unknownMessage(kind, r.value, suggest ? candidates : [], false));
    }
  }
}

// A user-chosen key such as "__proto__" must become a plain own property, never a prototype change.
function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}
