// `scopegate serve`: load and compile the policy (a file, or a directory of them) before binding any port,
// start the gRPC and admin edges, swap each policy's revisions live (file watch, ConfigMap `..data` swaps,
// SIGHUP), and drain on SIGTERM (health NOT_SERVING → in-flight checks finish → exit).
import type { Logger } from 'pino';
import { DecisionCache } from '../cache/decisions.js';
import { TokenCache } from '../cache/tokens.js';
import { httpDoorsRefusal } from '../check/choose.js';
import type { Snapshot } from '../check/decide.js';
import { type DecisionLogSettings, formatHostPort, type ServeSettings } from '../config/settings.js';
import { Authenticator, KeyRegistry } from '../identity/index.js';
import { countByKind, diffPolicy } from '../policy/diff.js';
import { formatProblem } from '../policy/index.js';
import type { PolicySet } from '../policy/set.js';
import { openPolicySource, type PolicySourceEvents } from '../policy/source.js';
import type { CompiledPolicy, PolicyProblem } from '../policy/types.js';
import { defaultPolicyName } from '../policy/validate-match.js';
import { DecisionRecords, recordsPathFor } from '../telemetry/decision-records.js';
import type { Metrics } from '../telemetry/metrics.js';
import type { Tracing } from '../telemetry/otel.js';
import { createAdminServer, listenHttp, type Readiness } from './admin.js';
import { createGrpcServer, HealthStatus } from './grpc.js';
import { createHttpFront, type HttpFront } from './http-front.js';
import { CertificateFiles } from './tls.js';

export interface Running {
  readonly grpcAddress: string;
  /** The HTTP front doors' bound addresses; absent when off. */
  readonly httpAddress?: string;
  readonly forwardAuthAddress?: string;
  /** Empty when this process serves no admin edge (a worker of `serve --workers N`). */
  readonly adminAddress: string;
  /** The policies served now, as a Check chooses from them. */
  readonly current: () => PolicySet<Snapshot>;
  /** Every policy served now, in file-name order. */
  policies(): CompiledPolicy[];
  /**
   * Why this process is not ready (/readyz): policy files not loaded since start-up, issuers without usable
   * keys; and what is worth saying although it is ready (files refused later, rejected edits).
   */
  readiness(): Readiness;
  /**
   * Re-reads the policies now (SIGHUP; they are also watched). False when some file cannot be served: its
   * last good revision (if any) keeps serving, and every other file is served as it is.
   */
  reload(): Promise<boolean>;
  /** Health NOT_SERVING, wait for in-flight checks (bounded by drainSeconds), close everything. */
  stop(): Promise<void>;
}

export class PolicyLoadError extends Error {}

/** The debug line of a reload names this many changes at most (`scopegate diff` prints them all). */
const MAX_LOGGED_CHANGES = 500;

/** Each served policy's revision by name, as the `listening` line and a worker's hello say it. */
export function revisionsOf(policies: readonly CompiledPolicy[]): Record<string, string> {
  return Object.fromEntries(policies.map((p) => [p.name, p.revision]));
}

/** The `listening` line's policy fields: every policy's revision, and `policy_revision` when there is one. */
export function listeningPolicies(policies: Record<string, string>): {
  policies: Record<string, string>;
  policy_revision?: string;
} {
  const revisions = Object.values(policies);
  return { policies, ...(revisions.length === 1 && { policy_revision: revisions[0] }) };
}

/** The decision-record writer: one file per process (`PATH.<worker>` for a worker), or stdout. */
function decisionRecords(
  settings: DecisionLogSettings,
  worker: number | undefined,
  log: Logger,
  metrics: Metrics,
): DecisionRecords {
  const destination = recordsPathFor(settings.destination, worker);
  log.info(
    { decision_log: destination, allows_sampled_at: settings.allowRate },
    'recording decisions (every deny, a sample of allows)',
  );
  for (const result of ['written', 'dropped', 'failed'] as const) metrics.decisionRecords.inc({ result }, 0);
  return new DecisionRecords({
    ...settings,
    destination,
    log,
    count: (result, records) => metrics.decisionRecords.inc({ result }, records),
  });
}

