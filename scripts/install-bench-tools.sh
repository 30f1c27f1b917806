#!/usr/bin/env bash
# Installs what `npm run bench:compare` (issue 11) drives besides Envoy, pinned, into this repo's own
# git-ignored .venv/bin/ (next to the pinned Envoy); only a missing wrk needs root:
#   - opa-authz: the OPA comparator, built with `go build` from bench/opa/ (OPA and go-control-plane pinned
#     in bench/opa/go.mod; modules come from the Go module proxy);
#   - ghz, the gRPC load generator, with `go install`;
#   - wrk, the HTTP load generator: the Debian package, installed with apt-get (as root or with sudo) when missing.
# Idempotent: when the comparator is newer than its sources and ghz is at the pinned version, it touches no
# network and exits fast. Prints one line per tool with its version; any tool missing at the end is a failure.
set -euo pipefail

GHZ_VERSION="v0.121.0"
GHZ_MODULE="github.com/bojand/ghz/cmd/ghz"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BIN_DIR="${ROOT}/.venv/bin"
OPA_SRC="${ROOT}/bench/opa"
OPA_BIN="${BIN_DIR}/opa-authz"
GHZ_BIN="${BIN_DIR}/ghz"

fail() {
  echo "install-bench-tools: $*" >&2
  exit 1
}

command -v go >/dev/null 2>&1 || fail "go not found; install Go 1.25+ (https://go.dev/dl/) first"
mkdir -p "${BIN_DIR}"

# The module version a Go binary was built from, read from its build info (ghz built by `go install`
# reports "dev" from its own --version).
module_version() {
  [[ -x "$1" ]] || return 1
  go version -m "$1" 2>/dev/null | awk -v module="$2" '($1 == "mod" || $1 == "dep") && $2 == module { print $3 }'
}

# --- the OPA comparator: rebuilt when the binary is missing or any source is newer than it ---
opa_stale() {
  [[ ! -x "${OPA_BIN}" ]] && return 0
  [[ -n "$(find "${OPA_SRC}" -maxdepth 1 \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) \
    -newer "${OPA_BIN}" -print -quit)" ]]
}
if opa_stale; then
  echo "install-bench-tools: go build bench/opa → ${OPA_BIN}" >&2
  started=${SECONDS}
  # -mod=readonly: go.mod and go.sum are committed and pinned; a build must never rewrite them.
  (cd "${OPA_SRC}" && go build -mod=readonly -o "${OPA_BIN}" .) ||
    fail "go build in bench/opa failed (is the Go module proxy reachable? a proxy may need GOPROXY)"
  echo "install-bench-tools: built in $((SECONDS - started)) s" >&2
fi
OPA_VERSION="$(module_version "${OPA_BIN}" github.com/open-policy-agent/opa)" ||
  fail "${OPA_BIN} does not carry Go build info"
[[ -n "${OPA_VERSION}" ]] || fail "${OPA_BIN} was not built with github.com/open-policy-agent/opa"

# --- ghz ---
if [[ "$(module_version "${GHZ_BIN}" github.com/bojand/ghz || true)" != "${GHZ_VERSION}" ]]; then
  echo "install-bench-tools: go install ${GHZ_MODULE}@${GHZ_VERSION} into ${BIN_DIR}" >&2
  GOBIN="${BIN_DIR}" go install "${GHZ_MODULE}@${GHZ_VERSION}" ||
    fail "go install ghz failed (is the Go module proxy reachable? a proxy may need GOPROXY)"
  [[ "$(module_version "${GHZ_BIN}" github.com/bojand/ghz || true)" == "${GHZ_VERSION}" ]] ||
    fail "after go install, ghz is not at ${GHZ_VERSION}"
fi

# --- wrk (Debian package; no pinned build of it exists for go install) ---
if ! command -v wrk >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || fail "wrk not found; install it with your package manager"
  sudo=""
  if [[ "$(id -u)" != "0" ]]; then
    command -v sudo >/dev/null 2>&1 || fail "wrk not found; as root: apt-get install wrk"
    sudo="sudo -n" # never prompt: a CI run must fail, not hang
  fi
  echo "install-bench-tools: apt-get install wrk" >&2
  { ${sudo} apt-get update -qq &&
    ${sudo} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null; } ||
    fail "apt-get could not install wrk"
fi
WRK_BIN="$(command -v wrk)"
# `wrk -v` prints its version and usage, and exits non-zero.
WRK_VERSION="$({ "${WRK_BIN}" -v 2>&1 || true; } | awk 'NR == 1 { print $2 }')"
[[ -n "${WRK_VERSION}" ]] || fail "${WRK_BIN} does not run here"

echo "opa-authz ${OPA_BIN} (OPA ${OPA_VERSION})"
echo "ghz ${GHZ_BIN} (${GHZ_VERSION})"
echo "wrk ${WRK_BIN} (${WRK_VERSION})"
