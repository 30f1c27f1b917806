// Runs a long-lived `scopegate` dev command (dev-upstream, dev-issuer) as a child process, the way a user
// starts it, and waits for the one JSON `listening` line it prints when bound.
import { type ChildProcess, spawn } from 'node:child_process';
import { BIN, ROOT } from '../support/process.js';

export interface Listening {
  readonly child: ChildProcess;
  /** The fields of the listening line (url, and jwks_uri/token_url for the issuer). */
  readonly listening: Record<string, string>;
  readonly exited: Promise<number | null>;
}

/** Starts `scopegate ARGS` and resolves with the fields of its first stdout line once it says "listening". */
export function spawnListening(args: string[]): Promise<Listening> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stdout = '';
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no listening line within 10 s; stderr: ${stderr}`));
    }, 10_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const newline = stdout.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      const line = JSON.parse(stdout.slice(0, newline)) as Record<string, string>;
      if (line.msg === 'listening') resolve({ child, listening: line, exited });
      else reject(new Error(`unexpected first line: ${stdout.slice(0, newline)}`));
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before listening; stderr: ${stderr}`));
    });
  });
}
