"""Lookups and pushes from Python: the CLI's values, on the embedded store and a real Redis,
in process and through a running server."""

import datetime as dt
import os
import subprocess
import time

import pandas as pd
import pytest

import skewless
from conftest import BIN, free_port

AT = "2026-11-15T06:00:00Z"
FEATURES = ["driver_hourly_stats:conv_rate", "driver_last_trip:last_trip_fare", "customer_profile:tier"]
ROWS = [{"driver_id": 1001, "customer_id": 5001}, {"driver_id": 1099, "customer_id": 5200}, {"driver_id": 7, "customer_id": 1}]


def cli_get(demo, *extra):
    entities = [arg for row in ROWS for arg in ("--entity", ",".join(f"{k}={v}" for k, v in row.items()))]
    return demo.json("get", "--features", ",".join(FEATURES), *entities, "--at", AT, "--json", *extra)


def test_online_values_are_the_clis_on_the_embedded_store(demo):
    response = skewless.FeatureStore(".").get_online_features(FEATURES, ROWS, at=AT)
    assert response.doc["results"] == cli_get(demo)["results"]
    values = response.to_dict()
    assert values["driver_id"] == [1001, 1099, 7]
    assert response.statuses()["conv_rate"][2] == "NOT_FOUND"
    assert values["conv_rate"][0] is not None
    assert response.to_arrow().num_rows == 3


def test_online_values_are_the_clis_on_redis(demo, redis_url):
    store = skewless.FeatureStore(".", online=redis_url)
    reports = store.materialize(dt.datetime(2026, 11, 1), dt.datetime(2026, 11, 15))
    assert reports and all(r.get("error") is None for r in reports), reports
    response = store.get_online_features(FEATURES, ROWS, at=AT)
    assert response.doc["results"] == cli_get(demo, "--online", redis_url)["results"]
    assert response.doc["results"] == skewless.FeatureStore(".").get_online_features(FEATURES, ROWS, at=AT).doc["results"]


def test_a_pushed_dataframe_is_served_and_in_a_later_training_set(demo):
    store = skewless.FeatureStore(".")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=2)
    rows = pd.DataFrame({
        "trip_id": [990001], "driver_id": [4242], "customer_id": [5001], "event_timestamp": [now],
        "created": [now], "last_trip_distance_km": [12.5], "fare": [31.25], "rating": [5],
    })
    report = store.push("trips", rows)
    assert report["appended"] and report["rows"] == 1, report
    served = store.get_online_features(["driver_last_trip:last_trip_fare"], [{"driver_id": 4242}])
    assert served.to_dict()["last_trip_fare"] == [31.25]
    spine = pd.DataFrame({"driver_id": [4242], "event_timestamp": [now + dt.timedelta(seconds=1)]})
    training = store.get_historical_features(spine, ["driver_last_trip:last_trip_fare"]).to_pandas()
    assert training["last_trip_fare"].tolist() == [31.25]


def test_a_client_of_the_server_gets_what_the_process_gets(demo):
    port = free_port()
    server = subprocess.Popen([BIN, "serve", "--addr", f"127.0.0.1:{port}", "--allow-past-clock"],
                              cwd=demo.cwd, stderr=subprocess.DEVNULL)
    try:
        client = skewless.Client(f"http://127.0.0.1:{port}")
        for _ in range(200):
            try:
                response = client.get_online_features(FEATURES, ROWS, at=AT)
                break
            except (ConnectionError, OSError):
                time.sleep(0.05)
        local = skewless.FeatureStore(".").get_online_features(FEATURES, ROWS, at=AT)
        assert response.to_dict() == local.to_dict()
        assert response.statuses() == local.statuses()
        # A DataFrame pushed through the server (Arrow IPC), then served by it.
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) - dt.timedelta(seconds=2)
        trips = pd.DataFrame({
            "trip_id": [990002], "driver_id": [4343], "customer_id": [5001], "event_timestamp": [now],
            "created": [now], "last_trip_distance_km": [3.5], "fare": [9.75], "rating": [4],
        })
        assert client.push("trips", trips)["rows"] == 1
        served = client.get_online_features(["driver_last_trip:last_trip_fare"], [{"driver_id": 4343}])
        assert served.to_dict()["last_trip_fare"] == [9.75]
        assert client.push("trips", [{"trip_id": 990003, "driver_id": 4344, "customer_id": 5001,
                                      "event_timestamp": now.isoformat(), "fare": 1.5}])["rows"] == 1
        with pytest.raises(skewless.BadEntityError) as bad:
            client.get_online_features(FEATURES, [{"driver_id": "1001", "customer_id": 1}])
        assert bad.value.code == "BAD_ENTITY" and "driver_id" in str(bad.value)
        client.close()
    finally:
        server.terminate()
        server.wait()
