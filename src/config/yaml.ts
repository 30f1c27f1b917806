// YAML read the way scopegate reads every file a person writes: positions kept so each problem points at
// the exact key or value (FILE:LINE:COL), alias expansion bounded so a "billion laughs" costs nothing, and a
// reader of typed values (a section with known keys, a map's entries, lists, strings, whole numbers, URLs)
// that reports what it finds wrong instead of throwing, so one run lists every mistake.
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  visit,
  type YAMLMap,
  type YAMLSeq,
} from 'yaml';
import { type ConfigProblem, fieldPath, unknownMessage } from './problems.js';

/** How many times anchored content may be repeated through aliases: plenty for sharing lists, no bombs. */
export const MAX_ALIAS_COUNT = 50;

/** One of yaml's own errors or warnings: its stable code, where it is and what it says. */
export interface YamlError {
  readonly code: string;
  readonly offset: number;
  readonly message: string;
}

export interface ParsedYaml {
  readonly doc: Document.Parsed;
  readonly lineCounter: LineCounter;
  /** Errors and warnings (unknown tags, …) alike: a file only half understood is not read. */
  readonly errors: readonly YamlError[];
}

/**
 * Parses one YAML document with positions. `uniqueKeys: false` leaves duplicate keys to the reader's
 * `entries` (which says which field they are in); yaml's own check compares each key with every earlier one.
 */
export function parseYaml(text: string, options: { readonly uniqueKeys: boolean }): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, {
    lineCounter,
    uniqueKeys: options.uniqueKeys,
    prettyErrors: false,
    strict: true,
  });
  const errors = [...doc.errors, ...doc.warnings].map((e) => ({
    code: e.code,
    offset: e.pos[0],
    message: e.message,
  }));
  return { doc, lineCounter, errors };
}

/**
 * Expands every alias once through yaml's bounded resolver, so any later walk over the same aliases is
 * bounded too. Undefined when that worked; else the first alias's offset and what went wrong.
 */
export function aliasExpansionProblem(doc: Document): { offset: number; message: string } | undefined {
  try {
    doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    return undefined;
  } catch (err) {
    let offset = 0;
    visit(doc, {
      Alias: (_key, node) => {
        offset = node.range?.[0] ?? 0;
        return visit.BREAK;
      },
    });
    const message =
      err instanceof ReferenceError && /excessive alias/i.test(err.message)
        ? `aliases expand too much (more than ${MAX_ALIAS_COUNT} uses of anchored content)`
        : `aliases could not be resolved (${err instanceof Error ? err.message : 'unknown error'})`;
    return { offset, message };
  }
}

export type Position = Pick<ConfigProblem, 'file' | 'line' | 'col'>;

/** FILE:LINE:COL of an offset into the text (1:1 for the start, or for no offset at all). */
export function positionAt(lineCounter: LineCounter, file: string, offset: number): Position {
  const { line, col } = lineCounter.linePos(Math.max(offset, 0));
  return { file, line: Math.max(line, 1), col: Math.max(col, 1) };
}

/** A key of a map as written, with its value. */
export interface Entry {
  readonly key: string;
  readonly keyNode: Node;
  readonly value: Node | null;
}

/** A string read from a list, with where it is, for problems found about it later. */
export interface Located {
  readonly value: string;
  readonly node: Node;
  readonly field: string;
}

/**
 * Reads values out of YAML nodes, collecting a problem (at the node, naming the field) for each one that is
 * not what was asked for; a reader method answers undefined for a value it could not read.
 */
export class YamlReader {
  readonly problems: ConfigProblem[] = [];
  /** Offsets of duplicate keys `entries` reported (so a caller can drop yaml's terser duplicate). */
  readonly duplicateKeyOffsets = new Set<number>();
  private readonly aliasTargets = new Map<Node, Node | null>();

