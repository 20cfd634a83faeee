#!/usr/bin/env bash
# `make bench-aggregations`: windowed aggregations, offline and online. Release build only,
# never part of CI. Starts its own redis-server and `skewless serve` on free loopback ports.
#   1. offline (offline.py): 3 windows x 4 aggregates as of each of 1M spine rows over the
#      bench M events, beside DuckDB window functions on the same files; agreement checked,
#      ratio printed beside the target (<= 0.5x DuckDB);
#   2. online: materialize the view's tiles (1h tiles, 50k drivers) into Redis; the tiles'
#      memory per entity; lookup latency of all 12 features of one driver at c1 and c16;
#      pushed events per second (one-row pushes at c16, 1000-row batches at c4).
# SECONDS_PER_RUN (default 10) sets the length of each load run; SIZE (default M) the scale.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
seconds=${SECONDS_PER_RUN:-10}
work=$root/benches/.work
mkdir -p "$work/agg_online"

venv=$root/benches/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r benches/offline/requirements.txt
py=$venv/bin/python

cargo build --release -p skewless-cli -p skewless-loadgen >&2
bin=$root/target/release/skewless
loadgen=$root/target/release/skewless-loadgen

"$py" benches/aggregations/offline.py --skewless "$bin" --work "$work" --size "${SIZE:-M}"

source "$root/benches/services.sh"
start_redis "$work/agg_online"

project=$work/agg_online/project
rm -rf "$project"
mkdir -p "$project/feature_defs"
sed -e 's/created: created }/created: created, push: true }/' \
  "$work/agg_${SIZE:-M}/defs_1h/feature_defs/bench.yaml" >"$project/feature_defs/bench.yaml"
(cd "$project" && "$bin" apply >/dev/null)

before=$(redis-cli -p "$redis_port" info memory | grep '^used_memory:' | cut -d: -f2 | tr -d '\r')
started=$(date +%s.%N)
(cd "$project" && "$bin" materialize --end 2026-01-31 --online "$redis_url" --json >"$work/agg_online/materialize.json" 2>/dev/null)
ended=$(date +%s.%N)
after=$(redis-cli -p "$redis_port" info memory | grep '^used_memory:' | cut -d: -f2 | tr -d '\r')
# One driver's tile hash: keys are binary, so a few lines of RESP over a socket find one.
read -r sample_usage sample_fields < <("$py" - "$redis_port" <<'PY'
import socket, sys
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
buf = sock.makefile("rb")
def call(*args):
    sock.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
    return read()
def read():
    line = buf.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind in (b"+", b"-"):
        return rest
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else buf.read(n + 2)[:-2]
    return [read() for _ in range(int(rest))]
cursor = b"0"
while True:
    cursor, keys = call(b"SCAN", cursor, b"COUNT", b"100")
    hashes = [k for k in keys if call(b"TYPE", k) == b"hash"]
    if hashes or cursor == b"0":
        break
key = hashes[0]
print(call(b"MEMORY", b"USAGE", key), call(b"HLEN", key))
PY
)

# The lookups ask a past clock of an aggregated view: nothing is written after it here.
SERVE_ARGS="${SERVE_ARGS:-} --allow-past-clock" start_server "$project" "$work/agg_online/serve.log"

"$py" - "$work/agg_online" <<'PY'
import json, sys
from datetime import datetime, timezone
work = sys.argv[1]
features = [f"trip_aggs:{a}_{w}" for w in ("1h", "1d", "7d") for a in ("n", "x_sum", "x_mean", "x_max")]
json.dump({"features": features, "entities": [{"driver_id": 4242}], "at": "2026-01-31T00:00:00Z"},
          open(f"{work}/lookup.json", "w"))
now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
row = lambda i: {"driver_id": i % 50_000, "event_timestamp": now, "x": 0.25 + i % 7, "y": i}
json.dump({"source": "trips", "rows": [row(7)]}, open(f"{work}/push1.json", "w"))
json.dump({"source": "trips", "rows": [row(i) for i in range(1000)]}, open(f"{work}/push1000.json", "w"))
PY
answer=$(curl -sf -H "Content-Type: application/json" "127.0.0.1:$server_port/v1/features" --data-binary "@$work/agg_online/lookup.json")
# The 1d and 7d windows hold trips; the 1h window may be empty (count 0, the others null).
"$py" -c 'import json,sys; r=json.loads(sys.argv[1]); f=r["results"][0]["features"]; bad=[k for k,v in f.items() if not k.endswith("_1h") and v["status"]!="PRESENT"]; sys.exit(f"not PRESENT: {bad}" if bad else 0)' "$answer"

for c in 1 16; do
  "$loadgen" --addr "127.0.0.1:$server_port" --body "$work/agg_online/lookup.json" \
    --concurrency "$c" --seconds "$seconds" --warmup 1 >"$work/agg_online/lookup_c$c.out"
done
"$loadgen" --addr "127.0.0.1:$server_port" --path /v1/push --body "$work/agg_online/push1.json" \
  --concurrency 16 --seconds "$seconds" --warmup 1 >"$work/agg_online/push1.out"
"$loadgen" --addr "127.0.0.1:$server_port" --path /v1/push --body "$work/agg_online/push1000.json" \
  --concurrency 4 --seconds "$seconds" --warmup 1 >"$work/agg_online/push1000.out"

"$py" - "$work/agg_online" "$started" "$ended" "$before" "$after" "$sample_usage" "$sample_fields" <<'PY'
import json, sys
work, started, ended, before, after, usage, fields = sys.argv[1:]
report = json.load(open(f"{work}/materialize.json"))[0]
keys = report["keys_written"]
load = lambda name: json.load(open(f"{work}/{name}.out"))
print(f"\n== online: view trip_aggs (tile 1h; windows 1h, 1d, 7d; count, sum, mean, max), Redis")
print(f"materialize tiles     {keys} drivers from {report['rows_read']} events in {float(ended) - float(started):.1f} s")
print(f"tile memory           {(int(after) - int(before)) / keys:.0f} bytes per driver (Redis used_memory delta / drivers); "
      f"one driver's hash: {usage} bytes, {fields} fields")
for c in (1, 16):
    r = load(f"lookup_c{c}")
    print(f"lookup 12 features c{c:<2} p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms  {r['rps']:.0f} lookups/s  errors {r['errors']}")
one, batch = load("push1"), load("push1000")
print(f"push, one event, c16  {one['rps']:.0f} events/s  p50 {one['p50_ms']:.2f} ms  p99 {one['p99_ms']:.2f} ms  errors {one['errors']}  (offline log on)")
print(f"push, 1000 events, c4 {batch['rps'] * 1000:.0f} events/s  p99 {batch['p99_ms']:.1f} ms  errors {batch['errors']}  (offline log on)")
PY
