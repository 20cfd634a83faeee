//! Version hashes change with meaning, never with layout.

use skewless_defs::version::versions;

use crate::{BASE, load_ok};

fn view_version(text: &str) -> String {
    versions(&load_ok(text)).feature_views["driver_stats"].clone()
}

#[test]
fn layout_comments_and_key_order_do_not_change_versions() {
    let reordered = r#"
# a comment
feature_services:
  svc: [ "driver_stats:*" ]
feature_views:
  driver_stats:
    features:
      trips: { expr: "trips_total/2", type: int64 }   # spacing inside the expression
      conv_rate: { type: float32 }
    ttl: 120m
    owner: someone-else
    description: metadata is not meaning
    source: stats
    entity: driver
sources:
  stats: { timestamp: event_timestamp, created: created, path: "data/stats.parquet" }
entities:
  driver:
    keys:
      driver_id: int64
"#;
    assert_eq!(versions(&load_ok(BASE)), versions(&load_ok(reordered)));
}

#[test]
fn semantic_changes_change_the_view_version() {
    let base = view_version(BASE);
    let variants = [
        ("ttl", BASE.replace("ttl: 2h", "ttl: 3h")),
        ("as_of", BASE.replace("ttl: 2h", "ttl: 2h\n    as_of: available")),
        ("type", BASE.replace("conv_rate: float32", "conv_rate: float64")),
        ("expr", BASE.replace("trips_total / 2", "trips_total / 3")),
        (
            "feature added",
            BASE.replace("conv_rate: float32", "conv_rate: float32\n      acc: float32"),
        ),
        (
            "contract",
            BASE.replace(
                "conv_rate: float32",
                "conv_rate: { type: float32, contract: { max: 1 } }",
            ),
        ),
        (
            "timestamp column",
            BASE.replace("timestamp: event_timestamp", "timestamp: ts"),
        ),
        ("key type", BASE.replace("driver_id: int64", "driver_id: string")),
    ];
    for (what, text) in variants {
        assert_ne!(view_version(&text), base, "changing the {what} must change the version");
    }
}

#[test]
fn service_version_follows_its_views() {
    let a = versions(&load_ok(BASE));
    let b = versions(&load_ok(&BASE.replace("trips_total / 2", "trips_total / 3")));
    assert_ne!(a.feature_services["svc"], b.feature_services["svc"]);
    let c = versions(&load_ok(&BASE.replace("ttl: 2h", "ttl: 2h\n    owner: x")));
    assert_eq!(a.feature_services["svc"], c.feature_services["svc"]);
}

#[test]
fn versions_are_pinned() {
    // Pinned so an accidental change of the canonical form is noticed: registries and
    // online values written under these versions would otherwise read as NOT_FOUND.
    let v = versions(&load_ok(BASE));
    assert_eq!(v.feature_views["driver_stats"].len(), 16);
    assert_eq!(
        v.feature_views["driver_stats"], PINNED_VIEW_VERSION,
        "canonical form changed"
    );
}

const PINNED_VIEW_VERSION: &str = "2299e865c2b5d81c";
