// Runtime settings for `scopegate serve`, from flags and their SCOPEGATE_* environment twins (a flag wins
// over its twin). Validated once, then frozen; a bad value is a clear message, never a default in disguise.
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { type TlsSettings, tlsSettings } from './tls.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface ServeSettings {
  readonly policy: string;
  readonly listen: HostPort;
  readonly admin: HostPort;
  readonly logLevel: LogLevel;
  /** Verified tokens kept (0: off). */
  readonly tokenCacheSize: number;
  /** Decisions kept, by token, method, route, locations and revision (0: off). */
  readonly decisionCacheSize: number;
  /** How long SIGTERM waits for in-flight checks before closing connections. */
  readonly drainSeconds: number;
  /** One JWKS fetch, and the longest a Check waits for a key refresh: far below Envoy's 200 ms default. */
  readonly jwksTimeoutMs: number;
  /**
   * Put fix hints ("request scope inventory.read as well") in 403 deny bodies. Off by default: they name
   * scopes, roles and locations of the policy, which not every deployment wants to show its callers.
   */
  readonly denyHints: boolean;
  /**
   * gRPC worker processes sharing the listen port (1: a single process, no primary). Defaults to the CPUs
   * this process may run on, which is not a container's CPU limit: set it to the limit in Kubernetes.
   */
  readonly workers: number;
  /**
   * Let the V8 heap grow by its live size (src/server/heap.ts) instead of V8's own factor: bounded RSS with
   * full caches. `--heap-tuning off` leaves V8's defaults (for memory-rich hosts, or to compare).
   */
  readonly heapTuning: boolean;
  /** OpenTelemetry tracing (src/telemetry/otel.ts); undefined: off, and no OpenTelemetry module is loaded. */
  readonly tracing: TracingSettings | undefined;
  /** Decision records (`--decision-log PATH|stdout`); absent: off. */
  readonly decisionLog?: DecisionLogSettings;
  /** TLS on the listeners that take Checks (`--tls-cert`, `--tls-key`, `--tls-client-ca`); absent: plaintext. */
  readonly tls?: TlsSettings;
  /** Envoy's HTTP ext_authz (`http_service`) front door (`--http`); absent: off. */
  readonly http?: HostPort;
  /**
   * The `path_prefix` Envoy's `http_service` puts before each path (`--http-path-prefix`): removed before
   * the path is read; a path without it is request_malformed. Empty: Envoy sets none.
   */
  readonly httpPathPrefix: string;
  /** The forward-auth front door for nginx `auth_request`, Traefik and Caddy (`--forward-auth`); absent: off. */
  readonly forwardAuth?: HostPort;
}

export interface DecisionLogSettings {
  /** A file path (a worker of `--workers N` writes PATH.<worker>), or `stdout`. */
  readonly destination: string;
  /** The share of allows recorded (every deny is). */
  readonly allowRate: number;
  /** A file rotates when it would grow past this many bytes (0: never). */
  readonly maxFileBytes: number;
  /** Rotated files kept (PATH.1 … PATH.N). */
  readonly keepFiles: number;
}

/**
 * Tracing as `--tracing`, `--trace-identities` and the standard OTEL_* variables set it. Only what scopegate
 * chooses itself is here; the SDK and the exporter read the rest (endpoint, headers, sampler, resource) from
 * the environment, once this has refused the values they would only warn about.
 */
export interface TracingSettings {
  /** Which OTLP exporter: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL. */
  readonly protocol: OtlpProtocol;
  /** Subject and client on the span: they can be personal data, so only when asked for. */
  readonly identities: boolean;
}

