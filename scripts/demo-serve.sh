#!/usr/bin/env bash
# make demo's last step: start the feature server on the embedded store, ask both APIs,
# refresh the store while it serves (materialize goes through the server), push a trip and
# look it up, show the metrics,
# stop it with SIGTERM. Uses curl when it is there; otherwise says so and skips the requests.
set -euo pipefail
bin=$1
addr=127.0.0.1:${DEMO_PORT:-6566}
"$bin" serve --addr "$addr" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/${addr%:*}/${addr#*:}") 2>/dev/null; then break; fi
  sleep 0.1
done
if command -v curl >/dev/null; then
  echo "\$ curl -s -H 'Content-Type: application/json' $addr/v1/features -d '{\"features\": [\"driver_hourly_stats:conv_rate\", \"ride_score:score\", …], \"at\": …}'"
  curl -s -H "Content-Type: application/json" "$addr/v1/features" -d '{"features": ["driver_hourly_stats:conv_rate", "customer_profile:tier", "ride_score:score"], "entities": [{"driver_id": 1001, "customer_id": 5001, "distance_km": 3.2}], "at": "2026-11-15T06:00:00Z"}'
  echo
  echo "\$ curl -s -H 'Content-Type: application/json' $addr/v1/features -d '{\"feature_service\": \"ranking_v1\", …}'   # now: aggregated views answer only as of now"
  curl -s -H "Content-Type: application/json" "$addr/v1/features" -d '{"feature_service": "ranking_v1", "entities": [{"driver_id": 1001, "customer_id": 5001, "distance_km": 3.2}]}'
  echo
  echo "\$ curl -s -H 'Content-Type: application/json' $addr/get-online-features -d '{\"features\": [\"driver_hourly_stats:conv_rate\"], …}'"
  curl -s -H "Content-Type: application/json" "$addr/get-online-features" -d '{"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"], "entities": {"driver_id": [1001, 1002]}}'
  echo
else
  echo "(curl is not installed: skipping the HTTP requests)"
fi
echo "\$ skewless materialize-incremental --end 2026-11-16   # while the server holds the store"
"$bin" materialize-incremental --end 2026-11-16
if command -v curl >/dev/null; then
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  echo "\$ curl -s -H 'Content-Type: application/json' $addr/v1/push -d '{\"source\": \"trips\", \"rows\": [{\"driver_id\": 1001, \"fare\": 42.5, …}]}'   # logged, then served (the trip counts in trips_1h at once)"
  curl -s -H "Content-Type: application/json" "$addr/v1/push" -d "{\"source\": \"trips\", \"rows\": [{\"trip_id\": 990001, \"driver_id\": 1001, \"customer_id\": 5001, \"event_timestamp\": \"$now\", \"last_trip_distance_km\": 8.5, \"fare\": 42.5, \"rating\": 5}]}"
  echo
  curl -s -H "Content-Type: application/json" "$addr/v1/features" -d '{"features": ["driver_last_trip:last_trip_fare", "driver_trip_stats:trips_1h", "driver_trip_stats:fare_max_7d"], "entities": [{"driver_id": 1001}]}'
  echo
  echo "\$ curl -s $addr/metrics | grep -E 'requests_total|freshness'"
  curl -s "$addr/metrics" | grep -E '^skewless_(requests_total|view_freshness_seconds)' || true
fi
kill -TERM "$pid"
wait "$pid"
trap - EXIT
