// Whether the e2e tests can run, and what they say when they cannot. Under CI=true a missing Envoy is a
// failure with the fix in the message (never a silent skip); on a workstation the tests skip, with the
// reason in their names so the report shows why.
import { findEnvoy, INSTALL_HINT } from '../../src/dev/envoy.js';

export const envoyBin: string | undefined = findEnvoy();
const inCi = process.env.CI === 'true';

/** True when the e2e suites should be skipped: no Envoy and not in CI. */
export const skipWithoutEnvoy = envoyBin === undefined && !inCi;

/** A suite name that says why it was skipped, when it is. */
export function suiteName(name: string): string {
  return skipWithoutEnvoy ? `${name} (skipped: Envoy not found; ${INSTALL_HINT})` : name;
}

/** The Envoy binary, or an error that tells CI how to get one. */
export function requireEnvoy(): string {
  if (envoyBin === undefined) {
    throw new Error(`Envoy not found (ENVOY_BIN, .venv/bin/envoy, PATH): ${INSTALL_HINT}`);
  }
  return envoyBin;
}
