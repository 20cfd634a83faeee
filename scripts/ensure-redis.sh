#!/usr/bin/env bash
# Makes sure `redis-server` is on PATH. Tests start their own server on a free loopback
# port; this script only installs the binary and never starts or touches a running server.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server not found: installing it with apt-get" >&2
  # Keep the package from starting a system service on 6379 (policy-rc.d 101 = "not allowed").
  created_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    created_policy=1
  fi
  trap '[ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  command -v redis-server >/dev/null 2>&1 && exit 0
  echo "apt-get ran but redis-server is still not on PATH" >&2
  exit 1
fi

cat >&2 <<'MSG'
redis-server is not installed, and this script can only install it as root with apt-get.
Install it, then run `make test` again:
  Debian/Ubuntu:  sudo apt-get install redis-server
  Fedora:         sudo dnf install redis
  macOS:          brew install redis
MSG
exit 1
