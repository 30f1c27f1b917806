// A strict JSON reader for request bodies (DESIGN.md security rule 4). `JSON.parse` silently keeps the last
// of two equal keys, so `{"location":"WH01","location":"WH99"}` could be checked as one warehouse and
// stored as another; it also recurses on the JS stack. This reader refuses duplicate keys at any depth,
// walks nesting with its own bounded stack, and builds objects without a prototype (`__proto__` is a key).

export interface JsonLimits {
  /** Largest text accepted, in UTF-8 bytes. */
  readonly maxBytes: number;
  /** Deepest nesting of objects and arrays. */
  readonly maxDepth: number;
  /** Longest number literal; longer ones are a precision trick, not inventory data. */
  readonly maxNumberLength: number;
}

export const DEFAULT_JSON_LIMITS: JsonLimits = Object.freeze({
  maxBytes: 1024 * 1024,
  maxDepth: 64,
  maxNumberLength: 64,
});

/** The parsed value, or a problem that names an offset and never quotes the text (it may hold secrets). */
export type JsonResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly problem: string };

const FAILED = Symbol('failed');
type Failed = typeof FAILED;

type Frame = { readonly array: unknown[] } | { readonly object: Record<string, unknown>; key: string };

export function parseStrictJson(text: string, limits: Partial<JsonLimits> = {}): JsonResult {
  const { maxBytes, maxDepth, maxNumberLength } = { ...DEFAULT_JSON_LIMITS, ...limits };
  if (text.length > maxBytes || Buffer.byteLength(text, 'utf8') > maxBytes) {
    return { ok: false, problem: `the JSON text is larger than ${maxBytes} bytes` };
  }
  if (text.charCodeAt(0) === 0xfeff)
    return { ok: false, problem: 'the JSON text starts with a byte order mark' };

  const reader = new Reader(text, maxNumberLength);
  const failed = (what?: string): JsonResult => {
    if (what !== undefined) reader.fail(what);
    return { ok: false, problem: reader.problem };
  };
  const stack: Frame[] = [];
  reader.skipWhitespace();
  if (reader.atEnd()) return { ok: false, problem: 'the JSON text is empty' };

  for (;;) {
    // Here a value starts at reader.pos (whitespace already skipped).
    let value: unknown;
    const open = reader.peek();
    if (open === 0x7b || open === 0x5b) {
      if (stack.length >= maxDepth)
        return { ok: false, problem: `the JSON nests deeper than ${maxDepth} levels` };
      reader.pos++;
      reader.skipWhitespace();
      if (open === 0x5b) {
        if (reader.peek() === 0x5d) {
          reader.pos++;
          value = [];
        } else {
          stack.push({ array: [] });
          continue;
        }
      } else if (reader.peek() === 0x7d) {
        reader.pos++;
        value = Object.create(null);
      } else {
        const object: Record<string, unknown> = Object.create(null);
        const key = reader.readKey(object);
        if (key === FAILED) return failed();
        stack.push({ object, key });
        continue;
      }
    } else {
      const scalar = reader.readScalar();
      if (scalar === FAILED) return failed();
      value = scalar;
    }

    // Store the finished value in its container; close containers as long as they end here.
    for (;;) {
      const top = stack.at(-1);
      reader.skipWhitespace();
      if (top === undefined) {
        if (!reader.atEnd()) return failed('unexpected text after the JSON value');
        return { ok: true, value };
      }
      if ('array' in top) top.array.push(value);
      else top.object[top.key] = value;
      const next = reader.peek();
      if (next === 0x2c) {
        reader.pos++;
        reader.skipWhitespace();
        if ('object' in top) {
          const key = reader.readKey(top.object);
          if (key === FAILED) return failed();
          top.key = key;
        } else if (reader.atEnd()) {
          return failed('unexpected end of the JSON text');
        }
        break;
      }
      if ('array' in top ? next === 0x5d : next === 0x7d) {
        reader.pos++;
        stack.pop();
        value = 'array' in top ? top.array : top.object;
        continue;
      }
      const expected = 'array' in top ? "',' or ']'" : "',' or '}'";
      return failed(reader.atEnd() ? 'unexpected end of the JSON text' : `expected ${expected}`);
    }
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Reader {
  pos = 0;
  problem = '';

  constructor(
    private readonly text: string,
    private readonly maxNumberLength: number,
  ) {}

  atEnd(): boolean {
    return this.pos >= this.text.length;
  }

  peek(): number {
    return this.text.charCodeAt(this.pos);
  }

  fail(what: string): void {
    this.problem = `invalid JSON at offset ${this.pos}: ${what}`;
  }

  failed(what: string): Failed {
    this.fail(what);
    return FAILED;
  }

  skipWhitespace(): void {
    const text = this.text;
    while (this.pos < text.length) {
      const code = text.charCodeAt(this.pos);
      if (code !== 0x20 && code !== 0x0a && code !== 0x0d && code !== 0x09) return;
      this.pos++;
    }
  }

  /** Reads `"key"` `:` inside an object, refusing a key the object already has. */
  readKey(object: Record<string, unknown>): string | Failed {
    if (this.atEnd()) return this.failed('unexpected end of the JSON text');
    if (this.peek() !== 0x22) return this.failed('expected a string key');
    const keyAt = this.pos;
    const key = this.readString();
    if (key === FAILED) return FAILED;
    if (Object.hasOwn(object, key)) {
      this.pos = keyAt;
      return this.failed(`duplicate key ${describeKey(key)}`);
    }
    this.skipWhitespace();
    if (this.peek() !== 0x3a) return this.failed("expected ':'");
    this.pos++;
    this.skipWhitespace();
    if (this.atEnd()) return this.failed('unexpected end of the JSON text');
    return key;
  }

  readScalar(): unknown {
    if (this.atEnd()) return this.failed('unexpected end of the JSON text');
    const code = this.peek();
    if (code === 0x22) return this.readString();
    if (code === 0x2d || (code >= 0x30 && code <= 0x39)) return this.readNumber();
    for (const [word, value] of LITERALS) {
      if (this.text.startsWith(word, this.pos)) {
        this.pos += word.length;
        return value;
      }
    }
    return this.failed('unexpected character');
  }

  private readNumber(): number | Failed {
    NUMBER.lastIndex = this.pos;
    const match = NUMBER.exec(this.text);
    if (match === null) return this.failed('invalid number');
    const literal = match[0];
    if (literal.length > this.maxNumberLength) {
      return this.failed(`a number is longer than ${this.maxNumberLength} characters`);
    }
    const value = Number(literal);
    if (!Number.isFinite(value)) return this.failed('a number is out of range');
    this.pos += literal.length;
    return value;
  }

  private readString(): string | Failed {
    const text = this.text;
    this.pos++; // the opening quote
    let out = '';
    let runStart = this.pos;
    while (this.pos < text.length) {
      const code = text.charCodeAt(this.pos);
      if (code === 0x22) {
        out += text.slice(runStart, this.pos);
        this.pos++;
        return out;
      }
      if (code < 0x20) return this.failed('a control character inside a string');
      if (code !== 0x5c) {
        this.pos++;
        continue;
      }
      out += text.slice(runStart, this.pos);
      const escaped = this.readEscape();
      if (escaped === FAILED) return FAILED;
      out += escaped;
      runStart = this.pos;
    }
    return this.failed('an unterminated string');
  }

  /** At a backslash: returns what the escape stands for. Unpaired surrogates are refused (RFC 7493). */
  private readEscape(): string | Failed {
    const letter = this.text[this.pos + 1];
    const simple = letter === undefined ? undefined : SIMPLE_ESCAPES.get(letter);
    if (simple !== undefined) {
      this.pos += 2;
      return simple;
    }
    if (letter !== 'u') return this.failed('an invalid escape');
    const high = this.hex4(this.pos + 2);
    if (high === undefined) return this.failed('an invalid \\u escape');
    this.pos += 6;
    if (high >= 0xdc00 && high <= 0xdfff) return this.failed('an unpaired surrogate escape');
    if (high < 0xd800 || high > 0xdbff) return String.fromCharCode(high);
    const low = this.text.startsWith('\\u', this.pos) ? this.hex4(this.pos + 2) : undefined;
    if (low === undefined || low < 0xdc00 || low > 0xdfff) return this.failed('an unpaired surrogate escape');
    this.pos += 6;
    return String.fromCharCode(high, low);
  }

  private hex4(at: number): number | undefined {
    const digits = this.text.slice(at, at + 4);
    return /^[0-9a-fA-F]{4}$/.test(digits) ? Number.parseInt(digits, 16) : undefined;
  }
}

const LITERALS: ReadonlyArray<readonly [string, unknown]> = [
  ['true', true],
  ['false', false],
  ['null', null],
];

const SIMPLE_ESCAPES: ReadonlyMap<string, string> = new Map([
  ['"', '"'],
  ['\\', '\\'],
  ['/', '/'],
  ['b', '\b'],
  ['f', '\f'],
  ['n', '\n'],
  ['r', '\r'],
  ['t', '\t'],
]);

/** Names a duplicate key when it looks like a field name; anything else could be data, so it stays unsaid. */
function describeKey(key: string): string {
  return /^[A-Za-z0-9_.-]{1,64}$/.test(key) ? `"${key}"` : '(a key that is not shown)';
}
