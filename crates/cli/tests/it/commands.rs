use crate::TempProject;

pub(crate) fn demo_project() -> TempProject {
    let p = TempProject::with_demo_defs();
    p.run(&["demo-data"]).ok();
    p
}

#[test]
fn demo_flow_validate_plan_apply_list() {
    let p = demo_project();
    let validate = p.run(&["validate"]).ok();
    assert!(
        validate
            .stdout()
            .starts_with("ok: project `rides`: 2 entities, 3 sources, 4 feature views"),
        "{}",
        validate.stdout()
    );

    let plan = p.run(&["plan", "--json"]).ok().json();
    assert_eq!(plan["applied_seq"], serde_json::Value::Null);
    assert_eq!(plan["changes"].as_array().unwrap().len(), 11);

    let applied = p.run(&["apply"]).ok();
    assert!(
        applied.stdout().contains("Applied as version 1"),
        "{}",
        applied.stdout()
    );
    assert!(p.run(&["apply"]).ok().stdout().contains("Nothing to apply"));

    let views = p.run(&["list", "views", "--json"]).ok().json();
    let names: Vec<&str> = views
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "customer_profile",
            "driver_hourly_stats",
            "driver_last_trip",
            "driver_trip_stats",
            "ride_score"
        ]
    );
    assert_eq!(views[1]["ttl"], "2d");
    assert_eq!(views[1]["version"].as_str().unwrap().len(), 16);

    let features = p.run(&["list", "features"]).ok().stdout();
    assert!(features.lines().next().unwrap().starts_with("FEATURE"), "{features}");
    assert!(features.contains("driver_hourly_stats:trips_per_hour"), "{features}");
    for kind in ["entities", "sources", "services"] {
        let rows = p.run(&["list", kind, "--json"]).ok().json();
        assert!(!rows.as_array().unwrap().is_empty(), "list {kind}");
    }
}

#[test]
fn breaking_change_is_refused_then_allowed_and_history_is_kept() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    p.edit(
        "drivers.yaml",
        "      acc_rate:       { type: float32, contract: { min: 0, max: 1 } }\n",
        "",
    );

    let plan = p.run(&["plan"]).ok().stdout();
    assert!(plan.contains("~ feature view `driver_hourly_stats`"), "{plan}");
    assert!(plan.contains("BREAKING: feature `acc_rate` removed"), "{plan}");
    assert!(
        plan.contains("BREAKING: `driver_hourly_stats:acc_rate` no longer served"),
        "{plan}"
    );

    let refused = p.run(&["apply"]);
    assert_eq!(refused.code(), 1);
    assert!(
        refused.stderr().contains("refusing to apply breaking changes"),
        "{}",
        refused.stderr()
    );
    p.run(&["apply", "--allow-breaking"]).ok();

    let log = p.run(&["registry", "log", "--json"]).ok().json();
    assert_eq!(log.as_array().unwrap().len(), 2);
    let first = p.run(&["registry", "show", "1"]).ok().json();
    let old_features = first["definitions"]["feature_views"]["driver_hourly_stats"]["features"]
        .as_array()
        .unwrap();
    assert!(
        old_features.iter().any(|f| f["name"] == "acc_rate"),
        "version 1 still has acc_rate"
    );
    let latest = p.run(&["registry", "show"]).ok().json();
    assert_eq!(latest["seq"], 2);
}

#[test]
fn five_mistakes_five_errors_with_file_and_line() {
    let p = demo_project();
    p.edit(
        "drivers.yaml",
        "entity: driver\n    source: driver_hourly",
        "entity: drivr\n    source: driver_hourly",
    );
    p.edit("drivers.yaml", "ttl: 2d", "ttl: 2 days");
    p.edit(
        "customers.yaml",
        "current_balance:     float64",
        "current_balance:     float46",
    );
    p.edit("customers.yaml", "expr: \"tier = 'premium'\"", "expr: \"tier = \"");
    p.edit("ranking.yaml", "customer_profile:tier", "customer_profile:teir");
    let run = p.run(&["validate"]);
    assert_eq!(run.code(), 1);
    let stderr = run.stderr();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 5, "{stderr}");
    let located = [
        "customers.yaml:",
        "customers.yaml:",
        "drivers.yaml:",
        "drivers.yaml:",
        "ranking.yaml:",
    ];
    for (line, file) in errors.iter().zip(located) {
        assert!(line.starts_with(&format!("feature_defs/{file}")), "{line}");
    }
    assert!(
        stderr.contains("(did you mean `driver`?)") && stderr.contains("(did you mean `tier`?)"),
        "{stderr}"
    );
    assert!(stderr.trim_end().ends_with("5 errors"), "{stderr}");

    let json = p.run(&["validate", "--json"]).json();
    assert_eq!(json["valid"], false);
    assert_eq!(json["errors"].as_array().unwrap().len(), 5);
    assert_eq!(json["errors"][0]["loc"]["file"], "feature_defs/customers.yaml");
}

