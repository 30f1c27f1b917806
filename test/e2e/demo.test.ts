// `npm run demo` tells the support thread truthfully: each step's status, challenge, reason and fix as a real
// Envoy + scopegate answered them, then the counters; and --keep-running serves until Ctrl-C, then stops.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { runDemo } from '../../src/dev/demo.js';
import { BIN, ROOT } from '../support/process.js';
import { skipWithoutEnvoy, suiteName } from './envoy-required.js';

/** The numbered step starting with `N. ` and the lines after it, up to the next blank line. */
function step(output: string[], n: number): string {
  const start = output.findIndex((line) => line.startsWith(`${n}. `));
  if (start < 0) throw new Error(`no step ${n} in:\n${output.join('\n')}`);
  const end = output.indexOf('', start);
  return output.slice(start, end < 0 ? undefined : end).join('\n');
}

describe.skipIf(skipWithoutEnvoy)(suiteName('npm run demo'), () => {
  it('replays every cause with its own answer and fix, then shows the denial counters', async () => {
    const output: string[] = [];
    const code = await runDemo({ keepRunning: false, write: (line) => output.push(line) });
    expect(code).toBe(0);
    expect(step(output, 1)).toContain('→ HTTP 200');
    expect(step(output, 2)).toMatch(
      /→ HTTP 403[\s\S]*error="insufficient_scope"[\s\S]*scope="inventory.read"/,
    );
    expect(step(output, 2)).toContain('fix: request scope inventory.read as well');
    expect(step(output, 3)).toContain('→ HTTP 201');
    expect(step(output, 4)).toContain('reason: client_scope_not_allowed');
    expect(step(output, 4)).toContain('fix: allow client stock-report the scope inventory.write');
    expect(step(output, 5)).toContain('fix: give svc-new-integration the role Inventory Transaction Manager');
    expect(step(output, 6)).toContain('fix: grant location WH03 to svc-inventory-sync');
    expect(step(output, 7)).toContain('reason: grant_type_not_allowed');
    expect(step(output, 8)).toMatch(/→ HTTP 401[\s\S]*error="invalid_token"[\s\S]*reason: token_expired/);
    expect(output).toContain(
      '   scopegate_decisions_total{decision="deny",reason="scope_missing",route="create_transaction",policy="inventory"} 1',
    );
    expect(output.at(-1)).toBe('Stopped.');
  });

  it('--keep-running serves until Ctrl-C, then stops everything and exits 0', async () => {
    const child = spawn(process.execPath, [BIN, 'demo', '--keep-running'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    for (let i = 0; i < 300 && !output.includes('Ctrl-C stops it all'); i++)
      await new Promise((r) => setTimeout(r, 100));
    expect(output).toContain('Ctrl-C stops it all');
    const envoyUrl = /Envoy \(ext_authz → scopegate\)\s+(\S+)/.exec(output)?.[1];
    // Still serving: an unauthenticated request gets scopegate's 401 through Envoy.
    expect((await fetch(`${envoyUrl}/api/inventory/transactions`)).status).toBe(401);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(output.trimEnd().endsWith('Stopped.')).toBe(true);
    await expect(fetch(`${envoyUrl}/api/inventory/transactions`)).rejects.toThrow();
  });
});
