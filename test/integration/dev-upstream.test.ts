// The inventory stand-in as a user starts it: `scopegate dev-upstream` prints its listening line, serves, and
// exits 0 on SIGTERM; a malformed --listen is a usage error. What it answers is test/unit/dev/upstream.test.ts.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BIN, ROOT } from '../support/process.js';
import { spawnListening } from './dev-spawn.js';

describe('scopegate dev-upstream (the real binary)', () => {
  it('prints its listening line, serves, and exits 0 on SIGTERM', async () => {
    const { child, listening, exited } = await spawnListening(['dev-upstream', '--listen', '127.0.0.1:0']);
    try {
      expect(listening.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const health = await fetch(`${listening.url}/healthz`);
      expect(health.status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('a malformed --listen is a usage error (exit 2)', async () => {
    const child = spawn(process.execPath, [BIN, 'dev-upstream', '--listen', 'nowhere'], { cwd: ROOT });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
  });
});
