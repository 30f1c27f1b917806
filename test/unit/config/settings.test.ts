// `scopegate serve`'s settings: every flag, its SCOPEGATE_* twin (a flag wins over its twin), the defaults,
// and a clear message for a bad value, never a default in disguise.
import { describe, expect, it } from 'vitest';
import {
  envTwin,
  formatHostPort,
  parseHostPort,
  SERVE_FLAGS,
  SettingsError,
  serveSettings,
} from '../../../src/config/settings.js';

const base = ['--policy', 'policy.yaml'];

describe('serveSettings: defaults', () => {
  it('needs only a policy, and fills in the documented defaults', () => {
    const settings = serveSettings([...base, '--workers', '1'], {});
    expect(settings).toMatchObject({
      policy: 'policy.yaml',
      listen: { host: '0.0.0.0', port: 9191 },
      admin: { host: '0.0.0.0', port: 9464 },
      logLevel: 'info',
      tokenCacheSize: 10_000,
      decisionCacheSize: 10_000,
      drainSeconds: 10,
      jwksTimeoutMs: 100,
      denyHints: false,
      workers: 1,
      heapTuning: true,
    });
    expect(Object.isFrozen(settings)).toBe(true);
  });

  it('decision records are off unless --decision-log names a file or stdout; then with their defaults', () => {
    expect(serveSettings(base, {})).not.toHaveProperty('decisionLog');
    expect(serveSettings([...base, '--decision-log', 'stdout'], {}).decisionLog).toEqual({
      destination: 'stdout',
      allowRate: 0.01,
      maxFileBytes: 100 * 2 ** 20,
      keepFiles: 5,
    });
    const env = {
      SCOPEGATE_DECISION_LOG: '/var/log/d.jsonl',
      SCOPEGATE_DECISION_LOG_ALLOWS: '0',
      SCOPEGATE_DECISION_LOG_MAX_SIZE: '512Ki',
      SCOPEGATE_DECISION_LOG_KEEP: '2',
    };
    expect(serveSettings(base, env).decisionLog).toEqual({
      destination: '/var/log/d.jsonl',
      allowRate: 0,
      maxFileBytes: 512 * 1024,
      keepFiles: 2,
    });
  });

  it('without a policy it says which flag and which variable', () => {
    expect(() => serveSettings([], {})).toThrow(
      new SettingsError('--policy FILE (or SCOPEGATE_POLICY) is required'),
    );
  });

  it('defaults the workers to the CPUs Node may use', () => {
    expect(serveSettings(base, {}).workers).toBeGreaterThanOrEqual(1);
  });
});

describe('serveSettings: flags and their SCOPEGATE_* twins', () => {
  it('every flag has a twin named after it', () => {
    for (const flag of Object.keys(SERVE_FLAGS)) expect(envTwin(flag)).toMatch(/^SCOPEGATE_[A-Z_]+$/);
    expect(envTwin('token-cache-size')).toBe('SCOPEGATE_TOKEN_CACHE_SIZE');
  });

  it('reads the twins when the flags are absent', () => {
    const settings = serveSettings([], {
      SCOPEGATE_POLICY: '/etc/scopegate/policy.yaml',
      SCOPEGATE_LISTEN: '127.0.0.1:0',
      SCOPEGATE_ADMIN: '[::1]:9999',
      SCOPEGATE_LOG_LEVEL: 'debug',
      SCOPEGATE_TOKEN_CACHE_SIZE: '0',
      SCOPEGATE_DENY_HINTS: 'true',
      SCOPEGATE_WORKERS: '3',
      SCOPEGATE_HEAP_TUNING: 'off',
    });
    expect(settings).toMatchObject({
      policy: '/etc/scopegate/policy.yaml',
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '::1', port: 9999 },
      logLevel: 'debug',
      tokenCacheSize: 0,
      denyHints: true,
      workers: 3,
      heapTuning: false,
    });
  });

  it('a flag wins over its twin, even when the flag gives the default value', () => {
    const settings = serveSettings([...base, '--listen', '0.0.0.0:9191', '--heap-tuning=on'], {
      SCOPEGATE_LISTEN: '127.0.0.1:1',
      SCOPEGATE_HEAP_TUNING: 'off',
    });
    expect(settings.listen).toEqual({ host: '0.0.0.0', port: 9191 });
    expect(settings.heapTuning).toBe(true);
  });
});

