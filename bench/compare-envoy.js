// The Envoys of bench/compare.js: the shipped configs made local (src/dev/envoy.ts), shaped per contestant,
// and started under coreutils `timeout` with a known pid (for CPU/RSS and for the exit cleanup).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { killOnExit, root } from './compare-lib.js';

const { localEnvoyConfig, startEnvoy } = await import(new URL('../dist/dev/envoy.js', import.meta.url).href);

/** The shipped config a shape runs: a shape ending in `-http` asks its authz server over HTTP (`http_service`). */
function configFile(shape) {
  if (shape === 'rbac') return join(root, 'bench/envoy-rbac.yaml');
  return join(root, shape.endsWith('-http') ? 'envoy/envoy-http.yaml' : 'envoy/envoy.yaml');
}

/**
 * The config for one shape: 'envoy' is envoy/envoy.yaml without ext_authz (the floor), 'rbac' is
 * bench/envoy-rbac.yaml with the bench's JWKS inline, a shape ending in `-http` is envoy/envoy-http.yaml with
 * its http_service to `authzPort`, anything else is envoy/envoy.yaml with gRPC ext_authz to `authzPort`. Access
 * logs keep their format but go to /dev/null.
 */
export function envoyConfig(shape, { upstreamPort, authzPort, jwksText }) {
  const ports = { scopegate: authzPort, scopegateHttp: authzPort, inventory: upstreamPort };
  const config = parse(localEnvoyConfig(configFile(shape), ports));
  for (const listener of config.static_resources.listeners) {
    for (const chain of listener.filter_chains) {
      for (const filter of chain.filters) {
        const hcm = filter.typed_config;
        // Same formatting work as shipped, but not piped into the bench process (parsing 10,000+ lines/s
        // there would take CPU from the contestants, and more from the faster ones).
        for (const log of hcm.access_log ?? []) {
          log.name = 'envoy.access_loggers.file';
          log.typed_config['@type'] =
            'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog';
          log.typed_config.path = '/dev/null';
        }
        if (shape === 'envoy') {
          hcm.http_filters = hcm.http_filters.filter((f) => f.name !== 'envoy.filters.http.ext_authz');
        }
        for (const f of hcm.http_filters) {
          const provider = f.typed_config.providers?.dev_issuer;
          if (provider) provider.local_jwks = { inline_string: jwksText };
        }
      }
    }
  }
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