  /**
   * With `followAliases`, every alias is resolved once, up front (an alias inside the node it names would
   * make a walk endless, and is reported); without, an alias is read as itself and fits no shape.
   */
  constructor(
    private readonly parsed: Pick<ParsedYaml, 'doc' | 'lineCounter'>,
    private readonly file: string,
    options: { readonly followAliases: boolean },
  ) {
    if (options.followAliases) this.resolveAliases();
  }

  private resolveAliases(): void {
    const anchors = new Map<string, Node>();
    visit(this.parsed.doc, {
      Node: (_key, node) => {
        if (isAlias(node)) {
          const target = anchors.get(node.source);
          const inside =
            target?.range &&
            node.range &&
            target.range[0] <= node.range[0] &&
            node.range[0] < target.range[2];
          this.aliasTargets.set(node, target && !inside ? target : null);
          if (!target) this.report(node, '', `alias "*${node.source}" names no earlier anchor`);
          else if (inside) this.report(node, '', `alias "*${node.source}" refers to a node that contains it`);
        }
        if ('anchor' in node && typeof node.anchor === 'string') anchors.set(node.anchor, node);
      },
    });
  }

  // ── typed readers over YAML nodes ─────────────────────────────────────────────────────────────────

  /** A map with a fixed set of keys (`true` = required); unknown keys are reported with a suggestion. */
  section<K extends string>(
    value: Node | null,
    f: string,
    keys: Record<K, boolean>,
  ): Partial<Record<K, Entry>> | undefined {
    const entries = this.entries(value, f);
    if (!entries) return undefined;
    const known = Object.keys(keys) as K[];
    const out: Partial<Record<K, Entry>> = {};
    for (const e of entries) {
      if ((known as string[]).includes(e.key)) out[e.key as K] = e;
      else this.report(e.keyNode, fieldPath(f, e.key), unknownMessage('key', e.key, known, true));
    }
    for (const k of known) {
      if (keys[k] && !out[k])
        this.report(this.deref(value), fieldPath(f, k), `required key "${k}" is missing`);
    }
    return out;
  }

  /** The entries of a map with string keys; a repeated key is reported and only its first value kept. */
  entries(value: Node | null, f: string): Entry[] | undefined {
    const node = this.deref(value);
    if (!isMap(node)) {
      this.report(node, f, `expected a map, got ${this.describe(node)}`);
      return undefined;
    }
    const out: Entry[] = [];
    const seen = new Map<string, Node>();
    for (const pair of node.items) {
      const keyNode = this.deref(pair.key as Node | null);
      if (!isScalar(keyNode) || typeof keyNode.value !== 'string' || keyNode.value === '') {
        this.report(
          keyNode ?? node,
          f,
          `a key must be a non-empty string, got ${this.describe(keyNode)} (quote it)`,
        );
        continue;
      }
      const key = keyNode.value;
      const first = seen.get(key);
      if (first) {
        if (keyNode.range) this.duplicateKeyOffsets.add(keyNode.range[0]);
        this.report(
          keyNode,
          fieldPath(f, key),
          `duplicate key "${key}" (first at line ${this.pos(first).line})`,
        );
        continue;
      }
      seen.set(key, keyNode);
      out.push({ key, keyNode, value: (pair.value as Node | null) ?? null });
    }
    return out;
  }

  list(value: Node | null, f: string): (Node | null)[] | undefined {
    const node = this.deref(value);
    if (!isSeq(node)) {
      this.report(node, f, `expected a list, got ${this.describe(node)}`);
      return undefined;
    }
    return node.items as (Node | null)[];
  }

  /** A list of strings; undefined if any item is not one (each reported), a repeat is reported and dropped. */
  stringList(
    value: Node | null,
    f: string,
    opts: { nonEmpty?: boolean; unique?: boolean } = {},
  ): Located[] | undefined {
    const items = this.list(value, f);
    if (!items) return undefined;
    if (opts.nonEmpty && items.length === 0) {
      this.report(this.deref(value), f, 'the list must not be empty');
      return undefined;
    }
    const out: Located[] = [];
    let good = true;
    const seen = new Set<string>();
    items.forEach((item, i) => {
      const fi = `${f}[${i}]`;
      const s = this.string(item, fi);
      const node = this.deref(item);
      if (s === undefined || !node) {
        good = false;
        return;
      }
      if (opts.unique && seen.has(s)) {
        this.report(node, fi, `"${s}" is listed twice`);
        return;
      }
      seen.add(s);
      out.push({ value: s, node, field: fi });
    });
    return good ? out : undefined;
  }

