// `scopegate test`: policy unit tests. A YAML file of cases — claims, an HTTP request, the door it comes in by
// (gRPC unless it says), the expected decision and/or reason (and optionally what must be named as missing) —
// each run through the same trace as `explain`, so a case passes exactly when the server would decide that
// way. The file is read like a policy: capped in size, duplicate keys refused, aliases bounded, and every
// mistake reported as FILE:LINE:COL.
import { isMap, isScalar, isSeq, type Node, type YAMLMap } from 'yaml';
import { choosePolicy } from '../check/choose.js';
import { closest } from '../config/problems.js';
import { readTextFile } from '../config/text-file.js';
import {
  aliasExpansionProblem,
  MAX_ALIAS_COUNT,
  type ParsedYaml,
  parseYaml,
  positionAt,
  YamlReader,
} from '../config/yaml.js';
import type { PolicySet } from '../policy/set.js';
import type { CompiledPolicy, PolicyProblem } from '../policy/types.js';
import type { Missing } from '../vocabulary/index.js';
import { type DecisionLabel, REASON_CODES, type Reason, type Transport } from '../vocabulary/index.js';
import { checkRequestFor } from '../wire/check-request.js';
import { DOOR_NAMES, doorNamed, uncarried, uncarriedProblem } from './door.js';
import { type HttpRequestSpec, StandInSigner, unverifiedRequest } from './identity.js';
import { terminalSafe } from './render.js';
import { type Trace, traceCheck, traceUnowned } from './trace.js';

/** Cases files larger than this are refused before parsing. */
export const MAX_CASES_BYTES = 1024 * 1024;
/** More cases than this in one file is refused: a test file, not a load test. */
export const MAX_CASES = 10_000;

const DECISIONS: readonly DecisionLabel[] = ['allow', 'deny', 'dry_run_deny'];
const MISSING_KEYS = ['permissions', 'scopes', 'roles', 'locations', 'grantTypes'] as const;

/** The request of a case: an HTTP request, and what Envoy adds for choosing a policy of a set. */
export type CaseRequest = HttpRequestSpec;

export interface CaseExpectation {
  /** `deny` also matches a dry-run deny: the rules refuse the request either way. */
  readonly decision?: DecisionLabel;
  readonly reason?: Reason;
  /** The policy of the set that must decide (by name). */
  readonly policy?: string;
  /** Every value listed must be among those the decision names as missing. */
  readonly missing?: Missing;
}

export interface PolicyCase {
  readonly name: string;
  /** Where the case starts, for failure reports. */
  readonly file: string;
  readonly line: number;
  /** Absent: the request carries no token. */
  readonly claims?: Readonly<Record<string, unknown>>;
  readonly request: CaseRequest;
  /** The front door the request comes in by; absent: gRPC. */
  readonly door?: Transport;
  readonly expect: CaseExpectation;
}

export type CasesResult =
  | { readonly ok: true; readonly cases: PolicyCase[] }
  | { readonly ok: false; readonly problems: PolicyProblem[] };

export interface CaseResult {
  readonly case: PolicyCase;
  readonly trace: Trace;
  /** Empty when the case passed. */
  readonly failures: readonly string[];
}

export async function loadCasesFile(file: string): Promise<CasesResult> {
  const read = await readTextFile(file, MAX_CASES_BYTES);
  if (read.ok) return parseCases(read.text, file);
  const message = ((): string => {
    switch (read.problem) {
      case 'too_large':
        return `the cases file is larger than the limit of ${MAX_CASES_BYTES} bytes (1 MiB)`;
      case 'unreadable':
        return `cannot read the cases file (${read.code})`;
      case 'not_utf8':
        return 'the cases file is not valid UTF-8';
    }
  })();
  return { ok: false, problems: [{ file, line: 1, col: 1, field: '', message }] };
}

