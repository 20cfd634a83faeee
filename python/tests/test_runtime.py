"""Long calls: progress goes to the `skewless` logger (nothing to stdout), Ctrl-C stops them."""

import logging
import signal
import subprocess
import sys
import time

import pytest

import skewless

SPINE = "data/demo/ride_requests_spine.parquet"


def test_progress_goes_to_logging_not_stdout(demo, caplog, capfd):
    with caplog.at_level(logging.INFO, logger="skewless"):
        skewless.FeatureStore(".").get_historical_features(SPINE, service="ranking_v1")
    lines = [r.getMessage() for r in caplog.records if r.name == "skewless"]
    assert any(line.startswith("spine: ") for line in lines), lines
    assert any("joined driver_hourly_stats" in line for line in lines), lines
    out, err = capfd.readouterr()
    assert out == "" and err == "", (out, err)


def test_progress_goes_to_a_callback_and_its_exception_stops_the_work(demo, caplog):
    store = skewless.FeatureStore(".")
    lines = []
    with caplog.at_level(logging.INFO, logger="skewless"):
        store.get_historical_features(SPINE, service="ranking_v1", progress=lines.append)
        store.materialize("2026-10-01", "2026-11-20", ["driver_hourly_stats"], progress=lines.append)
    assert any(line.startswith("spine: ") for line in lines), lines
    assert any("joined driver_hourly_stats" in line for line in lines), lines
    assert any(line.startswith("materialized `driver_hourly_stats`") for line in lines), lines
    assert [r for r in caplog.records if r.name == "skewless"] == []

    class Enough(Exception):
        pass

    def stop(line):
        raise Enough(line)

    with pytest.raises(Enough, match="spine: "):
        store.get_historical_features(SPINE, service="ranking_v1", progress=stop)


LONG_RUN = """
import sys, time
import pyarrow as pa
import skewless
n = 20_000_000
spine = pa.table({
    "driver_id": pa.array(range(n), pa.int64()),
    "event_timestamp": pa.array(range(1_762_000_000_000_000, 1_762_000_000_000_000 + n), pa.timestamp("us", "UTC")),
})
print("started", flush=True)
started = time.monotonic()
try:
    skewless.FeatureStore(".").get_historical_features(spine, ["driver_hourly_stats:conv_rate"])
    print("finished", flush=True)
except KeyboardInterrupt:
    print(f"interrupted {time.monotonic() - started:.2f}", flush=True)
"""


def test_ctrl_c_stops_a_training_set(demo):
    run = subprocess.Popen([sys.executable, "-c", LONG_RUN], cwd=demo.cwd, stdout=subprocess.PIPE, text=True,
                           env={"PYTHONPATH": str(skewless.__path__[0] + "/..")})
    assert run.stdout.readline().strip() == "started"
    time.sleep(0.5)
    run.send_signal(signal.SIGINT)
    out, _ = run.communicate(timeout=60)
    assert out.startswith("interrupted"), out
    assert run.returncode == 0
