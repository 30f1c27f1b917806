// The Envoys of bench/compare.js: the shipped configs made local (src/dev/envoy.ts), shaped per contestant and
// answering from direct_response routes, started under coreutils `timeout` with a known pid (for CPU/RSS and
// for the exit cleanup).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { killOnExit, root } from './compare-lib.js';
import { CASE_HEADER } from './compare-mix.js';

const { localEnvoyConfig, startEnvoy } = await import(new URL('../dist/dev/envoy.js', import.meta.url).href);

/** The shipped config a shape runs: a shape ending in `-http` asks its authz server over HTTP (`http_service`). */
function configFile(shape) {
  if (shape === 'rbac') return join(root, 'bench/envoy-rbac.yaml');
  return join(root, shape.endsWith('-http') ? 'envoy/envoy-http.yaml' : 'envoy/envoy.yaml');
}

/** What every route answers instead of going to an upstream: Envoy's own 200 with a small fixed body. */
const directResponse = () => ({ status: 200, body: { inline_string: '{"ok":true}' } });

/**
 * Reads each request's body before the router answers. A direct_response goes out as soon as the router has
 * the headers, and Envoy closes an HTTP/1.1 connection whose request body it has not read (Connection: close):
 * every POST and PUT would then cost wrk a new connection where no filter reads the body first (the floor,
 * rbac). The upstream read every body, so this keeps that part of its work; ext_authz has read it already.
 */
const bufferFilter = () => ({
  name: 'envoy.filters.http.buffer',
  typed_config: {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer',
    max_request_bytes: 65536,
  },
});

/**
 * The config for one shape: 'envoy' is envoy/envoy.yaml without ext_authz (the floor), 'rbac' is
 * bench/envoy-rbac.yaml with the bench's JWKS inline, a shape ending in `-http` is envoy/envoy-http.yaml with
 * its http_service to `authzPort`, anything else is envoy/envoy.yaml with gRPC ext_authz to `authzPort`. Every
 * route keeps its match and per-filter config but answers with a direct_response (issue 22: no upstream process
 * shares the CPUs or adds its hop), and the `inventory` cluster is gone. Access logs keep their format, plus the
 * request's x-bench-case, and go to `accessLogFile`.
 */
export function envoyConfig(shape, { authzPort = 0, jwksText, accessLogFile }) {
  // Port 0 only for clusters removed below.
  const ports = { scopegate: authzPort, scopegateHttp: authzPort, inventory: 0 };
  const config = parse(localEnvoyConfig(configFile(shape), ports));
  for (const listener of config.static_resources.listeners) {
    for (const chain of listener.filter_chains) {
      for (const filter of chain.filters) {
        const hcm = filter.typed_config;
        // Same formatting work as shipped, into a file the bench reads after the cell (piped into the bench
        // process, parsing 10,000+ lines/s would take CPU from the contestants, and more from the faster ones).
        for (const log of hcm.access_log ?? []) {
          log.name = 'envoy.access_loggers.file';
          log.typed_config['@type'] =
            'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
          log.typed_config.path = accessLogFile;
          log.typed_config.log_format.json_format.case = `%REQ(${CASE_HEADER})%`;
        }
        for (const host of hcm.route_config.virtual_hosts) {
          for (const route of host.routes) {
            if (route.route === undefined) continue;
            delete route.route;
            route.direct_response = directResponse();
          }
        }
        if (shape === 'envoy') {
          hcm.http_filters = hcm.http_filters.filter((f) => f.name !== 'envoy.filters.http.ext_authz');
        }
        for (const f of hcm.http_filters) {
          const provider = f.typed_config.providers?.dev_issuer;
          if (provider) provider.local_jwks = { inline_string: jwksText };
        }
        const router = hcm.http_filters.findIndex((f) => f.name === 'envoy.filters.http.router');
        hcm.http_filters.splice(router, 0, bufferFilter());
      }
    }
  }
  // Nothing routes to the upstream any more, and the floor asks no authz server.
  const unused = shape === 'envoy' ? ['inventory', 'scopegate'] : ['inventory'];
  const resources = config.static_resources;
  resources.clusters = resources.clusters.filter((c) => !unused.includes(c.name));
  return stringify(config);
}

/** startEnvoy through a wrapper script that records its pid and execs `timeout … envoy`. */
export async function startTimedEnvoy({ bin, configText, dir, limitSeconds }) {
  const wrapper = join(dir, 'envoy-wrapper.sh');
  const pidFile = `${wrapper}.pid`;
  writeFileSync(
    wrapper,
    `#!/bin/sh\necho $$ > '${pidFile}'\nexec timeout --kill-after=5 ${Math.ceil(limitSeconds)}s '${bin}' "$@"\n`,
    { mode: 0o700 },
  );
  const envoy = await startEnvoy({ bin: wrapper, configText });
  const envoyPid = Number(readFileSync(pidFile, 'utf8'));
  killOnExit(envoyPid);
  return { envoy, envoyPid };
}
