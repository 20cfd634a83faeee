#!/usr/bin/env bash
# make demo's last step: the same project from Python (python/examples/demo.py). Puts pyarrow
# and pandas in python/.venv (the virtualenv `make test-python` uses) and the debug extension
# the build made into the package. Without Python's venv or the package index, it says so and
# skips: the CLI steps before it are the demo.
set -uo pipefail
cd "$(dirname "$0")/.."
venv=python/.venv
if [ ! -x "$venv/bin/python" ] && ! python3 -m venv "$venv" >/dev/null 2>&1; then
  echo "skipping the Python walk-through: python3 -m venv is not available (apt-get install python3-venv)"
  exit 0
fi
if ! "$venv/bin/pip" install -q --disable-pip-version-check \
    "$(grep '^pyarrow==' python/requirements-test.txt)" "$(grep '^pandas==' python/requirements-test.txt)"; then
  echo "skipping the Python walk-through: pyarrow and pandas could not be installed from the package index"
  exit 0
fi
set -e
cp target/debug/lib_skewless.so python/skewless/_skewless.abi3.so
echo "== the same project from Python (python/examples/demo.py)"
PYTHONPATH=python exec "$venv/bin/python" python/examples/demo.py
