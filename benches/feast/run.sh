#!/usr/bin/env bash
# make bench-feast: Feast 0.67's SDK building a training set through skewless's Arrow Flight
# offline server, beside Feast's own (dask) offline store and `skewless training-set`, on the
# offline bench's data. Prints figures beside the target.
#   SIZES="S M"      which scales to run (default S)
#   FEAST_VENV=...   a virtualenv with Feast installed (default: the one make test-feast uses)
#   SKEWLESS_BIN=... a skewless release binary (default: built here into target/release)
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${FEAST_VENV:-interop/.work/feast-venv}
if [ ! -x "$venv/bin/feast" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "feast==0.67.0"
fi
bin=${SKEWLESS_BIN:-target/release/skewless}
if [ -z "${SKEWLESS_BIN:-}" ]; then
  cargo build --release -p skewless-cli
fi
exec "$venv/bin/python" benches/feast/bench.py --skewless "$bin" --work benches/.work --sizes ${SIZES:-S}
