// `--node PATH` for the benches: the Node.js binary that runs scopegate (and the Node floors), so that one
// checkout measures each Node.js line in one sitting (`--node .venv/bin/node` after scripts/install-node.sh).
// Without it, the benches run everything on the Node.js that runs them, as before.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * { path, version, v8, openssl } of the Node.js at `path` (asked by running it once), or of this process's
 * own when `path` is undefined. Throws, naming the path, when it does not run.
 */
export function nodeBinary(path) {
  if (path === undefined) {
    const { v8, openssl } = process.versions;
    return { path: process.execPath, version: process.version, v8, openssl };
  }
  const absolute = resolve(path);
  const run = spawnSync(absolute, ['-p', 'JSON.stringify([process.version, process.versions])'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (run.error || run.status !== 0)
    throw new Error(`--node ${path}: does not run (${run.error?.message ?? run.stderr.trim()})`);
  let parsed;
  try {
    parsed = JSON.parse(run.stdout);
  } catch {
    throw new Error(`--node ${path}: not a Node.js binary (it printed ${JSON.stringify(run.stdout.trim())})`);
  }
  const [version, { v8, openssl }] = parsed;
  return { path: absolute, version, v8, openssl };
}

/** `node.version` with what decides crypto and GC speed: "v24.19.0 (V8 13.6.233.17-node.51, OpenSSL 3.5.7)". */
export function describeNode(node) {
  return `${node.version} (V8 ${node.v8}, OpenSSL ${node.openssl})`;
}

/** `argv` without `--node PATH` / `--node=PATH`: the arguments a bench passes on when it re-runs itself. */
export function withoutNodeOption(argv) {
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--node') i++;
    else if (!argv[i].startsWith('--node=')) rest.push(argv[i]);
  }
  return rest;
}

/**
 * For a bench that runs scopegate in its own process: with `--node PATH`, runs the whole bench (`scriptUrl`,
 * its `import.meta.url`) again on that Node.js, without the option, and exits with its exit code. Without it,
 * returns.
 */
export function rerunOnNode(path, scriptUrl) {
  if (path === undefined) return;
  const node = nodeBinary(path);
  const args = [fileURLToPath(scriptUrl), ...withoutNodeOption(process.argv.slice(2))];
  const run = spawnSync(node.path, args, { stdio: 'inherit' });
  if (run.error) throw run.error;
  process.exit(run.status ?? 1);
}
