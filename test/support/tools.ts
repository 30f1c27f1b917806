// Finding an external tool the tests need (promtool, kustomize, …) and deciding what its absence means:
// under CI=true a failure with the fix in the message, never a silent skip; on a workstation the suites that
// need it skip, with the reason in their names so the report shows why.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** `env[envVar]` when set (and executable), else the first executable among `local`, then `name` on PATH. */
export function findTool(
  name: string,
  options: { envVar: string; local?: readonly string[] },
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const given = env[options.envVar];
  if (given) return executable(given) ? given : undefined;
  const onPath = (env.PATH ?? '')
    .split(delimiter)
    .filter((dir) => dir !== '')
    .map((dir) => join(dir, name));
  return [...(options.local ?? []), ...onPath].find(executable);
}

export interface RequiredTool {
  readonly bin: string | undefined;
  /** True when suites needing the tool should be skipped: it is missing and this is not CI. */
  readonly skip: boolean;
  /** A suite name that says why it was skipped, when it is. */
  suiteName(name: string): string;
  /** The binary, or an error that tells CI how to get one. */
  require(): string;
}

export function requiredTool(name: string, bin: string | undefined, installHint: string): RequiredTool {
  const skip = bin === undefined && process.env.CI !== 'true';
  return {
    bin,
    skip,
    suiteName: (suite) => (skip ? `${suite} (skipped: ${name} not found; ${installHint})` : suite),
    require: () => {
      if (bin === undefined) throw new Error(`${name} not found: ${installHint}`);
      return bin;
    },
  };
}
