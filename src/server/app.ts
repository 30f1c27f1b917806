// `scopegate serve`: load and compile the policy before binding any port, start the gRPC and admin edges,
// swap policy revisions live (file watch, ConfigMap `..data` swaps, SIGHUP), and drain on SIGTERM (health
// NOT_SERVING → in-flight checks finish → exit).
import type { Logger } from 'pino';
import { DecisionCache } from '../cache/decisions.js';
import { TokenCache } from '../cache/tokens.js';
import type { Snapshot } from '../check/decide.js';
import { formatHostPort, type ServeSettings } from '../config/settings.js';
import { Authenticator, KeyRegistry } from '../identity/index.js';
import { formatProblem } from '../policy/index.js';
import { openPolicySource } from '../policy/source.js';
import type { CompiledPolicy } from '../policy/types.js';
import type { Metrics } from '../telemetry/metrics.js';
import { createAdminServer, listenHttp } from './admin.js';
import { bindGrpc, createGrpcServer, HealthStatus } from './grpc.js';

export interface Running {
  readonly grpcAddress: string;
  /** Empty when this process serves no admin edge (a worker of `serve --workers N`). */
  readonly adminAddress: string;
  readonly current: () => Snapshot;
  /** Why this process is not ready (/readyz): issuers without usable keys. Empty when ready. */
  problems(): string[];
  /**
   * Re-reads the policy file now (SIGHUP; the file is also watched). False when the file cannot be served:
   * the last good revision keeps serving.
   */
  reload(): Promise<boolean>;
  /** Health NOT_SERVING, wait for in-flight checks (bounded by drainSeconds), close everything. */
  stop(): Promise<void>;
}

export class PolicyLoadError extends Error {}

export async function startServer(
  settings: ServeSettings,
  log: Logger,
  metrics: Metrics,
  options: { admin?: boolean } = {},
): Promise<Running> {
  const keys = new KeyRegistry({
    fetchTimeoutMs: settings.jwksTimeoutMs,
    onRefresh: (issuer, result) => metrics.jwksRefreshes.inc({ issuer, result }),
  });
  // One verified-token cache for every revision: a policy edit does not make every token verify again.
  const tokenCache = new TokenCache({
    maxEntries: settings.tokenCacheSize,
    onLookup: (cache, result) => metrics.recordCacheLookup(cache, result),
  });
  const build = (policy: CompiledPolicy): Snapshot => ({
    policy,
    authenticator: new Authenticator(policy, keys, { tokenCache }),
    decisions: new DecisionCache({
      maxEntries: settings.decisionCacheSize,
      onLookup: (cache, result) => metrics.recordCacheLookup(cache, result),
    }),
  });

  const opened = await openPolicySource<Snapshot>({
    file: settings.policy,
    // Off the hot path, before the swap: new issuers get their keys, then the revision gets its authenticator.
    // Stores only the old revision uses are retired after the swap, so checks still on it keep refreshing.
    prepare: async (policy) => {
      for (const issuer of policy.issuers) keys.storeFor(issuer);
      await keys.start();
      return build(policy);
    },
    events: {
      swapped: (from, to) => {
        keys.retainOnly(to.issuers);
        metrics.policyReloads.inc({ result: 'success' });
        metrics.setRevision(to.revision);
        log.info({ previous_revision: from.revision, policy_revision: to.revision }, 'policy reloaded');
      },
      rejected: (problems, serving) => {
        metrics.policyReloads.inc({ result: 'error' });
        log.error(
          { problems: problems.map(formatProblem), policy_revision: serving.revision },
          'policy reload rejected; still serving the last good revision',
        );
      },
      restored: (serving) =>
        log.info({ policy_revision: serving.revision }, 'policy file is back to the revision being served'),
      watchFailed: (why) => log.warn({ error: why }, 'cannot watch the policy directory; polling it instead'),
    },
  });
  metrics.policyReloads.inc({ result: opened.ok ? 'success' : 'error' });
  if (!opened.ok) throw new PolicyLoadError(opened.problems.map(formatProblem).join('\n'));
  const source = opened.source;
  metrics.setRevision(source.policy().revision);
  const current = () => source.current();

  const health = new HealthStatus();
  const grpcServer = createGrpcServer({ current, metrics, log, denyHints: settings.denyHints }, health);
  const grpcPort = await bindGrpc(grpcServer, formatHostPort(settings.listen));
  const problems = () => keys.problems(source.policy().issuers);
  const admin =
    (options.admin ?? true)
      ? createAdminServer({
          scrape: () => metrics.registry.metrics(),
          contentType: metrics.registry.contentType,
          problems,
        })
      : undefined;
  const adminBound = admin && (await listenHttp(admin, settings.admin.host, settings.admin.port));
  // Watched only once serving: a failed start leaves nothing behind. A change made since the first read is
  // still caught, by the first poll.
  source.watch();

  // Every reload path (SIGHUP, file events, polling) goes through the source's one serialised reload.
  const reload = async (): Promise<boolean> => {
    const outcome = await source.reload();
    return outcome.status === 'swapped' || outcome.status === 'unchanged';
  };

  let stopping: Promise<void> | undefined;
  function stop(): Promise<void> {
    stopping ??= (async () => {
      health.set('NOT_SERVING');
      health.endWatches();
      await source.close();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          log.warn('drain timed out; closing remaining connections');
          grpcServer.forceShutdown();
          resolve();
        }, settings.drainSeconds * 1000);
        grpcServer.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      if (admin) {
        admin.closeAllConnections();
        await new Promise<void>((resolve) => admin.close(() => resolve()));
      }
      keys.close();
    })();
    return stopping;
  }

  return {
    grpcAddress: formatHostPort({ host: settings.listen.host, port: grpcPort }),
    adminAddress: adminBound ? formatHostPort(adminBound) : '',
    current,
    problems,
    reload,
    stop,
  };
}
