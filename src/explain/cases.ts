// `scopegate test`: policy unit tests. A YAML file of cases — claims, an HTTP request, the expected decision
// and/or reason (and optionally what must be named as missing) — each run through the same trace as
// `explain`, so a case passes exactly when the server would decide that way. The file is read like a policy:
// capped in size, duplicate keys refused, aliases bounded, and every mistake reported as FILE:LINE:COL.
import { open } from 'node:fs/promises';
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type YAMLMap } from 'yaml';
import type { CompiledPolicy, PolicyProblem } from '../policy/types.js';
import type { Missing } from '../vocabulary/index.js';
import { type DecisionLabel, REASON_CODES, type Reason } from '../vocabulary/index.js';
import { StandInSigner, unverifiedRequest } from './identity.js';
import { terminalSafe } from './render.js';
import { type Trace, traceCheck } from './trace.js';

/** Cases files larger than this are refused before parsing. */
export const MAX_CASES_BYTES = 1024 * 1024;
/** More cases than this in one file is refused: a test file, not a load test. */
export const MAX_CASES = 10_000;
const MAX_ALIAS_COUNT = 50;

const DECISIONS: readonly DecisionLabel[] = ['allow', 'deny', 'dry_run_deny'];
const MISSING_KEYS = ['permissions', 'scopes', 'roles', 'locations', 'grantTypes'] as const;

export interface CaseRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body?: string;
}

export interface CaseExpectation {
  /** `deny` also matches a dry-run deny: the rules refuse the request either way. */
  readonly decision?: DecisionLabel;
  readonly reason?: Reason;
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
  const whole = (message: string): CasesResult => ({
    ok: false,
    problems: [{ file, line: 1, col: 1, field: '', message }],
  });
  let bytes: Buffer;
  try {
    const handle = await open(file, 'r');
    try {
      const buffer = Buffer.alloc(MAX_CASES_BYTES + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      if (bytesRead > MAX_CASES_BYTES) {
        return whole(`the cases file is larger than the limit of ${MAX_CASES_BYTES} bytes (1 MiB)`);
      }
      bytes = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return whole(`cannot read the cases file (${typeof code === 'string' ? code : 'unknown error'})`);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return whole('the cases file is not valid UTF-8');
  }
  return parseCases(text, file);
}

export function parseCases(text: string, file: string): CasesResult {
  const problems: PolicyProblem[] = [];
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true });
  const at = (offset: number) => {
    const { line, col } = lineCounter.linePos(Math.max(offset, 0));
    return { file, line: Math.max(line, 1), col: Math.max(col, 1) };
  };
  const report = (node: unknown, field: string, message: string) => {
    const range = (node as { range?: readonly number[] } | undefined)?.range;
    problems.push({ ...at(range?.[0] ?? 0), field, message });
  };
  for (const e of [...doc.errors, ...doc.warnings]) {
    problems.push({ ...at(e.pos[0]), field: '', message: `invalid YAML: ${e.message}` });
  }
  if (problems.length > 0) return { ok: false, problems };
  try {
    // Bounded alias expansion before any walk, so an alias bomb costs nothing.
    doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
  } catch {
    report(undefined, '', `invalid YAML: aliases expand too much (more than ${MAX_ALIAS_COUNT} uses)`);
    return { ok: false, problems };
  }

  const root = doc.contents;
  if (!isMap(root)) {
    report(root, '', 'a cases file is a mapping with a "cases" list');
    return { ok: false, problems };
  }
  const reader = new NodeReader(doc, report);
  reader.onlyKeys(root, '', ['cases']);
  const list = root.get('cases', true);
  if (!isSeq(list)) {
    report(list ?? root, 'cases', 'required: a list of cases');
    return { ok: false, problems };
  }
  if (list.items.length > MAX_CASES) {
    report(list, 'cases', `more than ${MAX_CASES} cases in one file`);
    return { ok: false, problems };
  }
  const cases: PolicyCase[] = [];
  const names = new Map<string, number>();
  list.items.forEach((item, index) => {
    const parsed = reader.readCase(item, `cases[${index}]`, file, at);
    // Names are checked even on broken cases, so one fix does not uncover another problem.
    const map = isMap(item) ? item : undefined;
    const name = map?.get('name');
    if (typeof name === 'string') {
      const first = names.get(name);
      if (first !== undefined) {
        report(
          map?.get('name', true),
          `cases[${index}].name`,
          `"${name}" is also the name of cases[${first}]`,
        );
        return;
      }
      names.set(name, index);
    }
    if (parsed) cases.push(parsed);
  });
  return problems.length > 0 ? { ok: false, problems } : { ok: true, cases };
}

