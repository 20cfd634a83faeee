#!/usr/bin/env bash
# `make bench-server`: the feature server under closed-loop load, beside redis-benchmark MGET
# of the same number of keys at the same concurrency on the same Redis.
#
# Release build only, never part of CI. Starts its own redis-server and `skewless serve` on
# free loopback ports (never touches another server), materializes the demo data into that
# Redis, then for concurrency 16 and 64, 20 s each (SECONDS_PER_RUN to change):
#   - one entity of `ranking_v1` (two views plus the on-demand feature: an MGET of 2 keys);
#   - a 100-entity batch of it (an MGET of 200 keys);
# and the same MGETs with redis-benchmark; then at c16 the whole service (its aggregated view
# too), one entity and 100, beside those row-only twins (issue 27's targets). Prints throughput and p50/p99/p99.9, the server's
# RSS at start and end, and the targets beside the figures.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
seconds=${SECONDS_PER_RUN:-20}
work=$root/benches/.work/server
mkdir -p "$work"

# SKEWLESS_BIN names another skewless binary (an A/B of two builds).
if [ -z "${SKEWLESS_BIN:-}" ]; then
  cargo build --release -p skewless-cli -p skewless-loadgen >&2
else
  cargo build --release -p skewless-loadgen >&2
fi
bin=${SKEWLESS_BIN:-$root/target/release/skewless}
loadgen=$root/target/release/skewless-loadgen

source "$root/benches/services.sh"
start_redis "$work"

project=$work/project
rm -rf "$project"
mkdir -p "$project"
cp -r "$root/feature_defs" "$project/"
(
  cd "$project"
  "$bin" demo-data --out data/demo >/dev/null
  "$bin" apply >/dev/null
  "$bin" materialize --end 2026-11-15 --online "$redis_url" >/dev/null 2>&1
)

# --allow-past-clock: the bodies ask as of 2026-11-15T06:00, after every row the demo holds,
# and the whole service reads the aggregated view's tiles, refused at a past clock otherwise.
SERVE_ARGS="${SERVE_ARGS:-} --allow-past-clock" start_server "$project" "$work/serve.log"
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status"; }
rss_start=$(rss_mb)

# The request bodies: one entity, and 100 entities (drivers 1001.., customers 5001..).
python3 - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def entity(i):
    # 1099, 1100, 5199 and 5200 are the demo's silent ids: every entity here has values.
    return {"driver_id": 1001 + i % 98, "customer_id": 5001 + i % 198, "distance_km": 3.2}
# ranking_v1's row-view features and its on-demand score: two keys per entity, as the MGET
# baseline reads. (The service also holds two aggregated features, whose lookups read a tile
# hash and merge it: `make bench-aggregations` measures those.)
features = [f"driver_hourly_stats:{f}" for f in ("acc_rate", "avg_daily_trips", "conv_rate", "trips_per_hour")]
features += ["customer_profile:current_balance", "customer_profile:tier", "ride_score:score"]
for name, n in [("one", 1), ("batch100", 100)]:
    body = {"features": features, "entities": [entity(i) for i in range(n)], "at": "2026-11-15T06:00:00Z"}
    open(f"{work}/{name}.json", "w").write(json.dumps(body))
# The whole service: the same, plus its aggregated features (a tile hash per driver, merged).
for name, n in [("svc1", 1), ("svc100", 100)]:
    body = {"feature_service": "ranking_v1", "entities": [entity(i) for i in range(n)], "at": "2026-11-15T06:00:00Z"}
    open(f"{work}/{name}.json", "w").write(json.dumps(body))
PY

# The server must answer both bodies with every value present before anything is measured.
for name in one batch100 svc1 svc100; do
  answer=$(curl -sf -H "Content-Type: application/json" "127.0.0.1:$server_port/v1/features" --data-binary "@$work/$name.json")
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); bad=[f for e in r["results"] for f,v in e["features"].items() if v["status"]!="PRESENT"]; sys.exit(f"not PRESENT: {bad[:5]}" if bad else 0)' "$answer"
done

