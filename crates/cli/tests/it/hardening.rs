//! Regression tests for the hardening issue: each probe that once gave a silent wrong
//! result, a race or a panic, run through the real binary.

use std::process::Stdio;

use crate::commands::demo_project;
use crate::{Run, TempProject};

fn applied_records(p: &TempProject) -> usize {
    std::fs::read_dir(p.path().join(".skewless/registry/applied"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| !e.file_name().to_string_lossy().starts_with('.'))
            })
            .count()
        })
        .unwrap_or(0)
}

/// Started together, identical applies record one version, and the others say up to date
/// (or that the registry moved); never two records of the same definitions.
#[test]
fn concurrent_applies_record_once() {
    let p = demo_project();
    let children: Vec<_> = (0..6)
        .map(|_| {
            p.command(&["apply"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| Run(c.wait_with_output().unwrap()))
        .collect();
    for run in &runs {
        let text = format!("{}{}", run.stdout(), run.stderr());
        assert!(
            run.code() == 0 || text.contains("moved from"),
            "an apply failed for another reason:\n{text}"
        );
    }
    assert!(runs.iter().any(|r| r.stdout().contains("Applied as version 1")));
    assert_eq!(applied_records(&p), 1);
}

/// A change planned against v1 cannot be applied once v2 landed, even with --allow-breaking.
#[test]
fn apply_expect_version_refuses_a_moved_registry() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    p.edit(
        "drivers.yaml",
        "      acc_rate:       { type: float32, contract: { min: 0, max: 1 } }\n",
        "",
    );
    p.run(&["apply", "--allow-breaking", "--expect-version", "1"]).ok();
    let refused = p.run(&["apply", "--allow-breaking", "--expect-version", "1"]);
    assert_eq!(refused.code(), 1);
    assert!(refused.stderr().contains("moved from v1 to v2"), "{}", refused.stderr());
}

/// A mistyped store URL is refused (exit 1, accepted forms listed, password hidden) and
/// creates nothing on disk: it used to become a directory for an embedded store.
#[test]
fn mistyped_store_urls_are_refused_and_create_nothing() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    let before: Vec<_> = walk(p.path());
    for url in [
        "http://localhost:6379",
        "Redis://localhost:6379",
        "redis:/localhost:6379",
        "localhost:6379",
        "Redis://:s3cret@host",
    ] {
        for args in [
            vec!["materialize", "--end", "2026-11-15", "--online", url],
            vec![
                "get",
                "--features",
                "driver_hourly_stats:conv_rate",
                "--entity",
                "driver_id=1001",
                "--online",
                url,
            ],
        ] {
            let run = p.run(&args);
            assert_eq!(run.code(), 1, "{url}: {}", run.stdout());
            assert!(run.stderr().contains("accepted: redis://"), "{url}: {}", run.stderr());
            assert!(!run.stderr().contains("s3cret") && !run.stdout().contains("s3cret"));
        }
    }
    assert_eq!(walk(p.path()), before, "a refused URL created files");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    out
}

const SPINE: &str = "data/demo/ride_requests_spine.parquet";

/// `--out` that would overwrite an input, or whose name says another format, is refused
/// before any work; `.csv` is honoured.
#[test]
fn training_set_outputs_are_what_their_names_say() {
    let p = demo_project();
    let spine_before = std::fs::read(p.path().join(SPINE)).unwrap();
    let service = ["--service", "ranking_v1"];
    for (out, why) in [
        (SPINE, "is the spine"),
        ("./data/demo/../demo/ride_requests_spine.parquet", "is the spine"),
        (
            "data/demo/driver_hourly_stats.parquet",
            "is read by source `driver_hourly`",
        ),
        ("out.txt", "name the file *.parquet or *.csv"),
        ("out", "name the file *.parquet or *.csv"),
    ] {
        let run = p.run(&[&["training-set", "--spine", SPINE, "--out", out][..], &service[..]].concat());
        assert_eq!(run.code(), 1, "{out}");
        assert!(run.stderr().contains(why), "{out}: {}", run.stderr());
    }
    assert_eq!(std::fs::read(p.path().join(SPINE)).unwrap(), spine_before);
    // Inside a directory source, or matching a glob source: the next build would read it.
    p.edit(
        "drivers.yaml",
        "path: data/demo/driver_hourly_stats.parquet",
        "path: data/demo/hourly/",
    );
    p.edit(
        "drivers.yaml",
        "path: data/demo/trips.parquet",
        "path: data/demo/trips*.parquet",
    );
    std::fs::create_dir_all(p.path().join("data/demo/hourly")).unwrap();
    std::fs::rename(
        p.path().join("data/demo/driver_hourly_stats.parquet"),
        p.path().join("data/demo/hourly/part0.parquet"),
    )
    .unwrap();
    for (out, source) in [
        ("data/demo/hourly/x.parquet", "driver_hourly"),
        ("data/demo/trips_out.parquet", "trips"),
    ] {
        let run = p.run(&[&["training-set", "--spine", SPINE, "--out", out][..], &service[..]].concat());
        assert_eq!(run.code(), 1, "{out}");
        assert!(
            run.stderr().contains(&format!("is read by source `{source}`")),
            "{out}: {}",
            run.stderr()
        );
    }

    p.run(&[&["training-set", "--spine", SPINE, "--out", "ts.csv"][..], &service[..]].concat())
        .ok();
    let csv = std::fs::read_to_string(p.path().join("ts.csv")).unwrap();
    let mut lines = csv.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("driver_id,") && header.contains("conv_rate"),
        "{header}"
    );
    assert_eq!(lines.count(), 2000);
    assert!(!csv.starts_with("PAR1"));
}

