// Running Envoy locally, the parts that need no Envoy: rewriting a config's addresses (and only those) for
// loopback, refusing a cluster it has no port for, finding the binary, and failing with the reason when what
// was started is not a working Envoy. The shipped configs, rewritten and run through a real Envoy, are
// test/e2e/envoy-config.test.ts.
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  findEnvoy,
  localEnvoyConfig,
  repoRoot,
  startEnvoy,
  VENV_ENVOY,
  withRuntime,
} from '../../../src/dev/envoy.js';

const scratch = () => mkdtempSync(join(tmpdir(), 'scopegate-envoy-unit-'));

/** A small config in the shape of the shipped ones: compose hostnames, STRICT_DNS clusters. */
const config = (clusters: string[], extra: Record<string, unknown> = {}) => ({
  static_resources: {
    listeners: [
      {
        name: 'ingress',
        address: { socket_address: { address: '0.0.0.0', port_value: 8080, protocol: 'TCP' } },
        filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager' }] }],
      },
    ],
    clusters: clusters.map((name) => ({
      name,
      type: 'STRICT_DNS',
      connect_timeout: '0.25s',
      load_assignment: {
        cluster_name: name,
        endpoints: [
          {
            lb_endpoints: [
              { endpoint: { address: { socket_address: { address: name, port_value: 9191 } } } },
            ],
          },
          {
            lb_endpoints: [
              { endpoint: { address: { socket_address: { address: `${name}-2`, port_value: 9192 } } } },
            ],
          },
        ],
      },
    })),
  },
  admin: { address: { socket_address: { address: '0.0.0.0', port_value: 9901 } } },
  ...extra,
});

function file(content: unknown): string {
  const path = join(scratch(), 'envoy.yaml');
  writeFileSync(path, typeof content === 'string' ? content : stringify(content));
  return path;
}

describe('localEnvoyConfig', () => {
  it('points every listener, endpoint and admin at 127.0.0.1, and makes the clusters STATIC', () => {
    const local = parse(
      localEnvoyConfig(file(config(['scopegate', 'inventory', 'dev_issuer'])), {
        scopegate: 19191,
        inventory: 18081,
        devIssuer: 18090,
        listener: 18080,
        admin: 19901,
      }),
    );
    expect(local.static_resources.listeners[0].address.socket_address).toEqual({
      address: '127.0.0.1',
      port_value: 18080,
      protocol: 'TCP',
    });
    expect(local.admin.address.socket_address).toEqual({ address: '127.0.0.1', port_value: 19901 });
    const endpoints = (name: string) =>
      local.static_resources.clusters
        .find((cluster: { name: string }) => cluster.name === name)
        .load_assignment.endpoints.map(
          (group: { lb_endpoints: Array<{ endpoint: { address: { socket_address: unknown } } }> }) =>
            group.lb_endpoints[0]!.endpoint.address.socket_address,
        );
    expect(endpoints('scopegate')).toEqual([
      { address: '127.0.0.1', port_value: 19191 },
      { address: '127.0.0.1', port_value: 19191 },
    ]);
    expect(endpoints('inventory')[0]).toEqual({ address: '127.0.0.1', port_value: 18081 });
    expect(endpoints('dev_issuer')[1]).toEqual({ address: '127.0.0.1', port_value: 18090 });
    expect(local.static_resources.clusters.map((cluster: { type: string }) => cluster.type)).toEqual([
      'STATIC',
      'STATIC',
      'STATIC',
    ]);
  });

  it('changes nothing else: filters, timeouts and other top-level fields stay as written', () => {
    const runtime = {
      layers: [{ name: 'static', static_layer: { 'overload.global_downstream_max_connections': 100 } }],
    };
    const shipped = config(['scopegate'], { layered_runtime: runtime });
    const local = parse(localEnvoyConfig(file(shipped), { scopegate: 1, inventory: 2 }));
    expect(local.layered_runtime).toEqual(runtime);
    expect(local.static_resources.listeners[0].filter_chains).toEqual(
      shipped.static_resources.listeners[0]!.filter_chains,
    );
    expect(local.static_resources.clusters[0].connect_timeout).toBe('0.25s');
  });

  it('listeners and admin take any free port unless given one', () => {
    const local = parse(localEnvoyConfig(file(config(['scopegate'])), { scopegate: 1, inventory: 2 }));
    expect(local.static_resources.listeners[0].address.socket_address.port_value).toBe(0);
    expect(local.admin.address.socket_address.port_value).toBe(0);
  });

  it('refuses a cluster it has no local port for, naming it, rather than leave a compose hostname', () => {
    const path = file(config(['scopegate', 'billing']));
    expect(() => localEnvoyConfig(path, { scopegate: 1, inventory: 2 })).toThrow(
      `Envoy config ${path}: no local port given for cluster "billing"`,
    );
    expect(() => localEnvoyConfig(file(config(['dev_issuer'])), { scopegate: 1, inventory: 2 })).toThrow(
      /no local port given for cluster "dev_issuer"/,
    );
  });

  it('says where a config is not shaped like Envoy’s', () => {
    const cases: Array<[unknown, RegExp]> = [
      ['just text', /is not an object/],
      [{ admin: {} }, /static_resources is not an object/],
      [{ static_resources: { listeners: {} } }, /static_resources\.listeners is not a list/],
      [
        { static_resources: { listeners: [{ address: { pipe: {} } }], clusters: [] } },
        /listeners\[0\]\.address\.socket_address is not an object/,
      ],
      [{ ...config(['scopegate']), admin: undefined }, /admin is not an object/],
    ];
    for (const [content, message] of cases)
      expect(() => localEnvoyConfig(file(content), { scopegate: 1, inventory: 2 })).toThrow(message);
  });
});

