// What is wrong in a config file a person wrote (the policy, a `scopegate test` cases file, the dev issuer's
// file), said the same way everywhere: `FILE:LINE:COL: field: message`, the field as a path a person can
// find (`routes[2].permissions[0]`), and "did you mean" when a name is one typo away from a known one.

/** One problem, located in the file as written. */
export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** Path to the field, e.g. `routes[2].permissions[0]`; empty for problems about the whole file. */
  readonly field: string;
  readonly message: string;
}

/** `FILE:LINE:COL: field: message` (the field is left out for problems about the whole file). */
export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.field ? `${p.field}: ` : ''}${p.message}`;
}

/** The problems in the order a person fixes them, top to bottom; those at one place keep their order. */
export function inFileOrder<P extends ConfigProblem>(problems: readonly P[]): P[] {
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => a.p.line - b.p.line || a.p.col - b.p.col || a.i - b.i)
    .map(({ p }) => p);
}

/** `routes[2].permissions[0]`, `scopes["inventory.read"]`, `roles["Inventory Data Reader"]`. */
export function fieldPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) return parent ? `${parent}.${key}` : key;
  return `${parent}[${JSON.stringify(key)}]`;
}

/**
 * `unknown KIND "NAME"`, with the known name it probably meant, or else (when `listAll`) every known name:
 * listing suits a handful of fixed keys, not a policy's thousand permissions.
 */
export function unknownMessage(
  kind: string,
  name: string,
  candidates: readonly string[],
  listAll: boolean,
): string {
  const base = `unknown ${kind} "${name}"`;
  const suggestion = closest(name, candidates);
  if (suggestion !== undefined) return `${base}; did you mean "${suggestion}"?`;
  if (listAll && candidates.length > 0) return `${base}; expected one of ${candidates.join(', ')}`;
  return base;
}

/** The candidate closest to `name`, when it is close enough to be a likely typo. */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  // Names this long are not typos of anything; skipping them keeps the quadratic distance cheap.
  if (name.length > 128) return undefined;
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  const limit = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  for (const candidate of candidates) {
    if (candidate.length > 128) continue;
    // Case-only differences count as closest of all.
    const d = candidate.toLowerCase() === name.toLowerCase() ? 0 : editDistance(name, candidate);
    // Ties go to the name first in code-point order, so the suggestion does not depend on file order.
    if (d < bestDistance || (d === bestDistance && best !== undefined && candidate < best)) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

/**
 * Levenshtein distance; past a length difference of 3 (more than any typo `closest` accepts) it answers
 * that difference without computing, so a file full of long names stays cheap to check.
 */
export function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return Math.abs(a.length - b.length);
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}