describe('serveSettings: a bad value is a clear message', () => {
  it.each([
    [['--listen', 'localhost'], /--listen: expected HOST:PORT/],
    [['--admin', '1.2.3.4:70000'], /--admin: expected HOST:PORT/],
    [['--log-level', 'loud'], /--log-level: one of fatal, error/],
    [['--token-cache-size=-1'], /--token-cache-size: expected an integer 0\.\.10000000/],
    [['--decision-cache-size', '1.5'], /--decision-cache-size: expected an integer/],
    [['--jwks-timeout-ms', '20000'], /--jwks-timeout-ms: expected an integer 0\.\.10000/],
    [['--workers', '0'], /--workers: expected an integer 1\.\.256, got "0"/],
    [['--heap-tuning', 'maybe'], /--heap-tuning: expected on or off, got "maybe"/],
    [['--decision-log', 'd.jsonl', '--decision-log-allows', '2'], /--decision-log-allows: expected a share/],
    [['--decision-log', 'd.jsonl', '--decision-log-allows', ''], /--decision-log-allows: expected a share/],
    [
      ['--decision-log', 'd.jsonl', '--decision-log-max-size', '10MB'],
      /--decision-log-max-size: expected a size/,
    ],
    [['--decision-log', 'd.jsonl', '--decision-log-keep=-1'], /--decision-log-keep: expected an integer/],
  ])('%j', (args, message) => {
    expect(() => serveSettings([...base, ...args], {})).toThrow(message);
  });

  it('a twin with a bad value is refused the same way', () => {
    expect(() => serveSettings(base, { SCOPEGATE_DENY_HINTS: 'sure' })).toThrow(
      /--deny-hints: expected true or false/,
    );
    expect(() => serveSettings(base, { SCOPEGATE_WORKERS: 'many' })).toThrow(/--workers/);
  });

  it('an unknown flag is refused (parseArgs strict)', () => {
    expect(() => serveSettings([...base, '--polcy', 'x'], {})).toThrow();
  });
});

