// Runs a real Envoy on loopback for the demo and the e2e tests: finds the binary, turns a shipped config
// (envoy/*.yaml, the files docker-compose mounts) into a local one by rewriting only addresses and ports, and
// starts Envoy on it, waiting until it is really serving and collecting its JSON access log.
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

/** Where `scripts/install-envoy.sh` puts Envoy, relative to the repository root. */
export const VENV_ENVOY = join('.venv', 'bin', 'envoy');
export const INSTALL_HINT = 'run `bash scripts/install-envoy.sh` (installs Envoy 1.40.0 into .venv/)';

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The repository root: the nearest folder above this file with a package.json (works from src/ and dist/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('no package.json above src/dev/envoy');
    dir = parent;
  }
  return dir;
}

/**
 * The Envoy binary to run: `ENVOY_BIN` when set (taken as given, so a wrong path fails loudly at spawn rather
 * than silently falling back), then the repo's `.venv/bin/envoy`, then `envoy` on the PATH.
 */
export function findEnvoy(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.ENVOY_BIN) return env.ENVOY_BIN;
  const venv = join(repoRoot(), VENV_ENVOY);
  if (isExecutable(venv)) return venv;
  return onPath('envoy', env);
}

/** The first executable called `name` in the PATH's folders. */
export function onPath(name: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** Loopback ports for the clusters a shipped config names; `listener` and `admin` default to 0 (any free one). */
export interface LocalEnvoyPorts {
  readonly scopegate: number;
  /** Required when the config has the `scopegate_http` cluster (envoy-http.yaml): scopegate's `--http` door. */
  readonly scopegateHttp?: number;
  readonly inventory: number;
  /** Required when the config has the `dev_issuer` cluster (envoy-jwt-authn.yaml). */
  readonly devIssuer?: number;
  /** Required when the config has the `otel_collector` cluster (envoy-tracing.yaml): an OTLP/gRPC receiver. */
  readonly otelCollector?: number;
  readonly listener?: number;
  readonly admin?: number;
}

/**
 * Where a config whose listener serves TLS (envoy-mtls.yaml) finds its certificate files on this machine:
 * the listener's certificate chain and key, and the CA it validates client certificates against.
 */
export interface LocalTlsFiles {
  readonly certificateChain: string;
  readonly privateKey: string;
  readonly trustedCa: string;
}

const LOOPBACK = '127.0.0.1';

type Node = Record<string, unknown>;

function object(value: unknown, where: string): Node {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`Envoy config: ${where} is not an object`);
  }
  return value as Node;
}

function list(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`Envoy config: ${where} is not a list`);
  return value;
}

/** Points `{ socket_address: {…} }` at 127.0.0.1:port, keeping every other field it has. */
function pointAt(address: unknown, port: number, where: string): void {
  const socket = object(object(address, where).socket_address, `${where}.socket_address`);
  socket.address = LOOPBACK;
  socket.port_value = port;
}

/** Points a listener's TLS context (DownstreamTlsContext) at local files, keeping every other field it has. */
function useTlsFiles(context: Node, tls: LocalTlsFiles, where: string): void {
  const common = object(context.common_tls_context, `${where}.common_tls_context`);
  list(common.tls_certificates, `${where}.tls_certificates`).forEach((entry, i) => {
    const certificate = object(entry, `${where}.tls_certificates[${i}]`);
    certificate.certificate_chain = { filename: tls.certificateChain };
    certificate.private_key = { filename: tls.privateKey };
  });
  const validation = object(common.validation_context, `${where}.validation_context`);
  validation.trusted_ca = { filename: tls.trustedCa };
}

const DOWNSTREAM_TLS_CONTEXT =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';

/**
 * A shipped Envoy config made runnable on this machine: listeners and admin on 127.0.0.1 (port 0 unless
 * given), and the `scopegate`, `scopegate_http`, `inventory`, `dev_issuer` and `otel_collector` clusters turned from compose
 * hostnames (STRICT_DNS) into STATIC 127.0.0.1 endpoints; a listener that serves TLS gets the certificate
 * files `tls` names. Nothing else changes, so the tests exercise the same filters, timeouts and limits that
 * docker-compose runs. A cluster this function does not know is an error: a config that grew a new upstream
 * must say where it lives locally, not silently point at a compose hostname. So is a TLS listener without
 * `tls`, and `tls` for a config that serves none.
 */
