// A stand-in worker of `serve --workers N` for workers.test.ts: the real answerPrimary, tellPrimary and
// leavePrimary (from dist/, built from src/ before the tests), with real metrics, in a real child process.
// Its readiness problems come from SCOPEGATE_TEST_PROBLEMS (JSON). Told "leave", it closes its IPC channel and has
// nothing left to keep it running.
import { answerPrimary, leavePrimary, tellPrimary } from '../../../dist/server/workers.js';
import { Metrics } from '../../../dist/telemetry/metrics.js';

const metrics = new Metrics({ defaultMetrics: false });
metrics.recordDecision(
  {
    reason: 'allowed',
    detail: 'allowed',
    policy: 'inventory',
    revision: 'rev-1',
    route: 'list_transactions',
  },
  'allow',
  0.001,
);
const problems = JSON.parse(process.env.SCOPEGATE_TEST_PROBLEMS ?? '[]');
answerPrimary({ readiness: () => ({ problems, notes: [] }) }, metrics);
process.on('message', (message) => {
  if (message === 'leave') leavePrimary();
});
await tellPrimary({ scopegate: 'listening', grpc: '127.0.0.1:9191', policies: { inventory: 'rev-1' } });
// Without a primary (no IPC channel), telling is a no-op that still resolves, and leaving is one too.
if (process.send === undefined) {
  leavePrimary();
  console.log('told no one');
}
