// `serve --workers N`: N worker processes answer Check on each door's one port (gRPC, --http, --forward-auth).
// Node's cluster module accepts in the primary and hands each new connection to the next worker, so every
// proxy (or Envoy worker thread) connection is served by one worker and the load spreads by connection. The
// primary only supervises: it serves the admin edge (metrics aggregated across workers, ready only when every
// worker is), passes SIGHUP and SIGTERM on, and replaces a worker that dies. Each worker watches the policy
// file itself, so a change reaches all of them without the primary in the path.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, Registry } from 'prom-client';
import { formatHostPort, type ServeSettings } from '../config/settings.js';
import type { Metrics } from '../telemetry/metrics.js';
import { createAdminServer, listenHttp, type Readiness } from './admin.js';
import { listeningPolicies, type Running } from './app.js';

type Question = 'metrics' | 'readiness';
type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[];

/** Primary → worker. */
interface Ask {
  readonly scopegate: 'ask';
  readonly id: number;
  readonly question: Question;
}

/** Worker → primary. */
export type WorkerMessage =
  | {
      readonly scopegate: 'listening';
      readonly grpc: string;
      readonly http?: string;
      readonly forward_auth?: string;
      readonly policies: Record<string, string>;
    }
  | { readonly scopegate: 'failed'; readonly policy: boolean; readonly message: string }
  | { readonly scopegate: 'answer'; readonly id: number; readonly answer: unknown };

/** How long the primary waits for a worker's metrics or readiness before calling it unresponsive. */
const ANSWER_TIMEOUT_MS = 2_000;
/** A replacement for a dead worker starts after 1 s, doubling up to 30 s while replacements keep dying. */
const RESTART_DELAY_MS = { first: 1_000, max: 30_000, healthyAfter: 60_000 };

export function tellPrimary(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send?.(message, undefined, {}, () => resolve())) resolve();
  });
}

/** A worker's last act: close the IPC channel, which otherwise keeps its event loop alive. */
export function leavePrimary(): void {
  if (process.connected) process.disconnect();
}

/** In a worker: answer the primary's questions (metrics for /metrics, readiness for /readyz). */
export function answerPrimary(running: Running, metrics: Metrics): void {
  process.on('message', (message: Partial<Ask>) => {
    if (message?.scopegate !== 'ask' || typeof message.id !== 'number') return;
    const id = message.id;
    const answer: Promise<unknown> =
      message.question === 'metrics'
        ? metrics.registry.getMetricsAsJSON()
        : Promise.resolve(running.readiness());
    answer.then(
      (value) => void tellPrimary({ scopegate: 'answer', id, answer: value }),
      () => void tellPrimary({ scopegate: 'answer', id, answer: null }),
    );
  });
}