export function localEnvoyConfig(file: string, ports: LocalEnvoyPorts, tls?: LocalTlsFiles): string {
  const config = object(parse(readFileSync(file, 'utf8')), file);
  const clusterPorts: Record<string, number | undefined> = {
    scopegate: ports.scopegate,
    scopegate_http: ports.scopegateHttp,
    inventory: ports.inventory,
    dev_issuer: ports.devIssuer,
    otel_collector: ports.otelCollector,
  };
  const resources = object(config.static_resources, 'static_resources');
  let servesTls = false;
  list(resources.listeners, 'static_resources.listeners').forEach((listener, i) => {
    const where = `static_resources.listeners[${i}]`;
    pointAt(object(listener, where).address, ports.listener ?? 0, `${where}.address`);
    list(object(listener, where).filter_chains, `${where}.filter_chains`).forEach((chain, c) => {
      const socket = object(chain, `${where}.filter_chains[${c}]`).transport_socket;
      if (socket === undefined) return;
      const context = object(object(socket, `${where} transport_socket`).typed_config, `${where} TLS`);
      if (context['@type'] !== DOWNSTREAM_TLS_CONTEXT) return;
      if (tls === undefined)
        throw new Error(`Envoy config ${file}: listener ${i} serves TLS; no local certificate files given`);
      useTlsFiles(context, tls, `${where}.filter_chains[${c}] TLS`);
      servesTls = true;
    });
  });
  if (tls !== undefined && !servesTls)
    throw new Error(`Envoy config ${file}: certificate files given, but no listener serves TLS`);
  list(resources.clusters, 'static_resources.clusters').forEach((entry, i) => {
    const cluster = object(entry, `static_resources.clusters[${i}]`);
    const name = String(cluster.name);
    const port = clusterPorts[name];
    if (port === undefined)
      throw new Error(`Envoy config ${file}: no local port given for cluster "${name}"`);
    cluster.type = 'STATIC';
    const assignment = object(cluster.load_assignment, `cluster ${name}.load_assignment`);
    list(assignment.endpoints, `cluster ${name} endpoints`).forEach((group, g) => {
      list(
        object(group, `cluster ${name} endpoints[${g}]`).lb_endpoints,
        `cluster ${name} lb_endpoints`,
      ).forEach((lb, e) => {
        const where = `cluster ${name} endpoint ${g}.${e}`;
        pointAt(object(object(lb, where).endpoint, where).address, port, `${where}.address`);
      });
    });
  });
  pointAt(object(config.admin, 'admin').address, ports.admin ?? 0, 'admin.address');
  return stringify(config);
}

/**
 * The config with `values` as a static runtime layer (`layered_runtime`), the shipped file unchanged: a test's
 * way to set what Envoy reads from its runtime, such as a tracer's `min_flush_spans`. A config that already has
 * a layered runtime is an error (this would replace it).
 */
export function withRuntime(configText: string, values: Record<string, unknown>): string {
  const config = object(parse(configText), 'config');
  if (config.layered_runtime !== undefined) throw new Error('Envoy config: it already has a layered_runtime');
  config.layered_runtime = { layers: [{ name: 'test_runtime', static_layer: values }] };
  return stringify(config);
}

export interface StartEnvoyOptions {
  readonly bin: string;
  /** The whole config (YAML or JSON), usually from `localEnvoyConfig`. */
  readonly configText: string;
  /** Envoy's own log level (stderr). Default `warn`. */
  readonly logLevel?: string;
  /** How long to wait for Envoy to serve. Default 20 s (a cold start on a slow CI machine). */
  readonly readyTimeoutMs?: number;
  /** The first listener serves TLS (envoy-mtls.yaml): `url` is `https://…`. */
  readonly tls?: boolean;
}

export interface RunningEnvoy {
  /** `http://127.0.0.1:PORT` of the first listener (`https://` when it serves TLS). */
  readonly url: string;
  readonly port: number;
  /** `http://127.0.0.1:PORT` of the admin interface. */
  readonly adminUrl: string;
  /** Access log entries so far (the JSON lines Envoy wrote to stdout), oldest first. */
  accessLog(): Array<Record<string, unknown>>;
  /** The last lines Envoy wrote to stderr, for error messages. */
  stderrTail(): string;
  /** Stops Envoy (SIGTERM, SIGKILL after 5 s), waits for it to exit and removes its temp files. */
  stop(): Promise<void>;
}

/** Bounds on what is kept from Envoy's output: a test run must not grow without limit. */
const MAX_ACCESS_LOG_ENTRIES = 10_000;
const MAX_LINE_CHARS = 64 * 1024;
const STDERR_TAIL_CHARS = 8 * 1024;
const POLL_MS = 50;

