// Finding and running kustomize (pinned by scripts/install-kustomize.sh), which renders deploy/kubernetes and
// deploy/istio the way `kubectl apply -k` would. Under CI=true a missing kustomize is a failure with the fix
// in the message (never a silent skip); on a workstation the suites that need it skip, with the reason in
// their names so the report shows why.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { findTool, requiredTool } from '../support/tools.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export const KUSTOMIZE_INSTALL_HINT =
  'run `bash scripts/install-kustomize.sh` (needs Go; installs the pinned kustomize into .venv/bin) or set KUSTOMIZE_BIN';

/** KUSTOMIZE_BIN when set (and executable), else .venv/bin/kustomize, ./bin/kustomize, then PATH. */
export function findKustomize(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const local = [join(repoRoot, '.venv', 'bin', 'kustomize'), join(repoRoot, 'bin', 'kustomize')];
  return findTool('kustomize', { envVar: 'KUSTOMIZE_BIN', local }, env);
}

const tool = requiredTool('kustomize', findKustomize(), KUSTOMIZE_INSTALL_HINT);
export const kustomizeBin = tool.bin;
export const skipWithoutKustomize = tool.skip;
export const kustomizeSuiteName = tool.suiteName;

/** A Kubernetes object as kustomize renders it: plain data, read by the checks. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** `kustomize build DIR` (relative to the repo), parsed into its objects. */
export function render(dir: string): K8sObject[] {
  const text = execFileSync(tool.require(), ['build', join(repoRoot, dir)], {
    encoding: 'utf8',
    maxBuffer: 16 * 1024 * 1024,
  });
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`kustomize build ${dir}: ${doc.errors[0]?.message}`);
    return doc.toJS() as K8sObject;
  });
}

/** The overlays people apply, and what each one is. */
export const KUBERNETES_OVERLAYS = [
  'deploy/kubernetes/overlays/central',
  'deploy/kubernetes/overlays/sidecar',
];
/** Overlays with an optional component added, as a user adds it (under test/deploy/fixtures). */
export const WITH_COMPONENTS = [
  'test/deploy/fixtures/central-with-tls',
  'test/deploy/fixtures/central-with-http',
  'test/deploy/fixtures/central-with-forward-auth',
  'test/deploy/fixtures/central-with-both-doors',
];
export const ISTIO_VARIANTS = [
  'deploy/istio/scopegate-verifies',
  'deploy/istio/istio-verifies',
  'deploy/istio/two-services',
];
