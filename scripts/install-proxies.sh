#!/usr/bin/env bash
# Installs the reverse proxies the e2e tests run the shipped configs of proxies/ in: nginx (proxies/nginx,
# test/e2e/nginx.test.ts) and Caddy (proxies/caddy, test/e2e/caddy.test.ts), both Debian packages. As root it
# runs apt-get itself; otherwise `sudo -n`, which fails rather than asks for a password. Idempotent: what is
# installed already is left alone (no network). Any failure fails the script, so CI never skips those tests.
# The packages' own services are not used: the tests run each binary in the foreground on a config of their own.
set -euo pipefail

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

missing=()
# nginx lives in /usr/sbin, which a non-root PATH may lack.
[[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "install-proxies: apt-get install ${missing[*]}" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
"${nginx_bin}" -v 2>&1
caddy version