#[test]
fn ordinary_mistakes_are_errors_not_silent_results() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    let twice = p.run(&[
        "get",
        "--features",
        "driver_hourly_stats:conv_rate",
        "--entity",
        "driver_id=1001,driver_id=1002",
    ]);
    assert_eq!(twice.code(), 2, "{}", twice.stderr());
    assert!(
        twice.stderr().contains("`driver_id` is given twice"),
        "{}",
        twice.stderr()
    );

    let backwards = p.run(&["materialize", "--start", "2026-11-15", "--end", "2026-11-14"]);
    assert_eq!(backwards.code(), 1);
    assert!(backwards.stderr().contains("is after --end"), "{}", backwards.stderr());
}

/// One JSON convention: non-finite floats are "NaN" / "Infinity" / "-Infinity", in values
/// and in the echoed request fields alike; keys are typed.
#[test]
fn json_output_has_one_convention_for_non_finite_floats() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    p.run(&["materialize", "--end", "2026-11-15"]).ok();
    let out = p
        .run(&[
            "get",
            "--service",
            "ranking_v1",
            "--entity",
            "driver_id=1001,customer_id=5001,distance_km=NaN",
            "--entity",
            "driver_id=1001,customer_id=5001,distance_km=-Infinity",
            "--at",
            "2026-11-15",
            "--json",
        ])
        .ok()
        .json();
    let first = &out["results"][0]["entity"];
    assert_eq!(first["distance_km"], "NaN");
    assert_eq!(first["driver_id"], 1001);
    assert_eq!(out["results"][1]["entity"]["distance_km"], "-Infinity");
}