export function parseCases(text: string, file: string): CasesResult {
  const parsed = parseYaml(text, { uniqueKeys: true });
  const at = (offset: number) => positionAt(parsed.lineCounter, file, offset);
  if (parsed.errors.length > 0) {
    const problems = parsed.errors.map((e) => ({
      ...at(e.offset),
      field: '',
      message: `invalid YAML: ${e.message}`,
    }));
    return { ok: false, problems };
  }
  // Bounded alias expansion before any walk, so an alias bomb costs nothing.
  if (aliasExpansionProblem(parsed.doc)) {
    const message = `invalid YAML: aliases expand too much (more than ${MAX_ALIAS_COUNT} uses)`;
    return { ok: false, problems: [{ ...at(0), field: '', message }] };
  }

  const reader = new CaseReader(parsed, file);
  const failed = (): CasesResult => ({ ok: false, problems: reader.problems });
  const root = parsed.doc.contents;
  if (!isMap(root)) {
    reader.report(root, '', 'a cases file is a mapping with a "cases" list');
    return failed();
  }
  reader.onlyKeys(root, '', ['cases']);
  const list = root.get('cases', true);
  if (!isSeq(list)) {
    reader.report(list ?? root, 'cases', 'required: a list of cases');
    return failed();
  }
  if (list.items.length > MAX_CASES) {
    reader.report(list, 'cases', `more than ${MAX_CASES} cases in one file`);
    return failed();
  }
  const cases: PolicyCase[] = [];
  const names = new Map<string, number>();
  list.items.forEach((item, index) => {
    const read = reader.readCase(item as Node, `cases[${index}]`);
    // Names are checked even on broken cases, so one fix does not uncover another problem.
    const map = isMap(item) ? item : undefined;
    const name = map?.get('name');
    if (typeof name === 'string') {
      const first = names.get(name);
      if (first !== undefined) {
        reader.report(
          map?.get('name', true) as Node,
          `cases[${index}].name`,
          `"${name}" is also the name of cases[${first}]`,
        );
        return;
      }
      names.set(name, index);
    }
    if (read) cases.push(read);
  });
  return reader.problems.length > 0 ? failed() : { ok: true, cases };
}

/** Reads the YAML nodes of one case, reporting each problem at its node; undefined when the case is broken. */
class CaseReader extends YamlReader {
  constructor(parsed: ParsedYaml, file: string) {
    // An alias (`*post-wh01`) reads as the node its anchor names.
    super(parsed, file, { followAliases: true });
  }

  /** The node under `key`, aliases followed. */
  private child(map: YAMLMap, key: string): Node | null {
    return this.deref(map.get(key, true) as Node | undefined);
  }

