// Builds dist/ before the tests, so process-level tests run `bin/scopegate.js` on the code under test rather
// than on whatever an earlier build left. Both vitest projects (and parallel runs) call this: a stamp makes it
// a no-op when dist/ is newer than src/, and a lock directory makes sure only one tsc ever writes dist/ at a
// time — a CLI spawned by one project must never load a file another project is halfway through writing.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const stamp = join(root, 'dist', '.built-from-src');
const lock = join(root, 'dist.build-lock');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const fresh = () => {
  try {
    return statSync(stamp).mtimeMs >= newestMtime(join(root, 'src'));
  } catch {
    return false;
  }
};

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

export default function setup(): void {
  if (fresh()) return;
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Another run holds the lock; a lock older than two minutes was left by a killed run.
      const held = statSync(lock, { throwIfNoEntry: false });
      if (held === undefined) continue;
      if (Date.now() > deadline || Date.now() - held.mtimeMs > 120_000)
        rmSync(lock, { recursive: true, force: true });
      else sleep(200);
    }
  }
  try {
    if (fresh()) return;
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
      cwd: root,
      stdio: 'inherit',
    });
    writeFileSync(stamp, `${new Date().toISOString()}\n`);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
