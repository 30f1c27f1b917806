// A strict JSON reader for request bodies (DESIGN.md security rule 4). `JSON.parse` silently keeps the last
// of two equal keys, so `{"location":"WH01","location":"WH99"}` could be checked as one warehouse and
// stored as another; it also recurses on the JS stack, and builds every object of a body whose one field we
// need. This reader refuses duplicate keys at any depth, walks nesting with its own bounded stack, and
// reports what it reads as events (JsonScanner), so a caller can look for one field without building the
// document: a megabyte of `{}` costs a scan, not a third of a million objects. A scan runs in slices of a
// bounded number of tokens, so a large body can be read between other work instead of stalling it.
// `parseStrictJson` builds the whole value (objects without a prototype, `__proto__` is a key) for the small
// documents that need it (token headers and payloads, claims given to `explain`).

export interface JsonLimits {
  /** Largest text accepted, in UTF-8 bytes. */
  readonly maxBytes: number;
  /** Deepest nesting of objects and arrays. */
  readonly maxDepth: number;
  /** Longest number literal; longer ones are a precision trick, not inventory data. */
  readonly maxNumberLength: number;
  /** Longest string literal, in characters as written: one string is read in one go, so it bounds a slice. */
  readonly maxStringLength: number;
  /** Most keys in one object: duplicate detection keeps them in a set, whose growth is one step's work. */
  readonly maxObjectKeys: number;
}

export const DEFAULT_JSON_LIMITS: JsonLimits = Object.freeze({
  maxBytes: 1024 * 1024,
  maxDepth: 64,
  maxNumberLength: 64,
  maxStringLength: 256 * 1024,
  maxObjectKeys: 10_000,
});

/** The parsed value, or a problem that names an offset and never quotes the text (it may hold secrets). */
export type JsonResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly problem: string };

export type JsonScalar = string | number | boolean | null;

/** What a scan reports, in document order. A key is always followed by its value. */
export interface JsonHandler {
  startObject(): void;
  key(name: string): void;
  endObject(): void;
  startArray(): void;
  endArray(): void;
  value(scalar: JsonScalar): void;
}

/**
 * An open container: an array, or an object with the keys it has so far, in a list while it is short (most
 * objects have a few keys, and a Set each would cost more than the scan), in a Set once it is not.
 */
interface Frame {
  readonly object: boolean;
  keys: string[] | Set<string> | undefined;
}

/** Keys kept in a list up to this many; past it, in a Set. */
const SHORT_OBJECT_KEYS = 16;

enum Expect {
  /** A value (the document's, an array element's or a key's). */
  Value,
  /** After `[`: a value or `]`. */
  FirstElement,
  /** After `{`: a key or `}`. */
  FirstKey,
  /** After a value inside a container: `,` or the closing bracket. */
  Next,
  /** After `,` in an object: a key. */
  Key,
  /** The document's value has ended: only whitespace may follow. */
  End,
}

/**
 * Reads a JSON text strictly, token by token, telling `handler` what it finds. `run(budget)` reads at most
 * about `budget` tokens and says whether it finished; call it again to go on. A problem stops the scan for
 * good (`problem`); it names an offset, never the text.
 */
export class JsonScanner {
  private pos = 0;
  private expect = Expect.Value;
  private readonly stack: Frame[] = [];
  private failure: string | undefined;
  private readonly limits: JsonLimits;

  constructor(
    private readonly text: string,
    private readonly handler: JsonHandler,
    limits: Partial<JsonLimits> = {},
  ) {
    this.limits = { ...DEFAULT_JSON_LIMITS, ...limits };
    const { maxBytes } = this.limits;
    // Both sizes before any work: length alone is cheap, and a UTF-8 count can only be larger.
    if (text.length > maxBytes || Buffer.byteLength(text, 'utf8') > maxBytes) {
      this.failure = `the JSON text is larger than ${maxBytes} bytes`;
    } else if (text.charCodeAt(0) === 0xfeff) {
      this.failure = 'the JSON text starts with a byte order mark';
    }
  }

  /** Why the text was refused, once it was; undefined while it reads well. */
  get problem(): string | undefined {
    return this.failure;
  }

