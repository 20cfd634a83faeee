#!/usr/bin/env bash
# `make bench-push`: pushes and materialization into Redis, beside redis-benchmark on the same
# server. Release build only, never part of CI. Starts its own redis-server and `skewless serve`
# on free loopback ports (never touches another server). Prints the figures beside the targets:
#   1. one-row pushes at concurrency 16 (offline log on): the push is acknowledged only after
#      its journal record is fdatasynced and its online write is done, so the ack latency is push → servable;
#      a check then pushes rows one by one and looks each up at once, and must see every one;
#   2. sustained 1000-row pushes at concurrency 4: rows/s;
#   3. `skewless materialize` end to end (scan, as-of, encode, write) of a view with 1M keys
#      (3M rows) into Redis, in keys/s, beside `redis-benchmark SET key value PX … -P 16` with
#      values of the same size.
# SECONDS_PER_RUN (default 10) sets the length of each load run.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
seconds=${SECONDS_PER_RUN:-10}
work=$root/benches/.work/push
mkdir -p "$work"

venv=$root/benches/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r benches/offline/requirements.txt
py=$venv/bin/python

# SKEWLESS_BIN=path runs another skewless binary (an A/B against an older build).
cargo build --release -p skewless-cli -p skewless-loadgen >&2
bin=${SKEWLESS_BIN:-$root/target/release/skewless}
loadgen=$root/target/release/skewless-loadgen

source "$root/benches/services.sh"
start_redis "$work"

project=$work/project
rm -rf "$project"
mkdir -p "$project/feature_defs" "$project/data"
"$py" benches/push/data.py "$project"
(cd "$project" && "$bin" apply >/dev/null)

# 3. Materialization of 1M keys, then redis-benchmark SET with PX and the same value size.
started=$(date +%s.%N)
(cd "$project" && "$bin" materialize --views wide --end 2026-03-01 --online "$redis_url" --json >"$work/materialize.json" 2>/dev/null)
ended=$(date +%s.%N)
keys_written=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["keys_written"])' "$work/materialize.json")
# A value of `wide` is 44 bytes: the 26-byte header (docs: crates/online/src/layout.rs) and
# two features of 1 + 8 bytes; its key is 25 bytes, redis-benchmark's 29.
value_size=44
redis-cli -p "$redis_port" flushall >/dev/null
value=$(head -c "$value_size" /dev/zero | tr '\0' 'v')
set_rps=$(redis-benchmark -p "$redis_port" -P 16 -n 1000000 -r 1000000 -q --csv \
  SET "sk:bench:{i__rand_int__}:wide" "$value" PX 31536000000 | tail -1 | cut -d, -f2 | tr -d '"')
redis-cli -p "$redis_port" flushall >/dev/null
(cd "$project" && "$bin" materialize --views pushed --end 2026-03-01 --online "$redis_url" >/dev/null 2>&1)

# 1 and 2: pushes through the server.
start_server "$project" "$work/serve.log"
"$py" benches/push/bodies.py "$work"
"$loadgen" --addr "127.0.0.1:$server_port" --path /v1/push --body "$work/one.json" \
  --concurrency 16 --seconds "$seconds" --warmup 1 >"$work/one.out"
"$loadgen" --addr "127.0.0.1:$server_port" --path /v1/push --body "$work/batch1000.json" \
  --concurrency 4 --seconds "$seconds" --warmup 1 >"$work/batch.out"
"$py" benches/push/visible.py "127.0.0.1:$server_port" >"$work/visible.out"
# What the log holds: segments folded by full journals while pushing, and the journal's bytes.
segments=$(find "$project/.skewless/push/events" -name '*.parquet' | wc -l)
journal_bytes=$(find "$project/.skewless/push/events" -name 'journal-*.log' -printf '%s\n' | awk '{s += $1} END {print s + 0}')

"$py" - "$work" "$started" "$ended" "$keys_written" "$set_rps" "$value_size" "$segments" "$journal_bytes" <<'PY'
import json, sys
work, started, ended, keys, set_rps, value_size, segments, journal_bytes = sys.argv[1:]
seconds = float(ended) - float(started)
keys = int(keys)
one = json.load(open(f"{work}/one.out"))
batch = json.load(open(f"{work}/batch.out"))
visible = json.load(open(f"{work}/visible.out"))
mat_rate = keys / seconds
ratio = mat_rate / float(set_rps)
print(f"push, one row, c16   p50 {one['p50_ms']:.2f} ms  p99 {one['p99_ms']:.2f} ms  {one['rps']:.0f} pushes/s  "
      f"errors {one['errors']}   target: p99 push → servable <= 2 ms  {'MET' if one['p99_ms'] <= 2 else 'NOT MET'}")
print(f"push → lookup, c1    {visible['checked']} pushes each looked up at once: {visible['seen']} seen, "
      f"p99 push+lookup {visible['p99_ms']:.2f} ms")
print(f"push, 1000 rows, c4  {batch['rps'] * 1000:.0f} rows/s  p99 {batch['p99_ms']:.1f} ms  errors {batch['errors']}   "
      f"(offline log on: {segments} segments folded from full journals, {int(journal_bytes) / 2**20:.0f} MiB in the journal)")
print(f"materialize 1M keys  {keys} keys in {seconds:.1f} s = {mat_rate:.0f} keys/s; redis-benchmark SET PX -P 16 "
      f"({value_size}-byte values): {float(set_rps):.0f}/s; ratio {ratio:.2f}   target >= 0.80  "
      f"{'MET' if ratio >= 0.8 else 'NOT MET'}")
PY