/// A project whose data breaks two expressions and one CSV row only past the first thousand
/// lines (schema inference reads those), so `validate` passes and jobs meet the failures.
fn broken_data_project() -> TempProject {
    let p = TempProject::with_demo_defs();
    let defs = p.path().join("feature_defs");
    for entry in std::fs::read_dir(&defs).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    std::fs::write(
        defs.join("defs.yaml"),
        r#"
project: broken
entities: { driver: { keys: { driver_id: int64 } } }
sources:
  a: { path: data/a.csv, timestamp: ts }
  b: { path: data/b.csv, timestamp: ts }
feature_views:
  va:
    entity: driver
    source: a
    features:
      trips:    int64
      code_num: { type: int64, expr: "CAST(substr(code, 2) AS BIGINT)" }
      per_zero: { type: int64, expr: "trips / zeros" }
  vc:
    entity: driver
    source: a
    features:
      doubled: { type: int64, expr: "trips * 2" }
  vb:
    entity: driver
    source: b
    features:
      n: int64
"#,
    )
    .unwrap();
    std::fs::create_dir_all(p.path().join("data")).unwrap();
    let mut a = String::from("driver_id,ts,trips,code,zeros\n");
    let mut b = String::from("driver_id,ts,n\n");
    for i in 0..1500 {
        let ts = format!("2026-01-01T{:02}:{:02}:00Z", i / 60 % 24, i % 60);
        // Data row 1300 (line 1302) has a code that is no number; row 1200 divides by zero.
        let code = if i == 1300 {
            "cgold".to_string()
        } else {
            format!("c{i}")
        };
        let zeros = if i == 1200 { 0 } else { 1 };
        a.push_str(&format!("{},{ts},{i},{code},{zeros}\n", 1000 + i % 10));
        let n = if i == 1100 { "oops".to_string() } else { i.to_string() };
        b.push_str(&format!("{},{ts},{n}\n", 1000 + i % 10));
    }
    std::fs::write(p.path().join("data/a.csv"), a).unwrap();
    std::fs::write(p.path().join("data/b.csv"), b).unwrap();
    std::fs::write(
        p.path().join("spine.csv"),
        "driver_id,event_timestamp\n1001,2026-01-02T00:00:00Z\n",
    )
    .unwrap();
    p
}

#[test]
fn data_failures_name_view_feature_file_and_row() {
    let p = broken_data_project();
    p.run(&["validate"]).ok();

    // validate --data finds all three before any job runs.
    let data = p.run(&["validate", "--data"]);
    assert_eq!(data.code(), 1);
    let text = data.stderr();
    assert!(
        text.contains("a.csv line 1302: feature `va.code_num`") && text.contains("gold"),
        "{text}"
    );
    assert!(
        text.contains("a.csv line 1202: feature `va.per_zero`") && text.contains("Divide by zero"),
        "{text}"
    );
    assert!(
        text.contains("b.csv: cannot be read") && text.contains("oops"),
        "{text}"
    );
    assert!(!text.contains("va.trips") && !text.contains("vc."), "{text}");

    // A healthy feature of the same view is not failed by its broken neighbours.
    p.run(&[
        "training-set",
        "--spine",
        "spine.csv",
        "--features",
        "va:trips,vc:doubled",
        "--out",
        "ok.parquet",
    ])
    .ok();
    // A broken one names view, feature, file and line, once.
    let failed = p.run(&[
        "training-set",
        "--spine",
        "spine.csv",
        "--features",
        "va:code_num",
        "--out",
        "x.parquet",
    ]);
    assert_eq!(failed.code(), 1);
    let stderr = failed.stderr();
    let e = stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    assert!(
        e.contains("feature view `va`") && e.contains("a.csv line 1302: feature `va.code_num`"),
        "{e}"
    );
    assert!(!e.contains("per_zero"), "an unrequested feature was evaluated: {e}");
    assert!(!e.contains("spine"), "the spine is blamed: {e}");
    assert_eq!(e.matches("gold").count(), 1, "repeated: {e}");

    // materialize: each view on its own; the healthy one is written, the run exits 1.
    p.run(&["apply"]).ok();
    let run = p.run(&["materialize", "--end", "2026-01-02", "--json"]);
    assert_eq!(run.code(), 1, "{}", run.stderr());
    let reports = run.json();
    let by_view = |v: &str| {
        reports
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["view"] == v)
            .cloned()
            .unwrap()
    };
    assert!(by_view("va")["error"].as_str().unwrap().contains("line 1202"));
    assert!(by_view("vb")["error"].as_str().unwrap().contains("b.csv"));
    assert_eq!(by_view("vc")["error"], serde_json::Value::Null);
    assert_eq!(by_view("vc")["keys_written"], 10);
    p.run(&[
        "get",
        "--features",
        "vc:doubled",
        "--entity",
        "driver_id=1009",
        "--at",
        "2026-01-02",
        "--json",
    ])
    .ok();
}