  /**
   * Reads on until the text ends, or `maxTokens` tokens or `maxChars` characters were read (a string is
   * read whole, so a slice may end past maxChars by one string). True when the whole text was read (and
   * found strict JSON); false when there is more, or it failed (see `problem`).
   */
  run(maxTokens = Number.POSITIVE_INFINITY, maxChars = Number.POSITIVE_INFINITY): boolean {
    const until = this.pos + maxChars;
    for (let tokens = 0; this.failure === undefined; tokens++) {
      if (tokens >= maxTokens || this.pos >= until) return false;
      this.skipWhitespace();
      if (this.expect === Expect.End) {
        if (this.pos < this.text.length) return this.fail('unexpected text after the JSON value');
        return true;
      }
      if (this.pos >= this.text.length) {
        if (this.expect === Expect.Value && this.stack.length === 0) {
          this.failure = 'the JSON text is empty';
          return false;
        }
        return this.fail('unexpected end of the JSON text');
      }
      this.step();
    }
    return false;
  }

  /** One token where `expect` says what may come. */
  private step(): void {
    const code = this.text.charCodeAt(this.pos);
    switch (this.expect) {
      case Expect.FirstKey:
        if (code === 0x7d) this.close(true);
        else this.readKey();
        return;
      case Expect.Key:
        this.readKey();
        return;
      case Expect.Next: {
        const top = this.stack[this.stack.length - 1]!;
        if (code === 0x2c) {
          this.pos++;
          this.expect = top.object ? Expect.Key : Expect.Value;
          return;
        }
        if (code === (top.object ? 0x7d : 0x5d)) this.close(top.object);
        else this.fail(top.object ? "expected ',' or '}'" : "expected ',' or ']'");
        return;
      }
      case Expect.FirstElement:
        if (code === 0x5d) this.close(false);
        else this.readValue(code);
        return;
      default:
        this.readValue(code);
    }
  }

  private readValue(code: number): void {
    if (code === 0x7b || code === 0x5b) {
      if (this.stack.length >= this.limits.maxDepth) {
        this.failure = `the JSON nests deeper than ${this.limits.maxDepth} levels`;
        return;
      }
      const object = code === 0x7b;
      this.pos++;
      this.stack.push({ object, keys: undefined });
      this.expect = object ? Expect.FirstKey : Expect.FirstElement;
      if (object) this.handler.startObject();
      else this.handler.startArray();
      return;
    }
    const scalar = this.readScalar(code);
    if (scalar === FAILED) return;
    this.handler.value(scalar);
    this.afterValue();
  }

  private close(object: boolean): void {
    this.pos++;
    this.stack.pop();
    if (object) this.handler.endObject();
    else this.handler.endArray();
    this.afterValue();
  }

  private afterValue(): void {
    this.expect = this.stack.length === 0 ? Expect.End : Expect.Next;
  }

  /** `"key"` `:` inside an object, refusing a key the object already has. */
  private readKey(): void {
    if (this.text.charCodeAt(this.pos) !== 0x22) return void this.fail('expected a string key');
    const keyAt = this.pos;
    const key = this.readString();
    if (key === FAILED) return;
    const frame = this.stack[this.stack.length - 1]!;
    const keys = frame.keys;
    if (keys === undefined) frame.keys = [key];
    else if (Array.isArray(keys) ? keys.includes(key) : keys.has(key)) {
      this.pos = keyAt;
      return void this.fail(`duplicate key ${describeKey(key)}`);
    } else if (Array.isArray(keys)) {
      if (keys.length < SHORT_OBJECT_KEYS) keys.push(key);
      else frame.keys = new Set(keys).add(key);
    } else if (keys.size >= this.limits.maxObjectKeys) {
      this.pos = keyAt;
      return void this.fail(`an object has more than ${this.limits.maxObjectKeys} keys`);
    } else keys.add(key);
    this.skipWhitespace();
    if (this.text.charCodeAt(this.pos) !== 0x3a) return void this.fail("expected ':'");
    this.pos++;
    this.expect = Expect.Value;
    this.handler.key(key);
  }

  private readScalar(code: number): JsonScalar | typeof FAILED {
    if (code === 0x22) return this.readString();
    if (code === 0x2d || (code >= 0x30 && code <= 0x39)) return this.readNumber();
    const text = this.text;
    if (code === 0x74 && text.startsWith('true', this.pos)) return this.literal(4, true);
    if (code === 0x66 && text.startsWith('false', this.pos)) return this.literal(5, false);
    if (code === 0x6e && text.startsWith('null', this.pos)) return this.literal(4, null);
    return this.failed('unexpected character');
  }

