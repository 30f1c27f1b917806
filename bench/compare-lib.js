// Process plumbing and measurement for bench/compare.js: finds the tools, starts every server under a hard
// time limit (coreutils `timeout`, so nothing outlives the bench even if the bench itself is killed), reads
// listening lines, stops servers with everything they started, and reads CPU time and RSS of process trees
// from /proc. Linux only, like the rest of the bench.
import { spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  constants,
  createWriteStream,
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));
export const inCI = process.env.CI === 'true';
export const BENCH_TOOLS_HINT =
  'run `bash scripts/install-bench-tools.sh` (needs Go; installs ghz and opa-authz)';

// ---------------------------------------------------------------- tools

function executable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `name` in .venv/bin, then (unless `venvOnly`) the PATH and ~/go/bin. */
export function findTool(name, { venvOnly = false } = {}) {
  const dirs = [join(root, '.venv', 'bin')];
  if (!venvOnly)
    dirs.push(...(process.env.PATH ?? '').split(delimiter).filter(Boolean), join(homedir(), 'go', 'bin'));
  return dirs.map((dir) => join(dir, name)).find(executable);
}

/** First line of a command's output (some tools exit 1 after printing their version), or undefined. */
export function versionOf(command, args) {
  const run = spawnSync(command, args, { encoding: 'utf8', timeout: 10_000 });
  if (run.error) return undefined;
  return `${run.stdout}${run.stderr}`.trim().split('\n')[0] || undefined;
}

// ---------------------------------------------------------------- /proc

const TICKS_PER_SECOND = Number(versionOf('getconf', ['CLK_TCK'])) || 100;
const PAGE_BYTES = Number(versionOf('getconf', ['PAGESIZE'])) || 4096;

/** ppid and CPU ticks (own + reaped children) of one process, from /proc/PID/stat; undefined once it is gone. */
function readStat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) };
  } catch {
    return undefined;
  }
}

/** `root` and all its descendants (this kernel has no /proc/PID/task/TID/children, so scan /proc). */
export function processTree(rootPid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = readStat(name);
    if (!stat) continue;
    if (!children.has(stat.ppid)) children.set(stat.ppid, []);
    children.get(stat.ppid).push(Number(name));
  }
  const tree = [rootPid];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]) ?? []));
  return tree;
}

/**
 * What the processes under `rootPid` use now: CPU seconds (utime + stime, plus what their reaped children used)
 * and resident MiB, summed over the tree. The root is the `timeout` wrapper: it is left out.
 */
export function treeUsage(rootPid) {
  let ticks = 0;
  let pages = 0;
  const pids = processTree(rootPid).slice(1);
  for (const pid of pids) {
    ticks += readStat(pid)?.ticks ?? 0;
    try {
      pages += Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    } catch {
      // gone meanwhile
    }
  }
  return {
    cpuSeconds: ticks / TICKS_PER_SECOND,
    rssMiB: (pages * PAGE_BYTES) / 1024 / 1024,
    processes: pids.length,
  };
}

/**
 * Watches process trees during one cell: CPU seconds used between start and stop, and peak RSS sampled every
 * 200 ms. `trees` maps a label to a root pid (or undefined for "nothing to measure").
 */
export function startMeasuring(trees) {
  const labels = Object.keys(trees).filter((label) => trees[label] !== undefined);
  const before = Object.fromEntries(labels.map((label) => [label, treeUsage(trees[label])]));
  const peak = Object.fromEntries(labels.map((label) => [label, before[label]]));
  const sample = () => {
    for (const label of labels) {
      const now = treeUsage(trees[label]);
      if (now.rssMiB > peak[label].rssMiB) peak[label] = now;
    }
  };
  const timer = setInterval(sample, 200);
  return () => {
    clearInterval(timer);
    sample();
    return Object.fromEntries(
      labels.map((label) => {
        const after = treeUsage(trees[label]);
        return [
          label,
          {
            cpuSeconds: after.cpuSeconds - before[label].cpuSeconds,
            peakRssMiB: peak[label].rssMiB,
            processes: after.processes,
            // A server whose tree shrank during the cell lost a worker (or died): the cell is suspect.
            processesLost: Math.max(0, before[label].processes - after.processes),
          },
        ];
      }),
    );
  };
}

// ---------------------------------------------------------------- servers

/** Process groups (the `timeout` wrappers lead their own) still to kill, and temp dirs to remove, on exit. */
const groups = new Set();
const tempDirs = new Set();

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

export function removeOnExit(dir) {
  tempDirs.add(dir);
}
export function killOnExit(pid) {
  groups.add(pid);
}

process.once('exit', () => {
  for (const pid of groups) killGroup(pid, 'SIGKILL');
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    console.error(`\ncompare: ${signal}, stopping everything`);
    process.exit(130);
  });
}

/**
 * Runs `command args` under `timeout` (killed after `limitSeconds`, even if this process dies) and resolves,
 * once it prints a JSON line with "listening", with { name, pid, listening, stop, outputTail }.
 */