# Redis keys of the same size as the served ones (the real keys hold bytes redis-benchmark
# cannot take on a command line), holding values of the same size.
value=$(head -c 64 /dev/zero | tr '\0' 'v')
keys=()
for i in $(seq 0 99); do
  for view in driver_hourly_stats customer_profile; do
    key=$(printf 'sk:demo:{\x69%016d}:%s' "$i" "$view")
    keys+=("$key")
    redis-cli -p "$redis_port" set "$key" "$value" >/dev/null
  done
done

mget() { # concurrency, number of keys -> "rps p50_ms p99_ms"
  # About as many seconds as the server's run: ~50k/s for 2 keys, ~5k/s for 200.
  local n=$(( ($2 > 2 ? 5000 : 50000) * seconds ))
  redis-benchmark -h 127.0.0.1 -p "$redis_port" -c "$1" -n "$n" --csv MGET "${keys[@]:0:$2}" 2>/dev/null |
    tail -1 | tr -d '"' | awk -F, '{print $2, $5, $7}'
}

printf '\nfeature server (skewless serve --online redis, %s s per run) beside redis-benchmark MGET, same Redis, same concurrency\n' "$seconds"
printf '%-10s %4s | %12s %8s %8s %8s %7s | %12s %8s %8s | %5s | %s\n' lookup c "serve req/s" p50_ms p99_ms p99.9_ms errors "MGET req/s" p50_ms p99_ms ratio targets
rss_after=()
for c in 16 64; do
  for body in one batch100; do
    nkeys=2; [ "$body" = batch100 ] && nkeys=200
    ours=$("$loadgen" --addr "127.0.0.1:$server_port" --body "$work/$body.json" --concurrency "$c" --seconds "$seconds")
    read -r m_rps m_p50 m_p99 < <(mget "$c" "$nkeys")
    python3 - "$ours" "$body" "$c" "$m_rps" "$m_p50" "$m_p99" <<'PY'
import json, sys
r = json.loads(sys.argv[1]); body, c = sys.argv[2], int(sys.argv[3])
m_rps, m_p50, m_p99 = (float(x) for x in sys.argv[4:7])
ratio = r["rps"] / m_rps
targets = ""
if body == "one" and c == 16:
    targets = "p99 ≤ 1 ms: {}; ratio ≥ 0.50: {}; zero errors: {}".format(
        "MET" if r["p99_ms"] <= 1.0 else "NOT MET",
        "MET" if ratio >= 0.5 else "NOT MET",
        "MET" if r["errors"] == 0 else "NOT MET")
print(f'{body:<10} {c:>4} | {r["rps"]:>12.0f} {r["p50_ms"]:>8.3f} {r["p99_ms"]:>8.3f} {r["p999_ms"]:>8.3f} {r["errors"]:>7} | {m_rps:>12.0f} {m_p50:>8.3f} {m_p99:>8.3f} | {ratio:>5.2f} | {targets}')
if r["first_error"]:
    print("  first error:", r["first_error"])
PY
    rss_after+=("$(rss_mb)")
  done
done
# Flat memory: the heaviest load (the last shape) three times more. The first run warmed the
# allocator and the connections' buffers; glibc's arenas then wobble by a few MiB from run to
# run, but a leak would keep growing: the last repeat must not be more than 5 % above the first.
rss_repeats=()
for _ in 1 2 3; do
  "$loadgen" --addr "127.0.0.1:$server_port" --body "$work/batch100.json" --concurrency 64 --seconds "$seconds" >/dev/null
  rss_repeats+=("$(rss_mb)")
done
# The whole service (issue 27): beside its row-only twin and the MGET of the same row keys.
printf '\nthe whole ranking_v1 (row views, the aggregated view, the on-demand feature) beside its row-only twin, c16\n'
whole=()
for pair in "svc1 one 2" "svc100 batch100 200"; do
  read -r svc rows nkeys <<<"$pair"
  w=$("$loadgen" --addr "127.0.0.1:$server_port" --body "$work/$svc.json" --concurrency 16 --seconds "$seconds")
  r=$("$loadgen" --addr "127.0.0.1:$server_port" --body "$work/$rows.json" --concurrency 16 --seconds "$seconds")
  read -r m_rps _ _ < <(mget 16 "$nkeys")
  whole+=("$svc|$w|$r|$m_rps")
