#!/usr/bin/env bash
# make test-python: the Python package against the CLI. Creates python/.venv (pytest, pyarrow,
# pandas, polars and maturin from PyPI, pinned in requirements-test.txt), puts the extension
# the workspace build made (target/debug/lib_skewless.so, built as an extension module: see
# .cargo/config.toml) into the package, then runs pytest. The tests compare Python's answers
# with the CLI's (target/debug/skewless) on the demo project. `make wheel` builds with maturin.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=python/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check -r python/requirements-test.txt
# A no-op after `make unit` (nextest builds every target of the workspace, with these features).
cargo build --workspace --all-targets
export SKEWLESS_BIN=${SKEWLESS_BIN:-$PWD/target/debug/skewless}
cp target/debug/lib_skewless.so python/skewless/_skewless.abi3.so
cd python && exec .venv/bin/python -m pytest -q tests "$@"
