"""Training-set benchmark: skewless vs DuckDB ASOF JOIN vs Polars join_asof.

Data (deterministic, seed 7): three feature views over two entities, event-mode semantics:
  driver_stats   keyed by driver_id,   ttl 2 days
  driver_trips   keyed by driver_id,   ttl 7 days
  customer       keyed by customer_id, no ttl
Each row has event_timestamp and created (created breaks ties on event time; the generator
also writes same-event-time corrections with a later created). The spine has driver_id,
customer_id, event_timestamp and a label.

The same rule in all three engines: the latest row with event_timestamp <= t (greatest
created among equal event times), null if older than the ttl. DuckDB and Polars get the
(key, event_timestamp) duplicates removed first (keep the greatest created), since neither
join breaks ties by a second column. Outputs must agree exactly, in spine order.
"""

import argparse
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SCALES = {"S": (1_000_000, 100_000), "M": (10_000_000, 1_000_000)}
DAY_US = 86_400_000_000
START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
SPAN_US = 30 * DAY_US
VIEWS = [  # name, key, ttl_days, share of feature rows
    ("driver_stats", "driver_id", 2, 0.4),
    ("driver_trips", "driver_id", 7, 0.3),
    ("customer", "customer_id", None, 0.3),
]
TARGET_RATIO = 0.5
TARGET_PEAK_MIB = 1024
TARGET_PROFILE_COST = 1.10  # a training set with its manifest's profiles / the same without (issue 28)


def ts(values):
    return pa.array(values, type=pa.timestamp("us", tz="UTC"))


