#!/usr/bin/env bash
# make test-python: the Python package against the CLI. Creates python/.venv (maturin, pytest,
# pyarrow, pandas, polars from PyPI, pinned in requirements-test.txt), builds the extension
# in debug into the workspace's target/ (`maturin develop`), then runs pytest. The tests
# compare Python's answers with the CLI's (target/debug/skewless) on the demo project.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=python/.venv
if [ ! -x "$venv/bin/maturin" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r python/requirements-test.txt
export SKEWLESS_BIN=${SKEWLESS_BIN:-$PWD/target/debug/skewless}
[ -x "$SKEWLESS_BIN" ] || cargo build -p skewless-cli
(cd python && VIRTUAL_ENV=$PWD/.venv "$PWD/.venv/bin/maturin" develop --quiet --skip-install)
cd python && exec .venv/bin/python -m pytest -q tests "$@"
