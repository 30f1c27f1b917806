#!/usr/bin/env bash
# Installs the kustomize the deploy tests render deploy/kubernetes/ and deploy/istio/ with, pinned, into this
# repo's own git-ignored .venv/bin/ (next to the pinned Envoy) with `go install`, so no root is needed.
# Idempotent: when the pinned version is already there it touches no network and exits fast.
# Prints the path of the kustomize binary on its last line.
set -euo pipefail

KUSTOMIZE_VERSION="v5.8.1"
MODULE="sigs.k8s.io/kustomize/kustomize/v5"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN_DIR="${ROOT}/.venv/bin"
BIN="${BIN_DIR}/kustomize"

fail() {
  echo "install-kustomize: $*" >&2
  exit 1
}

installed_version() {
  [[ -x "${BIN}" ]] || return 1
  # `kustomize version` prints the module version it was built from, e.g. "v5.8.1".
  "${BIN}" version 2>/dev/null
}

if [[ "$(installed_version || true)" == "${KUSTOMIZE_VERSION}" ]]; then
  echo "install-kustomize: kustomize ${KUSTOMIZE_VERSION} already in ${BIN_DIR}" >&2
else
  command -v go >/dev/null 2>&1 || fail "go not found; install Go 1.22+ (https://go.dev/dl/) first"
  mkdir -p "${BIN_DIR}"
  echo "install-kustomize: go install ${MODULE}@${KUSTOMIZE_VERSION} into ${BIN_DIR}" >&2
  GOBIN="${BIN_DIR}" go install "${MODULE}@${KUSTOMIZE_VERSION}" ||
    fail "go install failed (is the Go module proxy reachable? a proxy may need GOPROXY)"
  [[ "$(installed_version || true)" == "${KUSTOMIZE_VERSION}" ]] ||
    fail "after go install, kustomize is not at ${KUSTOMIZE_VERSION}"
fi

echo "install-kustomize: kustomize ${KUSTOMIZE_VERSION} ready" >&2
echo "${BIN}"