  private literal<T>(length: number, value: T): T {
    this.pos += length;
    return value;
  }

  /** RFC 8259's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, finite, and not overlong. */
  private readNumber(): number | typeof FAILED {
    const text = this.text;
    const start = this.pos;
    let at = start;
    if (text.charCodeAt(at) === 0x2d) at++;
    const first = text.charCodeAt(at);
    if (first === 0x30) at++;
    else if (first >= 0x31 && first <= 0x39) at = digitsFrom(text, at);
    else return this.failed('invalid number');
    // A fraction or exponent without digits is not part of the number (what follows is then refused).
    if (text.charCodeAt(at) === 0x2e) {
      const end = digitsFrom(text, at + 1);
      if (end > at + 1) at = end;
    }
    const e = text.charCodeAt(at);
    if (e === 0x65 || e === 0x45) {
      let digits = at + 1;
      const sign = text.charCodeAt(digits);
      if (sign === 0x2b || sign === 0x2d) digits++;
      const end = digitsFrom(text, digits);
      if (end > digits) at = end;
    }
    if (at - start > this.limits.maxNumberLength) {
      return this.failed(`a number is longer than ${this.limits.maxNumberLength} characters`);
    }
    const value = Number(text.slice(start, at));
    if (!Number.isFinite(value)) return this.failed('a number is out of range');
    this.pos = at;
    return value;
  }

  /**
   * A string at `pos` (its opening quote). Found whole with native searches: the closing quote by indexOf,
   * escapes decoded by JSON.parse of the literal, then held to the stricter rules (no lone surrogates).
   * Anything it refuses is read again character by character, which says exactly what and where.
   */
  private readString(): string | typeof FAILED {
    const text = this.text;
    const start = this.pos + 1; // past the opening quote
    let end = text.indexOf('"', start);
    while (end !== -1 && isEscaped(text, end, start)) end = text.indexOf('"', end + 1);
    if (end === -1 || end - start > this.limits.maxStringLength) return this.readStringSlowly();
    const literal = text.slice(start, end);
    if (!STRING_NEEDS_CARE.test(literal)) {
      this.pos = end + 1;
      return literal;
    }
    let value: unknown;
    try {
      value = JSON.parse(text.slice(start - 1, end + 1));
    } catch {
      return this.readStringSlowly();
    }
    if (typeof value !== 'string' || !value.isWellFormed()) return this.readStringSlowly();
    this.pos = end + 1;
    return value;
  }

  /** The exact reading (and the exact problem) for a string the fast path refused. */
  private readStringSlowly(): string | typeof FAILED {
    const text = this.text;
    const start = this.pos + 1;
    let at = start;
    let out = '';
    for (;;) {
      if (at - start > this.limits.maxStringLength) {
        return this.failed(`a string is longer than ${this.limits.maxStringLength} characters`);
      }
      STRING_SPECIAL.lastIndex = at;
      const found = STRING_SPECIAL.exec(text);
      if (found === null) {
        this.pos = text.length;
        return this.failed('an unterminated string');
      }
      const special = found.index;
      const code = text.charCodeAt(special);
      if (code === 0x22) {
        if (special - start > this.limits.maxStringLength) {
          return this.failed(`a string is longer than ${this.limits.maxStringLength} characters`);
        }
        this.pos = special + 1;
        return out + text.slice(at, special);
      }
      if (code !== 0x5c) {
        this.pos = special;
        return this.failed('a control character inside a string');
      }
      out += text.slice(at, special);
      this.pos = special;
      const escaped = this.readEscape();
      if (escaped === FAILED) return FAILED;
      out += escaped;
      at = this.pos;
    }
  }