  /** A string with something in it besides whitespace. */
  string(value: Node | null, f: string): string | undefined {
    const node = this.deref(value);
    if (!isScalar(node) || typeof node.value !== 'string') {
      this.report(node, f, `expected a string, got ${this.describe(node)}`);
      return undefined;
    }
    if (node.value.trim() === '') {
      this.report(node, f, 'must not be empty');
      return undefined;
    }
    return node.value;
  }

  integer(value: Node | null, f: string, min: number, max: number): number | undefined {
    const node = this.deref(value);
    const n = isScalar(node) ? node.value : undefined;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      this.report(node, f, `expected a whole number from ${min} to ${max}, got ${this.show(node)}`);
      return undefined;
    }
    return n;
  }

  /** An http(s) URL; `what` names it in the problem ("jwks uri must be an http(s) URL"). */
  url(value: Node | null, f: string, what: string): string | undefined {
    const s = this.string(value, f);
    if (s === undefined) return undefined;
    let protocol: string | undefined;
    try {
      protocol = new URL(s).protocol;
    } catch {
      protocol = undefined;
    }
    if (protocol !== 'https:' && protocol !== 'http:') {
      this.report(value, f, `${what} must be an http(s) URL, got "${s}"`);
      return undefined;
    }
    return s;
  }

  /** A map or list as plain data, aliases expanded at most MAX_ALIAS_COUNT times. */
  plainData(node: YAMLMap | YAMLSeq): unknown {
    return node.toJS(this.parsed.doc, { maxAliasCount: MAX_ALIAS_COUNT });
  }

  // ── positions and problems ────────────────────────────────────────────────────────────────────────

  /** The node an alias names (when aliases are followed); any other node as it is. */
  deref(node: Node | null | undefined): Node | null {
    // A broken alias stays itself, so problems about it point at the alias (and say so).
    if (node && isAlias(node)) return this.aliasTargets.get(node) ?? node;
    return node ?? null;
  }

  /** Where a node starts; the start of the file for none. */
  pos(node: Node | null | undefined): Position {
    return this.at(node?.range?.[0] ?? 0);
  }

  at(offset: number): Position {
    return positionAt(this.parsed.lineCounter, this.file, offset);
  }

  report(node: Node | null | undefined, field: string, message: string): void {
    this.reportAt(node?.range?.[0] ?? 0, field, message);
  }

  /** A problem at an offset into the text (yaml's own errors come with one). */
  reportAt(offset: number, field: string, message: string): void {
    this.problems.push({ ...this.at(offset), field, message });
  }

  /** What a node is, for "expected a list, got a map". */
  describe(node: Node | null): string {
    if (node === null) return 'nothing';
    if (isAlias(node)) return 'an alias that cannot be used';
    if (isMap(node)) return 'a map';
    if (isSeq(node)) return 'a list';
    if (isScalar(node)) {
      const v = node.value;
      if (v === null) return 'nothing';
      if (typeof v === 'string') return v.trim() === '' ? 'an empty string' : 'a string';
      if (typeof v === 'number') return `the number ${v}`;
      if (typeof v === 'boolean') return `${v}`;
    }
    return 'an unsupported value';
  }

  /** A short rendering of a scalar for messages (never long: values are user-written, not secrets). */
  show(node: Node | null): string {
    if (isScalar(node) && (typeof node.value === 'number' || typeof node.value === 'boolean'))
      return String(node.value);
    if (isScalar(node) && typeof node.value === 'string') return JSON.stringify(node.value.slice(0, 60));
    return this.describe(node);
  }
}
