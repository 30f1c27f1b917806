// Route path templates (`/api/inventory/transactions/{id}`) and the matcher that finds the first route, in
// policy order, for a method and a canonical path. Templates are checked strictly at load time so the
// matcher never has to guess what a template means.
import type { CompiledRoute, RouteMatch } from './types.js';

/** The HTTP methods a route may name. */
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

/** Paths with more segments than this match no route (the request phase caps them too). */
export const MAX_PATH_SEGMENTS = 128;

export type TemplateSegment = { readonly literal: string } | { readonly param: string };

export type TemplateResult =
  | { readonly ok: true; readonly segments: readonly TemplateSegment[] }
  | { readonly ok: false; readonly message: string };

// RFC 3986 pchar without `%` (a template is matched against an already-decoded path, so an escape would
// never match what it looks like) and without `;` (path parameters are rejected as ambiguous upstream).
const LITERAL_SEGMENT = /^[A-Za-z0-9\-._~!$&'()*+,=:@]+$/;
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Parses a route's path template, or says precisely what is wrong with it. */
export function parsePathTemplate(template: string): TemplateResult {
  if (!template.startsWith('/')) return fail(`path template "${template}" must start with "/"`);
  if (template === '/') return { ok: true, segments: [] };
  if (template.includes('//')) return fail(`path template "${template}" has an empty segment ("//")`);
  if (template.endsWith('/')) return fail(`path template "${template}" must not end with "/"`);
  const parts = template.slice(1).split('/');
  if (parts.length > MAX_PATH_SEGMENTS) {
    return fail(`path template "${template}" has more than ${MAX_PATH_SEGMENTS} segments`);
  }
  const segments: TemplateSegment[] = [];
  const params = new Set<string>();
  for (const part of parts) {
    if (part === '.' || part === '..') {
      return fail(`path template "${template}" has a "${part}" segment; templates are canonical paths`);
    }
    if (part.startsWith('{') || part.endsWith('}')) {
      if (!(part.startsWith('{') && part.endsWith('}'))) {
        return fail(`path template "${template}": "${part}" must be a whole segment "{name}"`);
      }
      const name = part.slice(1, -1);
      if (!PARAM_NAME.test(name)) {
        return fail(
          `path template "${template}": parameter "${name}" must be a name ([A-Za-z_][A-Za-z0-9_]*)`,
        );
      }
      if (params.has(name)) return fail(`path template "${template}" names parameter "{${name}}" twice`);
      params.add(name);
      segments.push({ param: name });
      continue;
    }
    if (part.includes('{') || part.includes('}')) {
      return fail(`path template "${template}": "${part}" must be a whole segment "{name}"`);
    }
    if (!LITERAL_SEGMENT.test(part)) {
      return fail(
        `path template "${template}": segment "${part}" may only use letters, digits and - . _ ~ ! $ & ' ( ) * + , = : @`,
      );
    }
    segments.push({ literal: part });
  }
  return { ok: true, segments };
}

/** Parameter names of a valid template, in order (empty for an invalid one). */
export function templateParams(template: string): string[] {
  const parsed = parsePathTemplate(template);
  if (!parsed.ok) return [];
  return parsed.segments.flatMap((s) => ('param' in s ? [s.param] : []));
}

/**
 * The template's shape with parameter names erased: `/t/{id}` and `/t/{name}` match exactly the same
 * paths, so two routes with the same method and shape mean the second can never match.
 */
export function templateShape(template: string): string {
  const parsed = parsePathTemplate(template);
  if (!parsed.ok) return template;
  return '/' + parsed.segments.map((s) => ('param' in s ? '{}' : s.literal)).join('/');
}

function fail(message: string): TemplateResult {
  return { ok: false, message };
}

// One trie node per distinct template prefix. `minIndex` is the lowest route index anywhere below this
// node, so a search can skip a branch that cannot beat the best match found so far.
interface TrieNode {
  /** Made only where a literal segment follows: most nodes are leaves, and a set of 500 policies has 35,000. */
  literals?: Map<string, TrieNode>;
  param?: TrieNode;
  minIndex: number;
  /** The first route (lowest index) whose template ends here, with its parameter names by position. */
  terminal?: { readonly route: CompiledRoute; readonly paramNames: readonly string[] };
}

function newNode(): TrieNode {
  return { minIndex: Number.POSITIVE_INFINITY };
}

export type RouteMatcher = (method: string, canonicalPath: string) => RouteMatch | undefined;

/**
 * Builds the matcher for routes in policy order. Each method gets its own segment trie; a lookup walks
 * literal and parameter branches and keeps the lowest route index, so `/t/{id}` listed before
 * `/t/special` wins for `/t/special`, exactly as a linear first-match scan would decide. Every trie node is
 * reached by one sequence of segments, so a lookup visits each node at most once.
 */
export function buildRouteMatcher(routes: readonly CompiledRoute[]): RouteMatcher {
  const tries = new Map<string, TrieNode>();
  for (const route of routes) {
    const parsed = parsePathTemplate(route.path);
    // Validation rejects such a policy before compile; a route with a bad template simply never matches.
    if (!parsed.ok) continue;
    for (const method of route.methods) {
      let root = tries.get(method);
      if (!root) {
        root = newNode();
        tries.set(method, root);
      }
      insert(root, parsed.segments, route);
    }
  }

  return (method, canonicalPath) => {
    const root = tries.get(method);
    if (!root || !canonicalPath.startsWith('/')) return undefined;
    const segments = canonicalPath === '/' ? [] : canonicalPath.slice(1).split('/');
    if (segments.length > MAX_PATH_SEGMENTS) return undefined;
    const found = search(root, segments);
    if (!found) return undefined;
    const params: Record<string, string> = {};
    found.terminal.paramNames.forEach((name, i) => {
      params[name] = found.values[i]!;
    });
    return Object.freeze({ route: found.terminal.route, params: Object.freeze(params) });
  };
}

function insert(root: TrieNode, segments: readonly TemplateSegment[], route: CompiledRoute): void {
  let node = root;
  const paramNames: string[] = [];
  node.minIndex = Math.min(node.minIndex, route.index);
  for (const segment of segments) {
    let next: TrieNode | undefined;
    if ('param' in segment) {
      paramNames.push(segment.param);
      next = node.param ??= newNode();
    } else {
      node.literals ??= new Map();
      next = node.literals.get(segment.literal);
      if (!next) {
        next = newNode();
        node.literals.set(segment.literal, next);
      }
    }
    next.minIndex = Math.min(next.minIndex, route.index);
    node = next;
  }
  if (!node.terminal || route.index < node.terminal.route.index) node.terminal = { route, paramNames };
}

interface Found {
  readonly terminal: NonNullable<TrieNode['terminal']>;
  /** Values of the parameter segments along the winning branch, in order. */
  readonly values: readonly string[];
}

function search(root: TrieNode, segments: readonly string[]): Found | undefined {
  let best: Found | undefined;
  const values: string[] = [];
  // Depth-first; `values` holds the parameter values of the current branch.
  const visit = (node: TrieNode, depth: number): void => {
    if (best && node.minIndex >= best.terminal.route.index) return;
    if (depth === segments.length) {
      if (node.terminal && (!best || node.terminal.route.index < best.terminal.route.index)) {
        best = { terminal: node.terminal, values: [...values] };
      }
      return;
    }
    const segment = segments[depth]!;
    const literal = node.literals?.get(segment);
    if (literal) visit(literal, depth + 1);
    // A parameter matches any non-empty segment; the request phase never produces empty ones.
    if (node.param && segment !== '') {
      values.push(segment);
      visit(node.param, depth + 1);
      values.pop();
    }
  };
  visit(root, 0);
  return best;
}
