"""make bench-feast: Feast's own SDK building a training set, `get_historical_features(...).to_df()`,
two ways on the same files, spine and definitions (exported by `skewless export feast`):

- Feast's remote offline store: `skewless serve --flight` builds it (skewless's as-of join);
- Feast's own local offline store (`offline_store: type: dask`, Feast's default), reading the
  same Parquet files.

Also `skewless training-set` straight from the CLI, the yardstick without Python or Flight.
Each Feast run is a process of its own (wall time and peak RSS of that process; the server's
peak is its own line). The outputs are compared cell for cell with the CLI's.
Usage (with the Python of a virtualenv holding Feast): bench.py --skewless BIN --work DIR [--sizes S M]
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "offline"))
from bench import SCALES, VIEWS, generate, measure  # noqa: E402  (the offline bench's data)

TARGET_RATIO = 0.5  # skewless through Feast's SDK vs Feast's own offline store, wall time

FEAST_RUN = """
import json, sys, time
started = time.perf_counter()
import pandas as pd
from feast import FeatureStore
imported = time.perf_counter()
repo, spine, refs, out = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
store = FeatureStore(repo_path=repo)
entity_df = pd.read_parquet(spine)
ready = time.perf_counter()
df = store.get_historical_features(entity_df=entity_df, features=refs, full_feature_names=True).to_df()
done = time.perf_counter()
df.to_parquet(out, index=False)
json.dump({"import": imported - started, "setup": ready - imported, "call": done - ready}, open(out + ".json", "w"))
"""

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compare(feast_out: Path, cli_out: Path, names) -> str:
    """Rows of the spine missing from Feast's answer, then cells that differ among the rows
    both have (matched on the spine's columns: Feast's dask store does not keep the
    DataFrame's row order)."""
    import pandas as pd

    keys = ["driver_id", "customer_id", "event_timestamp", "label"]
    a = pd.read_parquet(feast_out)
    b = pd.read_parquet(cli_out)
    both = b.merge(a, on=keys, how="inner", suffixes=("_cli", "_feast"))
    missing = len(b) - len(both)
    differ = 0
    for col in names:
        x, y = both[col + "_feast"], both[col + "_cli"]
        differ += int((~((x == y) | (x.isna() & y.isna()))).sum())
    if missing == 0 and differ == 0 and len(a) == len(b):
        return "agree"
    return f"{missing:,} of {len(b):,} spine rows missing; {differ:,} cells differ in the rest"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--skewless", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--sizes", nargs="+", default=["S"])
    args = parser.parse_args()
    work = Path(args.work).resolve()
    skewless = str(Path(args.skewless).resolve())
    for size in args.sizes:
        base = generate(work, size)
        data = base / "data"
        rows, spine_rows = SCALES[size]
        project = ["--defs", str(base / "feature_defs"), "--repo", str(base / ".skewless")]
        subprocess.run([skewless, *project, "apply"], check=True, stdout=subprocess.DEVNULL, cwd=base)
        refs = [f"{name}:{f}" for name, *_ in VIEWS for f in ("x", "y")]
        names = [r.replace(":", "__") for r in refs]

        cli_out = base / "feast_cli.parquet"
        results = {
            "skewless training-set (CLI)": measure(
                [skewless, *project, "training-set", "--spine", str(data / "spine.parquet"), "--features",
                 ",".join(refs), "--full-names", "--no-manifest", "--out", str(cli_out)]
            )
        }

        http, flight = free_port(), free_port()
        remote, local = base / "feast_remote", base / "feast_dask"
        subprocess.run(
            [skewless, *project, "export", "feast", str(remote), "--server-url", f"http://127.0.0.1:{http}",
             "--flight-addr", f"127.0.0.1:{flight}", "--project", "bench"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=base,
        )
        subprocess.run(
            [skewless, *project, "export", "feast", str(local), "--project", "bench"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=base,
        )
        yaml = (local / "feature_store.yaml").read_text()
        start = yaml.index("offline_store:")
        end = yaml.index("entity_key_serialization_version")
        (local / "feature_store.yaml").write_text(yaml[:start] + "offline_store:\n  type: dask\n" + yaml[end:])
        script = base / "feast_run.py"
        script.write_text(FEAST_RUN)

        server = subprocess.Popen(
            [skewless, *project, "serve", "--addr", f"127.0.0.1:{http}", "--flight", f"127.0.0.1:{flight}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=base,
        )
        try:
            for _ in range(200):
                try:
                    socket.create_connection(("127.0.0.1", flight), timeout=0.1).close()
                    break
                except OSError:
                    time.sleep(0.05)
            # `feast apply` validates each source with the offline store: the server must be up.
            feast_bin = str(Path(sys.executable).parent / "feast")
            for repo in (remote, local):
                subprocess.run([feast_bin, "apply"], cwd=repo, check=True, stdout=subprocess.DEVNULL)
            outs = {}
            for label, repo in (("Feast SDK -> skewless (Flight)", remote), ("Feast SDK, its dask store", local)):
                out = base / f"feast_{repo.name}.parquet"
                results[label] = measure([sys.executable, str(script), str(repo), str(data / "spine.parquet"),
                                          ",".join(refs), str(out)])
                outs[label] = out
            with open(f"/proc/{server.pid}/status") as status:
                server_peak = next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait()

        print(f"\n== {size}: {rows:,} feature rows over {len(VIEWS)} views, {spine_rows:,} spine rows, "
              f"{len(refs)} features, through Feast 0.67's SDK")
        print(f"{'path':32} {'wall s':>8} {'call s':>8} {'peak MiB':>9}  output vs the CLI's")
        calls = {}
        for label, (secs, peak) in results.items():
            if label.startswith("skewless"):
                note, call = "-", secs
            else:
                note = compare(outs[label], cli_out, names)
                call = json.loads(Path(str(outs[label]) + ".json").read_text())["call"]
            calls[label] = call
            print(f"{label:32} {secs:8.2f} {call:8.2f} {peak:9.0f}  {note}")
        print(f"{'  (skewless serve, peak)':32} {'':8} {server_peak:9.0f}")
        ratio = results["Feast SDK -> skewless (Flight)"][0] / results["Feast SDK, its dask store"][0]
        call_ratio = calls["Feast SDK -> skewless (Flight)"] / calls["Feast SDK, its dask store"]
        print("(call s: get_historical_features(...).to_df() alone, without importing Feast and loading its registry)")
        print(f"Feast SDK through skewless / Feast's own store, wall = {ratio:.2f}, call = {call_ratio:.2f}  "
              f"(target <= {TARGET_RATIO})  {'MET' if ratio <= TARGET_RATIO else 'NOT MET'}")


if __name__ == "__main__":
    main()
