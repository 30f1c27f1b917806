// Finds the warehouse/location codes a request names, from wherever its route says to look (path
// parameter, query, header or a JSON body field), so the decision can check each one against the caller's
// grants. Every doubt about the body is `body_unreadable` (security rule 4), never "no location".
// The body is read last and only here, once the caller is authenticated (security rule 10): it is decoded
// strictly and scanned for the route's field without building the document, in slices of a bounded number
// of tokens, so a large body is read between other checks instead of stalling them (the answer is then a
// promise; a body read in one slice is answered at once).

import { formatBodyPath } from '../policy/body-path.js';
import type { BodyPathStep, CompiledLocationSource, RouteMatch } from '../policy/types.js';
import { type Denial, deny, type Outcome, ok } from '../vocabulary/index.js';
import {
  DEFAULT_JSON_LIMITS,
  type JsonHandler,
  type JsonLimits,
  type JsonScalar,
  JsonScanner,
} from './json.js';
import type { RequestBody, RequestFacts } from './types.js';

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
 * What one slice of a body scan reads before it lets other work run: this many tokens, or characters (and
 * then the rest of a string it is in, at most a string's limit). bench/body-scan.js measures the result.
 */
export const BODY_SCAN_SLICE = Object.freeze({ tokens: 2048, chars: 32 * 1024 });

type Located = Outcome<string[]>;

/**
 * The distinct location codes the request names, in the order found; `ok([])` when the route reads none.
 * A route that reads a location but finds none is `location_missing`. A promise only when the body took
 * more than one slice to read.
 */
export function readLocations(
  match: RouteMatch,
  facts: RequestFacts,
  limits: Partial<LocationLimits> = {},
): Located | Promise<Located> {
  const source = match.route.location;
  if (source === undefined) return ok([]);
  const capped = { ...DEFAULT_LOCATION_LIMITS, ...limits };
  if (!('body' in source)) return validCodes(candidatesFrom(source, match, facts), source, capped);

  const scan = startBodyScan(source.body, source.steps, facts, capped.json);
  if (!('scanner' in scan)) return validCodes(scan, source, capped);
  const { scanner } = scan;
  const sliceDone = () =>
    scanner.run(BODY_SCAN_SLICE.tokens, BODY_SCAN_SLICE.chars) || scanner.problem !== undefined;
  if (sliceDone()) return validCodes(scan.outcome(), source, capped);
  return (async () => {
    do await nextTurn();
    while (!sliceDone());
    return validCodes(scan.outcome(), source, capped);
  })();
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The candidates as location codes a request may send: distinct, bounded, no `*`, at least one. */
function validCodes(
  found: Outcome<readonly string[]>,
  source: CompiledLocationSource,
  limits: LocationLimits,
): Located {
  if (!found.ok) return found;
  const { maxLocations, maxLocationLength } = limits;
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
  source: Exclude<CompiledLocationSource, { readonly body: string }>,
  match: RouteMatch,
  facts: RequestFacts,
): Outcome<string[]> {
  if ('path' in source) {
    const value = Object.hasOwn(match.params, source.path) ? match.params[source.path] : undefined;
    return ok(value === undefined ? [] : [value]);
  }
  if ('query' in source) {
    if (hasLookalike(facts.query.keys(), source.query, foldQueryName)) {
      return deny(
        'request_malformed',
        `the query names ${describeSource(source)} twice, spelled differently`,
      );
    }
    return ok([...(facts.query.get(source.query) ?? [])]);
  }
  const name = source.header.toLowerCase();
  if (hasLookalike(facts.headers.keys(), name, foldHeaderName)) {
    return deny(
      'request_malformed',
      `the request sends ${describeSource(source)} twice, spelled differently`,
    );
  }
  const value = facts.headers.get(name);
  // Envoy joins a repeated header with `,`, so `location: WH01` twice reads as `WH01,WH01`.
  return ok(value === undefined ? [] : value.split(',').map((part) => part.trim()));
}

const fatalUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const EXCLAMATION_MARK = 0x21;

/**
 * The body as text, decoded strictly: invalid UTF-8 is refused, never replaced. Its size is checked first,
 * so an oversized body costs no decoding.
 */
export function bodyText(body: RequestBody, maxBytes: number): Outcome<string | undefined> {
  const { content } = body;
  if (content === undefined) return ok(undefined);
  if (typeof content === 'string') return ok(content);
  if (content.length > maxBytes) return deny('body_unreadable', `the body is larger than ${maxBytes} bytes`);
  // Envoy's text field holds `!` wherever the request had a byte that is not UTF-8; without a `!` it is exact.
  if (body.envoyText && content.includes(EXCLAMATION_MARK)) {
    return deny(
      'body_unreadable',
      "Envoy sent the body as text, where it writes '!' in place of bytes that are not UTF-8, and this one has a '!': " +
        'set with_request_body.pack_as_bytes: true so scopegate reads the bytes the upstream receives',
    );
  }
  try {
    return ok(fatalUtf8.decode(content));
  } catch {
    return deny('body_unreadable', 'the body is not valid UTF-8');
  }
}

interface BodyScan {
  readonly scanner: JsonScanner;
  /** Once the scan is done: the codes found, or the first problem (the JSON's own before the field's). */
  outcome(): Outcome<readonly string[]>;
}

/** Everything that can be refused before the body's JSON is read, then the scan that reads it. */
function startBodyScan(
  bodyPath: string,
  steps: readonly BodyPathStep[],
  facts: RequestFacts,
  json: Partial<JsonLimits>,
): BodyScan | Outcome<readonly string[]> {
  const { body } = facts;
  if (body.partial) return deny('body_unreadable', "the body was cut at Envoy's buffer limit");
  if (body.content === undefined || body.content.length === 0) {
    return deny('body_unreadable', 'the body is empty or was not sent to scopegate (with_request_body)');
  }
  if (!isJsonContentType(facts.headers.get('content-type'))) {
    return deny('body_unreadable', 'the body is not JSON (content-type must be application/json)');
  }
  const text = bodyText(body, json.maxBytes ?? DEFAULT_JSON_LIMITS.maxBytes);
  if (!text.ok) return text;
  const field = new BodyField(bodyPath, steps);
  const scanner = new JsonScanner(text.value ?? '', field, json);
  return {
    scanner,
    outcome: () => {
      const problem = scanner.problem;
      if (problem !== undefined) return deny('body_unreadable', `the body is not valid JSON: ${problem}`);
      return field.problem ?? ok(field.codes);
    },
  };
}

/** A position off the route's body path: nothing there is read for locations (it is still checked as JSON). */
const OFF = -1;

/** Where a value goes: the position it is at, and whether it is the array a `[]` step reads. */
interface Target {
  readonly at: number;
  readonly each: boolean;
}
const OFF_TARGET: Target = { at: OFF, each: false };

/**
 * Follows the route's body path through a scan, in document order. A value "at position j" is the one the
 * first j steps lead to: at the last position, a location string; before it, an object holding the next
 * step's key, or for a `[]` step an array whose every element is at the next position. Past an array step
 * every element must name its location: `{"lines":[{"location":"WH01"},{}]}` would otherwise pass on WH01
 * alone while the upstream books the second line somewhere never checked.
 */
class BodyField implements JsonHandler {
  readonly codes: string[] = [];
  /** The first body_unreadable, else the first location_missing: a body that cannot be read outranks one that says too little. */
  problem: Denial | undefined;
  /** Open containers: arrays hold their elements' position, objects the step whose key they hold (or OFF). */
  private readonly open: Array<{ readonly array: boolean; readonly at: number; held: boolean }> = [];
  private next: Target = { at: 0, each: false };
  /** By position: a `[]` step came before it, so a missing value there is an element naming no location. */
  private readonly afterArrayStep: readonly boolean[];

  constructor(
    private readonly bodyPath: string,
    private readonly steps: readonly BodyPathStep[],
  ) {
    this.afterArrayStep = [...steps.keys(), steps.length].map((j) => steps.slice(0, j).some((s) => s.each));
    this.foldedKeys = steps.map((step) => foldKey(step.key));
  }

  /** Each step's key, folded once: every other key of an object on the path is compared with it. */
  private readonly foldedKeys: readonly string[];

  startObject(): void {
    this.arrive('object');
  }

  startArray(): void {
    this.arrive('array');
  }

  value(scalar: JsonScalar): void {
    this.arrive(scalar);
  }

  key(name: string): void {
    const object = this.open[this.open.length - 1]!;
    this.next = OFF_TARGET;
    if (object.at === OFF) return;
    const step = this.steps[object.at]!;
    if (name === step.key) {
      object.held = true;
      this.next = { at: object.at + 1, each: step.each };
    } else if (foldKey(name) === this.foldedKeys[object.at]) {
      this.unreadable(
        `the body names "${this.prefix(object.at + 1)}" twice, spelled differently ` +
          '(an upstream that ignores case could store the other one)',
      );
    }
  }

  endObject(): void {
    const object = this.open.pop()!;
    // An absent key reads as a missing value; an absent `[]` array as no elements.
    if (object.at !== OFF && !object.held && !this.steps[object.at]!.each) this.missing(object.at + 1);
    this.settle();
  }

  endArray(): void {
    this.open.pop();
    this.settle();
  }

  /** A value starts where `next` says: a scalar, or a container that opens here. */
  private arrive(value: JsonScalar | 'object' | 'array'): void {
    const { at, each } = this.next;
    const container = value === 'object' || value === 'array';
    let held: Target['at'] = OFF;
    if (at === OFF) {
      // Off the path: nothing inside is read.
    } else if (at === 0 && value !== 'object') {
      this.unreadable('the body is not a JSON object');
    } else if (value === null || (value === '' && !each && at === this.steps.length)) {
      // A null array is no elements; a null (or empty location) elsewhere is a missing value.
      if (!each) this.missing(at);
    } else if (each) {
      if (value === 'array') held = at;
      else this.unreadable(`the body field "${this.prefix(at)}" is not an array`);
    } else if (at === this.steps.length) {
      if (typeof value === 'string' && !container) this.codes.push(value);
      else
        this.unreadable(
          `location must be a string, and the body field "${this.bodyPath}" holds something else`,
        );
    } else if (value === 'object') {
      held = at;
    } else {
      this.unreadable(
        at === 0 ? 'the body is not a JSON object' : `the body field "${this.prefix(at)}" is not an object`,
      );
    }
    if (container) this.open.push({ array: value === 'array', at: held, held: false });
    this.settle();
  }

  /** Where the next value goes: the innermost array's next element (an object's next value waits for a key). */
  private settle(): void {
    const enclosing = this.open[this.open.length - 1];
    this.next = enclosing?.array === true ? { at: enclosing.at, each: false } : OFF_TARGET;
  }

  private missing(at: number): void {
    if (!this.afterArrayStep[at]) return;
    this.problem ??= deny('location_missing', `an element of "${this.prefix(at)}" names no location`);
  }

  private unreadable(detail: string): void {
    if (this.problem?.reason !== 'body_unreadable') this.problem = deny('body_unreadable', detail);
  }

  private prefix(at: number): string {
    return formatBodyPath(this.steps.slice(0, at));
  }
}

/**
 * A query parameter name as lenient frameworks bind it: case-insensitively (ASP.NET), with trailing `[]` or
 * `[0]` making an array of the same name (PHP, Rails, qs), and PHP's `.` and space turned into `_`.
 */
function foldQueryName(name: string): string {
  return foldKey(name)
    .replace(/(\[[^\]]*\])+$/, '')
    .replace(/[. ]/g, '_');
}

/** A header name as CGI-style upstreams (WSGI, PHP, Rack) read it: `x_location` is `x-location`. */
function foldHeaderName(name: string): string {
  return name.toLowerCase().replaceAll('_', '-');
}

/**
 * True when a name other than `wanted` folds to the same one: a second spelling the upstream may bind as
 * the same parameter, whose value we would never have checked (security rule 4's look-alike keys, for the
 * query and headers).
 */
function hasLookalike(names: Iterable<string>, wanted: string, fold: (name: string) => string): boolean {
  const folded = fold(wanted);
  for (const name of names) if (name !== wanted && fold(name) === folded) return true;
  return false;
}

/** Case- and compatibility-folded key, as Go's encoding/json and case-insensitive .NET binders match fields. */
function foldKey(key: string): string {
  // NFKC leaves ASCII as it is, and most keys are ASCII: normalizing them would be most of a body scan.
  return (ASCII_ONLY.test(key) ? key : key.normalize('NFKC')).toLowerCase();
}
// biome-ignore lint/suspicious/noControlCharactersInRegex: every ASCII character, control characters included
const ASCII_ONLY = /^[\x00-\x7f]*$/;

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

/** Where the route reads its location, in the policy's words (safe to show: it comes from the policy). */
function describeSource(source: CompiledLocationSource): string {
  if ('path' in source) return `the path parameter "${source.path}"`;
  if ('query' in source) return `the query parameter "${source.query}"`;
  if ('header' in source) return `the header "${source.header}"`;
  return `the body field "${source.body}"`;
}