describe('withRuntime', () => {
  it('adds the values as one static runtime layer and changes nothing else; a config with a runtime is refused', () => {
    const before = config(['scopegate']);
    const after = parse(withRuntime(stringify(before), { 'tracing.opentelemetry.min_flush_spans': 1 }));
    expect(after).toEqual({
      ...before,
      layered_runtime: {
        layers: [{ name: 'test_runtime', static_layer: { 'tracing.opentelemetry.min_flush_spans': 1 } }],
      },
    });
    expect(() => withRuntime(stringify(after), {})).toThrow('it already has a layered_runtime');
  });
});

describe('findEnvoy and repoRoot', () => {
  it('the repository root is this checkout', () => {
    expect(JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')).name).toBe('scopegate');
    expect(existsSync(join(repoRoot(), 'src', 'dev', 'envoy.ts'))).toBe(true);
  });

  it('ENVOY_BIN is taken as given, even when it is not there (so a wrong path fails loudly at spawn)', () => {
    expect(findEnvoy({ ENVOY_BIN: '/nowhere/envoy', PATH: '' })).toBe('/nowhere/envoy');
  });

  it('on the PATH, a file named envoy that cannot be executed is passed over', () => {
    const dir = scratch();
    writeFileSync(join(dir, 'envoy'), '#!/bin/sh\n');
    chmodSync(join(dir, 'envoy'), 0o644);
    const venv = join(repoRoot(), VENV_ENVOY);
    expect(findEnvoy({ PATH: `:${dir}` })).toBe(existsSync(venv) ? venv : undefined);
  });
});

describe('startEnvoy, when what starts is not a working Envoy', () => {
  /** An executable standing in for Envoy. */
  function fakeEnvoy(script: string): string {
    const path = join(scratch(), 'envoy');
    writeFileSync(path, `#!/bin/sh\n${script}\n`);
    chmodSync(path, 0o755);
    return path;
  }

  it('a binary that is not there: could not start, naming it', async () => {
    await expect(startEnvoy({ bin: '/nowhere/envoy', configText: '{}' })).rejects.toThrow(
      /^could not start \/nowhere\/envoy: spawn \/nowhere\/envoy ENOENT\n--- Envoy stderr \(last lines\) ---\n\(empty\)$/,
    );
  });

  it('one that exits at once: its exit code and the tail of what it wrote to stderr', async () => {
    const bin = fakeEnvoy('echo "error initializing configuration: bad field" >&2; exit 3');
    await expect(startEnvoy({ bin, configText: '{}' })).rejects.toThrow(
      'Envoy exited (code 3, signal null) before it was ready\n--- Envoy stderr (last lines) ---\nerror initializing configuration: bad field',
    );
  });

  it('one that never becomes ready: stopped at the deadline, saying what it was waiting for', async () => {
    const bin = fakeEnvoy('exec sleep 30');
    const started = Date.now();
    await expect(startEnvoy({ bin, configText: '{}', readyTimeoutMs: 300 })).rejects.toThrow(
      'Envoy was not ready after 300 ms (waiting for the admin address file)',
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
