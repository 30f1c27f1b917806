// `npm run demo` tells the support thread truthfully: each step's status, challenge, reason and fix as a real
// Envoy + scopegate answered them, the calling workload denied on plaintext and let in over mTLS, then the
// counters; and --keep-running serves until Ctrl-C (the mTLS curl it printed works), then stops.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runDemo } from '../../src/dev/demo.js';
import { sendThrough } from '../../src/dev/stack.js';
import { skipWithoutOpenssl } from '../support/certs.js';
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
    // The calling workload: on plaintext there is none to go on; over mTLS with its certificate it gets in.
    expect(step(output, 9)).toMatch(/\$ curl -i http:\/\/127\.0\.0\.1:\d+\/api\/inventory\/reports\/stock\n/);
    expect(step(output, 9)).toMatch(/→ HTTP 403\n\s+reason: peer_missing — /);
    expect(step(output, 9)).toContain('fix: call this route from a workload in the mesh, over mTLS');
    if (skipWithoutOpenssl) expect(step(output, 10)).toContain('skipped: openssl not found');
    else {
      expect(step(output, 10)).toMatch(
        /\$ curl -i https:\/\/127\.0\.0\.1:\d+\/api\/inventory\/reports\/stock --cacert \S+\/mesh-ca\.crt --cert \S+\.crt --key \S+\.key\n/,
      );
      expect(step(output, 10)).toContain('→ HTTP 200');
      expect(step(output, 10)).toContain(
        'allowed: the upstream received x-scopegate-peer: spiffe://cluster.local/ns/reporting/sa/weekly-report, route stock_report',
      );
    }
    expect(output).toContain(
      '   scopegate_decisions_total{decision="deny",reason="peer_missing",route="",policy="inventory",transport="grpc"} 1',
    );
    expect(output).toContain(
      '   scopegate_decisions_total{decision="deny",reason="scope_missing",route="create_transaction",policy="inventory",transport="grpc"} 1',
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
    // The mTLS curl it printed works as printed: its URL and certificate files (read as curl would).
    const mtls = / \$ curl -i (https:\S+?)(\/api\S+) --cacert (\S+) --cert (\S+) --key (\S+)\n/.exec(output);
    if (!skipWithoutOpenssl) {
      const [, url, path, ca, cert, key] = mtls!;
      const tls = {
        ca: readFileSync(ca!, 'utf8'),
        cert: readFileSync(cert!, 'utf8'),
        key: readFileSync(key!, 'utf8'),
      };
      expect((await sendThrough(url!, { path: path!, tls })).status).toBe(200);
    }
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(output.trimEnd().endsWith('Stopped.')).toBe(true);
    await expect(fetch(`${envoyUrl}/api/inventory/transactions`)).rejects.toThrow();
    // The certificates go with everything else.
    if (mtls) expect(existsSync(mtls[3]!)).toBe(false);
  });
});
