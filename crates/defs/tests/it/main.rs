//! Integration tests of `skewless-defs`: loading, validation, version hashes and plans.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

mod discovery;
mod fuzz;
mod golden;
mod load;
mod plan;
mod scale;
mod version;

use std::path::PathBuf;

use skewless_defs::{Definitions, Diagnostics, Error};

/// Loads one or more `(file name, text)` pairs.
pub fn load(files: &[(&str, &str)]) -> Result<Definitions, Diagnostics> {
    let files: Vec<(PathBuf, String)> = files.iter().map(|(p, t)| (PathBuf::from(p), t.to_string())).collect();
    match skewless_defs::load_texts(&files) {
        Ok(d) => Ok(d),
        Err(Error::Invalid(d)) => Err(d),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

pub fn load_ok(text: &str) -> Definitions {
    load(&[("defs.yaml", text)]).unwrap_or_else(|e| panic!("expected valid definitions:\n{e}"))
}

pub fn demo_defs() -> Definitions {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../feature_defs");
    skewless_defs::load_dir(&dir).unwrap_or_else(|e| panic!("demo definitions must load: {e}"))
}

pub const BASE: &str = r#"
entities:
  driver: { keys: { driver_id: int64 } }
sources:
  stats: { path: data/stats.parquet, timestamp: event_timestamp, created: created }
feature_views:
  driver_stats:
    entity: driver
    source: stats
    ttl: 2h
    features:
      conv_rate: float32
      trips: { type: int64, expr: "trips_total / 2" }
feature_services:
  svc: [ "driver_stats:*" ]
"#;