export function startServer({ name, command, args, limitSeconds, startSeconds = 20, outputFile }) {
  const child = spawn('timeout', ['--kill-after=5', `${Math.ceil(limitSeconds)}s`, command, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  groups.add(child.pid);
  let tail = '';
  // The whole output too, when asked (a GC trace, say); the tail is for error messages either way.
  const whole = outputFile && createWriteStream(outputFile);
  const keep = (chunk) => {
    whole?.write(chunk);
    tail = (tail + chunk).slice(-4000);
  };
  child.stderr.setEncoding('utf8').on('data', keep);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    killGroup(child.pid, 'SIGKILL'); // workers or helpers left behind
    groups.delete(child.pid);
  };
  return new Promise((resolve, reject) => {
    let buffered = '';
    let listening;
    const fail = (why) => {
      void stop();
      reject(new Error(`${name}: ${why}\n--- ${name} output (last lines) ---\n${tail.trim() || '(empty)'}`));
    };
    // Keep reading stdout for the whole run: a full pipe would block the server.
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      keep(chunk);
      if (listening) return;
      buffered += chunk;
      const line = buffered.split('\n').find((l) => l.includes('"listening"'));
      if (!line) return;
      listening = JSON.parse(line);
      resolve({ name, pid: child.pid, listening, stop, outputTail: () => tail });
    });
    child.once('error', (err) => fail(`could not start ${command}: ${err.message}`));
    void exited.then(({ code, signal }) => {
      if (!listening) fail(`exited (code ${code}, signal ${signal}) before listening`);
    });
    setTimeout(() => {
      if (!listening) fail(`did not print a "listening" line within ${startSeconds} s`);
    }, startSeconds * 1000).unref();
  });
}

export const portOf = (address) => Number(String(address).split(':').pop());

// ---------------------------------------------------------------- load generators

/** Runs a load generator to completion (killed after `limitSeconds`); resolves with its stdout. */
export function runTool(command, args, limitSeconds) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: limitSeconds * 1000 });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-4000);
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} exited (code ${code}, signal ${signal}): ${stderr.trim()}`));
    });
  });
}

/**
 * ghz against `address` for `seconds`: checks/s, p50, p99 (ms) and the calls that failed at the gRPC level.
 * In-flight calls at the end are ignored rather than counted as errors (--duration-stop ignore).
 */
export async function runGhz({ ghz, address, dataFile, outFile, concurrency, connections, seconds }) {
  const proto = join(root, 'proto');
  const args = ['--insecure', '--proto', join(proto, 'envoy/service/auth/v3/external_auth.proto')];
  args.push('--import-paths', proto, '--call', 'envoy.service.auth.v3.Authorization.Check');
  args.push(
    '--data-file',
    dataFile,
    '--concurrency',
    String(concurrency),
    '--connections',
    String(connections),
  );
  args.push(
    '--duration',
    `${seconds}s`,
    '--duration-stop',
    'ignore',
    '--format',
    'json',
    '--output',
    outFile,
  );
  await runTool(ghz, [...args, address], seconds + 30);
  const report = JSON.parse(readFileSync(outFile, 'utf8'));
  rmSync(outFile, { force: true });
  const percentile = (p) => (report.latencyDistribution ?? []).find((d) => d.percentage === p)?.latency / 1e6;
  const statuses = report.statusCodeDistribution ?? {};
  const errors = Object.entries(statuses).reduce((sum, [code, n]) => (code === 'OK' ? sum : sum + n), 0);
  return { rps: report.rps, p50: percentile(50), p99: percentile(99), count: report.count, errors, statuses };
}

/**
 * wrk with bench/wrk-mix.lua rotating the requests in `dataFile`: req/s, p50, p99 (ms), responses by status
 * class, and socket errors.
 */
export async function runWrk({ url, dataFile, connections, seconds }) {
  const script = join(root, 'bench', 'wrk-mix.lua');
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency', '-s', script];
  const stdout = await runTool('wrk', [...args, url, '--', dataFile], seconds + 30);
  const line = stdout.split('\n').find((l) => l.startsWith('COMPARE '));
  if (!line) throw new Error(`wrk printed no COMPARE line:\n${stdout}`);
  const r = JSON.parse(line.slice('COMPARE '.length));
  return {
    rps: r.requests / (r.duration_us / 1e6),
    p50: r.p50_us / 1000,
    p99: r.p99_us / 1000,
    count: r.requests,
    allowed: r.s2xx,
    denied: r.s403,
    other: r.other,
    errors: r.connect + r.read + r.write + r.timeout,
  };
}

/** True when every file under src/ is older than dist/cli.js (a stale build would measure old code). */
export function distIsFresh() {
  const built = join(root, 'dist', 'cli.js');
  if (!existsSync(built)) return false;
  const builtAt = statSync(built).mtimeMs;
  const walk = (dir) =>
    readdirSync(dir, { withFileTypes: true }).every((entry) =>
      entry.isDirectory() ? walk(join(dir, entry.name)) : statSync(join(dir, entry.name)).mtimeMs <= builtAt,
    );
  return walk(join(root, 'src'));
}