type Report = (node: unknown, field: string, message: string) => void;

/** Reads the YAML nodes of one case, reporting each problem at its node; undefined when the case is broken. */
class NodeReader {
  constructor(
    private readonly doc: ReturnType<typeof parseDocument>,
    private readonly report: Report,
  ) {}

  /** Problems reported so far: a case is kept only if reading it added none. */
  private reported = 0;

  private problem(node: unknown, field: string, message: string): void {
    this.reported += 1;
    this.report(node, field, message);
  }

  /** The node under `key`, with an alias (`*post-wh01`) followed to its anchor. */
  private child(map: YAMLMap, key: string): unknown {
    return this.resolved(map.get(key, true));
  }

  private resolved(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }

  onlyKeys(map: YAMLMap, field: string, known: readonly string[]): void {
    for (const pair of map.items) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      if (typeof key !== 'string' || !known.includes(key)) {
        const name = typeof key === 'string' ? `"${key}"` : 'a non-string key';
        const suggestion = typeof key === 'string' ? closest(key, known) : undefined;
        this.problem(
          pair.key,
          field,
          `unknown key ${name}${suggestion ? `; did you mean "${suggestion}"?` : ` (known: ${known.join(', ')})`}`,
        );
      }
    }
  }

  private string(map: YAMLMap, key: string, field: string, required: boolean): string | undefined {
    const node = this.child(map, key);
    if (node === undefined) {
      if (required) this.problem(map, field, `required key "${key}" is missing`);
      return undefined;
    }
    if (!isScalar(node) || typeof node.value !== 'string' || node.value === '') {
      this.problem(node, `${field}.${key}`, 'must be a non-empty string');
      return undefined;
    }
    return node.value;
  }

  private mapping(map: YAMLMap, key: string, field: string, required: boolean): YAMLMap | undefined {
    const node = this.child(map, key);
    if (node === undefined) {
      if (required) this.problem(map, field, `required key "${key}" is missing`);
      return undefined;
    }
    if (!isMap(node)) {
      this.problem(node, `${field}.${key}`, 'must be a mapping');
      return undefined;
    }
    return node;
  }

  readCase(
    item: unknown,
    field: string,
    file: string,
    at: (offset: number) => { line: number },
  ): PolicyCase | undefined {
    const node = this.resolved(item);
    if (!isMap(node)) {
      this.problem(node, field, 'a case is a mapping with name, claims, request and expect');
      return undefined;
    }
    const before = this.reported;
    this.onlyKeys(node, field, ['name', 'claims', 'request', 'expect']);
    const name = this.string(node, 'name', field, true);

    let claims: Record<string, unknown> | undefined;
    const claimsNode = this.child(node, 'claims');
    if (claimsNode !== undefined) {
      if (!isMap(claimsNode)) {
        this.problem(
          claimsNode,
          `${field}.claims`,
          'must be a mapping of claims (leave it out for no token)',
        );
      } else {
        claims = claimsNode.toJS(this.doc, { maxAliasCount: MAX_ALIAS_COUNT }) as Record<string, unknown>;
      }
    }

    const request = this.readRequest(node, field);
    const expect = this.readExpect(node, field);
    if (this.reported > before || !name || !request || !expect) return undefined;
    const { line } = at((node.range?.[0] as number | undefined) ?? 0);
    return { name, file, line, ...(claims && { claims }), request, expect };
  }

  private readRequest(node: YAMLMap, field: string): CaseRequest | undefined {
    const map = this.mapping(node, 'request', field, true);
    if (!map) return undefined;
    const where = `${field}.request`;
    this.onlyKeys(map, where, ['method', 'path', 'headers', 'body']);
    const method = this.string(map, 'method', where, true);
    const path = this.string(map, 'path', where, true);

    const headers: Array<[string, string]> = [];
    const headerMap = this.mapping(map, 'headers', where, false);
    for (const pair of headerMap?.items ?? []) {
      const key = isScalar(pair.key) ? pair.key.value : undefined;
      const valueNode = this.resolved(pair.value);
      const value = isScalar(valueNode) ? valueNode.value : undefined;
      if (typeof key !== 'string' || key === '') {
        this.problem(pair.key, `${where}.headers`, 'a header name must be a non-empty string');
      } else if (typeof value !== 'string') {
        this.problem(
          pair.value ?? pair.key,
          `${where}.headers.${key}`,
          'a header value must be a string (quote it)',
        );
      } else {
        headers.push([key, value]);
      }
    }

    let body: string | undefined;
    const bodyNode = this.child(map, 'body');
    if (bodyNode !== undefined) {
      if (isScalar(bodyNode) && typeof bodyNode.value === 'string') body = bodyNode.value;
      else if (isMap(bodyNode) || isSeq(bodyNode)) {
        // A structured body is JSON, and says so unless the case sets its own content-type.
        body = JSON.stringify(bodyNode.toJS(this.doc, { maxAliasCount: MAX_ALIAS_COUNT }));
        if (!headers.some(([name]) => name.toLowerCase() === 'content-type')) {
          headers.push(['content-type', 'application/json']);
        }
      } else {
        this.problem(bodyNode, `${where}.body`, 'must be a string, or a mapping or list (sent as JSON)');
      }
    }
    if (!method || !path) return undefined;
    return { method, path, headers, ...(body !== undefined && { body }) };
  }

  private readExpect(node: YAMLMap, field: string): CaseExpectation | undefined {
    const map = this.mapping(node, 'expect', field, true);
    if (!map) return undefined;
    const where = `${field}.expect`;
    this.onlyKeys(map, where, ['decision', 'reason', 'missing']);
    const decision = this.string(map, 'decision', where, false);
    const reason = this.string(map, 'reason', where, false);
    let ok = true;
    if (decision !== undefined && !(DECISIONS as readonly string[]).includes(decision)) {
      this.problem(map.get('decision', true), `${where}.decision`, `must be one of ${DECISIONS.join(', ')}`);
      ok = false;
    }
    if (reason !== undefined && !(REASON_CODES as readonly string[]).includes(reason)) {
      const suggestion = closest(reason, REASON_CODES);
      this.problem(
        map.get('reason', true),
        `${where}.reason`,
        `unknown reason "${reason}"${suggestion ? `; did you mean "${suggestion}"?` : ''}`,
      );
      ok = false;
    }
    if (decision === undefined && reason === undefined && map.get('missing') === undefined) {
      this.problem(map, where, 'say what to expect: a decision (allow or deny), a reason, or both');
      ok = false;
    }
    if (
      ok &&
      decision !== undefined &&
      reason !== undefined &&
      (decision === 'allow') !== (reason === 'allowed')
    ) {
      this.problem(
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
        if (list === undefined) continue;
        const values = isSeq(list) ? list.items.map((i) => (isScalar(i) ? i.value : undefined)) : [undefined];
        if (!values.every((v): v is string => typeof v === 'string' && v !== '')) {
          this.problem(list, `${where}.missing.${key}`, 'must be a list of names');
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

export async function runCases(
  policy: CompiledPolicy,
  cases: readonly PolicyCase[],
  options: RunOptions = {},
): Promise<CaseResult[]> {
  const signer = options.signer ?? new StandInSigner();
  const now = options.now ?? Date.now;
  const results: CaseResult[] = [];
  for (const policyCase of cases) {
    const prepared = await unverifiedRequest(policy, policyCase.request, policyCase.claims, signer, now);
    const trace = await traceCheck({
      policy,
      request: prepared.request,
      identity: prepared.identity,
      credential: policyCase.claims ? 'claims' : 'none',
      verified: false,
    });
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

/** The closest known name within a small edit distance, for "did you mean". */
function closest(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 4)) + 1;
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (a.length > 64 || b.length > 64) return Number.POSITIVE_INFINITY;
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        previous[j]! + 1,
        current[j - 1]! + 1,
        previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length]!;
}
