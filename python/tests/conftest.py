"""Fixtures: the demo project (the CLI's `demo-data`), the CLI itself, a real redis-server.

The CLI is the reference the package is held to: what Python gives must be what `skewless`
gives on the same project. SKEWLESS_BIN names the binary (make test-python sets it).
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("SKEWLESS_BIN", str(ROOT / "target" / "debug" / "skewless"))


class Cli:
    def __init__(self, cwd: Path):
        self.cwd = cwd

    def run(self, *args, check=True):
        done = subprocess.run([BIN, *map(str, args)], cwd=self.cwd, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise AssertionError(f"skewless {' '.join(map(str, args))} failed:\n{done.stderr}")
        return done

    def json(self, *args):
        return json.loads(self.run(*args).stdout)


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """A demo project, applied and materialized, as the working directory."""
    shutil.copytree(ROOT / "feature_defs", tmp_path / "feature_defs")
    cli = Cli(tmp_path)
    cli.run("demo-data", "--out", "data/demo")
    cli.run("apply")
    cli.run("materialize", "--end", "2026-11-15T00:00:00Z")
    for name in ("SKEWLESS_DEFS", "SKEWLESS_REPO", "SKEWLESS_ONLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return cli


@pytest.fixture
def redis_url(tmp_path):
    """A redis-server of our own on a free loopback port, stopped afterwards."""
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (make test installs it)")
    port = free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}"
    server.terminate()
    server.wait()