/// A training set built from edited, unapplied definitions says loudly that it is not what
/// is served (and the manifest records it); once applied, it is quiet.
#[test]
fn training_sets_from_unapplied_definitions_warn_of_skew() {
    let p = demo_project();
    let build = |p: &TempProject| {
        p.run(&[
            "training-set",
            "--spine",
            SPINE,
            "--service",
            "ranking_v1",
            "--out",
            "ts.parquet",
        ])
        .ok()
        .stderr()
    };
    assert!(build(&p).contains("nothing is applied yet"));
    p.run(&["apply"]).ok();
    assert!(!build(&p).contains("WARNING"));
    p.edit(
        "drivers.yaml",
        "trips_per_hour: { type: float64, expr: \"avg_daily_trips / 24.0\" }",
        "trips_per_hour: { type: float64, expr: \"avg_daily_trips / 12.0\" }",
    );
    let warned = build(&p);
    assert!(
        warned.contains("WARNING: training/serving skew: feature view `driver_hourly_stats` on disk"),
        "{warned}"
    );
    let warnings: Vec<&str> = warned.lines().filter(|l| l.starts_with("WARNING")).collect();
    assert_eq!(
        warnings.len(),
        2,
        "the view and the on-demand view reading it: {warned}"
    );
    let manifest = std::fs::read_to_string(p.path().join("ts.parquet.manifest.json")).unwrap();
    assert!(manifest.contains("skew_warnings"), "{manifest}");
}

/// `skewless check --manifest`: the gate between a model and what is served. A training set
/// of the applied definitions passes; once a view it uses is applied in another version, or
/// when it was built from unapplied definitions, the check fails and names the view.
#[test]
fn check_gates_a_manifest_against_what_is_served() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    let build = |out: &str| {
        p.run(&[
            "training-set",
            "--spine",
            SPINE,
            "--service",
            "ranking_v1",
            "--out",
            out,
        ])
        .ok();
        format!("{out}.manifest.json")
    };
    let trained = build("v1.parquet");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join(&trained)).unwrap()).unwrap();
    assert_eq!(manifest["applied_version"], 1, "{manifest}");
    let ok = p.run(&["check", "--manifest", &trained]).ok();
    assert!(ok.stdout().starts_with("compatible"), "{}", ok.stdout());

    // Definitions edited but not applied: a training set of them is `unapplied`, and fails.
    p.edit(
        "drivers.yaml",
        "trips_per_hour: { type: float64, expr: \"avg_daily_trips / 24.0\" }",
        "trips_per_hour: { type: float64, expr: \"avg_daily_trips / 12.0\" }",
    );
    let unapplied = build("edited.parquet");
    let run = p.run(&["check", "--manifest", &unapplied]);
    assert_eq!(run.code(), 1, "{}", run.stdout());
    assert!(run.stdout().contains("unapplied definitions"), "{}", run.stdout());
    assert!(
        run.stdout().contains("feature view `driver_hourly_stats`"),
        "{}",
        run.stdout()
    );

    // Applied: now the first model's view is served in another version.
    p.run(&["apply", "--allow-breaking"]).ok();
    let run = p.run(&["check", "--manifest", &trained, "--json"]);
    assert_eq!(run.code(), 1, "{}", run.stdout());
    let report = run.json();
    let differences = report["differences"].as_array().unwrap();
    assert!(
        differences
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("feature view `driver_hourly_stats`")),
        "{report}"
    );
    assert!(
        differences
            .iter()
            .any(|d| d.as_str().unwrap().starts_with("feature service `ranking_v1`")),
        "{report}"
    );
    assert_eq!(report["applied_now"], 2, "{report}");
    // A training set of what is applied now passes again.
    let retrained = build("v2.parquet");
    p.run(&["check", "--manifest", &retrained]).ok();
}

