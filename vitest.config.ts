import { defineConfig } from 'vitest/config';

// Two projects, both run by `npm test`: `unit` (unit tests: test/unit mirrors src/ and test/bin mirrors bin/;
// integration tests over real gRPC and HTTP; hardening; deploy checks) and `e2e` (a real Envoy, nginx or Caddy
// in front of scopegate, the inventory upstream and the dev issuer; needs `bash scripts/install-envoy.sh` and
// `bash scripts/install-proxies.sh`, and fails rather than skips under CI=true when one is missing).
export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: [
            'test/unit/**/*.test.ts',
            'test/bin/**/*.test.ts',
            'test/integration/**/*.test.ts',
            'test/hardening/**/*.test.ts',
            'test/deploy/**/*.test.ts',
          ],
        },
      },
      {
        extends: true,
        // Each file starts its own Envoy; starting several at once on a small CI machine only slows them all.
        test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], testTimeout: 30_000, hookTimeout: 60_000 },
      },
    ],
  },
});
