#!/usr/bin/env bash
# `make bench-push-memory`: the resident memory of `skewless serve` (embedded store, the demo
# project) idle, at its peak while four large JSON pushes run at once, and 3 s after they were
# answered: the memory a push takes must go back to the OS afterwards. Release build unless
# SKEWLESS_BIN names another binary (an A/B, or a debug build). ROWS (default 300000) rows per
# push, about 36 MB of JSON each; ROUNDS (default 2) rounds of four.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
rows=${ROWS:-300000}
work=$root/benches/.work/push-memory
rm -rf "$work" && mkdir -p "$work/project"
if [ -z "${SKEWLESS_BIN:-}" ]; then
  cargo build --release -p skewless-cli >&2
fi
bin=${SKEWLESS_BIN:-$root/target/release/skewless}

python3 - "$rows" "$work/body.json" <<'PY'
import datetime, json, sys
n, out = int(sys.argv[1]), sys.argv[2]
ts = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
rows = [{"trip_id": 10**6 + i, "driver_id": 1001 + i % 50, "customer_id": 5001, "event_timestamp": ts,
         "fare": float(i % 97) + 0.5} for i in range(n)]
json.dump({"source": "trips", "rows": rows}, open(out, "w"))
PY

cp -r feature_defs "$work/project/"
cd "$work/project"
"$bin" demo-data >/dev/null 2>&1
"$bin" apply >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --addr "127.0.0.1:$port" --threads 2 --max-push-body 64MiB --max-push-in-flight 512MiB 2>serve.err &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/{print int($2/1024)}' "/proc/$server/status"; }
idle=$(rss)
# Two rounds: memory a round leaves behind must not pile up in the next.
rounds=${ROUNDS:-2}
peaks=() afters=()
for round in $(seq "$rounds"); do
  pids=()
  for i in 1 2 3 4; do
    curl -s -o "push-$i.out" -w "%{http_code}\n" -H 'Content-Type: application/json' \
      --data-binary @"$work/body.json" "http://127.0.0.1:$port/v1/push" >"push-$i.status" &
    pids+=($!)
  done
  peak=$(rss)
  while kill -0 "${pids[@]}" 2>/dev/null; do
    r=$(rss); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.05
  done
  wait "${pids[@]}"
  for i in 1 2 3 4; do
    [ "$(cat "push-$i.status")" = 200 ] || { echo "push $i failed: $(cat "push-$i.out")" >&2; exit 1; }
  done
  sleep 3
  peaks+=("$peak") afters+=("$(rss)")
done
body_mib=$(( $(stat -c %s "$work/body.json") / 1048576 ))
peak=$(printf '%s\n' "${peaks[@]}" | sort -n | tail -1)
after=${afters[-1]}
limit=$(( idle + (peak - idle) / 4 ))
verdict=$([ "$after" -le "$limit" ] && echo met || echo "NOT MET")
printf '4 concurrent pushes of %d rows (%d MiB of JSON each), %d rounds\n' "$rows" "$body_mib" "$rounds"
printf '%-28s %8s\n' "resident memory" "MiB"
printf '%-28s %8d\n' "idle" "$idle"
for round in $(seq "$rounds"); do
  printf '%-28s %8d\n' "round $round peak" "${peaks[$((round - 1))]}" "round $round, 3 s after" "${afters[$((round - 1))]}"
done
printf 'target: after the last round <= idle + 1/4 of (highest peak - idle) = %d MiB: %s\n' "$limit" "$verdict"