/// `skewless parity` on the demo: every value of the service agrees at the given instants
/// (and the counts add up); with unapplied definitions it refuses to compare.
#[test]
fn parity_agrees_on_the_demo_and_refuses_unapplied_definitions() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    let run = p
        .run(&[
            "parity",
            "--spine",
            SPINE,
            "--service",
            "ranking_v1",
            "--sample",
            "150",
            "--at",
            "2026-11-05T07:30:00Z",
            "--at",
            "2026-11-15T06:00:00Z",
            "--json",
        ])
        .ok();
    let report = run.json();
    assert_eq!(report["entities"], 150, "{report}");
    assert_eq!(report["instants"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["mismatches"], serde_json::json!([]), "{report}");
    // ranking_v1: 4 hourly stats, 2 customer features, 1 on-demand score, 2 trip aggregates.
    let values: u64 = report["views"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v["values"].as_u64().unwrap())
        .sum();
    assert_eq!(values, 150 * 2 * 9, "{report}");
    let present: u64 = report["views"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v["present"].as_u64().unwrap())
        .sum();
    assert!(present > 150 * 7, "too few values present to mean anything: {report}");
    // The registry is untouched: the harness's stores record no watermark.
    assert!(!p.path().join(".skewless/registry/materialized.json").exists());

    p.edit(
        "drivers.yaml",
        "trips_per_hour: { type: float64, expr: \"avg_daily_trips / 24.0\" }",
        "trips_per_hour: { type: float64, expr: \"avg_daily_trips / 12.0\" }",
    );
    let refused = p.run(&["parity", "--spine", SPINE, "--service", "ranking_v1", "--sample", "10"]);
    assert_eq!(refused.code(), 1);
    assert!(refused.stderr().contains("skewless apply"), "{}", refused.stderr());
}

/// Every unknown feature is reported, each with its nearest name.
#[test]
fn unknown_features_are_all_reported_with_hints() {
    let p = demo_project();
    let run = p.run(&[
        "training-set",
        "--spine",
        SPINE,
        "--features",
        "driver_hourly_stats:conv_rat,driver_hourly_stat:acc_rate,customer_profile:tier",
        "--out",
        "x.parquet",
    ]);
    assert_eq!(run.code(), 1);
    let e = run.stderr();
    assert!(
        e.contains("unknown feature `driver_hourly_stats:conv_rat` (did you mean `driver_hourly_stats:conv_rate`?)"),
        "{e}"
    );
    assert!(
        e.contains(
            "unknown view `driver_hourly_stat` in `driver_hourly_stat:acc_rate` (did you mean `driver_hourly_stats`?)"
        ),
        "{e}"
    );
}

/// An edited manifest is a NOT-reproduced report (not an internal error) that leaves no
/// re-run output behind, and a manifest version this skewless does not know is refused.
#[test]
fn reproduce_handles_edited_and_foreign_manifests() {
    let p = demo_project();
    p.run(&[
        "training-set",
        "--spine",
        SPINE,
        "--service",
        "ranking_v1",
        "--out",
        "t.parquet",
    ])
    .ok();
    let path = p.path().join("t.parquet.manifest.json");
    let original = std::fs::read_to_string(&path).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&original).unwrap();
    manifest["output"]["sha256"] = "0".repeat(64).into();
    std::fs::write(&path, manifest.to_string()).unwrap();
    let run = p.run(&["reproduce", "t.parquet.manifest.json"]);
    assert_eq!(run.code(), 1);
    let out = run.stdout();
    assert!(out.starts_with("NOT reproduced"), "{out}");
    assert!(out.contains("the manifest was edited"), "{out}");
    assert!(!run.stderr().contains("internal error"), "{}", run.stderr());
    assert!(!p.path().join("t.parquet.reproduced.parquet").exists());

    manifest["manifest_version"] = 99.into();
    std::fs::write(&path, manifest.to_string()).unwrap();
    let run = p.run(&["reproduce", "t.parquet.manifest.json"]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("has manifest_version 99"), "{}", run.stderr());
}
