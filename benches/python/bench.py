"""make bench-python: the offline bench's training set from Python, beside the CLI and beside
Feast's `get_historical_features(...).to_df()` with its duckdb offline store, on the same
files, spine and definitions. Each run is a process of its own (wall time and peak RSS);
the Python and Feast runs also time the call alone. Prints figures beside the targets.
Usage: bench.py --skewless BIN --python VENV_PYTHON --feast-python VENV_PYTHON --work DIR [--sizes S M]
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "offline"))
from bench import SCALES, VIEWS, generate, measure  # noqa: E402  (the offline bench's data)

TARGET_ARROW = 1.05  # Python .to_arrow() wall time / the CLI's
TARGET_FEAST = 3.0  # Feast (duckdb) end to end / Python .to_pandas() end to end

PYTHON_RUN = """
import json, sys, time
import skewless
base, spine, refs, how, out = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4], sys.argv[5]
if how == "pandas":
    import pandas as pd
store = skewless.FeatureStore(base)
entity_df = pd.read_parquet(spine) if how == "pandas" else spine
ready = time.perf_counter()
training = store.get_historical_features(entity_df, refs, full_feature_names=len(refs) > 2)
result = training.to_arrow() if how == "arrow" else training.to_pandas()
done = time.perf_counter()
json.dump({"call": done - ready, "rows": len(result)}, open(out, "w"))
"""

FEAST_RUN = """
import json, sys, time
import pandas as pd
from feast import FeatureStore
repo, spine, refs, out = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
store = FeatureStore(repo_path=repo)
entity_df = pd.read_parquet(spine)
ready = time.perf_counter()
df = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
json.dump({"call": time.perf_counter() - ready, "rows": len(df)}, open(out, "w"))
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--skewless", required=True)
    parser.add_argument("--python", required=True)
    parser.add_argument("--feast-python", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--sizes", nargs="+", default=["M"])
    args = parser.parse_args()
    # Absolute, not resolved: a virtualenv's python is a symlink that must stay one.
    args.python = os.path.abspath(args.python)
    args.feast_python = os.path.abspath(args.feast_python)
    work = Path(args.work).resolve()
    skewless = str(Path(args.skewless).resolve())
    for size in args.sizes:
        base = generate(work, size)
        rows, spine_rows = SCALES[size]
        spine = str(base / "data" / "spine.parquet")
        project = ["--defs", str(base / "feature_defs"), "--repo", str(base / ".skewless")]
        subprocess.run([skewless, *project, "apply"], check=True, stdout=subprocess.DEVNULL)
        refs = ",".join(f"{name}:{f}" for name, *_ in VIEWS for f in ("x", "y"))
        results, calls = {}, {}
        results["CLI training-set"] = measure([skewless, *project, "training-set", "--spine", spine, "--features", refs,
                                               "--full-names", "--no-manifest", "--out", str(base / "py_cli.parquet")])
        calls["CLI training-set"] = results["CLI training-set"][0]
        script = base / "python_run.py"
        script.write_text(PYTHON_RUN)
        # Feast 0.67's duckdb store fails with full_feature_names=True ("Column 'driver_stats__y'
        # is not found"), and the views' features share names: Feast and the Python run it is
        # compared with ask for two features whose names differ.
        two = "driver_stats:x,driver_trips:y"
        runs = (("Python .to_arrow() (path)", "arrow", refs), ("Python .to_pandas() (path)", "pandas_out", refs),
                ("Python .to_pandas() (pandas)", "pandas", refs), ("Python, 2 features (pandas)", "pandas", two))
        for label, how, features in runs:
            out = base / f"python_{how}_{len(features)}.json"
            results[label] = measure([args.python, str(script), str(base), spine, features, how, str(out)])
            calls[label] = json.loads(out.read_text())["call"]
        # Feast, its duckdb offline store on the same files.
        repo = base / "feast_duckdb"
        subprocess.run([skewless, *project, "export", "feast", str(repo), "--project", "bench"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yaml = (repo / "feature_store.yaml").read_text()
        start, end = yaml.index("offline_store:"), yaml.index("entity_key_serialization_version")
        (repo / "feature_store.yaml").write_text(yaml[:start] + "offline_store:\n  type: duckdb\n" + yaml[end:])
        feast_bin = str(Path(args.feast_python).parent / "feast")
        subprocess.run([feast_bin, "apply"], cwd=repo, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        feast_script = base / "feast_duckdb_run.py"
        feast_script.write_text(FEAST_RUN)
        out = base / "feast_duckdb.json"
        results["Feast duckdb, 2 features"] = measure([args.feast_python, str(feast_script), str(repo), spine, two, str(out)])
        calls["Feast duckdb, 2 features"] = json.loads(out.read_text())["call"]

        print(f"\n== {size}: {rows:,} feature rows over {len(VIEWS)} views, {spine_rows:,} spine rows; "
              f"6 features with full names unless said")
        print(f"{'path':30} {'wall s':>8} {'call s':>8} {'peak MiB':>9}")
        for label, (secs, peak) in results.items():
            print(f"{label:30} {secs:8.2f} {calls[label]:8.2f} {peak:9.0f}")
        arrow = results["Python .to_arrow() (path)"][0] / results["CLI training-set"][0]
        feast = results["Feast duckdb, 2 features"][0] / results["Python, 2 features (pandas)"][0]
        print(f"Python .to_arrow() / CLI, wall = {arrow:.2f}, the call alone = "
              f"{calls['Python .to_arrow() (path)'] / calls['CLI training-set']:.2f}  (target <= {TARGET_ARROW})  "
              f"{'MET' if arrow <= TARGET_ARROW else 'NOT MET'}")
        print(f"Feast duckdb / Python .to_pandas(), 2 features, wall = {feast:.2f}  (target >= {TARGET_FEAST})  "
              f"{'MET' if feast >= TARGET_FEAST else 'NOT MET'}")


if __name__ == "__main__":
    main()
