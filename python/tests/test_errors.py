"""Every exception class, raised by a real bad input, with its fields."""

import datetime as dt
import shutil

import pandas as pd
import pytest

import skewless

SPINE = "data/demo/ride_requests_spine.parquet"


def test_definition_errors_name_file_and_line(demo):
    (demo.cwd / "feature_defs" / "broken.yaml").write_text(
        "feature_views:\n  broken:\n    entity: drivr\n    source: trips\n    features:\n      x: { type: int64 }\n"
    )
    with pytest.raises(skewless.DefinitionError) as raised:
        skewless.FeatureStore(".").plan()
    error = raised.value
    assert error.file.endswith("broken.yaml") and error.line == 3, (error.file, error.line)
    assert any(p["did_you_mean"] == "driver" for p in error.problems), error.problems


def test_unknown_features_and_bad_spines(demo):
    store = skewless.FeatureStore(".")
    with pytest.raises(skewless.UnknownFeatureError) as raised:
        store.get_historical_features(SPINE, ["driver_hourly_stats:conv_rat", "drivr_hourly_stats:acc_rate"])
    error = raised.value
    assert (error.kind, error.name, error.suggestion) == (
        "feature", "driver_hourly_stats:conv_rat", "driver_hourly_stats:conv_rate"
    )
    assert error.features == ["driver_hourly_stats:conv_rat", "drivr_hourly_stats:acc_rate"]
    assert error.suggestions == ["driver_hourly_stats:conv_rate", "driver_hourly_stats"]
    with pytest.raises(skewless.UnknownFeatureError) as raised:
        store.get_online_features(service="ranking_v2", entity_rows=[{"driver_id": 1}])
    assert (raised.value.kind, raised.value.name, raised.value.suggestion) == ("feature service", "ranking_v2", "ranking_v1")
    spine = pd.read_parquet(SPINE).drop(columns=["customer_id"])
    with pytest.raises(skewless.SpineError) as raised:
        store.get_historical_features(spine, ["customer_profile:tier"])
    assert raised.value.path == "entity_df" and "customer_id" in str(raised.value)
    with pytest.raises(skewless.SpineError):
        store.get_historical_features(pd.DataFrame({"driver_id": [1]}), ["customer_profile:tier"])


def test_bad_entities_stores_and_pushes(demo):
    store = skewless.FeatureStore(".")
    with pytest.raises(skewless.BadEntityError) as raised:
        store.get_online_features(["driver_hourly_stats:conv_rate"], [{"driver_id": "1001"}])
    assert raised.value.entity == 0 and raised.value.field == "driver_id"
    with pytest.raises(skewless.StoreUnavailableError):
        skewless.FeatureStore(".", online="redis://127.0.0.1:1").get_online_features(
            ["driver_hourly_stats:conv_rate"], [{"driver_id": 1001}]
        )
    with pytest.raises(skewless.PushError):
        store.push("driver_hourly", pd.DataFrame({"driver_id": [1]}))
    with pytest.raises(skewless.Error):
        store.push("trips", pd.DataFrame({"driver_id": ["x"]}))


def test_nothing_applied_and_breaking_changes(demo, tmp_path):
    fresh = tmp_path / "fresh"
    shutil.copytree(demo.cwd / "feature_defs", fresh / "feature_defs")
    with pytest.raises(skewless.NothingAppliedError):
        skewless.FeatureStore(fresh).get_online_features(["driver_hourly_stats:conv_rate"], [{"driver_id": 1}])
    defs = demo.cwd / "feature_defs" / "drivers.yaml"
    defs.write_text(defs.read_text().replace("trips_per_hour: { type: float64", "trips_per_hour: { type: float32", 1))
    with pytest.raises(skewless.BreakingChangeError) as raised:
        skewless.FeatureStore(".").apply()
    assert raised.value.changes, raised.value
    assert skewless.FeatureStore(".").apply(allow_breaking=True)


def test_a_manifest_checks_against_what_is_served(demo):
    store = skewless.FeatureStore(".")
    store.get_historical_features(SPINE, service="ranking_v1").save("t.parquet")
    assert store.check_manifest("t.parquet.manifest.json")["differences"] == []
    assert {row["name"] for row in store.list_feature_services()} >= {"ranking_v1"}


def test_parity_is_the_clis_report(demo):
    at = ["2026-11-05T07:30:00Z", "2026-11-15T06:00:00Z"]
    report = skewless.FeatureStore(".").parity(SPINE, service="ranking_v1", at=at, sample=300)
    cli = demo.json("parity", "--spine", SPINE, "--service", "ranking_v1", "--sample", "300",
                    "--at", at[0], "--at", at[1], "--json")
    assert report["mismatches"] == []
    assert report["entities"] == cli["entities"] == 300
    assert {v: r["values"] for v, r in report["views"].items()} == {v: r["values"] for v, r in cli["views"].items()}
    assert all(r["mismatches"] == 0 for r in report["views"].values()), report["views"]
    assert sum(r["present"] for r in report["views"].values()) > 0
    # The same spine as a DataFrame (nanosecond times, as pandas has them): the same report.
    from_df = skewless.FeatureStore(".").parity(pd.read_parquet(SPINE), service="ranking_v1", at=at, sample=300)
    assert from_df["mismatches"] == []
    assert {v: r["values"] for v, r in from_df["views"].items()} == {v: r["values"] for v, r in report["views"].items()}
    assert {v: r["present"] for v, r in from_df["views"].items()} == {v: r["present"] for v, r in report["views"].items()}
