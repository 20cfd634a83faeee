"""Offline aggregation benchmark: skewless against DuckDB window functions, same files, same values.

Data: the bench-offline M scale (benches/offline/bench.py generates it once, seed 7): the
`driver_trips` events (3M rows over 50k drivers, 30 days; 1% corrections are separate events
and count twice, as every row does) and the 1M-row spine.

Features: 3 windows (1h, 1d, 7d) x 4 aggregates (count(x), sum(x), mean(x), max(x)) = 12, as
of each spine row's t, `as_of: event`.
  - skewless `tile: exact`: the window is (t - w, t].
  - DuckDB: the spine rows and the events in one relation, one window per width,
    `PARTITION BY driver_id ORDER BY ts RANGE BETWEEN (w - 1 us) PRECEDING AND CURRENT ROW`,
    which on microsecond timestamps is the same (t - w, t] (CURRENT ROW takes the events tied
    with t). The spine rows carry a null x, so they count in none of the aggregates.
  - skewless `tile: 1h` is timed too (DESIGN rule 6's tiled window has no RANGE frame in
    DuckDB, so it is shown without a peer).
Agreement: counts and max exactly; sum and mean to a relative 1e-12, since DuckDB sums floats
in its own order and skewless sums exactly, rounding once.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "offline"))
import bench as offline  # noqa: E402  (the shared M data and the process timer)

WINDOWS = [("1h", 3_600), ("1d", 86_400), ("7d", 7 * 86_400)]
AGGS = [("n", "count"), ("x_sum", "sum"), ("x_mean", "mean"), ("x_max", "max")]
TARGET_RATIO = 0.5


def definitions(base: Path, data: Path, tile: str) -> Path:
    defs = base / f"defs_{tile}" / "feature_defs"
    defs.mkdir(parents=True, exist_ok=True)
    windows = ", ".join(w for w, _ in WINDOWS)
    (defs / "bench.yaml").write_text(
        f"""entities:
  driver: {{ keys: {{ driver_id: int64 }} }}
sources:
  trips: {{ path: {data}/driver_trips.parquet, timestamp: event_timestamp, created: created }}
feature_views:
  trip_aggs:
    entity: driver
    source: trips
    tile: {tile}
    aggregations:
      n:      {{ function: count, expr: x, windows: [{windows}] }}
      x_sum:  {{ function: sum, expr: x, windows: [{windows}] }}
      x_mean: {{ function: mean, expr: x, windows: [{windows}] }}
      x_max:  {{ function: max, expr: x, type: float64, windows: [{windows}] }}
"""
    )
    return defs


def duckdb_script(data: Path, out: Path) -> str:
    functions = {"count": "count(x)", "sum": "sum(x)", "mean": "avg(x)", "max": "max(x)"}
    selects, windows = [], []
    for w, seconds in WINDOWS:
        windows.append(
            f"w{w} AS (PARTITION BY driver_id ORDER BY ts "
            f"RANGE BETWEEN INTERVAL '{seconds * 1_000_000 - 1} microseconds' PRECEDING AND CURRENT ROW)"
        )
        for name, fn in AGGS:
            selects.append(f"{functions[fn]} OVER w{w} AS {name}_{w}")
    sql = (
        "COPY (WITH s AS (SELECT *, row_number() OVER () AS __row FROM read_parquet('" + str(data) + "/spine.parquet')), "
        "u AS (SELECT driver_id, event_timestamp AS ts, x, NULL::BIGINT AS __row FROM read_parquet('"
        + str(data)
        + "/driver_trips.parquet') UNION ALL SELECT driver_id, event_timestamp, NULL::DOUBLE, __row FROM s), "
        "a AS (SELECT __row, " + ", ".join(selects) + " FROM u WINDOW " + ", ".join(windows) + " QUALIFY __row IS NOT NULL) "
        "SELECT s.driver_id, s.customer_id, s.event_timestamp, s.label, "
        + ", ".join(f"a.{name}_{w}" for w, _ in WINDOWS for name, _ in AGGS)
        + f" FROM s JOIN a USING (__row) ORDER BY __row) TO '{out}' (FORMAT parquet)"
    )
    return f"import duckdb\nduckdb.sql({sql!r})\n"


def compare(ours: Path, theirs: Path) -> str:
    a, b = pq.read_table(ours), pq.read_table(theirs)
    if a.num_rows != b.num_rows:
        return f"row counts differ: {a.num_rows} vs {b.num_rows}"
    for w, _ in WINDOWS:
        for name, fn in AGGS:
            col = f"{name}_{w}"
            x = a.column(col).to_numpy(zero_copy_only=False)
            y = b.column(col).to_numpy(zero_copy_only=False)
            if fn == "count":
                y = np.nan_to_num(y.astype("float64"), nan=0.0)
            nx, ny = np.isnan(x.astype("float64")), np.isnan(y.astype("float64"))
            if not np.array_equal(nx, ny):
                return f"{col}: {int(np.sum(nx != ny))} null mismatches"
            x, y = x[~nx].astype("float64"), y[~ny].astype("float64")
            if fn in ("count", "max"):
                bad = int(np.sum(x != y))
            else:
                bad = int(np.sum(np.abs(x - y) > np.abs(y) * 1e-12))
            if bad:
                return f"{col}: {bad} values differ"
    return "agree"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--skewless", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--size", default="M")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    skewless = Path(args.skewless).resolve()
    base = offline.generate(work, args.size)
    data = base / "data"
    events = pq.read_metadata(data / "driver_trips.parquet").num_rows
    spine_rows = pq.read_metadata(data / "spine.parquet").num_rows
    agg = work / f"agg_{args.size}"
    agg.mkdir(parents=True, exist_ok=True)
    results, outs = {}, {}
    for tile in ("exact", "1h"):
        defs = definitions(agg, data, tile)
        outs[tile] = agg / f"out_skewless_{tile}.parquet"
        results[f"skewless tile {tile}"] = offline.measure(
            [str(skewless), "--defs", str(defs), "--repo", str(defs.parent / ".skewless"), "training-set",
             "--spine", str(data / "spine.parquet"), "--features", "trip_aggs:*", "--no-manifest",
             "--memory-limit", "2GiB", "--out", str(outs[tile])])
    script = agg / "run_duckdb.py"
    duck_out = agg / "out_duckdb.parquet"
    script.write_text(duckdb_script(data, duck_out))
    results["duckdb windows"] = offline.measure([sys.executable, str(script)])
    agreement = compare(outs["exact"], duck_out)
    ratio = results["skewless tile exact"][0] / results["duckdb windows"][0]
    print(f"\n== {args.size}: {events:,} events, {spine_rows:,} spine rows, "
          f"{len(WINDOWS)} windows x {len(AGGS)} aggregates")
    print(f"{'engine':22} {'wall s':>8} {'spine rows/s':>14} {'peak MiB':>9}")
    for engine, (secs, peak) in results.items():
        print(f"{engine:22} {secs:8.2f} {spine_rows / secs:14,.0f} {peak:9.0f}")
    print(f"skewless (exact) vs DuckDB: {agreement}")
    print(f"skewless exact / DuckDB = {ratio:.2f}  (target <= {TARGET_RATIO})  "
          f"{'MET' if ratio <= TARGET_RATIO else 'NOT MET'}")
    if agreement != "agree":
        sys.exit(f"outputs disagree: {agreement}")


if __name__ == "__main__":
    main()
