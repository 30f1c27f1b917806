// Finding and running promtool (Debian package `prometheus`), which checks the metrics scrape, the alert rules,
// their unit tests, the Prometheus config and the dashboard's queries. Under CI=true a missing promtool is a
// failure with the fix in the message (never a silent skip); on a workstation the suites skip, with the
// reason in their names so the report shows why.
import { spawnSync } from 'node:child_process';
import { findTool, requiredTool } from './tools.js';

export const PROMTOOL_INSTALL_HINT =
  'install it with `apt-get install -y prometheus` (Debian/Ubuntu) or set PROMTOOL to its path';

/** PROMTOOL when set (and executable), else the first `promtool` on PATH. */
export function findPromtool(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return findTool('promtool', { envVar: 'PROMTOOL' }, env);
}

const tool = requiredTool('promtool', findPromtool(), PROMTOOL_INSTALL_HINT);
export const promtoolBin = tool.bin;
export const skipWithoutPromtool = tool.skip;
export const promtoolSuiteName = tool.suiteName;
export const requirePromtool = tool.require;

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