#[test]
fn type_errors_against_the_data_are_located() {
    let p = demo_project();
    p.edit(
        "drivers.yaml",
        "expr: \"avg_daily_trips / 24.0\"",
        "expr: \"avg_daily_trip / 24.0\"",
    );
    let run = p.run(&["validate"]);
    assert_eq!(run.code(), 1);
    assert_eq!(
        run.stderr().lines().next().unwrap(),
        "feature_defs/drivers.yaml:26:46: error: feature `driver_hourly_stats.trips_per_hour` reads unknown column `avg_daily_trip`, which source `driver_hourly` does not have (did you mean `avg_daily_trips`?)"
    );
}

#[test]
fn flags_choose_directories_and_bad_usage_exits_2() {
    let p = demo_project();
    std::fs::rename(p.path().join("feature_defs"), p.path().join("defs")).unwrap();
    std::fs::rename(p.path().join("data"), p.path().join("elsewhere")).unwrap();
    // Sources resolve against the parent of --defs, so moving data breaks them...
    assert_eq!(p.run(&["--defs", "defs", "validate"]).code(), 1);
    std::fs::rename(p.path().join("elsewhere"), p.path().join("data")).unwrap();
    // ...and moving both together does not.
    p.run(&["--defs", "defs", "--repo", "reg", "apply"]).ok();
    assert!(p.path().join("reg/registry/applied/000001.json").is_file());
    assert_eq!(p.run(&["list", "nonsense"]).code(), 2);
    let missing = p.run(&["validate"]);
    assert_eq!(missing.code(), 1);
    assert!(missing.stderr().contains("feature_defs"), "{}", missing.stderr());
}

#[test]
fn training_set_writes_parquet_for_a_service_or_a_feature_list() {
    let p = demo_project();
    let spine = "data/demo/ride_requests_spine.parquet";
    let run = p
        .run(&[
            "training-set",
            "--spine",
            spine,
            "--service",
            "ranking_v1",
            "--out",
            "out/train.parquet",
        ])
        .ok();
    assert!(
        run.stdout()
            .starts_with("wrote 2000 rows × 9 features to out/train.parquet"),
        "{}",
        run.stdout()
    );
    assert!(p.path().join("out/train.parquet").is_file());

    let run = p
        .run(&[
            "training-set",
            "--spine",
            spine,
            "--features",
            "driver_hourly_stats:conv_rate,customer_profile:*",
            "--full-names",
            "--out",
            "t.parquet",
        ])
        .ok();
    assert!(
        run.stdout().starts_with("wrote 2000 rows × 5 features"),
        "{}",
        run.stdout()
    );

    let bad = p.run(&[
        "training-set",
        "--spine",
        spine,
        "--features",
        "driver_hourly_stats:conv_rat",
        "--out",
        "x.parquet",
    ]);
    assert_eq!(bad.code(), 1);
    assert!(
        bad.stderr().contains("unknown feature `driver_hourly_stats:conv_rat`"),
        "{}",
        bad.stderr()
    );
    let neither = p.run(&["training-set", "--spine", spine, "--out", "x.parquet"]);
    assert_eq!(neither.code(), 2, "--features or --service is required");
}

#[test]
fn manifest_records_the_run_and_reproduce_names_what_changed() {
    let p = demo_project();
    let spine = "data/demo/ride_requests_spine.parquet";
    p.run(&[
        "training-set",
        "--spine",
        spine,
        "--service",
        "ranking_v1",
        "--out",
        "out/train.parquet",
    ])
    .ok();
    let manifest_file = p.path().join("out/train.parquet.manifest.json");
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&manifest_file).unwrap()).unwrap();
    assert_eq!(manifest["rows"]["output"], 2000);
    assert_eq!(manifest["output"]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(
        manifest["view_versions"].as_object().unwrap().len(),
        5,
        "four feature views and one on-demand view"
    );
    assert_eq!(manifest["sources"].as_object().unwrap().len(), 3);
    assert!(manifest["service_version"].is_string());

    let same = p.run(&["reproduce", "out/train.parquet.manifest.json"]).ok();
    assert!(
        same.stdout().starts_with("reproduced: output sha256"),
        "{}",
        same.stdout()
    );
    assert!(
        !p.path().join("out/train.parquet.reproduced.parquet").exists(),
        "a matching re-run is not kept"
    );

    // One changed byte of meaning in one source: reproduce names that source's file.
    let json = p.run(&["demo-data", "--seed", "43", "--out", "other"]).ok();
    drop(json);
    std::fs::copy(
        p.path().join("other/customer_profile.parquet"),
        p.path().join("data/demo/customer_profile.parquet"),
    )
    .unwrap();
    let changed = p.run(&["reproduce", "out/train.parquet.manifest.json"]);
    assert_eq!(changed.code(), 1, "{}", changed.stdout());
    let stdout = changed.stdout();
    assert!(stdout.starts_with("NOT reproduced"), "{stdout}");
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("changed:"))
        .collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].contains("source `customer_profile`: file") && lines[0].contains("customer_profile.parquet changed"),
        "{stdout}"
    );

    let no_manifest = p
        .run(&[
            "training-set",
            "--spine",
            spine,
            "--service",
            "ranking_v1",
            "--out",
            "n.parquet",
            "--no-manifest",
        ])
        .ok();
    drop(no_manifest);
    assert!(!p.path().join("n.parquet.manifest.json").exists());
}

