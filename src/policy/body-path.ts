// Where a route reads its location: the JSON body path grammar (`location`, `transaction.location`,
// `lines[].location`) and its compiled form, parsed once when the policy loads so no Check re-parses it.
import type { BodyPathStep, CompiledLocationSource, LocationSource } from './types.js';

/** `lines[].location` → steps, or undefined when the text is not a body path (empty step, stray brackets). */
export function parseBodyPath(path: string): BodyPathStep[] | undefined {
  if (path === '') return undefined;
  const steps: BodyPathStep[] = [];
  for (const part of path.split('.')) {
    const each = part.endsWith('[]');
    const key = each ? part.slice(0, -2) : part;
    if (key === '' || key.includes('[') || key.includes(']')) return undefined;
    steps.push({ key, each });
  }
  return steps;
}

export function formatBodyPath(steps: readonly BodyPathStep[]): string {
  return steps.map((step) => (step.each ? `${step.key}[]` : step.key)).join('.');
}

/** A validated location source with its body path (if any) parsed into steps. */
export function compileLocationSource(source: LocationSource): CompiledLocationSource {
  if (!('body' in source)) return { ...source };
  const steps = parseBodyPath(source.body);
  if (steps === undefined) throw new Error(`invalid body path "${source.body}" passed validation`);
  return { body: source.body, steps };
}