  /** At a backslash: what the escape stands for. Unpaired surrogates are refused (RFC 7493). */
  private readEscape(): string | typeof FAILED {
    const letter = this.text.charCodeAt(this.pos + 1);
    const simple = SIMPLE_ESCAPES[letter];
    if (simple !== undefined) {
      this.pos += 2;
      return simple;
    }
    if (letter !== 0x75) return this.failed('an invalid escape');
    const high = hex4(this.text, this.pos + 2);
    if (high < 0) return this.failed('an invalid \\u escape');
    this.pos += 6;
    if (high >= 0xdc00 && high <= 0xdfff) return this.failed('an unpaired surrogate escape');
    if (high < 0xd800 || high > 0xdbff) return String.fromCharCode(high);
    const text = this.text;
    const low =
      text.charCodeAt(this.pos) === 0x5c && text.charCodeAt(this.pos + 1) === 0x75
        ? hex4(text, this.pos + 2)
        : -1;
    if (low < 0xdc00 || low > 0xdfff) return this.failed('an unpaired surrogate escape');
    this.pos += 6;
    return String.fromCharCode(high, low);
  }

  private skipWhitespace(): void {
    const text = this.text;
    let at = this.pos;
    while (at < text.length) {
      const code = text.charCodeAt(at);
      if (code !== 0x20 && code !== 0x0a && code !== 0x0d && code !== 0x09) break;
      at++;
    }
    this.pos = at;
  }

  private fail(what: string): false {
    this.failure = `invalid JSON at offset ${this.pos}: ${what}`;
    return false;
  }

  private failed(what: string): typeof FAILED {
    this.fail(what);
    return FAILED;
  }
}

const FAILED = Symbol('failed');
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters end a string's plain run
const STRING_SPECIAL = /["\\\u0000-\u001f]/g;
// biome-ignore lint/suspicious/noControlCharactersInRegex: a raw control character makes a literal invalid
const STRING_NEEDS_CARE = /[\\\u0000-\u001f]/;

/** Is the quote at `at` escaped, i.e. preceded (within the literal) by an odd number of backslashes? */
function isEscaped(text: string, at: number, start: number): boolean {
  let backslashes = 0;
  for (let i = at - 1; i >= start && text.charCodeAt(i) === 0x5c; i--) backslashes++;
  return backslashes % 2 === 1;
}

function digitsFrom(text: string, at: number): number {
  let end = at;
  for (let code = text.charCodeAt(end); code >= 0x30 && code <= 0x39; code = text.charCodeAt(end)) end++;
  return end;
}

/** Four hex digits at `at` as a number, or -1. */
function hex4(text: string, at: number): number {
  let value = 0;
  for (let i = at; i < at + 4; i++) {
    const code = text.charCodeAt(i);
    const digit =
      code >= 0x30 && code <= 0x39
        ? code - 0x30
        : code >= 0x61 && code <= 0x66
          ? code - 0x57
          : code >= 0x41 && code <= 0x46
            ? code - 0x37
            : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

/** What `\x` stands for, by the char code of x. */
const SIMPLE_ESCAPES: Readonly<Record<number, string>> = {
  34: '"',
  92: '\\',
  47: '/',
  98: '\b',
  102: '\f',
  110: '\n',
  114: '\r',
  116: '\t',
};

/** Names a duplicate key when it looks like a field name; anything else could be data, so it stays unsaid. */
function describeKey(key: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(key) ? `"${key}"` : '(a key that is not shown)';
}

/** Builds the value a scan reads: objects without a prototype, arrays, scalars. */
class TreeBuilder implements JsonHandler {
  result: unknown;
  private readonly containers: Array<Record<string, unknown> | unknown[]> = [];
  private pendingKey = '';

  startObject(): void {
    this.open(Object.create(null));
  }
  startArray(): void {
    this.open([]);
  }
  key(name: string): void {
    this.pendingKey = name;
  }
  endObject(): void {
    this.close();
  }
  endArray(): void {
    this.close();
  }
  value(scalar: JsonScalar): void {
    this.place(scalar);
  }

  private open(container: Record<string, unknown> | unknown[]): void {
    this.place(container);
    this.containers.push(container);
  }

  private close(): void {
    this.containers.pop();
  }

  private place(value: unknown): void {
    const parent = this.containers[this.containers.length - 1];
    if (parent === undefined) this.result = value;
    else if (Array.isArray(parent)) parent.push(value);
    else parent[this.pendingKey] = value;
  }
}

/** The whole value of a small strict JSON text. */
export function parseStrictJson(text: string, limits: Partial<JsonLimits> = {}): JsonResult {
  const builder = new TreeBuilder();
  const scanner = new JsonScanner(text, builder, limits);
  if (scanner.run()) return { ok: true, value: builder.result };
  return { ok: false, problem: scanner.problem ?? 'the JSON text could not be read' };
}
