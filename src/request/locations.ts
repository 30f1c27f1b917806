// Finds the warehouse/location codes a request names, from wherever its route says to look (path
// parameter, query, header or a JSON body field), so the decision can check each one against the caller's
// grants. Every doubt about the body is `body_unreadable` (security rule 4), never "no location".
import { deny, type Outcome, ok } from '../decision/types.js';
import { type BodyPathStep, formatBodyPath } from '../policy/body-path.js';
import type { CompiledLocationSource, RouteMatch } from '../policy/types.js';
import { type JsonLimits, parseStrictJson } from './json.js';
import type { RequestFacts } from './types.js';

export interface LocationLimits {
  /** Most distinct locations one request may name. */
  readonly maxLocations: number;
  /** Longest location code. */
  readonly maxLocationLength: number;
  readonly json: Partial<JsonLimits>;
}

export const DEFAULT_LOCATION_LIMITS: LocationLimits = Object.freeze({
  maxLocations: 100,
  maxLocationLength: 128,
  json: Object.freeze({}),
});

/** A location code as a request may send it. `*` is absent on purpose: in a request it is not a wildcard. */
const LOCATION_CODE = /^[A-Za-z0-9._:-]+$/;

/**
 * The distinct location codes the request names, in the order found; `ok([])` when the route reads none.
 * A route that reads a location but finds none is `location_missing`.
 */
export function readLocations(
  match: RouteMatch,
  facts: RequestFacts,
  limits: Partial<LocationLimits> = {},
): Outcome<string[]> {
  const source = match.route.location;
  if (source === undefined) return ok([]);
  const { maxLocations, maxLocationLength, json } = { ...DEFAULT_LOCATION_LIMITS, ...limits };

  const found = candidatesFrom(source, match, facts, json);
  if (!found.ok) return found;

  const where = describeSource(source);
  const codes = new Set<string>();
  for (const code of found.value) {
    if (code === '') continue;
    // Checked before the character set so the caller learns why `*` in particular is refused.
    if (code.includes('*')) {
      return deny('request_malformed', `a location in ${where} contains "*", which a request may not use`);
    }
    if (code.length > maxLocationLength) {
      return deny(
        'request_malformed',
        `a location in ${where} is longer than ${maxLocationLength} characters`,
      );
    }
    if (!LOCATION_CODE.test(code)) {
      return deny('request_malformed', `a location in ${where} has characters outside [A-Za-z0-9._:-]`);
    }
    codes.add(code);
    if (codes.size > maxLocations) {
      return deny('request_malformed', `the request names more than ${maxLocations} locations`);
    }
  }
  if (codes.size === 0) {
    return deny('location_missing', `this route reads its location from ${where}, and the request has none`);
  }
  return ok([...codes]);
}

function candidatesFrom(
  source: CompiledLocationSource,
  match: RouteMatch,
  facts: RequestFacts,
  json: Partial<JsonLimits>,
): Outcome<string[]> {
  if ('path' in source) {
    const value = Object.hasOwn(match.params, source.path) ? match.params[source.path] : undefined;
    return ok(value === undefined ? [] : [value]);
  }
  if ('query' in source) return ok([...(facts.query.get(source.query) ?? [])]);
  if ('header' in source) {
    const value = facts.headers.get(source.header.toLowerCase());
    // Envoy joins a repeated header with `,`, so `location: WH01` twice reads as `WH01,WH01`.
    return ok(value === undefined ? [] : value.split(',').map((part) => part.trim()));
  }
  return bodyCandidates(source.body, source.steps, facts, json);
}

