// `scopegate serve` as one process, run in this one: the exit code it resolves with, the one `listening` line
// scripts wait for (written whatever the log level), SIGHUP re-reading the policy and SIGTERM draining to exit
// 0. Signals are delivered as process events, so nothing but serveProcess's own listeners hears them.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { serveSettings } from '../../../src/config/settings.js';
import { serveProcess } from '../../../src/server/serve.js';
import { captureLog } from '../../support/logs.js';
import { examplePolicyText } from '../../support/policies.js';

const SIGNALS = ['SIGHUP', 'SIGTERM', 'SIGINT'] as const;
let before: Map<NodeJS.Signals, NodeJS.SignalsListener[]>;
beforeEach(() => {
  before = new Map(SIGNALS.map((signal) => [signal, process.listeners(signal)]));
});
// serveProcess listens for signals for the life of a process; this process outlives it.
afterEach(() => {
  for (const signal of SIGNALS)
    for (const listener of process.listeners(signal))
      if (!before.get(signal)!.includes(listener)) process.off(signal, listener);
  vi.restoreAllMocks();
});

function policyFile(text = examplePolicyText()): string {
  const file = join(mkdtempSync(join(tmpdir(), 'scopegate-serve-')), 'policy.yaml');
  writeFileSync(file, text);
  return file;
}

const settingsFor = (file: string, admin = '127.0.0.1:0') =>
  serveSettings(['--policy', file, '--listen', '127.0.0.1:0', '--admin', admin, '--heap-tuning', 'off'], {});

async function until<T>(read: () => T | undefined | Promise<T | undefined>, what: string): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const value = await read();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('serveProcess', () => {
  it('a broken policy: exit 1, each problem on stderr as FILE:LINE:COL, no listening line', async () => {
    const errors: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((text: string) => void errors.push(text));
    const file = policyFile('version: 1\nroutes: [');
    const { log, lines } = captureLog('info');
    expect(await serveProcess(settingsFor(file), log)).toBe(1);
    expect(errors.join('\n')).toMatch(new RegExp(`^${file}:\\d+:\\d+: `));
    expect(lines.filter((line) => line.msg === 'listening')).toEqual([]);
  });

  it('a start that fails for another reason (the admin port is taken): exit 1, logged as fatal', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = taken.address() as { port: number };
      const { log, lines } = captureLog('info');
      expect(await serveProcess(settingsFor(policyFile(), `127.0.0.1:${port}`), log)).toBe(1);
      expect(lines).toContainEqual(
        expect.objectContaining({
          level: 'fatal',
          msg: 'could not start',
          err: expect.objectContaining({ message: expect.stringContaining('EADDRINUSE') }),
        }),
      );
    } finally {
      taken.close();
    }
  });

  it('says where it listens even at log level error, reloads on SIGHUP, drains on SIGTERM and exits 0', async () => {
    const file = policyFile();
    const { log, lines } = captureLog('error');
    const exited = serveProcess(settingsFor(file), log);
    const listening = await until(() => lines.find((line) => line.msg === 'listening'), 'the listening line');
    expect(listening).toMatchObject({
      level: 'info',
      grpc: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      admin: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
      policy_revision: expect.stringMatching(/^[0-9a-f]{12}$/),
      policies: { inventory: expect.stringMatching(/^[0-9a-f]{12}$/) },
    });
    const metrics = async () => (await fetch(`http://${listening.admin}/metrics`)).text();
    expect(await metrics()).toContain(
      `scopegate_policy_revision_info{policy="inventory",revision="${listening.policy_revision}"} 1`,
    );

    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace('locations: [WH01, WH02, "EU-*"]', 'locations: [WH01, WH02, WH03]'),
    );
    process.emit('SIGHUP', 'SIGHUP');
    await until(
      async () => ((await metrics()).includes('result="success"} 2') ? true : undefined),
      'the reload',
    );
    expect(await metrics()).not.toContain(`revision="${listening.policy_revision}"`);

    process.emit('SIGTERM', 'SIGTERM');
    expect(await exited).toBe(0);
    await expect(fetch(`http://${listening.admin}/healthz`)).rejects.toThrow();
    // Only the listening line got past level error: draining and stopping are info.
    expect(lines.map((line) => line.msg)).toEqual(['listening']);
  });
});
