use skewless_defs::{AsOf, FeatureType, KeyType, SourceFormat};

use crate::{BASE, demo_defs, load, load_ok};

#[test]
fn base_definitions_load_with_defaults() {
    let defs = load_ok(BASE);
    assert_eq!(defs.project, "default");
    let view = &defs.feature_views["driver_stats"];
    assert_eq!(view.entities, ["driver"]);
    assert_eq!(view.ttl.map(|t| t.seconds()), Some(7200));
    assert_eq!(view.as_of, AsOf::Event);
    assert!(view.online, "views are online unless stated");
    assert_eq!(view.features[0].ty, FeatureType::Float32);
    assert_eq!(view.features[0].expr_or_column(), "conv_rate");
    assert_eq!(view.features[1].expr_or_column(), "trips_total / 2");
    assert_eq!(defs.sources["stats"].format, Some(SourceFormat::Parquet));
    let keys = defs.view_keys(view);
    assert_eq!((keys[0].name.as_str(), keys[0].ty), ("driver_id", KeyType::Int64));
}

#[test]
fn demo_definitions_are_valid() {
    let defs = demo_defs();
    assert_eq!(defs.project, "rides");
    assert_eq!(defs.feature_views.len(), 4);
    let svc = &defs.feature_services["ranking_v1"];
    let names: Vec<String> = defs
        .service_features(svc)
        .unwrap()
        .iter()
        .map(|f| format!("{}:{}", f.view, f.feature))
        .collect();
    assert_eq!(
        names,
        [
            "driver_hourly_stats:acc_rate",
            "driver_hourly_stats:avg_daily_trips",
            "driver_hourly_stats:conv_rate",
            "driver_hourly_stats:trips_per_hour",
            "customer_profile:current_balance",
            "customer_profile:tier",
            "ride_score:score",
            "driver_trip_stats:trips_1d",
            "driver_trip_stats:fare_mean_7d",
        ]
    );
}

#[test]
fn definitions_merge_across_files() {
    let defs = load(&[
        ("a.yaml", "entities:\n  driver: { keys: { driver_id: int64 } }\n"),
        ("b.yaml", "sources:\n  s: { path: x.csv, timestamp: ts }\nfeature_views:\n  v: { entity: driver, source: s, features: { f: int64 } }\n"),
    ])
    .unwrap();
    assert_eq!(defs.feature_views["v"].source, "s");
    assert_eq!(defs.sources["s"].format, Some(SourceFormat::Csv));
}

#[test]
fn composite_and_multi_entity_keys() {
    let defs = load_ok(
        r#"
entities:
  driver: { keys: { driver_id: int64 } }
  city:   { keys: { city: string, country: string } }
sources:
  s: { path: d/, format: parquet, timestamp: ts }
feature_views:
  v: { entities: [driver, city], source: s, features: { surge: float64 } }
"#,
    );
    let keys: Vec<String> = defs
        .view_keys(&defs.feature_views["v"])
        .iter()
        .map(|k| format!("{}:{}", k.name, k.ty))
        .collect();
    assert_eq!(keys, ["driver_id:int64", "city:string", "country:string"]);
}

#[test]
fn five_mistakes_give_five_located_errors() {
    let text = r#"
entities:
  driver: { keys: { driver_id: int64 } }
sources:
  stats: { path: s.parquet, timestamp: ts }
feature_views:
  a:
    entity: drivr
    source: stats
    ttl: 2 hours
    features:
      x: { type: flaot64 }
      y: { type: int64, expr: "y +" }
feature_services:
  svc: [ "a:z" ]
"#;
    let errors = load(&[("defs.yaml", text)]).unwrap_err();
    let lines: Vec<String> = errors
        .iter()
        .map(|d| format!("{}:{}", d.loc.file.display(), d.loc.line))
        .collect();
    assert_eq!(
        lines,
        [
            "defs.yaml:8",
            "defs.yaml:10",
            "defs.yaml:12",
            "defs.yaml:13",
            "defs.yaml:15"
        ],
        "{errors}"
    );
}