export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json', 'grpc'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** The samplers the trace SDK builds from OTEL_TRACES_SAMPLER; it falls back silently on any other. */
export const TRACE_SAMPLERS = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const SERVE_FLAGS = {
  policy: { type: 'string' },
  listen: { type: 'string', default: '0.0.0.0:9191' },
  admin: { type: 'string', default: '0.0.0.0:9464' },
  'log-level': { type: 'string', default: 'info' },
  'token-cache-size': { type: 'string', default: '10000' },
  'decision-cache-size': { type: 'string', default: '10000' },
  'drain-seconds': { type: 'string', default: '10' },
  'jwks-timeout-ms': { type: 'string', default: '100' },
  'deny-hints': { type: 'boolean', default: false },
  workers: { type: 'string' },
  'heap-tuning': { type: 'string', default: 'on' },
  tracing: { type: 'boolean', default: false },
  'trace-identities': { type: 'boolean', default: false },
  'decision-log': { type: 'string' },
  'decision-log-allows': { type: 'string', default: '0.01' },
  'decision-log-max-size': { type: 'string', default: '100Mi' },
  'decision-log-keep': { type: 'string', default: '5' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'tls-client-ca': { type: 'string' },
  http: { type: 'string' },
  'http-path-prefix': { type: 'string', default: '' },
  'forward-auth': { type: 'string' },
} as const;

type BooleanFlag = 'deny-hints' | 'tracing' | 'trace-identities';

/** `--log-level` ↔ `SCOPEGATE_LOG_LEVEL`. */
export function envTwin(flag: string): string {
  return 'SCOPEGATE_' + flag.toUpperCase().replaceAll('-', '_');
}

/** `127.0.0.1:9191`, `[::1]:0`, `:9191` (all interfaces). */
export function parseHostPort(text: string, what: string): HostPort {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (!match || port > 65535)
    throw new SettingsError(`${what}: expected HOST:PORT (e.g. 127.0.0.1:9191 or [::1]:0), got "${text}"`);
  return { host: match[1] ?? (match[2] || '0.0.0.0'), port };
}

function positiveInt(text: string, what: string, max: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0 || value > max)
    throw new SettingsError(`${what}: expected an integer 0..${max}, got "${text}"`);
  return value;
}

export class SettingsError extends Error {}

/** A boolean flag's env twin: true/1/yes or false/0/no (or unset). */
function yes(text: string | undefined, what: string): boolean {
  if (text === undefined || /^(false|0|no|)$/i.test(text)) return false;
  if (/^(true|1|yes)$/i.test(text)) return true;
  throw new SettingsError(`${what}: expected true or false, got "${text}"`);
}

export function serveSettings(args: string[], env: NodeJS.ProcessEnv = process.env): ServeSettings {
  const { values } = parseArgs({ args, options: SERVE_FLAGS, strict: true, allowPositionals: false });
  const pick = (flag: Exclude<keyof typeof SERVE_FLAGS, BooleanFlag>): string | undefined => {
    const explicit = args.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`));
    return explicit ? (values[flag] as string) : (env[envTwin(flag)] ?? (values[flag] as string | undefined));
  };
  const given = (flag: BooleanFlag): boolean => values[flag] || yes(env[envTwin(flag)], `--${flag}`);
  const policy = pick('policy');
  if (!policy) throw new SettingsError(`--policy FILE (or ${envTwin('policy')}) is required`);
  const tls = tlsSettings(pick);
  if (typeof tls === 'string') throw new SettingsError(tls);
  const logLevel = pick('log-level') as LogLevel;
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel))
    throw new SettingsError(`--log-level: one of ${LOG_LEVELS.join(', ')}`);
  return Object.freeze({
    policy,
    listen: parseHostPort(pick('listen')!, '--listen'),
    admin: parseHostPort(pick('admin')!, '--admin'),
    logLevel,
    tokenCacheSize: positiveInt(pick('token-cache-size')!, '--token-cache-size', 10_000_000),
    decisionCacheSize: positiveInt(pick('decision-cache-size')!, '--decision-cache-size', 10_000_000),
    drainSeconds: positiveInt(pick('drain-seconds')!, '--drain-seconds', 3600),
    jwksTimeoutMs: positiveInt(pick('jwks-timeout-ms')!, '--jwks-timeout-ms', 10_000),
    denyHints: given('deny-hints'),
    workers: workerCount(pick('workers')),
    heapTuning: onOff(pick('heap-tuning')!, '--heap-tuning'),
    tracing: tracingSettings(given('tracing'), given('trace-identities'), env),
    ...decisionLogSettings(pick),
    ...(tls && { tls }),
    ...frontDoors(pick),
  });
}

/** The HTTP front doors, each off unless its flag (or twin) is set. */
function frontDoors(
  pick: (flag: 'http' | 'http-path-prefix' | 'forward-auth') => string | undefined,
): Pick<ServeSettings, 'http' | 'httpPathPrefix' | 'forwardAuth'> {
  const http = pick('http');
  const forwardAuth = pick('forward-auth');
  const prefix = pick('http-path-prefix') ?? '';
  // A prefix is a path of plain segments, without a trailing slash: Envoy joins it to the path as it is.
  if (prefix !== '' && !/^(\/[A-Za-z0-9._~!$&'()*+,=:@-]+)+$/.test(prefix))
    throw new SettingsError(
      `--http-path-prefix: expected a path such as /authz (segments, no trailing slash), got "${prefix}"`,
    );
  if (prefix !== '' && !http)
    throw new SettingsError('--http-path-prefix: only with --http (Envoy http_service path_prefix)');
  return {
    ...(http ? { http: parseHostPort(http, '--http') } : {}),
    httpPathPrefix: prefix,
    ...(forwardAuth ? { forwardAuth: parseHostPort(forwardAuth, '--forward-auth') } : {}),
  };
}

/**
 * On with `--tracing` or an OTEL_TRACES_EXPORTER set to an exporter; unset means off here, whatever the
 * specification's default, and `none` turns it off even with `--tracing` (the standard way to switch
 * tracing off from the environment). The values the SDK would only warn about and replace are refused.
 */
function tracingSettings(
  flag: boolean,
  identities: boolean,
  env: NodeJS.ProcessEnv,
): TracingSettings | undefined {
  const exporter = env.OTEL_TRACES_EXPORTER?.trim();
  if (exporter !== undefined && exporter !== '' && exporter !== 'otlp' && exporter !== 'none')
    throw new SettingsError(`OTEL_TRACES_EXPORTER: expected otlp or none, got "${exporter}"`);
  if (exporter === 'none' || (!flag && !exporter)) return undefined;

  const protocolVariable = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL
    ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
    : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = env[protocolVariable]?.trim() || 'http/protobuf';
  if (!(OTLP_PROTOCOLS as readonly string[]).includes(protocol))
    throw new SettingsError(`${protocolVariable}: one of ${OTLP_PROTOCOLS.join(', ')}, got "${protocol}"`);

  for (const variable of ['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT']) {
    const endpoint = env[variable]?.trim();
    if (endpoint && !/^https?:$/.test(URL.parse(endpoint)?.protocol ?? ''))
      throw new SettingsError(`${variable}: expected an http:// or https:// URL`);
  }

  const sampler = env.OTEL_TRACES_SAMPLER?.trim();
  if (sampler && !(TRACE_SAMPLERS as readonly string[]).includes(sampler))
    throw new SettingsError(`OTEL_TRACES_SAMPLER: one of ${TRACE_SAMPLERS.join(', ')}, got "${sampler}"`);
  const ratio = env.OTEL_TRACES_SAMPLER_ARG?.trim();
  if (sampler?.endsWith('traceidratio') && ratio) {
    const value = Number(ratio);
    if (!Number.isFinite(value) || value < 0 || value > 1)
      throw new SettingsError(`OTEL_TRACES_SAMPLER_ARG: expected a ratio 0..1, got "${ratio}"`);
  }
  return Object.freeze({ protocol: protocol as OtlpProtocol, identities });
}

