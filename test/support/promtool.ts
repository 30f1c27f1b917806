// Finding and running promtool (Debian package `prometheus`), which checks the metrics scrape, the alert rules,
// their unit tests, the Prometheus config and the dashboard's queries. Under CI=true a missing promtool is a
// failure with the fix in the message (never a silent skip); on a workstation the suites skip, with the
// reason in their names so the report shows why.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export const PROMTOOL_INSTALL_HINT =
  'install it with `apt-get install -y prometheus` (Debian/Ubuntu) or set PROMTOOL to its path';

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** PROMTOOL when set (and executable), else the first `promtool` on PATH. */
export function findPromtool(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.PROMTOOL) return executable(env.PROMTOOL) ? env.PROMTOOL : undefined;
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'promtool');
    if (executable(candidate)) return candidate;
  }
  return undefined;
}

export const promtoolBin: string | undefined = findPromtool();
const inCi = process.env.CI === 'true';

/** True when the promtool suites should be skipped: no promtool and not in CI. */
export const skipWithoutPromtool = promtoolBin === undefined && !inCi;

/** A suite name that says why it was skipped, when it is. */
export function promtoolSuiteName(name: string): string {
  return skipWithoutPromtool ? `${name} (skipped: promtool not found; ${PROMTOOL_INSTALL_HINT})` : name;
}

/** The promtool binary, or an error that tells CI how to get one. */
export function requirePromtool(): string {
  if (promtoolBin === undefined) {
    throw new Error(`promtool not found (PROMTOOL, PATH): ${PROMTOOL_INSTALL_HINT}`);
  }
  return promtoolBin;
}

export interface PromtoolRun {
  readonly code: number | null;
  /** stdout and stderr together: promtool splits its findings between them depending on the command. */
  readonly output: string;
}

/** Runs promtool with the given arguments (and stdin), bounded in time so a hang fails the test. */
export function promtool(
  args: readonly string[],
  options: { stdin?: string; cwd?: string } = {},
): PromtoolRun {
  const run = spawnSync(requirePromtool(), args, {
    input: options.stdin ?? '',
    cwd: options.cwd,
    encoding: 'utf8',
    timeout: 30_000,
  });
  if (run.error) throw run.error;
  return { code: run.status, output: `${run.stdout}${run.stderr}` };
}
