"""Feast's SDK, with its online store `type: remote` pointed at `skewless serve`.

Writes through `store.push(source, df, to=PushMode.ONLINE)` and
`store.write_to_online_store(view, df)`, reads back with `store.get_online_features`, and
checks the values. Usage: check.py FEAST_REPO_DIR SERVER_URL
"""

import os
import sys
from datetime import datetime, timedelta, timezone

import pandas as pd
from feast import Entity, FeatureStore, FeatureView, Field, FileSource, PushSource, ValueType
from feast.data_source import PushMode
from feast.types import Float64

repo, url = sys.argv[1], sys.argv[2]
os.makedirs(f"{repo}/data", exist_ok=True)
with open(f"{repo}/feature_store.yaml", "w") as f:
    f.write(
        f"""project: skewless_check
registry: data/registry.db
provider: local
online_store:
  type: remote
  path: {url}
offline_store:
  type: file
entity_key_serialization_version: 3
"""
    )
pd.DataFrame(
    {
        "driver_id": [1],
        "event_timestamp": [datetime(2025, 1, 1, tzinfo=timezone.utc)],
        "created": [datetime(2025, 1, 1, tzinfo=timezone.utc)],
        "fare": [1.0],
    }
).to_parquet(f"{repo}/data/fares.parquet")

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
batch = FileSource(
    name="fares_batch",
    path=f"{repo}/data/fares.parquet",
    timestamp_field="event_timestamp",
    created_timestamp_column="created",
)
fares = PushSource(name="fares", batch_source=batch)
view = FeatureView(
    name="driver_fare_now",
    entities=[driver],
    ttl=timedelta(days=7),
    schema=[Field(name="fare", dtype=Float64)],
    source=fares,
    online=True,
)
store = FeatureStore(repo_path=repo)
store.apply([driver, fares, view])


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