#[test]
fn monitoring_thresholds_are_read_and_checked() {
    let base = r#"
entities:
  driver: { keys: { driver_id: int64 } }
sources:
  stats: { path: s.parquet, timestamp: ts }
feature_views:
  a:
    entity: driver
    source: stats
    features: { x: float64 }
feature_services:
  svc:
    features: [ "a:x" ]
"#;
    let good = format!("{base}    monitoring: {{ psi: 0.1, min_values: 500 }}\n");
    let defs = load(&[("defs.yaml", &good)]).unwrap();
    let m = defs.feature_services["svc"].monitoring.clone().unwrap();
    assert_eq!((m.psi, m.null_rate, m.min_values), (Some(0.1), None, Some(500)));
    // Thresholds are metadata: the service's version does not move with them.
    let plain = load(&[("defs.yaml", base)]).unwrap();
    assert_eq!(
        skewless_defs::version::versions(&defs).feature_services,
        skewless_defs::version::versions(&plain).feature_services
    );

    let bad =
        format!("{base}    monitoring:\n      psi: -1\n      null_rate: 2\n      min_values: many\n      pis: 0.1\n");
    let errors = load(&[("defs.yaml", &bad)]).unwrap_err().to_string();
    for (line, what) in [
        (15, "monitoring `psi` must be a number from 0"),
        (16, "monitoring `null_rate` must be a number from 0 to 1"),
        (17, "monitoring `min_values` must be a whole number"),
        (18, "unknown field `pis` in monitoring"),
    ] {
        assert!(
            errors.contains(&format!("defs.yaml:{line}")) && errors.contains(what),
            "{what}: {errors}"
        );
    }
}

#[test]
fn registry_round_trip_keeps_meaning() {
    let defs = demo_defs();
    let json = serde_json::to_string(&defs).unwrap();
    let back: skewless_defs::Definitions = serde_json::from_str(&json).unwrap();
    assert_eq!(
        skewless_defs::version::versions(&back),
        skewless_defs::version::versions(&defs)
    );
    assert_eq!(
        back.feature_views["driver_hourly_stats"].features,
        defs.feature_views["driver_hourly_stats"]
            .features
            .iter()
            .map(|f| {
                let mut f = f.clone();
                f.loc = Default::default();
                f.expr_loc = Default::default();
                f
            })
            .collect::<Vec<_>>()
    );
}

#[test]
fn text_hash_does_not_depend_on_where_the_directory_is() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [a.path().join("feature_defs"), b.path().join("nested/defs")] {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/base.yaml"), BASE).unwrap();
    }
    let hash_a = skewless_defs::load_dir(&a.path().join("feature_defs"))
        .unwrap()
        .text_hash;
    let hash_b = skewless_defs::load_dir(&b.path().join("nested/defs"))
        .unwrap()
        .text_hash;
    assert_eq!(hash_a, hash_b);
    std::fs::write(
        b.path().join("nested/defs/sub/base.yaml"),
        format!("{BASE}# a comment\n"),
    )
    .unwrap();
    assert_ne!(
        skewless_defs::load_dir(&b.path().join("nested/defs"))
            .unwrap()
            .text_hash,
        hash_a,
        "any text change shows"
    );
}

/// A file that is not UTF-8 is located at its first bad byte, reported once, beside the
/// other files' problems.
#[test]
fn non_utf8_files_are_located() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        "entities:\n  x: { keys: { id: int64 } }\n# caf\u{e9} au lait (UTF-8)\n",
    )
    .unwrap();
    let mut latin1 = b"entities:\n  y: { keys: { id: int64 } }\n# caf".to_vec();
    latin1.push(0xE9);
    std::fs::write(dir.path().join("b.yaml"), latin1).unwrap();
    std::fs::write(dir.path().join("c.yaml"), "feature_views: { v: { entity: nope } }\n").unwrap();
    let e = skewless_defs::load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("b.yaml:3:6: error: the file is not UTF-8 (byte 0xE9); save it as UTF-8"),
        "{e}"
    );
    assert_eq!(e.matches("not UTF-8").count(), 1, "{e}");
    assert!(
        e.contains("c.yaml:1"),
        "the other files' problems are reported too: {e}"
    );
}