  onlyKeys(map: YAMLMap, field: string, known: readonly string[]): void {
    for (const pair of map.items) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      if (typeof key !== 'string' || !known.includes(key)) {
        const name = typeof key === 'string' ? `"${key}"` : 'a non-string key';
        const suggestion = typeof key === 'string' ? closest(key, known) : undefined;
        this.report(
          pair.key as Node,
          field,
          `unknown key ${name}${suggestion ? `; did you mean "${suggestion}"?` : ` (known: ${known.join(', ')})`}`,
        );
      }
    }
  }

  private stringIn(map: YAMLMap, key: string, field: string, required: boolean): string | undefined {
    const node = this.child(map, key);
    if (node === null) {
      if (required) this.report(map, field, `required key "${key}" is missing`);
      return undefined;
    }
    if (!isScalar(node) || typeof node.value !== 'string' || node.value === '') {
      this.report(node, `${field}.${key}`, 'must be a non-empty string');
      return undefined;
    }
    return node.value;
  }

  private mapping(map: YAMLMap, key: string, field: string, required: boolean): YAMLMap | undefined {
    const node = this.child(map, key);
    if (node === null) {
      if (required) this.report(map, field, `required key "${key}" is missing`);
      return undefined;
    }
    if (!isMap(node)) {
      this.report(node, `${field}.${key}`, 'must be a mapping');
      return undefined;
    }
    return node;
  }

  readCase(item: Node | null, field: string): PolicyCase | undefined {
    const node = this.deref(item);
    if (!isMap(node)) {
      this.report(node, field, 'a case is a mapping with name, claims, request and expect');
      return undefined;
    }
    const before = this.problems.length;
    this.onlyKeys(node, field, ['name', 'claims', 'request', 'door', 'expect']);
    const name = this.stringIn(node, 'name', field, true);
    const door = this.readDoor(node, field);

    let claims: Record<string, unknown> | undefined;
    const claimsNode = this.child(node, 'claims');
    if (claimsNode !== null) {
      if (!isMap(claimsNode)) {
        this.report(claimsNode, `${field}.claims`, 'must be a mapping of claims (leave it out for no token)');
      } else {
        claims = this.plainData(claimsNode) as Record<string, unknown>;
      }
    }

    const request = this.readRequest(node, field);
    if (request && door) {
      const requestMap = this.child(node, 'request') as YAMLMap;
      for (const part of uncarried(door.transport, request)) {
        const problem = uncarriedProblem(part, door.name, (name) => `door: ${name}`);
        this.report(this.child(requestMap, part), `${field}.request.${part}`, problem);
      }
    }
    const expect = this.readExpect(node, field);
    if (this.problems.length > before || !name || !request || !expect) return undefined;
    const { file, line } = this.pos(node);
    return {
      name,
      file,
      line,
      ...(claims && { claims }),
      request,
      ...(door && { door: door.transport }),
      expect,
    };
  }

  /** The case's `door`, by the name `--door` takes; undefined when absent or not a door (reported). */
  private readDoor(node: YAMLMap, field: string): { name: string; transport: Transport } | undefined {
    const name = this.stringIn(node, 'door', field, false);
    if (name === undefined) return undefined;
    const transport = doorNamed(name);
    if (transport === undefined) {
      const suggestion = closest(name, DOOR_NAMES);
      this.report(
        this.child(node, 'door'),
        `${field}.door`,
        `unknown door "${name}"; ${suggestion ? `did you mean "${suggestion}"?` : `one of ${DOOR_NAMES.join(', ')}`}`,
      );
      return undefined;
    }
    return { name, transport };
  }
  private readRequest(node: YAMLMap, field: string): CaseRequest | undefined {
    const map = this.mapping(node, 'request', field, true);
    if (!map) return undefined;
    const where = `${field}.request`;
    this.onlyKeys(map, where, [
      'method',
      'path',
      'headers',
      'body',
      'host',
      'contextExtensions',
      'destinationPrincipal',
      'peer',
    ]);
    const method = this.stringIn(map, 'method', where, true);
    const path = this.stringIn(map, 'path', where, true);
    const host = this.stringIn(map, 'host', where, false);
    const destinationPrincipal = this.stringIn(map, 'destinationPrincipal', where, false);
    const peer = this.stringIn(map, 'peer', where, false);
    const extensionsMap = this.mapping(map, 'contextExtensions', where, false);
    const contextExtensions =
      extensionsMap && this.stringMap(extensionsMap, `${where}.contextExtensions`, 'an extension');

    const headerMap = this.mapping(map, 'headers', where, false);
    const headers = Object.entries(
      headerMap ? this.stringMap(headerMap, `${where}.headers`, 'a header') : {},
    );

    let body: string | undefined;
    const bodyNode = this.child(map, 'body');
    if (bodyNode !== null) {
      if (isScalar(bodyNode) && typeof bodyNode.value === 'string') body = bodyNode.value;
      else if (isMap(bodyNode) || isSeq(bodyNode)) {
        // A structured body is JSON, and says so unless the case sets its own content-type.
        body = JSON.stringify(this.plainData(bodyNode));
        if (!headers.some(([name]) => name.toLowerCase() === 'content-type')) {
          headers.push(['content-type', 'application/json']);
        }
      } else {
        this.report(bodyNode, `${where}.body`, 'must be a string, or a mapping or list (sent as JSON)');
      }
    }
    if (!method || !path) return undefined;
    return {
      method,
      path,
      headers,
      ...(body !== undefined && { body }),
      ...(host !== undefined && { host }),
      ...(contextExtensions !== undefined && { contextExtensions }),
      ...(destinationPrincipal !== undefined && { destinationPrincipal }),
      ...(peer !== undefined && { peer }),
    };
  }

  /** A mapping of strings to strings (headers, context extensions); each bad entry is reported. */
  private stringMap(map: YAMLMap, field: string, what: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const pair of map.items) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      const valueNode = this.deref(pair.value as Node | null);
      const value = isScalar(valueNode) ? valueNode.value : undefined;
      if (typeof key !== 'string' || key === '') {
        this.report(pair.key as Node, field, `${what} name must be a non-empty string`);
      } else if (typeof value !== 'string') {
        this.report(
          (pair.value ?? pair.key) as Node,
          `${field}.${key}`,
          `${what} value must be a string (quote it)`,
        );
      } else {
        out[key] = value;
      }
    }
    return out;
  }

  private readExpect(node: YAMLMap, field: string): CaseExpectation | undefined {
    const map = this.mapping(node, 'expect', field, true);
    if (!map) return undefined;
    const where = `${field}.expect`;
    this.onlyKeys(map, where, ['decision', 'reason', 'policy', 'missing']);
    const decision = this.stringIn(map, 'decision', where, false);
    const reason = this.stringIn(map, 'reason', where, false);
    const policy = this.stringIn(map, 'policy', where, false);
    let ok = true;
    if (decision !== undefined && !(DECISIONS as readonly string[]).includes(decision)) {
      this.report(map.get('decision', true), `${where}.decision`, `must be one of ${DECISIONS.join(', ')}`);
      ok = false;
    }
    if (reason !== undefined && !(REASON_CODES as readonly string[]).includes(reason)) {
      const suggestion = closest(reason, REASON_CODES);
      this.report(
        map.get('reason', true),
        `${where}.reason`,
        `unknown reason "${reason}"${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
      );
      ok = false;
    }
    if (
      decision === undefined &&
      reason === undefined &&
      !map.has('policy') &&
      map.get('missing') === undefined
    ) {
      this.report(
        map,
        where,
        'say what to expect: a decision (allow or deny), a reason, the policy, or several of them',
      );
      ok = false;
    }
    if (
      ok &&
      decision !== undefined &&
      reason !== undefined &&
      (decision === 'allow') !== (reason === 'allowed')
    ) {
      this.report(
        map.get('reason', true),
        `${where}.reason`,
        `reason ${reason} contradicts decision ${decision}`,
      );
      ok = false;
    }

    let missing: Missing | undefined;
    const missingMap = this.mapping(map, 'missing', where, false);
    if (missingMap) {
      this.onlyKeys(missingMap, `${where}.missing`, MISSING_KEYS);
      const collected: Record<string, string[]> = {};
      for (const key of MISSING_KEYS) {
        const list = this.child(missingMap, key);
        if (list === null) continue;
        const values = isSeq(list) ? list.items.map((i) => (isScalar(i) ? i.value : undefined)) : [undefined];
        if (!values.every((v): v is string => typeof v === 'string' && v !== '')) {
          this.report(list, `${where}.missing.${key}`, 'must be a list of names');
          ok = false;
          continue;
        }
        collected[key] = values;
      }
      missing = collected;
    }
    if (!ok) return undefined;
    return {
      ...(decision !== undefined && { decision: decision as DecisionLabel }),
      ...(reason !== undefined && { reason: reason as Reason }),
      ...(policy !== undefined && { policy }),
      ...(missing && { missing }),
    };
  }
}

/** What the trace got wrong against the case's expectation, one sentence each; empty when it passed. */
export function expectationFailures(expect: CaseExpectation, trace: Trace): string[] {
  const failures: string[] = [];
  if (expect.decision !== undefined) {
    const matches =
      expect.decision === 'deny'
        ? trace.decision === 'deny' || trace.decision === 'dry_run_deny'
        : trace.decision === expect.decision;
    if (!matches) failures.push(`expected ${expect.decision}, got ${trace.decision} (${trace.reason})`);
  }
  if (expect.reason !== undefined && expect.reason !== trace.reason) {
    failures.push(`expected reason ${expect.reason}, got ${trace.reason}`);
  }
  if (expect.policy !== undefined) {
    const decided = trace.policy.chosen ? trace.policy.name : undefined;
    if (decided !== expect.policy) {
      failures.push(`expected policy ${expect.policy}, got ${decided ?? 'none (policy_unknown)'}`);
    }
  }
  for (const key of MISSING_KEYS) {
    const wanted = expect.missing?.[key] ?? [];
    const named = trace.missing?.[key] ?? [];
    const absent = wanted.filter((value) => !named.includes(value));
    if (absent.length > 0) {
      failures.push(
        `expected missing ${key} to include ${absent.join(', ')}, got ${named.length > 0 ? named.join(', ') : '(none)'}`,
      );
    }
  }
  return failures;
}

export interface RunOptions {
  readonly now?: () => number;
  /** Shared throw-away keys (one per algorithm), so a run generates each key once. */
  readonly signer?: StandInSigner;
}

/** Runs each case on the policy of the set the server would choose for its request. */
export async function runCases(
  set: PolicySet<CompiledPolicy>,
  cases: readonly PolicyCase[],
  options: RunOptions = {},
): Promise<CaseResult[]> {
  const signer = options.signer ?? new StandInSigner();
  const now = options.now ?? Date.now;
  const results: CaseResult[] = [];
  for (const policyCase of cases) {
    const credential = policyCase.claims ? 'claims' : 'none';
    const door = policyCase.door ?? 'grpc';
    const chosen = choosePolicy(set, checkRequestFor(policyCase.request), door);
    let trace: Trace;
    if (!chosen.ok) trace = traceUnowned(chosen.detail, { door, credential, verified: false });
    else {
      const policy = chosen.value;
      const { request, claims } = policyCase;
      const prepared = await unverifiedRequest(policy, request, claims, signer, now, door);
      trace = await traceCheck({
        door,
        policy,
        chosenBy: chosen.by,
        request: prepared.request,
        identity: prepared.identity,
        credential,
        verified: false,
      });
    }
    results.push({ case: policyCase, trace, failures: expectationFailures(policyCase.expect, trace) });
  }
  return results;
}

/** One line per case like a test runner, the fix under each failure, then `N passed, M failed`. */
export function renderResults(results: readonly CaseResult[]): string[] {
  const lines: string[] = [];
  for (const { case: policyCase, trace, failures } of results) {
    if (failures.length === 0) {
      lines.push(`✓ ${policyCase.name}`);
      continue;
    }
    lines.push(`✗ ${policyCase.name} — ${failures.join('; ')}`);
    lines.push(`    at ${policyCase.file}:${policyCase.line}`);
    if (trace.decision !== 'allow') lines.push(`    ${trace.reason}: ${trace.detail}`);
    for (const hint of trace.hints) lines.push(`    fix: ${hint}`);
    for (const hint of trace.alsoNeeded) lines.push(`    then: ${hint}`);
  }
  const failed = results.filter((r) => r.failures.length > 0).length;
  lines.push('', `${results.length - failed} passed, ${failed} failed`);
  return lines.map(terminalSafe);
}
