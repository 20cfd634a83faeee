#!/usr/bin/env bash
# Feast's own Python SDK against `skewless serve --flight`: the writes Feast users' code makes
# (`store.push(..., to=PushMode.ONLINE)` and `store.write_to_online_store(...)` through
# Feast's remote online store), reads through the same SDK, and training sets through Feast's
# remote offline store (Arrow Flight). Prints each step and exits
# non-zero on the first mismatch.
#
# Part of `make test` (`make test-feast`): it installs Feast from PyPI into a virtualenv under
# interop/.work (about 30 s and 600 MB here), then runs for about a minute. When Feast cannot
# be installed (no network), it says SKIPPED and exits 0; any check that fails exits 1.
#   FEAST_VERSION   the Feast release to check (default 0.67.0)
#   FEAST_VENV      a virtualenv with Feast installed, to use instead
#   SKEWLESS_BIN    the skewless binary (default: target/debug/skewless, built if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
work=$root/interop/.work/feast
rm -rf "$work"
mkdir -p "$work"

venv=${FEAST_VENV:-$root/interop/.work/feast-venv}
feast_version=${FEAST_VERSION:-0.67.0}
if [ ! -x "$venv/bin/feast" ]; then
  rm -rf "$venv"
  if ! { python3 -m venv "$venv" && "$venv/bin/pip" install -q --disable-pip-version-check "feast==$feast_version"; }; then
    echo "test-feast SKIPPED: Feast $feast_version could not be installed from PyPI (see above)" >&2
    exit 0
  fi
fi
if [ -z "${SKEWLESS_BIN:-}" ]; then
  # The workspace build (a no-op after `make unit`): `-p skewless-cli` alone may resolve
  # dependency features otherwise and build the DataFusion stack a second time.
  cargo build --workspace --all-targets >&2
fi
bin=${SKEWLESS_BIN:-$root/target/debug/skewless}

# The skewless project: the demo's definitions, plus one push source and a view Feast
# writes to.
project=$work/skewless
mkdir -p "$project/data"
cp -r "$root/feature_defs" "$project/"
cp "$root/interop/feast/skewless_defs.yaml" "$project/feature_defs/fares_now.yaml"
printf 'driver_id,event_timestamp,created,fare\n1,2025-01-01T00:00:00Z,2025-01-01T00:00:00Z,1.0\n' >"$project/data/fares.csv"
(cd "$project" && "$bin" demo-data --out data/demo >/dev/null && "$bin" apply >/dev/null)

source "$root/benches/services.sh"
server_port=$(free_port)
flight_port=$(free_port)
(cd "$project" && exec "$bin" serve --addr "127.0.0.1:$server_port" --flight "127.0.0.1:$flight_port" 2>"$work/serve.log") &
server_pid=
server_pid=$!
trap bench_cleanup EXIT
for _ in $(seq 200); do
  curl -sf "127.0.0.1:$server_port/ready" >/dev/null 2>&1 && break
  sleep 0.05
done

# One source of definitions: Feast's repository is exported from skewless's.
(cd "$project" && "$bin" export feast "$work/feast_repo" --server-url "http://127.0.0.1:$server_port" \
  --flight-addr "127.0.0.1:$flight_port" --project skewless_check)
PATH="$venv/bin:$PATH" "$venv/bin/python" "$root/interop/feast/check.py" "$work/feast_repo" "http://127.0.0.1:$server_port" \
  "$project" "$bin"

# What Feast wrote is in skewless's offline log: a training set after it holds it.
spine_at=$(python3 -c 'import datetime as d; print((d.datetime.now(d.timezone.utc) + d.timedelta(seconds=2)).isoformat())')
printf 'driver_id,event_timestamp\n4242,%s\n4243,%s\n' "$spine_at" "$spine_at" >"$project/spine.csv"
sleep 2
(cd "$project" && "$bin" training-set --spine spine.csv --features driver_fare_now:fare --out "$work/training.parquet" >/dev/null)
"$venv/bin/python" - "$work/training.parquet" <<'PY'
import sys
import pyarrow.parquet as pq
fares = pq.read_table(sys.argv[1]).column("fare").to_pylist()
assert fares == [14.0, 3.0], fares
print("training set after the writes:", fares)
PY
# The version gate: a new applied version (the server follows it) fails the check until
# the repository is exported again.
printf '      fare_doubled: { type: float64, expr: "fare * 2" }\n' >>"$project/feature_defs/fares_now.yaml"
(cd "$project" && "$bin" apply >/dev/null)
for _ in $(seq 100); do
  if ! (cd "$work/feast_repo" && "$venv/bin/python" skewless_check.py >"$work/gate.txt" 2>&1); then break; fi
  sleep 0.1
done
if (cd "$work/feast_repo" && "$venv/bin/python" skewless_check.py >"$work/gate.txt" 2>&1); then
  echo "the version gate passed after a new version was applied" >&2
  exit 1
fi
echo "version gate after a new apply: $(head -c 300 "$work/gate.txt")"
(cd "$project" && "$bin" export feast "$work/feast_repo" --server-url "http://127.0.0.1:$server_port" \
  --flight-addr "127.0.0.1:$flight_port" --project skewless_check >/dev/null)
(cd "$work/feast_repo" && "$venv/bin/python" skewless_check.py)

# With API keys, Feast's SDK authenticates on both ports with `auth: {type: kubernetes,
# user_token: KEY}` (it sends `Authorization: Bearer KEY`); without the key it is refused.
kill -TERM "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_port=$(free_port)
flight_port=$(free_port)
(cd "$project" && SKEWLESS_API_KEYS=feast-check-key exec "$bin" serve --addr "127.0.0.1:$server_port" \
  --flight "127.0.0.1:$flight_port" 2>"$work/serve-keys.log") &
server_pid=$!
for _ in $(seq 200); do
  curl -s -o /dev/null "127.0.0.1:$server_port/ready" && break
  sleep 0.05
done
(cd "$project" && "$bin" export feast "$work/feast_keys" --server-url "http://127.0.0.1:$server_port" \
  --flight-addr "127.0.0.1:$flight_port" --project skewless_check >/dev/null)
cp -r "$work/feast_repo/data" "$work/feast_keys/"
"$venv/bin/python" - "$work/feast_keys" "$project" <<'PY'
import os, sys
import pandas as pd
from feast import FeatureStore
repo, project = sys.argv[1], sys.argv[2]
base = open(os.path.join(repo, "feature_store.yaml")).read()
entity_df = pd.read_parquet(os.path.join(project, "data/demo/ride_requests_spine.parquet")).head(20)
for key, admitted in (("feast-check-key", True), ("wrong-key", False)):
    with open(os.path.join(repo, "feature_store.yaml"), "w") as f:
        f.write(base + f"auth:\n  type: kubernetes\n  user_token: {key}\n")
    store = FeatureStore(repo_path=repo)
    for call in ("online", "offline"):
        try:
            if call == "online":
                store.get_online_features(features=["driver_fare_now:fare"], entity_rows=[{"driver_id": 4242}]).to_dict()
            else:
                store.get_historical_features(entity_df=entity_df, features=["customer_profile:tier"]).to_df()
            ok = True
        except Exception as e:
            ok, why = False, e
        assert ok == admitted, (key, call, ok)
        print(f"API key {key!r}, {call}: {'answered' if ok else 'refused: ' + str(why)[:100]}")
PY
echo "feast SDK checks passed against skewless serve"
