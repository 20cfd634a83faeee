#!/usr/bin/env bash
# make bench-offline: training sets at scale S and M, skewless against DuckDB's ASOF JOIN and
# Polars' join_asof on the same files with the same semantics. Prints figures beside targets.
#   SIZES="S M"      which scales to run (default both)
#   SKEWLESS_BIN=... a skewless release binary (default: built here into target/release)
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=benches/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r benches/offline/requirements.txt

bin=${SKEWLESS_BIN:-target/release/skewless}
if [ -z "${SKEWLESS_BIN:-}" ]; then
  cargo build --release -p skewless-cli
fi
exec "$venv/bin/python" benches/offline/bench.py --skewless "$bin" --work benches/.work --sizes ${SIZES:-S M}
