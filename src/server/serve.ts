// `scopegate serve` as a process: alone (one process serves every door and admin), or as one worker of
// `--workers N` (the doors only; the primary in workers.ts serves admin and passes signals on). Both drain on
// SIGTERM/SIGINT and exit 0; SIGHUP re-reads the policy.
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { ServeSettings } from '../config/settings.js';
import { Metrics } from '../telemetry/metrics.js';
import { listeningPolicies, PolicyLoadError, type Running, revisionsOf, startServer } from './app.js';
import { boundHeapGrowth } from './heap.js';
import { answerPrimary, leavePrimary, tellPrimary } from './workers.js';

export async function serveProcess(settings: ServeSettings, processLog: Logger): Promise<number> {
  const worker = cluster.isWorker;
  const log = worker ? processLog.child({ worker: cluster.worker?.id }) : processLog;
  const stopHeapWatch = settings.heapTuning
    ? boundHeapGrowth((percent, live) =>
        log.debug(
          { heap_growing_percent: percent, live_heap_mib: Math.round(live / 2 ** 20) },
          'heap growth',
        ),
      )
    : () => {};
  const metrics = new Metrics();
  let running: Running;
  try {
    running = await startServer(settings, log, metrics, {
      admin: !worker,
      ...(worker && cluster.worker && { worker: cluster.worker.id }),
    });
  } catch (err) {
    const policy = err instanceof PolicyLoadError;
    const message = (err as Error).message;
    if (worker) {
      await tellPrimary({ scopegate: 'failed', policy, message });
      leavePrimary();
    } else if (policy) console.error(message);
    else log.fatal({ err: { message } }, 'could not start');
    log.flush();
    stopHeapWatch();
    return 1;
  }
  const policies = revisionsOf(running.policies());
  if (worker) {
    answerPrimary(running, metrics);
    void tellPrimary({
      scopegate: 'listening',
      grpc: running.grpcAddress,
      ...frontAddresses(running),
      policies,
    });
  } else {
    // Scripts wait for this line to learn the bound ports, so it is written whatever the log level.
    log.child({}, { level: 'info' }).info(
      {
        grpc: running.grpcAddress,
        ...frontAddresses(running),
        admin: running.adminAddress,
        ...listeningPolicies(policies),
      },
      'listening',
    );
  }
  process.on('SIGHUP', () => void running.reload());
  return new Promise((resolveExit) => {
    const shutdown = (signal: string) => {
      log.info({ signal }, 'draining');
      void running.stop().then(() => {
        log.info('stopped');
        log.flush();
        stopHeapWatch();
        if (worker) leavePrimary();
        resolveExit(0);
      });
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
    // A worker whose primary is gone (killed, crashed) has no admin edge and no supervisor: drain and go.
    if (worker) process.once('disconnect', () => shutdown('primary gone'));
  });
}

/** The `listening` line's HTTP front doors, when served. */
function frontAddresses(running: Running): { http?: string; forward_auth?: string } {
  return {
    ...(running.httpAddress !== undefined && { http: running.httpAddress }),
    ...(running.forwardAuthAddress !== undefined && { forward_auth: running.forwardAuthAddress }),
  };
}
