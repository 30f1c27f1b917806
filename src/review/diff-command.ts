// `scopegate diff OLD NEW`: what a policy change means (policy/diff.ts), for a pull request or a terminal,
// before the change is served. Exit 0 when both mean the same, 3 when they differ, 2 when either side cannot
// be read or is not a valid policy (its problems are printed as `validate` prints them).
import { parseArgs } from 'node:util';
import type { CommandIO } from '../explain/command.js';
import { countByKind, diffPolicySets, type PolicyChange } from '../policy/diff.js';
import { formatProblem } from '../policy/index.js';
import { loadPolicySet } from '../policy/source.js';
import type { CompiledPolicy } from '../policy/types.js';

export const EXIT = { same: 0, usage: 2, changed: 3 } as const;

export async function diffCommand(args: string[], io: CommandIO): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { json: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals.length !== 2) return io.usage('diff needs OLD and NEW (each a policy FILE or DIR)');
  const sides: CompiledPolicy[][] = [];
  for (const path of positionals) {
    const { policies, problems } = await loadPolicySet(path);
    if (problems.length > 0 || policies.length === 0) {
      for (const problem of problems) io.err(formatProblem(problem));
      if (problems.length === 0) io.err(`scopegate: ${path}: no policy found`);
      return EXIT.usage;
    }
    sides.push([...policies]);
  }
  const [before, after] = sides as [CompiledPolicy[], CompiledPolicy[]];
  const changes = diffPolicySets(before, after);
  io.out(
    values.json
      ? JSON.stringify({ changes, counts: countByKind(changes) }, null, 2)
      : renderChanges(changes, before, after),
  );
  return changes.length === 0 ? EXIT.same : EXIT.changed;
}

/** Per policy, one line per change: its kind, then what it means. */
export function renderChanges(
  changes: readonly PolicyChange[],
  before: readonly CompiledPolicy[],
  after: readonly CompiledPolicy[],
): string {
  if (changes.length === 0) {
    return `no change in meaning (${after.length} ${after.length === 1 ? 'policy' : 'policies'})`;
  }
  // One policy on each side is paired whatever the names (policy/diff.ts), else by name.
  const paired = before.length === 1 && after.length === 1;
  const revisionOf = (side: readonly CompiledPolicy[], name: string) =>
    (paired ? side[0] : side.find((p) => p.name === name))?.revision ?? '-';
  const byPolicy = new Map<string, PolicyChange[]>();
  for (const change of changes) {
    byPolicy.set(change.policy, [...(byPolicy.get(change.policy) ?? []), change]);
  }
  const width = Math.max(...changes.map((c) => c.kind.length));
  const lines: string[] = [];
  for (const [policy, own] of byPolicy) {
    const revisions = `${revisionOf(before, policy)} → ${revisionOf(after, policy)}`;
    lines.push(`policy ${policy} (${revisions}): ${own.length} ${own.length === 1 ? 'change' : 'changes'}`);
    for (const change of own) lines.push(`  ${change.kind.padEnd(width)}  ${change.says}`);
  }
  return lines.join('\n');
}
