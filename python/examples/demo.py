"""The demo from Python: what `make demo` shows after the CLI steps.

Run from the demo project (the repository's root, after `skewless demo-data` and `apply`):
a training set from a pandas DataFrame, its manifest, online lookups through the serving core,
a push that is served at once, and the manifest checked against what is served.
"""

import datetime as dt

import pandas as pd

import skewless

SPINE = "data/demo/ride_requests_spine.parquet"

store = skewless.FeatureStore(repo_path=".")

entity_df = pd.read_parquet(SPINE)
training = store.get_historical_features(entity_df, service="ranking_v1", progress=lambda line: print("  ", line))
print(f"training set: {len(training)} rows, the first three:")
print(training.to_pandas().head(3).to_string(index=False))
manifest = training.save("data/demo/training_set_python.parquet")
print(f"saved with its manifest: output sha256 {manifest['output']['sha256'][:16]}…, "
      f"applied version {manifest['applied_version']}")

features = ["driver_hourly_stats:conv_rate", "driver_last_trip:last_trip_fare", "customer_profile:tier"]
rows = [{"driver_id": 1001, "customer_id": 5001}, {"driver_id": 1099, "customer_id": 5200}]
response = store.get_online_features(features, entity_rows=rows, at="2026-11-15T06:00:00Z")
print("online, as of 2026-11-15T06:00Z:", response.to_dict())

# Driver 4242 has no trips in the demo data: after the push, it is served at once.
now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=1)
report = store.push("trips", pd.DataFrame({
    "trip_id": [990001], "driver_id": [4242], "customer_id": [5001], "event_timestamp": [now],
    "created": [now], "last_trip_distance_km": [12.5], "fare": [31.25], "rating": [5],
}))
served = store.get_online_features(["driver_last_trip:last_trip_fare"], entity_rows=[{"driver_id": 4242}])
print(f"pushed {report['rows']} trip for driver 4242; served now:", served.to_dict())

check = store.check_manifest("data/demo/training_set_python.parquet.manifest.json")
print("the model is served what it learned:" if not check["differences"] else "served differs:",
      check["differences"] or f"registry version {check['applied_now']}")
