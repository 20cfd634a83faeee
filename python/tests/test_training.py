"""Training sets from Python equal the CLI's, byte for byte, from every form of entity_df."""

import json

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import skewless
from conftest import sha256

SPINE = "data/demo/ride_requests_spine.parquet"


def cli_training_set(demo, *selection, full_names=False):
    demo.run("training-set", "--spine", SPINE, *selection, "--out", "cli.parquet",
             *(["--full-names"] if full_names else []))
    return sha256(demo.cwd / "cli.parquet"), json.loads((demo.cwd / "cli.parquet.manifest.json").read_text())


ENTITY_FORMS = {
    "path": lambda: SPINE,
    "pandas": lambda: pd.read_parquet(SPINE),
    "pyarrow table": lambda: pq.read_table(SPINE),
    "pyarrow reader": lambda: pa.RecordBatchReader.from_batches(
        pq.read_schema(SPINE), pq.read_table(SPINE).to_batches(max_chunksize=500)
    ),
    "polars": lambda: pl.read_parquet(SPINE),
}


@pytest.mark.parametrize("form", list(ENTITY_FORMS))
def test_a_training_set_is_the_clis_byte_for_byte(demo, form):
    cli_sha, cli_manifest = cli_training_set(demo, "--service", "ranking_v1")
    store = skewless.FeatureStore(".")
    training = store.get_historical_features(ENTITY_FORMS[form](), service="ranking_v1")
    manifest = training.save(demo.cwd / "py.parquet")
    assert sha256(demo.cwd / "py.parquet") == cli_sha
    assert manifest["output"]["sha256"] == cli_manifest["output"]["sha256"]
    assert manifest["view_versions"] == cli_manifest["view_versions"]
    assert manifest["service_version"] == cli_manifest["service_version"]
    assert manifest["rows"] == cli_manifest["rows"]
    assert json.loads((demo.cwd / "py.parquet.manifest.json").read_text()) == manifest
    if form == "path":
        assert manifest["spine"]["sha256"] == cli_manifest["spine"]["sha256"]
    else:
        assert manifest["spine"]["path"].endswith("entity_df")
    table = training.to_arrow()
    assert table.equals(pq.read_table(demo.cwd / "cli.parquet"))
    if form == "path":
        # Before any save: the same manifest, but for its output and the instant of writing.
        fresh = store.get_historical_features(SPINE, service="ranking_v1").manifest
        assert fresh["output"] is None
        unwritten = {k: v for k, v in fresh.items() if k not in ("output", "created_at", "wall_seconds")}
        assert unwritten == {k: v for k, v in cli_manifest.items() if k in unwritten}
        assert set(cli_manifest) - set(unwritten) == {"output", "created_at", "wall_seconds"}
    assert len(training) == table.num_rows == pq.read_metadata(SPINE).num_rows


def test_feature_lists_full_names_and_the_dataframe_forms(demo):
    features = ["driver_hourly_stats:conv_rate", "customer_profile:*", "ride_score:score"]
    cli_sha, _ = cli_training_set(demo, "--features", ",".join(features), full_names=True)
    store = skewless.FeatureStore(".")
    training = store.get_historical_features(pd.read_parquet(SPINE), features, full_feature_names=True)
    training.save("py.parquet", manifest=False)
    assert sha256("py.parquet") == cli_sha
    df = training.to_pandas()
    assert "driver_hourly_stats__conv_rate" in df.columns and "ride_score__score" in df.columns
    assert training.to_polars().shape == df.shape
    assert training.info["features"][0] == "driver_hourly_stats:conv_rate"


def test_the_arrow_buffers_are_not_copied(demo):
    spine = pa.table({
        "driver_id": pa.array([1001 + i % 100 for i in range(1_000_000)], pa.int64()),
        "event_timestamp": pa.array([1_762_000_000_000_000 + i for i in range(1_000_000)], pa.timestamp("us", "UTC")),
    })
    training = skewless.FeatureStore(".").get_historical_features(spine, ["driver_hourly_stats:conv_rate"])
    first, second = training.to_arrow(), training.to_arrow()
    assert first.num_rows == 1_000_000
    for name in first.column_names:
        a = first.column(name).chunks
        b = second.column(name).chunks
        assert [c.buffers()[-1].address for c in a] == [c.buffers()[-1].address for c in b], name


def test_profiles_in_the_manifest_agree_with_pandas(demo):
    """Each feature's profile, checked against pandas and numpy over the saved Parquet file."""
    import math

    import numpy as np

    store = skewless.FeatureStore(".")
    training = store.get_historical_features(SPINE, service="ranking_v1", full_feature_names=True)
    profiles = training.save("p.parquet")["profiles"]
    df = pd.read_parquet("p.parquet")
    assert set(profiles) == set(training.info["features"])
    for ref, profile in profiles.items():
        column = df[ref.replace(":", "__", 1)]
        assert profile["count"] == len(column), ref
        assert profile["nulls"] == int(column.isna().sum()), ref
        values = column.dropna()
        if profile["kind"] == "numeric":
            finite = values.astype("float64")
            finite = finite[np.isfinite(finite)]
            assert profile["min"] == finite.min() and profile["max"] == finite.max(), ref
            assert math.isclose(profile["mean"], finite.mean(), rel_tol=1e-12), ref
            assert math.isclose(profile["stddev"], finite.std(ddof=1), rel_tol=1e-9, abs_tol=1e-12), ref
            for name, q in [("p01", 0.01), ("p25", 0.25), ("p50", 0.5), ("p95", 0.95), ("p99", 0.99)]:
                assert math.isclose(profile["quantiles"][name], np.quantile(finite, q), rel_tol=1e-12,
                                    abs_tol=1e-12), (ref, name)
            edges, counts = profile["histogram"]["edges"], profile["histogram"]["counts"]
            bins = np.searchsorted(np.array(edges), finite.to_numpy(), side="left")
            assert counts == np.bincount(bins, minlength=len(edges) + 1).tolist(), ref
        else:
            assert profile["kind"] == "categorical", ref
            if values.dtype == bool:
                values = values.map({True: "true", False: "false"})
            counts = values.value_counts()
            expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:20]
            assert [tuple(top) for top in profile["top"]] == expected, ref
            assert profile["distinct"] == len(counts), ref