export async function startServer(
  settings: ServeSettings,
  log: Logger,
  metrics: Metrics,
  options: { admin?: boolean; worker?: number } = {},
): Promise<Running> {
  // A failed start leaves nothing behind: what is opened adds how to close it here, and a step that fails
  // closes it all, last opened first, before its error goes on. Nothing is served yet, so nothing drains.
  const closers: Array<() => unknown> = [];
  const abandon = async (err: unknown): Promise<never> => {
    for (const close of closers.reverse()) {
      // A closer that fails must not hide why the start failed, nor keep the rest from closing.
      await Promise.resolve()
        .then(close)
        .catch(() => {});
    }
    throw err;
  };
  // Off: not even imported, so a server without tracing loads no OpenTelemetry module (README, "Tracing").
  const tracing: Tracing | undefined = settings.tracing
    ? await (await import('../telemetry/otel.js')).openTracing(settings.tracing, log)
    : undefined;
  if (tracing) closers.push(() => tracing.shutdown(Date.now()));
  // One key store per issuer, one verified-token cache and one decision cache, whatever the number of
  // policies and revisions: a policy edit does not make every token verify again, and memory is bounded by
  // the caches' sizes, not by the policies.
  const keys = new KeyRegistry({
    fetchTimeoutMs: settings.jwksTimeoutMs,
    onRefresh: (issuer, result) => metrics.jwksRefreshes.inc({ issuer, result }),
    // Fetches no Check started; one a Check starts is its span's child (identity/authenticate.ts, keyFetch).
    ...(tracing && { onFetch: tracing.jwksFetch }),
  });
  closers.push(() => keys.close());
  // A traced Check's span learns its cache results from decide() (check/decide.ts, CheckStatus).
  const onLookup = (cache: 'token' | 'decision', result: 'hit' | 'miss') =>
    metrics.recordCacheLookup(cache, result);
  const tokenCache = new TokenCache({ maxEntries: settings.tokenCacheSize, onLookup });
  const decisions = new DecisionCache({ maxEntries: settings.decisionCacheSize, onLookup });
  const issuersOf = (policies: readonly CompiledPolicy[]) => policies.flatMap((p) => p.issuers);

  // The policy's own name when it has served; else what its file would name it (a broken file has no name yet).
  const nameFor = (file: string, serving: CompiledPolicy | undefined) =>
    serving?.name ?? (file === settings.policy ? '' : defaultPolicyName(file));
  const loaded = (from: CompiledPolicy | undefined, to: CompiledPolicy) => {
    // A policy renamed by its `name:` leaves its old name's series behind.
    if (from !== undefined && from.name !== to.name) metrics.policyRemoved(from.name);
    metrics.policyServed(to.name, to.revision);
    metrics.policyReloads.inc({ policy: to.name, result: 'success' });
  };
  const refused = (file: string, problems: readonly PolicyProblem[], serving: CompiledPolicy | undefined) => {
    metrics.policyReloads.inc({ policy: nameFor(file, serving), result: 'error' });
    log.error(
      {
        policy: serving?.name,
        policy_file: file,
        problems: problems.map(formatProblem),
        policy_revision: serving?.revision,
      },
      serving ? 'policy change rejected; still serving its last good revision' : 'policy file not served',
    );
  };
  const events: PolicySourceEvents = {
    swapped: (from, to) => {
      loaded(from, to);
      if (from === undefined) {
        log.info({ policy: to.name, policy_revision: to.revision }, 'policy added');
        return;
      }
      // What the new revision means, not how its text changed: counts here, every change at debug.
      const changes = diffPolicy(from, to);
      metrics.recordPolicyChanges(to.name, changes);
      const revisions = { previous_revision: from.revision, policy_revision: to.revision };
      log.info({ policy: to.name, ...revisions, changes: countByKind(changes) }, 'policy reloaded');
      if (changes.length > 0 && log.isLevelEnabled('debug')) {
        log.debug(
          {
            policy: to.name,
            ...revisions,
            changes: changes.slice(0, MAX_LOGGED_CHANGES).map((c) => c.says),
            ...(changes.length > MAX_LOGGED_CHANGES && { more: changes.length - MAX_LOGGED_CHANGES }),
          },
          'policy diff',
        );
      }
    },
    rejected: refused,
    restored: (serving) =>
      log.info(
        { policy: serving.name, policy_revision: serving.revision },
        'policy file is back to the revision being served',
      ),
    removed: (policy) => {
      metrics.policyRemoved(policy.name);
      log.warn(
        { policy: policy.name, policy_revision: policy.revision },
        'policy file removed; its requests have no policy',
      );
    },
    watchFailed: (why) => log.warn({ error: why }, 'cannot watch the policy directory; polling it instead'),
  };

  // The HTTP front doors refuse every request of a set they cannot choose from (check/choose.ts): said when
  // that starts or changes, not on every Check.
  let saidRefusal: string | undefined;
  let served: (() => PolicySet<Snapshot>) | undefined;
  function sayHttpRefusal(): void {
    if (served === undefined || (settings.http === undefined && settings.forwardAuth === undefined)) return;
    const refusal = httpDoorsRefusal(served());
    if (refusal !== undefined && refusal !== saidRefusal)
      log.warn({ detail: refusal }, 'the HTTP front doors refuse every request of this policy set');
    saidRefusal = refusal;
  }

  const opened = await openPolicySource<Snapshot>({
    path: settings.policy,
    // Off the hot path, before the swap: new issuers get their keys, then the revision gets its authenticator.
    prepare: async (policy) => {
      for (const issuer of policy.issuers) keys.storeFor(issuer);
      await keys.start();
      return { policy, authenticator: new Authenticator(policy, keys, { tokenCache }), decisions };
    },
    // Stores no served policy uses are retired after the swap, so checks still on an old revision keep
    // refreshing until then.
    settled: (serving) => {
      keys.retainOnly(issuersOf(serving));
      sayHttpRefusal();
    },
    events,
  });
  if (!opened.ok) {
    metrics.policyReloads.inc({ policy: '', result: 'error' });
    return abandon(new PolicyLoadError(opened.problems.map(formatProblem).join('\n')));
  }
  const source = opened.source;
  closers.push(() => source.close());
  served = () => source.current();
  sayHttpRefusal();
  for (const { file } of opened.loaded.swapped) {
    const policy = source.policies().find((p) => p.source === file);
    if (policy) loaded(undefined, policy);
  }
  for (const { file, problems } of opened.loaded.rejected) refused(file, problems, undefined);
  const current = () => source.current();

  const records = settings.decisionLog && decisionRecords(settings.decisionLog, options.worker, log, metrics);
  if (records) closers.push(() => records.close());
  const health = new HealthStatus();
  const checkDeps = {
    current,
    metrics,
    log,
    denyHints: settings.denyHints,
    ...(tracing && { tracing }),
    ...(records && { records }),
  };
  const grpcServer = createGrpcServer(checkDeps, health);
  closers.push(() => grpcServer.destroy());
  // TLS (--tls-cert): one set of certificate files for every listener that takes Checks, kept current.
  const certificates =
    settings.tls && new CertificateFiles(settings.tls, (problem) => log.warn({ problem }, 'tls'));
  if (certificates) closers.push(() => certificates.close());
  const grpcPort = await grpcServer
    .listen(settings.listen.host, settings.listen.port, certificates)
    .catch(abandon);
  // The HTTP front doors: the same Check path, caches and records, each its own listener (shared by the
  // workers of `--workers N` as the gRPC port is: Node's cluster hands each connection to one worker).
  const fronts: HttpFront[] = [];
  const openFront = async (transport: 'http' | 'forward_auth', at: { host: string; port: number }) => {
    const front = createHttpFront(checkDeps, {
      transport,
      ...(transport === 'http' && { pathPrefix: settings.httpPathPrefix }),
      ...(certificates && { tls: certificates }),
    });
    fronts.push(front);
    // Even one that fails to listen is closed: closing is what stops it hearing the certificate files.
    closers.push(() => front.close(0));
    metrics.transportServed(transport);
    const bound = await listenHttp(front.server, at.host, at.port).catch(abandon);
    return formatHostPort(bound);
  };
  const httpAddress = settings.http && (await openFront('http', settings.http));
  const forwardAuthAddress = settings.forwardAuth && (await openFront('forward_auth', settings.forwardAuth));
  const readiness = (): Readiness => {
    const files = source.readiness();
    return {
      problems: [...files.problems, ...keys.problems(issuersOf(source.policies()))],
      notes: files.notes,
    };
  };
  const admin =
    (options.admin ?? true)
      ? createAdminServer({
          scrape: () => metrics.registry.metrics(),
          contentType: metrics.registry.contentType,
          readiness,
        })
      : undefined;
  const adminBound =
    admin && (await listenHttp(admin, settings.admin.host, settings.admin.port).catch(abandon));
  // Watched only once serving: a failed start leaves nothing behind. A change made since the first read is
  // still caught, by the first poll.
  source.watch();

  // Every reload path (SIGHUP, file events, polling) goes through the source's one serialised round.
  const reload = async (): Promise<boolean> => {
    const outcome = await source.reload();
    return outcome.closed !== true && outcome.rejected.length === 0;
  };

  let stopping: Promise<void> | undefined;
  function stop(): Promise<void> {
    stopping ??= (async () => {
      // All within the drain time: the doors drain until `drainBy`, and with tracing the spans still queued
      // are flushed in the rest, a share kept for it (a quarter of the drain time, at most 1 s).
      const drainMs = settings.drainSeconds * 1000;
      const deadline = Date.now() + drainMs;
      const drainBy = tracing ? deadline - Math.min(1000, drainMs / 4) : deadline;
      const left = () => Math.max(0, drainBy - Date.now());
      health.set('NOT_SERVING');
      health.endWatches();
      await source.close();
      // Every door at once. gRPC: GOAWAY on every connection, calls in flight finish, then the connections
      // close; the HTTP doors stop accepting and let requests in flight finish. Whatever is left is cut.
      const grpcDrained = new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          log.warn('drain timed out; closing remaining connections');
          grpcServer.destroy();
          resolve();
        }, left());
        void grpcServer.close().then(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await Promise.all([grpcDrained, ...fronts.map((front) => front.close(left()))]);
      if (admin) {
        admin.closeAllConnections();
        await new Promise<void>((resolve) => admin.close(() => resolve()));
      }
      keys.close();
      certificates?.close();
      await records?.close();
      await tracing?.shutdown(deadline);
    })();
    return stopping;
  }

  return {
    grpcAddress: formatHostPort({ host: settings.listen.host, port: grpcPort }),
    ...(httpAddress && { httpAddress }),
    ...(forwardAuthAddress && { forwardAuthAddress }),
    adminAddress: adminBound ? formatHostPort(adminBound) : '',
    current,
    policies: () => source.policies(),
    readiness,
    reload,
    stop,
  };
}
