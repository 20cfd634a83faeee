#!/usr/bin/env bash
# Makes sure `redis-server`, `redis-cli` (which joins the cluster tests' nodes) and `openssl`
# (which makes the TLS tests' certificate) are on PATH. Tests start their own server on a free loopback port; this script only installs the
# binaries and never starts or touches a running server.
set -euo pipefail

have_all() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && command -v openssl >/dev/null 2>&1
}

if have_all; then
  exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server, redis-cli or openssl not found: installing them with apt-get" >&2
  # Keep the package from starting a system service on 6379 (policy-rc.d 101 = "not allowed").
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools openssl >/dev/null
  have_all && exit 0
  echo "apt-get ran but redis-server, redis-cli or openssl is still not on PATH" >&2
  exit 1
fi

cat >&2 <<'MSG'
redis-server, redis-cli or openssl is not installed, and this script can only install them as root
with apt-get. Install them, then run `make test` again:
  Debian/Ubuntu:  sudo apt-get install redis-server openssl
  Fedora:         sudo dnf install redis openssl
  macOS:          brew install redis openssl
MSG
exit 1