function decisionLogSettings(
  pick: (
    flag: 'decision-log' | 'decision-log-allows' | 'decision-log-max-size' | 'decision-log-keep',
  ) => string | undefined,
): { decisionLog?: DecisionLogSettings } {
  const destination = pick('decision-log');
  if (destination === undefined || destination === '') return {};
  const rate = Number(pick('decision-log-allows'));
  if (!(rate >= 0 && rate <= 1) || pick('decision-log-allows')!.trim() === '')
    throw new SettingsError(
      `--decision-log-allows: expected a share of allows from 0 to 1 (e.g. 0.01), got "${pick('decision-log-allows')}"`,
    );
  return {
    decisionLog: Object.freeze({
      destination,
      allowRate: rate,
      maxFileBytes: byteSize(pick('decision-log-max-size')!, '--decision-log-max-size'),
      keepFiles: positiveInt(pick('decision-log-keep')!, '--decision-log-keep', 1000),
    }),
  };
}

const SIZE_UNITS: Record<string, number> = { '': 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30 };

/** `104857600`, `100Mi`, `1Gi`, `512Ki` (0: no limit). */
function byteSize(text: string, what: string): number {
  const match = /^(\d{1,13})(Ki|Mi|Gi|)$/.exec(text.trim());
  const bytes = match ? Number(match[1]) * SIZE_UNITS[match[2]!]! : Number.NaN;
  if (!Number.isSafeInteger(bytes))
    throw new SettingsError(
      `${what}: expected a size in bytes, or with Ki, Mi or Gi (e.g. 100Mi), got "${text}"`,
    );
  return bytes;
}

function onOff(text: string, what: string): boolean {
  if (text === 'on') return true;
  if (text === 'off') return false;
  throw new SettingsError(`${what}: expected on or off, got "${text}"`);
}

function workerCount(text: string | undefined): number {
  if (text === undefined) return availableParallelism();
  const workers = positiveInt(text, '--workers', 256);
  if (workers === 0) throw new SettingsError('--workers: expected an integer 1..256, got "0"');
  return workers;
}

/** grpc-js wants `[::1]:port` for IPv6. */
export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
