#!/usr/bin/env bash
# Fetches Envoy Gateway's CRDs, pinned, for the deploy tests that check deploy/envoy-gateway/ against them
# (SecurityPolicy, and the Gateway API's Gateway, HTTPRoute and ReferenceGrant it is released with). They ship
# in the Go module github.com/envoyproxy/gateway, generated from its API types (charts/gateway-helm/charts/
# crds/crds/); `go mod download` fetches it from the Go module proxy, checked against the checksum database,
# and this script checks the module hash pinned below too. Nothing is installed: the module stays read-only in
# Go's module cache, where the tests look for it (test/deploy/envoy-gateway.test.ts).
# Idempotent: when the module is already in the cache it touches no network. Prints the CRD directory on its
# last line.
set -euo pipefail

EG_VERSION="v1.9.1"
# `go mod download -json` reports it as "Sum"; a different hash means a different module: stop.
EG_MODULE_SUM="h1:vAVp6/AlBXJ1aOhp1mxL7fNEzVEfjADUguUhm2wzxQY="
MODULE="github.com/envoyproxy/gateway"
CRD_DIR="charts/gateway-helm/charts/crds/crds"
CRD_FILES=("generated/gateway.envoyproxy.io_securitypolicies.yaml" "gatewayapi-crds.yaml")

fail() {
  echo "install-envoy-gateway-crds: $*" >&2
  exit 1
}

command -v go >/dev/null 2>&1 || fail "go not found; install Go 1.22+ (https://go.dev/dl/) first"

# The value of one string field of `go mod download -json`'s output.
field() {
  sed -n "s/^[[:space:]]*\"$1\": \"\(.*\)\",\{0,1\}$/\1/p" <<<"$2"
}

# Outside any module (a scratch directory), so no go.mod of this repo or above it is read or changed.
scratch="$(mktemp -d)"
trap 'rm -rf "${scratch}"' EXIT
echo "install-envoy-gateway-crds: go mod download ${MODULE}@${EG_VERSION}" >&2
json="$(cd "${scratch}" && GOFLAGS=-mod=mod go mod download -json "${MODULE}@${EG_VERSION}")" ||
  fail "go mod download failed (is the Go module proxy reachable? a proxy may need GOPROXY)"
[[ -z "$(field Error "${json}")" ]] || fail "go mod download: $(field Error "${json}")"
sum="$(field Sum "${json}")"
[[ "${sum}" == "${EG_MODULE_SUM}" ]] ||
  fail "${MODULE}@${EG_VERSION} has hash ${sum:-none}, not the pinned ${EG_MODULE_SUM}"
dir="$(field Dir "${json}")/${CRD_DIR}"
for file in "${CRD_FILES[@]}"; do
  [[ -s "${dir}/${file}" ]] || fail "${dir}/${file} is missing from the module"
done

echo "install-envoy-gateway-crds: Envoy Gateway ${EG_VERSION} CRDs ready" >&2
echo "${dir}"
