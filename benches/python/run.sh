#!/usr/bin/env bash
# make bench-python: the M training set from Python (the release wheel) beside the CLI and
# beside Feast's duckdb offline store. Prints figures beside the targets.
#   SIZES="S M"      which scales (default M)
#   SKEWLESS_BIN=... a skewless release binary (default: built here into target/release)
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${SKEWLESS_BIN:-target/release/skewless}
[ -n "${SKEWLESS_BIN:-}" ] || cargo build --release -p skewless-cli
venv=benches/.venv-python
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
make wheel
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps target/wheels/skewless-*.whl
"$venv/bin/pip" install -q --disable-pip-version-check pyarrow==26.0.1 pandas==3.1.1 numpy==2.4.6
feast=${FEAST_VENV:-interop/.work/feast-venv}
if [ ! -x "$feast/bin/feast" ] || ! "$feast/bin/python" -c "import duckdb, ibis" 2>/dev/null; then
  [ -x "$feast/bin/python" ] || python3 -m venv "$feast"
  "$feast/bin/pip" install -q --disable-pip-version-check "feast[duckdb]==0.67.0"
fi
exec "$feast/bin/python" benches/python/bench.py --skewless "$bin" --python "$venv/bin/python" \
  --feast-python "$feast/bin/python" --work benches/.work --sizes ${SIZES:-M}