#[test]
fn profile_shows_each_features_values_from_the_manifest() {
    let p = demo_project();
    let spine = "data/demo/ride_requests_spine.parquet";
    let train = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "training-set",
            "--spine",
            spine,
            "--service",
            "ranking_v1",
            "--out",
            out,
        ];
        args.extend_from_slice(extra);
        drop(p.run(&args).ok());
    };
    train("t.parquet", &[]);
    let profiles = p.run(&["profile", "t.parquet.manifest.json", "--json"]).ok().json();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.path().join("t.parquet.manifest.json")).unwrap()).unwrap();
    assert_eq!(profiles, manifest["profiles"]);
    let services = p.run(&["list", "services", "--json"]).ok().json();
    let ranking = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "ranking_v1")
        .unwrap();
    let features: Vec<&str> = ranking["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let mut profiled: Vec<&str> = profiles.as_object().unwrap().keys().map(String::as_str).collect();
    let mut expected = features.clone();
    profiled.sort_unstable();
    expected.sort_unstable();
    assert_eq!(profiled, expected, "one profile per feature of the service");
    for (name, profile) in profiles.as_object().unwrap() {
        assert_eq!(profile["count"], 2000, "{name}");
    }
    let conv = &profiles["driver_hourly_stats:conv_rate"];
    assert_eq!(conv["kind"], "numeric");
    assert!(
        conv["min"].as_f64().unwrap() >= 0.0 && conv["max"].as_f64().unwrap() <= 1.0,
        "{conv}"
    );
    assert_eq!(profiles["customer_profile:tier"]["kind"], "categorical");

    let text = p.run(&["profile", "t.parquet.manifest.json"]).ok().stdout();
    assert!(
        text.contains("driver_hourly_stats:conv_rate") && text.contains("p50"),
        "{text}"
    );
    assert!(
        text.contains("customer_profile:tier") && text.contains("most frequent"),
        "{text}"
    );
    let one = p
        .run(&[
            "profile",
            "t.parquet.manifest.json",
            "--features",
            "customer_profile:tier",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(one.as_object().unwrap().len(), 1);

    let unknown = p.run(&[
        "profile",
        "t.parquet.manifest.json",
        "--features",
        "driver_hourly_stats:nope",
    ]);
    assert_eq!(unknown.code(), 1);
    assert!(
        unknown.stderr().contains("no profile of `driver_hourly_stats:nope`"),
        "{}",
        unknown.stderr()
    );
    train("u.parquet", &["--no-profile"]);
    let none = p.run(&["profile", "u.parquet.manifest.json"]);
    assert_eq!(none.code(), 1);
    assert!(none.stderr().contains("has no profiles"), "{}", none.stderr());
}

#[test]
fn drift_compares_a_training_set_with_a_reference() {
    let p = demo_project();
    let spine = "data/demo/ride_requests_spine.parquet";
    let train = |out: &str| {
        drop(
            p.run(&[
                "training-set",
                "--spine",
                spine,
                "--service",
                "ranking_v1",
                "--out",
                out,
            ])
            .ok(),
        )
    };
    train("a.parquet");
    train("same.parquet");
    let same = p
        .run(&[
            "drift",
            "--manifest",
            "a.parquet.manifest.json",
            "--manifest",
            "same.parquet.manifest.json",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(same["breaches"], 0);
    for (feature, d) in same["features"].as_object().unwrap() {
        assert_eq!(
            (d["psi"].as_f64(), d["js"].as_f64()),
            (Some(0.0), Some(0.0)),
            "{feature}"
        );
    }
    assert_eq!(same["features"].as_object().unwrap().len(), 9);

    // Other data (another seed): some drift, under the default threshold, over a tight one.
    drop(p.run(&["demo-data", "--seed", "43"]).ok());
    train("b.parquet");
    let args = [
        "drift",
        "--manifest",
        "a.parquet.manifest.json",
        "--manifest",
        "b.parquet.manifest.json",
    ];
    let loose = p.run(&args).ok().stdout();
    assert!(loose.contains("0 of 9 features past the thresholds"), "{loose}");
    let tight = p.run(&[&args[..], &["--psi", "0.05"]].concat());
    assert_eq!(tight.code(), 1, "{}", tight.stdout());
    let out = tight.stdout();
    let breaches: Vec<&str> = out.lines().filter(|l| l.contains("BREACH: psi")).collect();
    assert!(!breaches.is_empty() && breaches.len() < 9, "{breaches:?}");
    let json = p.run(&[&args[..], &["--psi", "0.05", "--json"]].concat()).json();
    assert_eq!(json["breaches"].as_u64(), Some(breaches.len() as u64));
    let acc = &json["features"]["driver_hourly_stats:acc_rate"];
    assert!(acc["psi"].as_f64().unwrap() > 0.05, "{acc}");
    assert_eq!(acc["bins"].as_array().unwrap().len(), 10);

    let one = p.run(&["drift", "--manifest", "a.parquet.manifest.json"]);
    assert_eq!(one.code(), 1);
    assert!(one.stderr().contains("give two manifests"), "{}", one.stderr());
}

#[test]
fn a_too_small_memory_pool_fails_clearly() {
    let p = demo_project();
    let spine = "data/demo/ride_requests_spine.parquet";
    let run = p.run(&[
        "training-set",
        "--spine",
        spine,
        "--service",
        "ranking_v1",
        "--out",
        "t.parquet",
        "--memory-limit",
        "1KiB",
    ]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains("Resources exhausted"), "{}", run.stderr());
    assert!(!p.path().join("t.parquet").exists(), "no output from a failed run");
    p.run(&[
        "training-set",
        "--spine",
        spine,
        "--service",
        "ranking_v1",
        "--out",
        "t.parquet",
        "--memory-limit",
        "256MiB",
    ])
    .ok();
}

#[test]
fn defs_dir_dot_resolves_sources_against_its_parent() {
    let p = demo_project();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_skewless"))
        .args(["--defs", ".", "--repo", "../.skewless", "validate"])
        .current_dir(p.path().join("feature_defs"))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
}

/// The online flow through the binary: materialize into the embedded default, look up,
/// materialize incrementally; then the same against a real Redis server.
#[test]
fn materialize_then_get_on_the_embedded_store_and_on_redis() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    let end = "2026-11-15T00:00:00Z";
    let run = p.run(&["materialize", "--end", end, "--json"]).ok().json();
    let reports = run.as_array().unwrap();
    assert_eq!(reports.len(), 4);
    assert!(
        reports.iter().all(|r| r["keys_written"].as_u64().unwrap() > 50),
        "{run}"
    );
    assert!(p.path().join(".skewless/online/store.redb").is_file());

    let get = |extra: &[&str]| {
        let mut args = vec![
            "get",
            "--features",
            "driver_hourly_stats:conv_rate,customer_profile:tier",
            "--entity",
            "driver_id=1001,customer_id=5001",
            "--entity",
            "driver_id=1100,customer_id=5001",
            "--at",
            end,
            "--json",
        ];
        args.extend_from_slice(extra);
        p.run(&args).ok().json()
    };
    let found = get(&[]);
    let first = &found["results"][0]["features"];
    assert_eq!(first["driver_hourly_stats:conv_rate"]["status"], "PRESENT", "{found}");
    assert!(first["driver_hourly_stats:conv_rate"]["value"].is_number(), "{found}");
    assert!(first["customer_profile:tier"]["value"].is_string(), "{found}");
    // Driver 1100 never has a row.
    assert_eq!(
        found["results"][1]["features"]["driver_hourly_stats:conv_rate"]["status"],
        "NOT_FOUND"
    );

    let table = p
        .run(&[
            "get",
            "--features",
            "driver_hourly_stats:conv_rate",
            "--entity",
            "driver_id=1001",
            "--at",
            "2026-12-30",
        ])
        .ok()
        .stdout();
    assert!(table.contains("OUTSIDE_MAX_AGE"), "{table}");

    let again = p
        .run(&["materialize-incremental", "--end", "2026-11-15T06:00:00Z", "--json"])
        .ok()
        .json();
    assert!(
        again.as_array().unwrap().iter().all(|r| r["start"].as_i64().is_some()),
        "{again}"
    );

    // A bad entity is an error naming it.
    let bad = p.run(&[
        "get",
        "--features",
        "driver_hourly_stats:conv_rate",
        "--entity",
        "driver_id=abc",
    ]);
    assert_eq!(bad.code(), 1);
    assert!(bad.stderr().contains("abc"), "{}", bad.stderr());

    // The same flow against a real Redis server.
    let server = skewless_testkit::RedisServer::start();
    let url = server.url();
    p.run(&["materialize", "--end", end, "--online", &url]).ok();
    let from_redis = get(&["--online", &url]);
    assert_eq!(from_redis["results"], found["results"]);
    // A Redis that is not there is a clear error.
    server_gone(&p, &url);
}

fn server_gone(p: &TempProject, url: &str) {
    let mut server = skewless_testkit::RedisServer::start();
    let dead = server.url();
    server.stop();
    let run = p.run(&[
        "get",
        "--features",
        "driver_hourly_stats:conv_rate",
        "--entity",
        "driver_id=1",
        "--online",
        &dead,
    ]);
    assert_eq!(run.code(), 1);
    assert!(run.stderr().contains(&dead), "{}", run.stderr());
    assert_ne!(dead, url);
}

/// A service's reference training set; the server counts what it serves against it, and
/// `/v1/monitor`, `/metrics` and `monitor check` report the drift, recomputed here by hand.
#[test]
fn served_values_drift_against_the_services_reference() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    p.run(&["materialize", "--end", "2026-11-15"]).ok();
    let spine = "data/demo/ride_requests_spine.parquet";
    drop(
        p.run(&[
            "training-set",
            "--spine",
            spine,
            "--service",
            "ranking_v1",
            "--out",
            "t.parquet",
        ])
        .ok(),
    );
    // A server already running picks the reference up.
    let server = Serve::start(&p, &[]);
    assert!(
        !server.said_first.iter().any(|l| l.contains("measuring drift")),
        "{:?}",
        server.said_first
    );
    let set = p
        .run(&[
            "monitor",
            "set-reference",
            "--service",
            "ranking_v1",
            "t.parquet.manifest.json",
            "--min-values",
            "50",
        ])
        .ok()
        .stdout();
    assert!(set.contains("`ranking_v1` now measures drift against"), "{set}");
    let references = p.run(&["monitor", "references", "--json"]).ok().json();
    let reference = references["ranking_v1"]["profiles"]["driver_hourly_stats:conv_rate"].clone();
    // The flag, else the service's `monitoring:` block (psi 0.25 in the demo), else the default.
    assert_eq!(references["ranking_v1"]["thresholds"]["min_values"], 50);
    assert_eq!(references["ranking_v1"]["thresholds"]["psi"], 0.25);
    let unknown = p.run(&[
        "monitor",
        "set-reference",
        "--service",
        "nope",
        "t.parquet.manifest.json",
    ]);
    assert_eq!(unknown.code(), 1, "{}", unknown.stdout());

    let monitored = (0..100).any(|_| {
        let (_, report) = server.get("/v1/monitor");
        let picked = report.contains(r#""monitored":true"#);
        if !picked {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        picked
    });
    assert!(
        monitored,
        "the running server did not pick the reference up within 10 s"
    );
    let rows: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"driver_id": {}, "customer_id": {}}}"#, 1001 + i, 5001 + i))
        .collect();
    let ask = |at: &str| {
        let body = format!(
            r#"{{"features": ["driver_hourly_stats:conv_rate", "customer_profile:tier"], "entities": [{}]{at}}}"#,
            rows.join(",")
        );
        let (status, answer) = server.post("/v1/features", &body);
        assert_eq!(status, 200, "{answer}");
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()
    };
    let answer = ask(r#", "at": "2026-11-15T00:00:00Z""#);
    let served: Vec<Option<f64>> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["features"]["conv_rate"]["value"].as_f64())
        .collect();

    // By hand: the served values on the reference's bins, PSI with shares floored at 1e-4.
    let edges: Vec<f64> = reference["histogram"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_f64().unwrap())
        .collect();
    let trained: Vec<f64> = reference["histogram"]["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_f64().unwrap())
        .collect();
    let present: Vec<f64> = served.iter().flatten().copied().collect();
    let mut bins = vec![0.0; edges.len() + 1];
    for x in &present {
        bins[edges.iter().filter(|e| **e < *x).count()] += 1.0;
    }
    let total: f64 = trained.iter().sum();
    let psi: f64 = trained
        .iter()
        .zip(&bins)
        .map(|(t, b)| {
            let (p, q) = ((t / total).max(1e-4), (b / present.len() as f64).max(1e-4));
            (q - p) * (q / p).ln()
        })
        .sum();

    let (status, report) = server.get("/v1/monitor");
    assert_eq!(status, 200, "{report}");
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    let find = |feature: &str, window: &str| {
        report["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["feature"] == feature && d["window"] == window)
            .cloned()
            .unwrap_or_else(|| panic!("no {feature} over {window}: {report}"))
    };
    for window in ["5m", "1h", "1d"] {
        let conv = find("driver_hourly_stats:conv_rate", window);
        assert_eq!(conv["values"], 100, "{conv}");
        assert!(
            (conv["psi"].as_f64().unwrap() - psi).abs() < 1e-9,
            "{} vs {psi} by hand",
            conv["psi"]
        );
        let nulls = served.iter().filter(|v| v.is_none()).count() as f64;
        assert!(
            (conv["null_rate"].as_f64().unwrap() - nulls / 100.0).abs() < 1e-12,
            "{conv}"
        );
        assert_eq!(conv["judged"], true);
        assert_eq!(find("customer_profile:tier", window)["values"], 100);
        // Not asked for: nothing counted, nothing judged.
        let balance = find("customer_profile:current_balance", window);
        assert_eq!(
            (&balance["values"], &balance["judged"]),
            (&serde_json::json!(0), &serde_json::json!(false))
        );
    }
    let (_, metrics) = server.get("/metrics");
    let line = r#"skewless_feature_served_values{service="ranking_v1",feature="driver_hourly_stats:conv_rate",window="1h"} 100"#;
    assert!(metrics.contains(line), "{metrics}");
    assert!(
        metrics.contains(r#"skewless_monitor_breaches{window="5m"}"#),
        "{metrics}"
    );

    // Served now, a month after the data: the values are too old, served as nulls. The null
    // rate breaches its threshold, and `monitor check` says so and exits 1.
    ask("");
    let url = format!("http://127.0.0.1:{}", server.port);
    let check = p.run(&[
        "monitor",
        "check",
        "--server",
        &url,
        "--window",
        "5m",
        "--service",
        "ranking_v1",
    ]);
    assert_eq!(check.code(), 1, "{}", check.stdout());
    let out = check.stdout();
    assert!(
        out.lines().any(
            |l| l.starts_with("driver_hourly_stats:conv_rate (ranking_v1): 200 values")
                && l.contains("BREACH: null rate")
        ),
        "{out}"
    );
    let json = p
        .run(&["monitor", "check", "--server", &url, "--window", "1d", "--json"])
        .json();
    assert!(json["breaches"].as_u64().unwrap() >= 1, "{json}");
    let wrong = p.run(&["monitor", "check", "--server", &url, "--window", "2h"]);
    assert_eq!(wrong.code(), 1);

    // Named again alike, the reference keeps its counts; with other thresholds, its counts
    // start again from zero.
    let conv_values = || {
        let (_, report) = server.get("/v1/monitor");
        let report: serde_json::Value = serde_json::from_str(&report).unwrap();
        report["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["feature"] == "driver_hourly_stats:conv_rate" && d["window"] == "1d")
            .map(|d| d["values"].as_u64().unwrap())
    };
    let name = |min_values: &str| {
        let args = [
            "monitor",
            "set-reference",
            "--service",
            "ranking_v1",
            "t.parquet.manifest.json",
            "--min-values",
            min_values,
        ];
        drop(p.run(&args).ok());
    };
    name("50");
    std::thread::sleep(std::time::Duration::from_secs(5));
    assert_eq!(conv_values(), Some(200));
    name("60");
    let reset = (0..100).any(|_| {
        let zero = conv_values() == Some(0);
        if !zero {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        zero
    });
    assert!(
        reset,
        "a changed reference did not start again within 10 s: {:?}",
        conv_values()
    );
    server.stop();
}

/// `skewless serve` answers over HTTP, and SIGTERM stops it cleanly (exit 0).
#[test]
fn serve_answers_and_stops_on_sigterm() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    p.run(&["materialize", "--end", "2026-11-15"]).ok();
    let response = serve_one_lookup(&p, &[]);
    assert!(
        response.contains(r#""feature_names":["driver_id","conv_rate"]"#),
        "{response}"
    );
}

/// With several serving threads (each its own runtime and store), every request is answered,
/// and `/metrics` counts them all: the threads share one set of counters.
#[test]
fn serve_threads_all_answer_and_share_metrics() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    p.run(&["materialize", "--end", "2026-11-15"]).ok();
    let server = Serve::start(&p, &["--threads", "3"]);
    let body = r#"{"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}}"#;
    // A connection per request: the threads take turns accepting them.
    for i in 0..30 {
        let (status, response) = server.post("/get-online-features", body);
        assert_eq!(status, 200, "request {i}: {response}");
        assert!(response.contains(r#""PRESENT""#), "request {i}: {response}");
    }
    let (status, metrics) = server.get("/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains(r#"skewless_requests_total{route="/get-online-features",status="200"} 30"#),
        "{metrics}"
    );
    // The threads share their port with each other, never with another server.
    let second = p.run(&["serve", "--addr", &format!("127.0.0.1:{}", server.port)]);
    assert_ne!(second.code(), 0);
    assert!(second.stderr().contains("in use"), "{}", second.stderr());
    // Nor does the Flight server take a port in use: `serve` fails before it serves.
    let taken = format!("127.0.0.1:{}", server.port);
    let flight = p.run(&["serve", "--addr", "127.0.0.1:0", "--flight", &taken]);
    assert_ne!(flight.code(), 0);
    assert!(
        flight.stderr().contains(&format!("--flight {taken}: cannot listen")),
        "{}",
        flight.stderr()
    );
    server.stop();
}

/// Every serving thread picks up a new `apply` (at once on SIGHUP, or within its one-second
/// poll): then every request, whichever thread accepts it, is answered by the new version.
#[test]
fn serve_threads_all_reload_a_new_apply() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    p.run(&["materialize", "--end", "2026-11-15"]).ok();
    let server = Serve::start(&p, &["--threads", "2"]);
    let body = r#"{"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": 1001}]}"#;
    let version = |server: &Serve| {
        let (status, response) = server.post("/v1/features", body);
        assert_eq!(status, 200, "{response}");
        serde_json::from_str::<serde_json::Value>(&response).unwrap()["applied_version"].as_u64()
    };
    assert_eq!(version(&server), Some(1));
    p.edit(
        "drivers.yaml",
        "      acc_rate:       { type: float32, contract: { min: 0, max: 1 } }\n",
        "",
    );
    p.run(&["apply", "--allow-breaking"]).ok();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    // Twenty answers in a row from version 2, each on its own connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut in_a_row = 0;
    while in_a_row < 20 {
        assert!(std::time::Instant::now() < deadline, "not every thread reloaded");
        in_a_row = if version(&server) == Some(2) { in_a_row + 1 } else { 0 };
    }
    server.stop();
}

/// Feast's `/materialize` and `/materialize-incremental` (what Feast's SDK sends with a
/// remote online store) materialize into the store the server serves from; a view that is
/// not there is refused, naming it.
#[test]
fn serve_materializes_as_feast_asks() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    let server = Serve::start(&p, &["--allow-past-clock"]);
    let lookup = r#"{"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": 1001}], "at": "2026-11-15T00:00:00Z"}"#;
    let status_of = |body: &str| {
        let answer: serde_json::Value = serde_json::from_str(body).unwrap();
        answer["results"][0]["features"]["conv_rate"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let (status, body) = server.post("/v1/features", lookup);
    assert_eq!((status, status_of(&body).as_str()), (200, "NOT_FOUND"), "{body}");

    let (status, body) = server.post(
        "/materialize",
        r#"{"start_ts": "2026-11-01T00:00:00", "end_ts": "2026-11-15T00:00:00+00:00", "feature_views": ["driver_hourly_stats"]}"#,
    );
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["views"][0]["view"], "driver_hourly_stats", "{body}");
    assert!(report["views"][0]["keys_written"].as_u64().unwrap_or(0) > 0, "{body}");
    let (status, body) = server.post("/v1/features", lookup);
    assert_eq!((status, status_of(&body).as_str()), (200, "PRESENT"), "{body}");

    let (status, body) = server.post(
        "/materialize-incremental",
        r#"{"end_ts": "2026-11-15T00:00:00Z", "feature_views": null}"#,
    );
    assert_eq!(status, 200, "{body}");
    for (path, request, code, says) in [
        (
            "/materialize",
            r#"{"start_ts": "2026-11-01", "end_ts": "2026-11-15", "feature_views": ["driver_hourly_statz"]}"#,
            "MATERIALIZE_REFUSED",
            "driver_hourly_statz",
        ),
        ("/materialize", r#"{"end_ts": "2026-11-15"}"#, "BAD_REQUEST", "start_ts"),
        (
            "/materialize",
            r#"{"start_ts": "2026-11-15", "end_ts": "2026-11-01"}"#,
            "BAD_REQUEST",
            "start_ts` before `end_ts",
        ),
        (
            "/materialize-incremental",
            r#"{"end_ts": "yesterday"}"#,
            "BAD_REQUEST",
            "`end_ts`",
        ),
    ] {
        let (status, body) = server.post(path, request);
        let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some(code)),
            "{request}: {body}"
        );
        assert!(
            answer["error"]["message"].as_str().unwrap_or("").contains(says),
            "{body}"
        );
    }
    server.stop();
}

/// Starts `skewless serve` (with `args`), asks one Feast lookup of driver 1001's conv_rate,
/// then stops the server with SIGTERM and checks it exits 0; the response body.
fn serve_one_lookup(p: &TempProject, args: &[&str]) -> String {
    let server = Serve::start(p, args);
    let body = r#"{"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}}"#;
    let (status, response) = server.post("/get-online-features", body);
    assert_eq!(status, 200, "{response}");
    server.stop();
    response
}

/// A running `skewless serve`.
pub(crate) struct Serve {
    pub(crate) child: std::process::Child,
    pub(crate) port: u16,
    /// The lines it wrote to stderr before the one saying it serves.
    pub(crate) said_first: Vec<String>,
    /// Kept open: the server writes to it until it stops.
    _stderr: std::io::BufReader<std::process::ChildStderr>,
}

impl Serve {
    pub(crate) fn start(p: &TempProject, args: &[&str]) -> Serve {
        use std::io::BufRead;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut command_args = vec!["serve", "--addr", &addr];
        command_args.extend_from_slice(args);
        let mut child = p
            .command(&command_args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        // What it says before it serves (recovery from the push logs), then that it serves.
        let mut said = Vec::new();
        loop {
            let mut line = String::new();
            let read = stderr.read_line(&mut line).unwrap();
            assert!(read > 0, "the server stopped before serving: {said:?}");
            if line.contains("serving applied version") {
                assert!(line.contains("serving applied version 1"), "{line}");
                break;
            }
            said.push(line);
        }
        Serve {
            child,
            port,
            said_first: said,
            _stderr: stderr,
        }
    }

    /// One POST; the status and the body.
    pub(crate) fn post(&self, path: &str, body: &str) -> (u16, String) {
        self.request("POST", path, body)
    }

    fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, "")
    }

    fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// SIGTERM; the server must exit 0.
    pub(crate) fn stop(mut self) {
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "serve did not exit cleanly");
    }
}

/// A test that fails before `stop` must not leave its server running.
impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// While `skewless serve` holds the embedded store, `materialize` and `get` reach it through
/// the server (the handoff), the server serves the fresh values at once, and after it stops
/// the commands open the file themselves again.
#[test]
fn materialize_and_get_while_serving_the_embedded_store() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    p.run(&["materialize", "--end", "2026-11-13"]).ok();
    let server = Serve::start(&p, &[]);
    let handoff = p.dir.path().join(".skewless/online/store.redb.server");
    assert!(handoff.exists());
    let at = "2026-11-15T06:00:00Z";
    let lookup = format!(
        r#"{{"features": ["driver_hourly_stats:conv_rate"], "entities": [{{"driver_id": 1001}}], "at": "{at}"}}"#
    );
    let served = |server: &Serve| {
        let (status, body) = server.post("/v1/features", &lookup);
        assert_eq!(status, 200, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        body["results"][0]["features"]["conv_rate"].clone()
    };
    let newest = |server: &Serve| {
        let (status, text) = server.get("/metrics");
        assert_eq!(status, 200, "{text}");
        let name = "skewless_view_newest_event_timestamp_seconds{view=\"driver_hourly_stats\"} ";
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{text}"))
    };
    let before = served(&server);
    let newest_before = newest(&server);
    let run = p.run(&["materialize-incremental", "--end", at]).ok();
    assert!(run.stderr().contains("through the server"), "{}", run.stderr());
    let after = served(&server);
    // Freshness follows: the newest event time moved on, up to the new end (the demo data
    // ends on the 15th, before it).
    let newest_after = newest(&server);
    assert!(newest_after > newest_before, "{newest_before} -> {newest_after}");
    assert!(newest_after <= 1_794_722_400.0, "{newest_after}");
    assert_ne!(before["event_timestamp"], after["event_timestamp"], "{before} {after}");
    assert_eq!(after["status"], "PRESENT", "{after}");
    let got = p
        .run(&[
            "get",
            "--features",
            "driver_hourly_stats:conv_rate",
            "--entity",
            "driver_id=1001",
            "--at",
            at,
            "--json",
        ])
        .ok()
        .json();
    let feature = &got["results"][0]["features"]["driver_hourly_stats:conv_rate"];
    assert_eq!(feature["value"], after["value"], "{got}");
    assert_eq!(feature["event_timestamp"], after["event_timestamp"], "{got}");
    // A wrong token is refused: the store is lent to the handoff file's readers only.
    let (status, _) = server.post("/internal/store/instance", "");
    assert_eq!(status, 401);
    server.stop();
    assert!(!handoff.exists(), "the handoff file outlived the server");
    let direct = p
        .run(&["materialize-incremental", "--end", "2026-11-15T07:00:00Z"])
        .ok();
    assert!(!direct.stderr().contains("through the server"), "{}", direct.stderr());
}

/// On a three-master Redis Cluster, materialize, get and serve give what the embedded store
/// gives, for entities spread over many slots.
#[test]
fn materialize_get_and_serve_on_a_redis_cluster() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    let cluster = skewless_testkit::RedisCluster::start();
    let url = cluster.url();
    let end = "2026-11-15T06:00:00Z";
    p.run(&["materialize", "--end", end]).ok();
    let report = p
        .run(&["materialize", "--end", end, "--online", &url, "--json"])
        .ok()
        .json();
    let written: i64 = report
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["keys_written"].as_i64().unwrap())
        .sum();
    assert!(written > 100, "{report}");
    let get = |extra: &[&str]| {
        let mut args = vec!["get", "--service", "ranking_v1", "--at", end, "--json"];
        let entities: Vec<String> = (1000..1040)
            .map(|d| format!("--entity=driver_id={d},customer_id={},distance_km=2.5", 5000 + d % 50))
            .collect();
        args.extend(entities.iter().map(String::as_str));
        args.extend_from_slice(extra);
        p.run(&args).ok().json()
    };
    let embedded = get(&[]);
    let clustered = get(&["--online", &url]);
    assert_eq!(clustered["results"], embedded["results"]);
    let present = clustered["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["features"]["driver_hourly_stats:conv_rate"]["status"] == "PRESENT")
        .count();
    assert!(present > 20, "{clustered}");
    let body = serve_one_lookup(&p, &["--online", &url]);
    let served: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        served["metadata"]["feature_names"],
        serde_json::json!(["driver_id", "conv_rate"])
    );
    assert_eq!(
        served["results"][1]["statuses"].as_array().unwrap().len(),
        1,
        "{served}"
    );
}
