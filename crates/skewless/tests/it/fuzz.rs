//! Property tests: `--at` instants and manifests never panic; damaged manifests are errors
//! naming the file.

use skewless::Project;
use skewless::manifest::read_manifest;
use skewless::online::parse_instant;
use skewless::training::{FeatureSelection, TrainingSetOptions};
use skewless_testkit::fuzz::{Fuzz, no_panic};

#[test]
fn instants_parse_or_explain_never_panic() {
    let vocabulary = [
        "2026",
        "-",
        "01",
        "12",
        "31",
        "99",
        "T",
        " ",
        ":",
        "00",
        "59",
        "60",
        ".",
        "123456789",
        "Z",
        "+",
        "01:00",
        "+99:99",
        "now",
        "262143",
        "-262144",
        "é",
        "\0",
    ];
    let mut fuzz = Fuzz::new(13);
    for _ in 0..5000 {
        let text = fuzz.text(&vocabulary, 10);
        if let Err(e) = no_panic("parse_instant", &text, || parse_instant(&text)) {
            assert!(e.to_string().contains("is not an instant"), "{e}");
        }
    }
    assert_eq!(parse_instant("2026-01-01T00:00:00+01:00"), Ok(1_767_222_000_000_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_manifests_are_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let defs = crate::copy_demo_defs(dir.path());
    skewless::demo_data::generate(&dir.path().join("data/demo"), 42).unwrap();
    let project = Project::new(defs, dir.path().join(".skewless"));
    let options = TrainingSetOptions {
        spine: dir.path().join("data/demo/ride_requests_spine.parquet").into(),
        selection: FeatureSelection::Service("ranking_v1".into()),
        timestamp_column: "event_timestamp".into(),
        full_names: false,
    };
    let out = dir.path().join("t.parquet");
    let ctx = skewless::engine_session();
    let (_, manifest) = project
        .training_set_recorded(&ctx, &options, &out, true, &|_| {})
        .await
        .unwrap();
    let text = serde_json::to_string_pretty(&manifest).unwrap();
    let path = dir.path().join("m.json");
    let mut fuzz = Fuzz::new(14);
    for _ in 0..1500 {
        let damaged = fuzz.mutate(text.as_bytes());
        std::fs::write(&path, &damaged).unwrap();
        if let Err(e) = no_panic("read_manifest", &String::from_utf8_lossy(&damaged), || {
            read_manifest(&path)
        }) {
            assert!(
                e.to_string().contains("m.json"),
                "the error does not name the file: {e}"
            );
        }
    }
}