function bodyCandidates(
  bodyPath: string,
  steps: readonly BodyPathStep[],
  facts: RequestFacts,
  json: Partial<JsonLimits>,
): Outcome<string[]> {
  const { body } = facts;
  if (body.partial) return deny('body_unreadable', "the body was cut at Envoy's buffer limit");
  if (body.invalidUtf8) return deny('body_unreadable', 'the body is not valid UTF-8');
  if (body.text === undefined || body.text === '') {
    return deny('body_unreadable', 'the body is empty or was not sent to scopegate (with_request_body)');
  }
  const contentType = facts.headers.get('content-type');
  if (!isJsonContentType(contentType)) {
    return deny('body_unreadable', 'the body is not JSON (content-type must be application/json)');
  }
  const parsed = parseStrictJson(body.text, json);
  if (!parsed.ok) return deny('body_unreadable', `the body is not valid JSON: ${parsed.problem}`);
  if (!isJsonObject(parsed.value)) return deny('body_unreadable', 'the body is not a JSON object');

  // Past an array step, every element must name its location: `{"lines":[{"location":"WH01"},{}]}` would
  // otherwise pass on WH01 alone while the upstream books the second line somewhere we never checked.
  const elementWithout = (i: number) =>
    deny('location_missing', `an element of "${formatBodyPath(steps.slice(0, i))}" names no location`);
  let current: unknown[] = [parsed.value];
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    const next: unknown[] = [];
    for (const value of current) {
      if (value === null || value === undefined) {
        if (steps.slice(0, i).some((s) => s.each)) return elementWithout(i);
        continue;
      }
      if (!isJsonObject(value)) {
        return deny(
          'body_unreadable',
          `the body field "${formatBodyPath(steps.slice(0, i))}" is not an object`,
        );
      }
      if (hasLookalikeKey(value, step.key)) {
        return deny(
          'body_unreadable',
          `the body names "${formatBodyPath(steps.slice(0, i + 1))}" twice, spelled differently ` +
            '(an upstream that ignores case could store the other one)',
        );
      }
      const field = Object.hasOwn(value, step.key) ? value[step.key] : undefined;
      if (!step.each) {
        next.push(field);
        continue;
      }
      if (field === null || field === undefined) continue;
      if (!Array.isArray(field)) {
        return deny(
          'body_unreadable',
          `the body field "${formatBodyPath(steps.slice(0, i + 1))}" is not an array`,
        );
      }
      for (const element of field) next.push(element);
    }
    current = next;
  }

  const codes: string[] = [];
  const perElement = steps.some((s) => s.each);
  for (const value of current) {
    if (value === null || value === undefined || value === '') {
      if (perElement) return elementWithout(steps.length);
      continue;
    }
    if (typeof value !== 'string') {
      return deny(
        'body_unreadable',
        `location must be a string, and the body field "${bodyPath}" holds something else`,
      );
    }
    codes.push(value);
  }
  return ok(codes);
}

/** Case- and compatibility-folded key, as Go's encoding/json and case-insensitive .NET binders match fields. */
function foldKey(key: string): string {
  return key.normalize('NFKC').toLowerCase();
}

/**
 * True when the object has a key other than `key` that folds to the same name: `{"location":"WH01",
 * "Location":"WH99"}` is checked against one value by us and may be stored with the other upstream.
 */
function hasLookalikeKey(object: Record<string, unknown>, key: string): boolean {
  const wanted = foldKey(key);
  for (const other of Object.keys(object)) {
    if (other !== key && foldKey(other) === wanted) return true;
  }
  return false;
}

/**
 * `application/json` or `application/<anything>+json`, parameters allowed; a charset other than UTF-8 is
 * refused because the body was decoded as UTF-8. A missing or repeated content-type is not JSON.
 */
export function isJsonContentType(value: string | undefined): boolean {
  if (value === undefined) return false;
  const [mediaType = '', ...parameters] = value.split(';');
  const type = mediaType.trim().toLowerCase();
  if (type !== 'application/json' && !/^application\/[a-z0-9!#$&^_.+-]+\+json$/.test(type)) return false;
  for (const parameter of parameters) {
    const equals = parameter.indexOf('=');
    if (equals === -1) continue;
    if (parameter.slice(0, equals).trim().toLowerCase() !== 'charset') continue;
    const charset = parameter
      .slice(equals + 1)
      .trim()
      .replace(/^"(.*)"$/, '$1')
      .toLowerCase();
    if (charset !== 'utf-8' && charset !== 'utf8') return false;
  }
  return true;
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Where the route reads its location, in the policy's words (safe to show: it comes from the policy). */
function describeSource(source: CompiledLocationSource): string {
  if ('path' in source) return `the path parameter "${source.path}"`;
  if ('query' in source) return `the query parameter "${source.query}"`;
  if ('header' in source) return `the header "${source.header}"`;
  return `the body field "${source.body}"`;
}