done
python3 - "${whole[@]}" <<'PY'
import json, sys
for arg in sys.argv[1:]:
    name, w, r, m = arg.split("|")
    w, r, m = json.loads(w), json.loads(r), float(m)
    print(f"{name:<7} whole: {w['rps']:.0f} req/s, p50 {w['p50_ms']:.3f} ms, p99 {w['p99_ms']:.3f} ms, {w['errors']} errors; "
          f"row-only: {r['rps']:.0f} req/s, p99 {r['p99_ms']:.3f} ms; MGET {m:.0f} req/s")
    if name == "svc100":
        ratio = w["rps"] / r["rps"]
        print(f"        whole / row-only = {ratio:.2f} (target >= 0.66): {'MET' if ratio >= 0.66 else 'NOT MET'}; "
              f"p99 <= 5 ms: {'MET' if w['p99_ms'] <= 5 else 'NOT MET'}")
    else:
        ratio = w["rps"] / m
        print(f"        whole / MGET of 2 keys = {ratio:.2f} (target >= 0.5): {'MET' if ratio >= 0.5 else 'NOT MET'}; "
              f"p99 <= 1 ms: {'MET' if w['p99_ms'] <= 1 else 'NOT MET'}")
PY

printf '\nserver RSS (MiB): %s at start (after warm-up requests); after each run: %s; after batch100 c64 three times more: %s\n' \
  "$rss_start" "${rss_after[*]}" "${rss_repeats[*]}"
python3 - "${rss_repeats[@]}" <<'PY'
import sys
first, *_, last = (float(x) for x in sys.argv[1:])
growth = (last - first) / first
print(f"last repeat vs first: {growth:+.1%} (target: flat, no more than +5 %): {'MET' if growth <= 0.05 else 'NOT MET'}")
PY

# Drift monitoring (issue 28): the same lookups with the service's reference named (every
# served value counted on its bins) beside the server without one, alternating restarts,
# MONITOR_ROUNDS (default 3) each, c16. Target: no more than 5 % fewer requests per second.
(
  cd "$project"
  "$bin" training-set --spine data/demo/ride_requests_spine.parquet --service ranking_v1 --out reference.parquet >/dev/null 2>&1
)
restart() { # 1: name a reference, 0: none
  kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true
  rm -rf "$project/.skewless/references"
  if [ "$1" = 1 ]; then
    (cd "$project" && "$bin" monitor set-reference --service ranking_v1 reference.parquet.manifest.json >/dev/null)
  fi
  start_server "$project" "$work/serve.log"
  "$loadgen" --addr "127.0.0.1:$server_port" --body "$work/one.json" --concurrency 4 --seconds 1 >/dev/null
}
printf '
drift monitoring: the same lookups, c16, %s s each, with the reference named and without, alternating
' "$seconds"
# One round first, discarded: the first restart after the runs above measured low every time.
restart 0
"$loadgen" --addr "127.0.0.1:$server_port" --body "$work/batch100.json" --concurrency 16 --seconds "$seconds" >/dev/null
results=()
for round in $(seq "${MONITOR_ROUNDS:-3}"); do
  for monitored in 0 1; do
    restart "$monitored"
    for body in one batch100; do
      rps=$("$loadgen" --addr "127.0.0.1:$server_port" --body "$work/$body.json" --concurrency 16 --seconds "$seconds" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["rps"])')
      results+=("$body $monitored $rps")
    done
  done
done
if [ "$monitored" = 1 ]; then
  counted=$(curl -sf "127.0.0.1:$server_port/v1/monitor" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(max(d["values"] for d in r["features"] if d["window"] == "1d"))')
  printf 'values of one feature counted over the last day on the monitored server: %s
' "$counted"
fi
python3 - "${results[@]}" <<'PY'
import sys
runs = {}
for line in sys.argv[1:]:
    body, monitored, rps = line.split()
    runs.setdefault((body, monitored), []).append(float(rps))
for body in ("one", "batch100"):
    off, on = runs[(body, "0")], runs[(body, "1")]
    ratio = (sum(on) / len(on)) / (sum(off) / len(off))
    print(f"{body:<9} without: {' '.join(f'{x:.0f}' for x in off)} req/s; with: {' '.join(f'{x:.0f}' for x in on)} req/s; "
          f"with / without = {ratio:.3f} (target >= 0.95): {'MET' if ratio >= 0.95 else 'NOT MET'}")
PY