def generate(work: Path, size: str) -> Path:
    rows, spine_rows = SCALES[size]
    out = work / size
    marker = out / "done"
    if marker.exists():
        return out
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "feature_defs").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    keys = {"driver_id": max(rows // 200, 10), "customer_id": max(rows // 100, 10)}
    for name, key, _, share in VIEWS:
        n = int(rows * share)
        event = START_US + rng.integers(0, SPAN_US, n)
        created = event + rng.integers(1_000_000, 600_000_000, n)
        # 1% corrections: same key and event time, landed later, other values.
        fix = rng.random(n) < 0.01
        ids = rng.integers(0, keys[key], n)
        table = pa.table(
            {
                key: pa.array(np.concatenate([ids, ids[fix]])),
                "event_timestamp": ts(np.concatenate([event, event[fix]])),
                "created": ts(np.concatenate([created, created[fix] + 3_600_000_000])),
                "x": pa.array(np.concatenate([rng.random(n), rng.random(fix.sum())])),
                "y": pa.array(np.concatenate([rng.integers(0, 1000, n), rng.integers(0, 1000, fix.sum())])),
            }
        )
        pq.write_table(table, out / "data" / f"{name}.parquet", row_group_size=1_000_000)
    spine = pa.table(
        {
            "driver_id": pa.array(rng.integers(0, keys["driver_id"] + keys["driver_id"] // 50, spine_rows)),
            "customer_id": pa.array(rng.integers(0, keys["customer_id"], spine_rows)),
            "event_timestamp": ts(START_US + rng.integers(0, SPAN_US + 2 * DAY_US, spine_rows)),
            "label": pa.array(rng.random(spine_rows) < 0.3),
        }
    )
    pq.write_table(spine, out / "data" / "spine.parquet")
    yaml = "entities:\n  driver: { keys: { driver_id: int64 } }\n  customer: { keys: { customer_id: int64 } }\nsources:\n"
    for name, _, _, _ in VIEWS:
        yaml += f"  {name}: {{ path: data/{name}.parquet, timestamp: event_timestamp, created: created }}\n"
    yaml += "feature_views:\n"
    for name, key, ttl, _ in VIEWS:
        entity = "driver" if key == "driver_id" else "customer"
        ttl_line = f"ttl: {ttl}d, " if ttl else ""
        yaml += f"  {name}: {{ entity: {entity}, source: {name}, {ttl_line}features: {{ x: float64, y: int64 }} }}\n"
    (out / "feature_defs" / "bench.yaml").write_text(yaml)
    marker.write_text("ok")
    return out


def measure(cmd):
    """Runs a command; returns (seconds, peak RSS in MiB) of that process alone."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{err}")
    return seconds, usage.ru_maxrss / 1024


def duckdb_script(data: Path, out: Path) -> str:
    ctes, selects, joins = [], [], []
    for name, key, ttl, _ in VIEWS:
        ctes.append(
            f"{name} AS (SELECT * FROM read_parquet('{data}/{name}.parquet') "
            f"QUALIFY row_number() OVER (PARTITION BY {key}, event_timestamp ORDER BY created DESC) = 1)"
        )
        for f in ("x", "y"):
            keep = f"{name}.event_timestamp >= s.event_timestamp - INTERVAL {ttl} DAY" if ttl else "TRUE"
            selects.append(f"CASE WHEN {keep} THEN {name}.{f} END AS {name}__{f}")
        joins.append(f"ASOF LEFT JOIN {name} ON s.{key} = {name}.{key} AND s.event_timestamp >= {name}.event_timestamp")
    sql = (
        "COPY (WITH s AS (SELECT *, row_number() OVER () AS __row FROM read_parquet('" + str(data) + "/spine.parquet')), "
        + ", ".join(ctes)
        + " SELECT s.driver_id, s.customer_id, s.event_timestamp, s.label, "
        + ", ".join(selects)
        + " FROM s "
        + " ".join(joins)
        + f" ORDER BY s.__row) TO '{out}' (FORMAT parquet)"
    )
    return f"import duckdb\nduckdb.sql({sql!r})\n"


def polars_script(data: Path, out: Path) -> str:
    lines = [
        "import polars as pl",
        f"s = pl.read_parquet('{data}/spine.parquet').with_row_index('__row').sort('event_timestamp')",
    ]
    for name, key, ttl, _ in VIEWS:
        tolerance = f", tolerance='{ttl}d'" if ttl else ""
        lines += [
            f"v = pl.read_parquet('{data}/{name}.parquet').sort([{key!r}, 'event_timestamp', 'created'])"
            f".unique(subset=[{key!r}, 'event_timestamp'], keep='last', maintain_order=True)",
            f"v = v.select([{key!r}, pl.col('event_timestamp').alias('__ts'), pl.col('x').alias('{name}__x'), "
            f"pl.col('y').alias('{name}__y')]).sort('__ts')",
            f"s = s.join_asof(v, left_on='event_timestamp', right_on='__ts', by={key!r}, strategy='backward'{tolerance}).drop('__ts')",
        ]
    lines += ["s.sort('__row').drop('__row').write_parquet(" + repr(str(out)) + ")"]
    return "\n".join(lines) + "\n"


def compare(a: Path, b: Path, names) -> str:
    ta, tb = pq.read_table(a), pq.read_table(b)
    if ta.num_rows != tb.num_rows:
        return f"row counts differ: {ta.num_rows} vs {tb.num_rows}"
    for col in names:
        x, y = ta.column(col).combine_chunks(), tb.column(col).combine_chunks()
        if not x.cast(y.type).equals(y):
            diff = int(np.sum(np.asarray(x.is_null()) != np.asarray(y.is_null())))
            return f"column {col} differs ({diff} null mismatches)"
    return "agree"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--skewless", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--sizes", nargs="+", default=["S", "M"])
    args = parser.parse_args()
    work = Path(args.work).resolve()
    skewless = Path(args.skewless).resolve()
    for size in args.sizes:
        base = generate(work, size)
        data = base / "data"
        rows, spine_rows = SCALES[size]
        outs = {e: base / f"out_{e}.parquet" for e in ("skewless", "duckdb", "polars")}
        features = ",".join(f"{name}:*" for name, *_ in VIEWS)
        results = {
            "skewless": measure([str(skewless), "--defs", str(base / "feature_defs"), "--repo", str(base / ".skewless"),
                                 "training-set", "--spine", str(data / "spine.parquet"), "--features", features,
                                 "--full-names", "--no-manifest", "--memory-limit", "2GiB", "--out", str(outs["skewless"])]),
        }
        for engine, script in (("duckdb", duckdb_script), ("polars", polars_script)):
            path = base / f"run_{engine}.py"
            path.write_text(script(data, outs[engine]))
            results[engine] = measure([sys.executable, str(path)])
        names = [f"{name}__{f}" for name, *_ in VIEWS for f in ("x", "y")]
        agreement = {e: compare(outs["skewless"], outs[e], names) for e in ("duckdb", "polars")}
        fastest_other = min(results["duckdb"][0], results["polars"][0])
        ratio = results["skewless"][0] / fastest_other
        print(f"\n== {size}: {rows:,} feature rows over {len(VIEWS)} views, {spine_rows:,} spine rows")
        print(f"{'engine':10} {'wall s':>8} {'spine rows/s':>14} {'peak MiB':>9}  output vs skewless")
        for engine, (secs, peak) in results.items():
            note = "-" if engine == "skewless" else agreement[engine]
            print(f"{engine:10} {secs:8.2f} {spine_rows / secs:14,.0f} {peak:9.0f}  {note}")
        print(f"skewless / fastest other = {ratio:.2f}  (target <= {TARGET_RATIO} at M)  "
              f"{'MET' if ratio <= TARGET_RATIO else 'NOT MET'}")
        peak = results["skewless"][1]
        print(f"skewless peak memory = {peak:.0f} MiB  (target <= {TARGET_PEAK_MIB} MiB)  "
              f"{'MET' if peak <= TARGET_PEAK_MIB else 'NOT MET'}")
        # The manifest's feature profiles are computed while the rows are written: their cost,
        # beside the same run with a manifest but --no-profile (after one warm-up run, which
        # also remembers the sources' fingerprints), alternating, the best of three each.
        recorded = [str(skewless), "--defs", str(base / "feature_defs"), "--repo", str(base / ".skewless"),
                    "training-set", "--spine", str(data / "spine.parquet"), "--features", features,
                    "--full-names", "--memory-limit", "2GiB"]
        subprocess.run(recorded + ["--out", str(base / "out_warm.parquet")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        timings = {"without": [], "with": []}
        for _ in range(3):
            for label, extra in (("without", ["--no-profile"]), ("with", [])):
                timings[label].append(measure(recorded + extra + ["--out", str(base / f"out_{label}_profiles.parquet")]))
        best = {label: min(t[0] for t in runs) for label, runs in timings.items()}
        profile_ratio = best["with"] / best["without"]
        print(f"training set + manifest: with profiles {best['with']:.2f} s, --no-profile {best['without']:.2f} s "
              f"(best of 3 each); peak {max(t[1] for t in timings['with']):.0f} vs "
              f"{max(t[1] for t in timings['without']):.0f} MiB")
        print(f"with profiles / without = {profile_ratio:.3f}  (target <= {TARGET_PROFILE_COST})  "
              f"{'MET' if profile_ratio <= TARGET_PROFILE_COST else 'NOT MET'}")
        if any(a != "agree" for a in agreement.values()):
            sys.exit(f"outputs disagree at {size}: {agreement}")


if __name__ == "__main__":
    main()