describe('serveSettings: tracing (off unless asked for; the standard OTEL_* variables configure it)', () => {
  const tracing = (args: string[], env: NodeJS.ProcessEnv) => serveSettings([...base, ...args], env).tracing;

  it('is off by default, and an unset OTEL_TRACES_EXPORTER means off whatever the specification says', () => {
    expect(tracing([], {})).toBeUndefined();
    expect(
      tracing([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SERVICE_NAME: 'x' }),
    ).toBe(undefined);
  });

  it('--tracing, SCOPEGATE_TRACING=true or OTEL_TRACES_EXPORTER=otlp turn it on (OTLP over HTTP/protobuf)', () => {
    const on = { protocol: 'http/protobuf', identities: false };
    expect(tracing(['--tracing'], {})).toEqual(on);
    expect(tracing([], { SCOPEGATE_TRACING: 'true' })).toEqual(on);
    expect(tracing([], { OTEL_TRACES_EXPORTER: 'otlp' })).toEqual(on);
    expect(Object.isFrozen(tracing(['--tracing'], {}))).toBe(true);
  });

  it('OTEL_TRACES_EXPORTER=none turns it off, even with --tracing', () => {
    expect(tracing(['--tracing'], { OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined();
  });

  it('the protocol comes from the traces variable, else the general one', () => {
    expect(tracing(['--tracing'], { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })?.protocol).toBe('grpc');
    expect(
      tracing(['--tracing'], {
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
      })?.protocol,
    ).toBe('http/json');
  });

  it('--trace-identities (SCOPEGATE_TRACE_IDENTITIES) puts subject and client on spans', () => {
    expect(tracing(['--tracing', '--trace-identities'], {})?.identities).toBe(true);
    expect(tracing(['--tracing'], { SCOPEGATE_TRACE_IDENTITIES: 'yes' })?.identities).toBe(true);
  });

  it.each([
    [{ OTEL_TRACES_EXPORTER: 'zipkin' }, 'OTEL_TRACES_EXPORTER: expected otlp or none, got "zipkin"'],
    [{ OTEL_TRACES_EXPORTER: 'otlp,console' }, /OTEL_TRACES_EXPORTER: expected otlp or none/],
    [
      { OTEL_EXPORTER_OTLP_PROTOCOL: 'http' },
      'OTEL_EXPORTER_OTLP_PROTOCOL: one of http/protobuf, http/json, grpc, got "http"',
    ],
    [{ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'udp' }, /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: one of/],
    [
      { OTEL_TRACES_SAMPLER: 'sometimes' },
      /OTEL_TRACES_SAMPLER: one of always_on, .*parentbased_traceidratio, got "sometimes"/,
    ],
    [
      { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '10%' },
      'OTEL_TRACES_SAMPLER_ARG: expected a ratio 0..1, got "10%"',
    ],
    [{ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '1.5' }, /expected a ratio 0..1/],
    [
      { OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' },
      'OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// URL',
    ],
    [
      { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'not a url' },
      /OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: expected an http/,
    ],
  ])('a value the SDK would only warn about is a usage error: %o', (env, message) => {
    expect(() => tracing(['--tracing'], env)).toThrow(SettingsError);
    expect(() => tracing(['--tracing'], env)).toThrow(message);
  });

  it('a twin that is not a boolean is a usage error too', () => {
    expect(() => tracing([], { SCOPEGATE_TRACING: 'maybe' })).toThrow(
      '--tracing: expected true or false, got "maybe"',
    );
  });

  it("a URL's credentials are never echoed in the message", () => {
    expect(() => tracing(['--tracing'], { OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://user:secret@host' })).toThrow(
      /^((?!secret).)*$/,
    );
  });

  it('a sampler ratio is accepted in range, and ignored by the samplers that take none', () => {
    const env = { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01' };
    expect(tracing(['--tracing'], env)).toBeDefined();
    expect(
      tracing(['--tracing'], { OTEL_TRACES_SAMPLER: 'always_on', OTEL_TRACES_SAMPLER_ARG: 'x' }),
    ).toBeDefined();
  });
});

describe('serveSettings: the HTTP front doors (off unless asked for)', () => {
  it('are off by default, with no path prefix', () => {
    const settings = serveSettings(base, {});
    expect(settings).not.toHaveProperty('http');
    expect(settings).not.toHaveProperty('forwardAuth');
    expect(settings.httpPathPrefix).toBe('');
  });

  it('--http and --forward-auth, or SCOPEGATE_HTTP and SCOPEGATE_FORWARD_AUTH, open them', () => {
    const flags = serveSettings([...base, '--http', '127.0.0.1:9192', '--forward-auth', ':9193'], {});
    const twins = serveSettings(base, { SCOPEGATE_HTTP: '127.0.0.1:9192', SCOPEGATE_FORWARD_AUTH: ':9193' });
    for (const settings of [flags, twins]) {
      expect(settings.http).toEqual({ host: '127.0.0.1', port: 9192 });
      expect(settings.forwardAuth).toEqual({ host: '0.0.0.0', port: 9193 });
    }
    // A flag wins over its twin.
    expect(serveSettings([...base, '--http', '[::1]:0'], { SCOPEGATE_HTTP: ':9192' }).http).toEqual({
      host: '::1',
      port: 0,
    });
  });

  it('--http-path-prefix (SCOPEGATE_HTTP_PATH_PREFIX) is the path Envoy puts before each path', () => {
    expect(
      serveSettings([...base, '--http', ':9192', '--http-path-prefix', '/authz/v1'], {}).httpPathPrefix,
    ).toBe('/authz/v1');
    expect(
      serveSettings(base, { SCOPEGATE_HTTP: ':9192', SCOPEGATE_HTTP_PATH_PREFIX: '/authz' }).httpPathPrefix,
    ).toBe('/authz');
  });

  const BAD_PREFIXES = ['authz', '/authz/', '/', '//authz', '/a//b', '/authz?x=1', '/a b', '/%2F'];
  it.each<[string[], string | RegExp]>([
    [['--http', 'localhost'], '--http: expected HOST:PORT (e.g. 127.0.0.1:9191 or [::1]:0), got "localhost"'],
    [['--forward-auth', '9193'], /^--forward-auth: expected HOST:PORT/],
    ...BAD_PREFIXES.map((prefix): [string[], string] => [
      ['--http', ':9192', '--http-path-prefix', prefix],
      `--http-path-prefix: expected a path such as /authz (segments, no trailing slash), got "${prefix}"`,
    ]),
    [
      ['--http-path-prefix', '/authz'],
      '--http-path-prefix: only with --http (Envoy http_service path_prefix)',
    ],
    [
      ['--forward-auth', ':9193', '--http-path-prefix', '/authz'],
      '--http-path-prefix: only with --http (Envoy http_service path_prefix)',
    ],
  ])('%j is a usage error', (args, message) => {
    expect(() => serveSettings([...base, ...args], {})).toThrow(SettingsError);
    expect(() => serveSettings([...base, ...args], {})).toThrow(message);
  });

  it('a prefix from the environment without a door is refused the same way', () => {
    expect(() => serveSettings(base, { SCOPEGATE_HTTP_PATH_PREFIX: '/authz' })).toThrow(
      '--http-path-prefix: only with --http',
    );
    expect(() =>
      serveSettings(base, { SCOPEGATE_HTTP: ':9192', SCOPEGATE_HTTP_PATH_PREFIX: 'authz' }),
    ).toThrow('--http-path-prefix: expected a path');
  });
});

describe('HOST:PORT', () => {
  it.each([
    ['127.0.0.1:9191', { host: '127.0.0.1', port: 9191 }, '127.0.0.1:9191'],
    ['[::1]:0', { host: '::1', port: 0 }, '[::1]:0'],
    [':9464', { host: '0.0.0.0', port: 9464 }, '0.0.0.0:9464'],
  ])('%s', (text, parsed, formatted) => {
    expect(parseHostPort(text, '--listen')).toEqual(parsed);
    expect(formatHostPort(parsed)).toBe(formatted);
  });
});
