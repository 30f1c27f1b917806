// Reading decision records back (`scopegate replay`): one line at a time, each either a record this version
// of scopegate understands or a named reason it is not one. Nothing is skipped silently: a line that is not
// JSON, JSON that is not a decision record (a log line sharing stdout), a record of another format version,
// and a record that breaks its schema are each told apart, so the reader can count and report them.
import { isReason, TRANSPORTS } from '../vocabulary/index.js';
import { type DecisionRecord, RECORD_TYPE, RECORD_VERSION } from './types.js';

export type LineProblem = 'unparsable' | 'foreign' | 'unknown_version' | 'invalid';

export type ReadLine =
  | { readonly ok: true; readonly record: DecisionRecord }
  | { readonly ok: false; readonly problem: LineProblem; readonly detail: string };

/** Longest line read as a record: a record is a few hundred bytes, a token's worth of claims at most ~200 KiB. */
export const MAX_RECORD_CHARS = 1024 * 1024;

const DECISIONS = new Set(['allow', 'deny', 'dry_run_deny']);
const DOORS = new Set<unknown>(TRANSPORTS);

const problem = (kind: LineProblem, detail: string): ReadLine => ({ ok: false, problem: kind, detail });

export function readRecordLine(line: string): ReadLine {
  if (line.length > MAX_RECORD_CHARS)
    return problem('unparsable', `longer than ${MAX_RECORD_CHARS} characters`);
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return problem('unparsable', 'not JSON');
  }
  if (!isObject(value) || value.type !== RECORD_TYPE)
    return problem('foreign', 'not a scopegate decision record');
  if (value.v !== RECORD_VERSION) {
    return problem(
      'unknown_version',
      `format version ${JSON.stringify(value.v)?.slice(0, 20)}; this scopegate reads ${RECORD_VERSION}`,
    );
  }
  const wrong = invalidField(value);
  return wrong === undefined
    ? { ok: true, record: value as unknown as DecisionRecord }
    : problem('invalid', wrong);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
const isString = (value: unknown): value is string => typeof value === 'string';
const isStrings = (value: unknown) => Array.isArray(value) && value.every(isString);
const optional = (value: unknown, test: (v: unknown) => boolean) => value === undefined || test(value);

/** A denial as records keep it: a reason from the table other than allowed, and its sentence. */
function isDenial(value: unknown): boolean {
  return (
    isObject(value) &&
    isString(value.reason) &&
    isReason(value.reason) &&
    value.reason !== 'allowed' &&
    isString(value.detail) &&
    optional(value.missing, isObject)
  );
}

/** The first field that breaks the record's schema (decision-record.schema.json), or undefined. */
function invalidField(r: Record<string, unknown>): string | undefined {
  // Plain tests in a row, no table: this runs once per record, a million times a replay.
  const broken =
    (!isString(r.time) && 'time') ||
    (!isString(r.request_id) && 'request_id') ||
    (!optional(r.trace_id, isString) && 'trace_id') ||
    // Absent in records written before doors were recorded: those still read.
    (!optional(r.transport, (t) => DOORS.has(t)) && 'transport') ||
    (!optional(r.policy, isString) && 'policy') ||
    (!isString(r.revision) && 'revision') ||
    (!optional(r.policy_keys, isPolicyKeys) && 'policy_keys') ||
    (!optional(r.request, isDenial) && 'request') ||
    (!optional(r.method, isString) && 'method') ||
    (!optional(r.path, isString) && 'path') ||
    (!optional(r.token, isToken) && 'token') ||
    (!optional(r.peer, isPeer) && 'peer') ||
    (!optional(r.locations, isLocations) && 'locations') ||
    (!optional(r.route, isString) && 'route') ||
    (!(isString(r.decision) && DECISIONS.has(r.decision)) && 'decision') ||
    (!(isString(r.reason) && isReason(r.reason)) && 'reason') ||
    (!optional(r.missing, isObject) && 'missing') ||
    (typeof r.dry_run !== 'boolean' && 'dry_run') ||
    (!(typeof r.sampled_at === 'number' && r.sampled_at > 0 && r.sampled_at <= 1) && 'sampled_at');
  if (broken) return `field ${broken} is missing or not what the schema says`;
  if (r.request === undefined && (r.method === undefined || r.path === undefined)) {
    return 'a record of a readable request needs method and path';
  }
  return undefined;
}

function isPolicyKeys(k: unknown): boolean {
  return (
    isObject(k) &&
    optional(k.extension, isString) &&
    optional(k.destination, isString) &&
    optional(k.host, isString)
  );
}

function isPeer(p: unknown): boolean {
  return isString(p) || isDenial(p);
}

function isLocations(l: unknown): boolean {
  return isObject(l) && isString(l.source) && (isStrings(l.found) || (l.found === undefined && isDenial(l)));
}

function isToken(value: unknown): boolean {
  if (!isObject(value) || !isString(value.basis)) return false;
  if (value.reason !== undefined) return isDenial(value);
  return (
    isString(value.subject) &&
    optional(value.issuer, isString) &&
    optional(value.client, isString) &&
    optional(value.grant_type, isString) &&
    isStrings(value.scopes) &&
    isStrings(value.roles) &&
    isStrings(value.locations)
  );
}