/** Envoys still running, killed if the test process exits without stopping them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) child.kill('SIGKILL');
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function fetchText(url: string): Promise<string | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(1_000) });
    return response.ok ? await response.text() : undefined;
  } catch {
    return undefined;
  }
}

/** Whether 127.0.0.1:port accepts a TCP connection now (within a second). */
export function acceptsConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: LOOPBACK, port });
    const done = (accepted: boolean) => {
      socket.destroy();
      resolve(accepted);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The port Envoy bound for its first listener, from admin `/listeners?format=json`. */
async function listenerPort(adminUrl: string): Promise<number | undefined> {
  const text = await fetchText(`${adminUrl}/listeners?format=json`);
  if (text === undefined) return undefined;
  try {
    const statuses = (JSON.parse(text) as { listener_statuses?: unknown[] }).listener_statuses ?? [];
    const first = statuses[0] as
      | { local_address?: { socket_address?: { port_value?: unknown } } }
      | undefined;
    const port = first?.local_address?.socket_address?.port_value;
    return typeof port === 'number' && port > 0 ? port : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Starts Envoy on `configText` and resolves once the admin `/ready` says LIVE and the listener accepts TCP
 * connections. Each Envoy runs with hot restart disabled (so several can run side by side without sharing
 * memory segments) and one worker thread. On failure the error carries the tail of Envoy's stderr.
 */
export async function startEnvoy(options: StartEnvoyOptions): Promise<RunningEnvoy> {
  const dir = await mkdtemp(join(tmpdir(), 'scopegate-envoy-'));
  const configFile = join(dir, 'envoy.yaml');
  const adminAddressFile = join(dir, 'admin-address');
  await writeFile(configFile, options.configText);

  const child = spawn(
    options.bin,
    [
      '-c',
      configFile,
      '--disable-hot-restart',
      '--concurrency',
      '1',
      '--admin-address-path',
      adminAddressFile,
      '--log-level',
      options.logLevel ?? 'warn',
      // Access log lines are flushed every second by default; tests read them right after a request.
      '--file-flush-interval-msec',
      '50',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  live.add(child);

  const entries: Array<Record<string, unknown>> = [];
  let partial = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    partial += chunk;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    if (partial.length > MAX_LINE_CHARS) partial = '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        entries.push(JSON.parse(line) as Record<string, unknown>);
        if (entries.length > MAX_ACCESS_LOG_ENTRIES) entries.shift();
      } catch {
        // Not an access log line; Envoy writes its own logs to stderr, so this is unexpected but harmless.
      }
    }
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS);
  });
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let spawnError: Error | undefined;
  const exited = new Promise<void>((resolve) => {
    child.once('error', (error) => {
      spawnError = error;
      resolve();
    });
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve();
    });
  }).finally(() => live.delete(child));

  const stop = async () => {
    if (exit === undefined && spawnError === undefined) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const timeoutMs = options.readyTimeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  let waitingFor = 'the admin address file';
  try {
    while (Date.now() < deadline) {
      if (spawnError !== undefined) throw new Error(`could not start ${options.bin}: ${spawnError.message}`);
      if (exit !== undefined) {
        throw new Error(`Envoy exited (code ${exit.code}, signal ${exit.signal}) before it was ready`);
      }
      const adminAddress = (await readFile(adminAddressFile, 'utf8').catch(() => '')).trim();
      if (adminAddress !== '') {
        const adminUrl = `http://${adminAddress}`;
        waitingFor = 'admin /ready to say LIVE';
        if ((await fetchText(`${adminUrl}/ready`))?.trim() === 'LIVE') {
          waitingFor = 'the listener to accept connections';
          const port = await listenerPort(adminUrl);
          if (port !== undefined && (await acceptsConnections(port))) {
            return {
              url: `${options.tls ? 'https' : 'http'}://${LOOPBACK}:${port}`,
              port,
              adminUrl,
              accessLog: () => [...entries],
              stderrTail: () => stderr,
              stop,
            };
          }
        }
      }
      await sleep(POLL_MS);
    }
    throw new Error(`Envoy was not ready after ${timeoutMs} ms (waiting for ${waitingFor})`);
  } catch (error) {
    await stop();
    const tail = stderr.trim() === '' ? '(empty)' : stderr.trim();
    throw new Error(`${(error as Error).message}\n--- Envoy stderr (last lines) ---\n${tail}`);
  }
}
