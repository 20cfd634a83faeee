"""Writes the bench-push project: a view `wide` over 3M rows of 1M keys (for materialize), and a
push source `events` (a one-row batch file: its schema is what pushes follow) read by `pushed`."""

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

project = Path(sys.argv[1])
START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
DAY_US = 86_400_000_000
rng = np.random.default_rng(11)
ROWS, KEYS = 3_000_000, 1_000_000


def ts(values):
    return pa.array(values, type=pa.timestamp("us", tz="UTC"))


ids = np.concatenate([np.arange(KEYS), rng.integers(0, KEYS, ROWS - KEYS)])
event = START_US + rng.integers(0, 30 * DAY_US, ROWS)
pq.write_table(
    pa.table(
        {
            "key_id": pa.array(ids),
            "event_timestamp": ts(event),
            "created": ts(event + rng.integers(1_000_000, 600_000_000, ROWS)),
            "x": pa.array(rng.random(ROWS)),
            "y": pa.array(rng.integers(0, 1000, ROWS)),
        }
    ),
    project / "data" / "wide.parquet",
    row_group_size=1_000_000,
)
pq.write_table(
    pa.table(
        {
            "user_id": pa.array([0]),
            "event_timestamp": ts([START_US]),
            "created": ts([START_US]),
            "amount": pa.array([1.0]),
            "kind": pa.array(["a"]),
        }
    ),
    project / "data" / "events.parquet",
)
(project / "feature_defs" / "bench.yaml").write_text(
    """project: bench
entities:
  key: { keys: { key_id: int64 } }
  user: { keys: { user_id: int64 } }
sources:
  wide: { path: data/wide.parquet, timestamp: event_timestamp, created: created }
  events: { path: data/events.parquet, timestamp: event_timestamp, created: created, push: true }
feature_views:
  wide: { entity: key, source: wide, ttl: 400d, features: { x: float64, y: int64 } }
  pushed:
    entity: user
    source: events
    ttl: 1d
    as_of: available
    features:
      amount: float64
      kind: string
      big: { type: bool, expr: "amount > 100" }
"""
)
