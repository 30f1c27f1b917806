#!/usr/bin/env node
// The full resource-bound run of issue 7: the whole bad-input corpus (test/hardening/corpus.ts) replayed
// 10,000 times over real gRPC against one scopegate, with the same code, checks and printed report as the CI
// test (test/hardening/replay.test.ts), which only replays as many full passes as fit in ~20 s.
//
//   node bench/hardening-replay.js               # 10,000 passes
//   node bench/hardening-replay.js --passes 500  # fewer
//
// It runs the test file through vitest (the corpus and harness are TypeScript) with SCOPEGATE_REPLAY_PASSES
// set, and prints progress every 100 passes, then one `hardening replay: {…}` line: passes, calls, calls/s,
// longest event-loop stall, RSS at start (after one warm-up pass), peak and end.
//
// Measured on the 2-core dev container (Node 20, 256 vectors per pass, 8 calls in flight), 10,000 passes:
//   2,560,000 calls in 1,182 s (2,166 calls/s); no gRPC error; every vector kept its expected reason on every
//   pass; RSS 145 MiB after the warm-up pass, peak 287 MiB, 251 MiB at the end, -2 MiB over the second half
//   (flat: no leak); event loop p99 25 ms, but max 128.7 ms: one stall over 100 ms in 20 minutes, so that
//   run FAILED the 100 ms bound (the 20 s CI runs measure 50-55 ms). A 2,500-pass run (640,000 calls, 309 s)
//   reproduced it: max 128.7 ms, p99 26.5 ms, 9,154 GC pauses, the longest 78 ms. Timestamping stalls over
//   60 ms showed them beside GC pauses (one scavenge of 106 ms) and beside the JWKS refreshes the corpus's
//   unknown-kid vectors trigger once per 30 s cool-down; no single scopegate code path was pinned down.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { passes: { type: 'string', default: '10000' } } });
const passes = Math.min(Math.max(Number.parseInt(values.passes, 10) || 1, 1), 10_000);
const root = fileURLToPath(new URL('..', import.meta.url));
const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));

const child = spawn(
  process.execPath,
  [vitest, 'run', '--project', 'unit', 'test/hardening/replay.test.ts', '--reporter', 'verbose'],
  {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, SCOPEGATE_REPLAY_PASSES: String(passes) },
  },
);
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
