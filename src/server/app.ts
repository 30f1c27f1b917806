// `scopegate serve`: load and compile the policy before binding any port, start the gRPC and admin edges,
// swap policy revisions on SIGHUP, and drain on SIGTERM (health NOT_SERVING → in-flight checks finish → exit).
import type { Logger } from 'pino';
import { formatHostPort, type ServeSettings } from '../config/settings.js';
import { Authenticator, KeyRegistry } from '../identity/index.js';
import type { Snapshot } from '../pipeline.js';
import { formatProblem, loadPolicyFile } from '../policy/index.js';
import type { CompiledPolicy } from '../policy/types.js';
import type { Metrics } from '../telemetry/metrics.js';
import { createAdminServer, listenHttp } from './admin.js';
import { bindGrpc, createGrpcServer, HealthStatus } from './grpc.js';

export interface Running {
  readonly grpcAddress: string;
  readonly adminAddress: string;
  readonly current: () => Snapshot;
  /** Re-reads the policy file; a broken file keeps the last good revision serving. */
  reload(): Promise<boolean>;
  /** Health NOT_SERVING, wait for in-flight checks (bounded by drainSeconds), close everything. */
  stop(): Promise<void>;
}

export class PolicyLoadError extends Error {}

export async function startServer(settings: ServeSettings, log: Logger, metrics: Metrics): Promise<Running> {
  const keys = new KeyRegistry({
    fetchTimeoutMs: settings.jwksTimeoutMs,
    onRefresh: (issuer, result) => metrics.jwksRefreshes.inc({ issuer, result }),
  });
  const build = (policy: CompiledPolicy): Snapshot => ({
    policy,
    authenticator: new Authenticator(policy, keys, {
      tokenCacheSize: settings.tokenCacheSize,
      onCacheLookup: (cache, result) => metrics.cacheLookups.inc({ cache, result }),
    }),
  });

  const first = await loadPolicyFile(settings.policy);
  metrics.policyReloads.inc({ result: first.ok ? 'success' : 'error' });
  if (!first.ok) throw new PolicyLoadError(first.problems.map(formatProblem).join('\n'));
  let snapshot = build(first.policy);
  await keys.start(first.policy.issuers);
  metrics.setRevision(first.policy.revision);
  const current = () => snapshot;

  const health = new HealthStatus();
  const grpcServer = createGrpcServer({ current, metrics, log }, health);
  const grpcPort = await bindGrpc(grpcServer, formatHostPort(settings.listen));
  const admin = createAdminServer(metrics, {
    problems: () => keys.problems(snapshot.policy.issuers),
  });
  const adminBound = await listenHttp(admin, settings.admin.host, settings.admin.port);

  // Reloads run one at a time, in order: two quick SIGHUPs must not let an older read win over a newer one.
  let reloads: Promise<boolean> = Promise.resolve(true);
  function reload(): Promise<boolean> {
    reloads = reloads.then(reloadNow, reloadNow);
    return reloads;
  }

  async function reloadNow(): Promise<boolean> {
    const next = await loadPolicyFile(settings.policy);
    metrics.policyReloads.inc({ result: next.ok ? 'success' : 'error' });
    if (!next.ok) {
      log.error(
        { problems: next.problems.map(formatProblem) },
        'policy reload rejected; still serving the last good revision',
      );
      return false;
    }
    if (next.policy.revision === snapshot.policy.revision) return true;
    await keys.start(next.policy.issuers);
    snapshot = build(next.policy);
    metrics.setRevision(next.policy.revision);
    log.info({ policy_revision: next.policy.revision }, 'policy reloaded');
    return true;
  }

  let stopping: Promise<void> | undefined;
  function stop(): Promise<void> {
    stopping ??= (async () => {
      health.set('NOT_SERVING');
      health.endWatches();
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
      admin.closeAllConnections();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
      keys.close();
    })();
    return stopping;
  }

  return {
    grpcAddress: formatHostPort({ host: settings.listen.host, port: grpcPort }),
    adminAddress: formatHostPort(adminBound),
    current,
    reload,
    stop,
  };
}
