// Runs the real `scopegate` binary (bin/scopegate.js on the freshly built dist/) as a child process.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const BIN = fileURLToPath(new URL('../../bin/scopegate.js', import.meta.url));

export function runCli(args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [BIN, ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 20_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface Served {
  readonly child: ChildProcess;
  readonly grpc: string;
  readonly admin: string;
  /** The HTTP front doors' addresses, when served (`--http`, `--forward-auth`). */
  readonly http?: string;
  readonly forwardAuth?: string;
  readonly lines: () => Array<Record<string, unknown>>;
  /** Everything the process wrote to stderr so far (say, the stack of a crash). */
  readonly stderr: () => string;
  readonly exited: Promise<number | null>;
}

/** Starts `scopegate serve` and resolves with the addresses from its `listening` line. */
export function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Array<Record<string, unknown>> = [];
  let stderr = '';
  let buffered = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`scopegate did not print "listening" within 10 s; stderr: ${stderr}`));
    }, 10_000);
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline = buffered.indexOf('\n');
      while (newline >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        newline = buffered.indexOf('\n');
        const entry = JSON.parse(line) as Record<string, unknown>;
        lines.push(entry);
        if (entry.msg === 'listening') {
          clearTimeout(timer);
          resolve({
            child,
            grpc: String(entry.grpc),
            admin: String(entry.admin),
            ...(typeof entry.http === 'string' && { http: entry.http }),
            ...(typeof entry.forward_auth === 'string' && { forwardAuth: entry.forward_auth }),
            lines: () => lines,
            stderr: () => stderr,
            exited,
          });
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`scopegate exited (${code}) before listening; stderr: ${stderr}`));
    });
  });
}