/** In the primary: start the workers, serve admin, supervise until SIGTERM/SIGINT. Returns the exit code. */
export async function superviseWorkers(settings: ServeSettings, log: Logger): Promise<number> {
  const wanted = settings.workers;
  const listening = new Map<number, string>(); // worker id → gRPC address, once it serves
  const questions = new Map<
    number,
    { readonly worker: number; readonly settle: (answer: unknown) => void }
  >();
  let nextQuestion = 0;
  let stopping = false;
  let restartDelay = RESTART_DELAY_MS.first;
  let lastRestart = 0;

  const ask = (worker: Worker, question: Question): Promise<unknown> =>
    new Promise((resolve) => {
      const id = nextQuestion++;
      const timer = setTimeout(() => settle(undefined), ANSWER_TIMEOUT_MS);
      function settle(answer: unknown) {
        clearTimeout(timer);
        questions.delete(id);
        resolve(answer);
      }
      questions.set(id, { worker: worker.id, settle });
      if (!worker.isConnected()) settle(undefined);
      // A worker may die between the check and the send: its channel error is an unanswered question.
      else
        worker.send(
          { scopegate: 'ask', id, question } satisfies Ask,
          undefined,
          (err) => err && settle(undefined),
        );
    });
  const serving = () =>
    Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w && listening.has(w.id));

  // Startup: every worker listening, or the first failure (a broken policy fails them all alike).
  let up = false;
  const started = new Promise<Extract<WorkerMessage, { scopegate: 'listening' }>>((resolve, reject) => {
    cluster.on('message', (worker, message: WorkerMessage) => {
      if (message?.scopegate === 'answer') questions.get(message.id)?.settle(message.answer);
      else if (message?.scopegate === 'listening') {
        listening.set(worker.id, message.grpc);
        log.debug({ worker: worker.id, grpc: message.grpc }, 'worker listening');
        if (listening.size === wanted && !up) {
          up = true;
          resolve(message);
        }
      } else if (message?.scopegate === 'failed') {
        if (up)
          log.error({ worker: worker.id, error: message.message }, 'replacement worker could not start');
        else reject(message);
      }
    });
    cluster.on('exit', (worker, code, signal) => {
      listening.delete(worker.id);
      // Its unanswered questions get no answer: say so now, not after the timeout.
      for (const question of questions.values())
        if (question.worker === worker.id) question.settle(undefined);
      if (stopping) return;
      if (!up) {
        reject({
          scopegate: 'failed',
          policy: false,
          message: `a worker exited (${signal ?? code}) while starting`,
        });
        return;
      }
      // The others keep serving; a replacement follows, backing off while replacements keep dying (say the
      // policy file broke since the last good load: a new worker cannot start from it until it is fixed).
      const now = Date.now();
      restartDelay =
        now - lastRestart > RESTART_DELAY_MS.healthyAfter
          ? RESTART_DELAY_MS.first
          : Math.min(restartDelay * 2, RESTART_DELAY_MS.max);
      lastRestart = now;
      log.error(
        { worker: worker.id, code, signal, restart_in_ms: restartDelay },
        'worker exited; replacing it',
      );
      setTimeout(() => stopping || cluster.fork(), restartDelay).unref();
    });
  });
  // A worker's IPC channel can fail as it dies; unheard, that 'error' event would end the primary too.
  cluster.on('fork', (worker) =>
    worker.on('error', (err: Error) =>
      log.warn({ worker: worker.id, error: err.message }, 'worker channel error'),
    ),
  );
  for (let i = 0; i < wanted; i++) cluster.fork();

  let first: Extract<WorkerMessage, { scopegate: 'listening' }>;
  try {
    first = await started;
  } catch (failure) {
    const { policy, message } = failure as Extract<WorkerMessage, { scopegate: 'failed' }>;
    await stopWorkers(settings.drainSeconds);
    if (policy) console.error(message);
    else log.fatal({ err: { message } }, 'could not start');
    log.flush();
    return 1;
  }

  const admin = createAdminServer({
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
    scrape: async () => {
      const answers = await Promise.all(serving().map((w) => ask(w, 'metrics')));
      // A missing worker would look like counters going backwards: fail the scrape instead.
      if (answers.some((a) => !Array.isArray(a))) throw new Error('a worker did not answer');
      return AggregatorRegistry.aggregate(answers as WorkerMetrics[]).metrics();
    },
    readiness: async () => {
      const workers = serving();
      const problems =
        workers.length < wanted ? [`${wanted - workers.length} of ${wanted} workers not serving`] : [];
      const notes: string[] = [];
      for (const [i, answer] of (await Promise.all(workers.map((w) => ask(w, 'readiness')))).entries()) {
        const said = answer as Partial<Readiness> | null;
        if (Array.isArray(said?.problems) && Array.isArray(said.notes)) {
          problems.push(...said.problems);
          notes.push(...said.notes);
        } else problems.push(`worker ${workers[i]!.id} did not answer`);
      }
      return { problems: [...new Set(problems)], notes: [...new Set(notes)] };
    },
  });
  const adminBound = await listenHttp(admin, settings.admin.host, settings.admin.port);
  log.child({}, { level: 'info' }).info(
    {
      grpc: first.grpc,
      ...(first.http !== undefined && { http: first.http }),
      ...(first.forward_auth !== undefined && { forward_auth: first.forward_auth }),
      admin: formatHostPort(adminBound),
      ...listeningPolicies(first.policies),
      workers: wanted,
    },
    'listening',
  );

  process.on('SIGHUP', () => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP');
  });
  return new Promise((resolveExit) => {
    const shutdown = (signal: string) => {
      if (stopping) return;
      log.info({ signal }, 'draining');
      void stopWorkers(settings.drainSeconds).then(() => {
        admin.closeAllConnections();
        admin.close();
        log.info('stopped');
        log.flush();
        resolveExit(0);
      });
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });

  /** SIGTERM every worker (each drains its own checks), SIGKILL any still there after the drain time. */
  function stopWorkers(drainSeconds: number): Promise<void> {
    stopping = true;
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    return Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.isDead()) return resolve();
            const kill = setTimeout(() => worker.process.kill('SIGKILL'), (drainSeconds + 5) * 1000);
            worker.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            worker.process.kill('SIGTERM');
          }),
      ),
    ).then(() => undefined);
  }
}
