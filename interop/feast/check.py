"""Feast's SDK on the repository `skewless export feast` wrote, its online store remote at
`skewless serve`.

Applies the exported repository with Feast's own CLI (no edits), runs its version gate, then
writes through `store.push(source, df, to=PushMode.ONLINE)` and
`store.write_to_online_store(view, df)`, reads back with `store.get_online_features` (a
feature list and a feature service), and checks the values.
Builds training sets with `store.get_historical_features(entity_df, ...).to_df()` through
Feast's remote offline store (skewless's Arrow Flight server) and compares them cell for cell
with what `skewless training-set` writes for the same spine.
Then materializes through Feast's SDK (`store.materialize`, which Feast 0.66+ sends to the
server) and reads the result with skewless's own API.
Usage: check.py FEAST_REPO_DIR SERVER_URL SKEWLESS_PROJECT_DIR SKEWLESS_BIN
"""

import json
import os
import subprocess
import urllib.request
import sys
from datetime import datetime, timedelta, timezone

import pandas as pd
from feast import FeatureStore
from feast.data_source import PushMode

repo, url, project_dir, skewless_bin = sys.argv[1:5]
feast = os.path.join(os.path.dirname(sys.executable), "feast")
subprocess.run([feast, "apply"], cwd=repo, check=True, stdout=subprocess.DEVNULL)
print("feast apply: the exported repository applied without edits")
subprocess.run([sys.executable, "skewless_check.py"], cwd=repo, check=True)

store = FeatureStore(repo_path=repo)


def served(ids):
    got = store.get_online_features(
        features=["driver_fare_now:fare"], entity_rows=[{"driver_id": i} for i in ids]
    ).to_dict()
    return got["fare"]


now = datetime.now(timezone.utc) - timedelta(seconds=1)
store.push(
    "fares",
    pd.DataFrame({"driver_id": [4242, 4243], "event_timestamp": [now, now], "created": [now, now], "fare": [12.5, 3.0]}),
    to=PushMode.ONLINE,
)
assert served([4242, 4243]) == [12.5, 3.0], served([4242, 4243])
print("push(to=ONLINE) through the remote online store: served", served([4242, 4243]))

later = now + timedelta(milliseconds=500)
store.write_to_online_store(
    "driver_fare_now",
    pd.DataFrame({"driver_id": [4242], "event_timestamp": [later], "created": [later], "fare": [14.0]}),
)
assert served([4242, 4243]) == [14.0, 3.0], served([4242, 4243])
print("write_to_online_store: served", served([4242, 4243]))

by_service = store.get_online_features(
    features=store.get_feature_service("fares_v1"), entity_rows=[{"driver_id": 4242}]
).to_dict()
assert by_service["fare"] == [14.0], by_service
print("feature service fares_v1: served", by_service)

# A write Feast's SDK makes that skewless refuses: Feast raises with skewless's message.
try:
    store.write_to_online_store(
        "driver_last_trip",
        pd.DataFrame({"driver_id": [4242], "event_timestamp": [later], "created": [later],
                      "last_trip_distance_km": [1.0], "last_trip_fare": [2.0], "last_trip_rated": [True]}),
    )
    raise AssertionError("a write to a computed view was taken")
except RuntimeError as e:
    assert "VIEW_NOT_WRITABLE" in str(e), e
    print("write_to_online_store to a view with computed features: refused,", str(e).split("message")[-1][:120], "…")

# Training sets through Feast's remote offline store: skewless's, cell for cell the CLI's.
# Every 7th spine row, so pandas' index is not a range and travels with the upload as a column.
entity_df = pd.read_parquet(os.path.join(project_dir, "data/demo/ride_requests_spine.parquet")).iloc[::7]
spine_path = os.path.join(project_dir, "feast_spine.parquet")
entity_df.to_parquet(spine_path, index=False)


def cli_training_set(refs, full_names):
    out = os.path.join(project_dir, "feast_check_training.parquet")
    run = subprocess.run(
        [skewless_bin, "training-set", "--spine", spine_path, "--features", ",".join(refs), "--out", out,
         "--no-manifest"] + (["--full-names"] if full_names else []),
        cwd=project_dir, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr
    return pd.read_parquet(out)


refs = ["driver_hourly_stats:conv_rate", "driver_trip_stats:trips_1d", "customer_profile:tier"]
for full_names in (False, True):
    got = store.get_historical_features(entity_df=entity_df, features=refs, full_feature_names=full_names).to_df()
    want = cli_training_set(refs, full_names)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    print(f"get_historical_features(full_feature_names={full_names}) over Flight: {len(got)} rows x "
          f"{len(got.columns)} columns, equal to `skewless training-set` cell for cell")
service = store.get_feature_service("ranking_v1")
service_refs = [f"{p.name_to_use()}:{f.name}" for p in service.feature_view_projections for f in p.features]
got = store.get_historical_features(entity_df=entity_df, features=service).to_df()
pd.testing.assert_frame_equal(got, cli_training_set(service_refs, False), check_exact=True)
print(f"get_historical_features(feature service ranking_v1, {len(service_refs)} features): equal to the CLI's")

# A spine skewless refuses: Feast raises its own exception class with skewless's words.
from feast.errors import FeastError
try:
    store.get_historical_features(entity_df=entity_df.drop(columns=["customer_id"]), features=refs).to_df()
    raise AssertionError("a spine without a join key was taken")
except FeastError as e:
    assert "customer_id" in str(e), e
    print(f"an entity DataFrame without customer_id: {type(e).__name__}: {str(e)[:120]}")

# Feast's materialize, run by the server into the store it serves from.
store.materialize(
    start_date=datetime(2026, 11, 1, tzinfo=timezone.utc),
    end_date=datetime(2026, 11, 15, tzinfo=timezone.utc),
    feature_views=["driver_hourly_stats"],
)
request = urllib.request.Request(
    url + "/v1/features",
    data=json.dumps(
        {"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": 1001}], "at": "2026-11-15T00:00:00Z"}
    ).encode(),
    headers={"Content-Type": "application/json"},
)
with urllib.request.urlopen(request) as response:
    value = json.load(response)["results"][0]["features"]["conv_rate"]
assert value["status"] == "PRESENT", value
print("store.materialize through the server: driver 1001's conv_rate at 2026-11-15 is", value["value"])
