//! Regression tests for inputs around the join: spine typing and file discovery.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use skewless_defs::{Definitions, FeatureType, ResolvedFeature, load_texts};
use skewless_offline::training_set::{Spine, TrainingSetRequest, build};

fn defs(yaml: &str) -> Definitions {
    load_texts(&[(PathBuf::from("t.yaml"), yaml.to_string())]).unwrap_or_else(|e| panic!("{e}"))
}

fn write_parquet(path: &Path, batch: &RecordBatch) {
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

fn request(spine: PathBuf, view: &str) -> TrainingSetRequest {
    TrainingSetRequest {
        spine: Spine::File(spine),
        timestamp_column: "event_timestamp".into(),
        features: vec![ResolvedFeature {
            view: view.into(),
            feature: "x".into(),
            ty: FeatureType::Float64,
            on_demand: false,
        }],
        full_names: false,
    }
}

async fn run(defs: &Definitions, root: &Path, request: &TrainingSetRequest) -> Result<RecordBatch, String> {
    build(&skewless_engine::session(), defs, root, request, &|_| {})
        .await
        .map(|t| t.batch)
        .map_err(|e| e.to_string())
}

const STRING_KEYS: &str = r#"
entities: { user: { keys: { user_id: string } } }
sources: { s: { path: data/s.csv, timestamp: event_timestamp } }
feature_views: { v: { entity: user, source: s, features: { x: float64 } } }
"#;

#[tokio::test]
async fn csv_spine_string_keys_keep_leading_zeros() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    // Both files look numeric; the entity says string, so `007` must stay `007`.
    std::fs::write(
        dir.path().join("data/s.csv"),
        "user_id,event_timestamp,x\n007,2026-01-01T00:00:00Z,1.5\n7,2026-01-01T00:00:00Z,9.0\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("spine.csv"),
        "user_id,event_timestamp\n007,2026-01-01T01:00:00Z\n",
    )
    .unwrap();
    let out = run(
        &defs(STRING_KEYS),
        dir.path(),
        &request(dir.path().join("spine.csv"), "v"),
    )
    .await
    .unwrap();
    assert_eq!(
        out.column_by_name("user_id")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap()
            .value(0),
        "007"
    );
    assert_eq!(
        out.column_by_name("x").unwrap().as_primitive::<Float64Type>().value(0),
        1.5
    );
}

const INT_KEYS: &str = r#"
entities: { driver: { keys: { driver_id: int64 } } }
sources: { s: { path: data/parts, format: parquet, timestamp: event_timestamp } }
feature_views: { v: { entity: driver, source: s, features: { x: float64 } } }
"#;

fn feature_batch() -> RecordBatch {
    let schema = Schema::new(vec![
        Field::new("driver_id", DataType::Int32, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new("x", DataType::Float64, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(arrow::array::Int32Array::from(vec![3])),
            Arc::new(TimestampMicrosecondArray::from(vec![1_767_225_600_000_000])),
            Arc::new(Float64Array::from(vec![2.5])),
        ],
    )
    .unwrap()
}

/// Parquet leaves NaN out of min/max statistics: a file whose other values are all 2.5 says
/// min = max = 2.5, and DataFusion 55, trusting that, read every row as 2.5
/// (apache/datafusion#24804). Found by the push parity test; the engine gathers no statistics.
#[tokio::test]
async fn nan_beside_equal_values_in_parquet_stays_nan() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/parts")).unwrap();
    let one = feature_batch();
    let batch = RecordBatch::try_new(
        one.schema(),
        vec![
            Arc::new(arrow::array::Int32Array::from(vec![3, 4, 5])),
            Arc::new(TimestampMicrosecondArray::from(vec![1_767_225_600_000_000; 3])),
            Arc::new(Float64Array::from(vec![2.5, f64::NAN, 2.5])),
        ],
    )
    .unwrap();
    write_parquet(&dir.path().join("data/parts/a.parquet"), &batch);
    std::fs::write(
        dir.path().join("spine.csv"),
        "driver_id,event_timestamp\n3,2026-01-01T00:00:00Z\n4,2026-01-01T00:00:00Z\n5,2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    let out = run(&defs(INT_KEYS), dir.path(), &request(dir.path().join("spine.csv"), "v"))
        .await
        .unwrap();
    let x = out.column_by_name("x").unwrap().as_primitive::<Float64Type>();
    assert_eq!(x.value(0), 2.5);
    assert!(x.value(1).is_nan(), "driver 4 read as {}", x.value(1));
    assert_eq!(x.value(2), 2.5);
}

#[tokio::test]
async fn extensionless_parquet_parts_are_read_and_key_widths_meet() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/parts")).unwrap();
    write_parquet(&dir.path().join("data/parts/000000_0"), &feature_batch());
    std::fs::write(
        dir.path().join("spine.csv"),
        "driver_id,event_timestamp\n3,2026-01-01T00:00:00Z\n4,2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    // Source keys are Int32, spine keys Int64: both are cast to the entity type before hashing.
    let out = run(&defs(INT_KEYS), dir.path(), &request(dir.path().join("spine.csv"), "v"))
        .await
        .unwrap();
    let x = out.column_by_name("x").unwrap().as_primitive::<Float64Type>();
    assert_eq!((x.value(0), x.is_null(1)), (2.5, true));
}

#[tokio::test]
async fn float_spine_keys_are_refused_not_truncated() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/parts")).unwrap();
    write_parquet(&dir.path().join("data/parts/p.parquet"), &feature_batch());
    write_parquet(
        &dir.path().join("spine.parquet"),
        &key_spine(Arc::new(Float64Array::from(vec![3.7]))),
    );
    let err = run(
        &defs(INT_KEYS),
        dir.path(),
        &request(dir.path().join("spine.parquet"), "v"),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("join key `driver_id` is Float64 but entity keys of type int64 need integers"),
        "{err}"
    );
}

/// A spine of `driver_id` = `keys` (any type), all at one instant.
fn key_spine(keys: arrow::array::ArrayRef) -> RecordBatch {
    let n = keys.len();
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("driver_id", keys.data_type().clone(), true),
            Field::new(
                "event_timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ])),
        vec![
            keys,
            Arc::new(TimestampMicrosecondArray::from(vec![1_767_225_600_000_000; n]).with_timezone("UTC")),
        ],
    )
    .unwrap()
}

/// UInt64 keys are integers: they join when they fit in int64, and a value past i64::MAX is
/// an error naming it, never "need integers".
#[tokio::test]
async fn uint64_spine_keys_join_and_overflow_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data/parts")).unwrap();
    write_parquet(&dir.path().join("data/parts/p.parquet"), &feature_batch());
    let spine = |keys: Vec<u64>| key_spine(Arc::new(arrow::array::UInt64Array::from(keys)));
    write_parquet(&dir.path().join("spine.parquet"), &spine(vec![3, 4]));
    let out = run(
        &defs(INT_KEYS),
        dir.path(),
        &request(dir.path().join("spine.parquet"), "v"),
    )
    .await
    .unwrap();
    let x = out.column_by_name("x").unwrap().as_primitive::<Float64Type>();
    assert_eq!((x.value(0), x.is_null(1)), (2.5, true));

    write_parquet(&dir.path().join("spine.parquet"), &spine(vec![3, u64::MAX]));
    let err = run(
        &defs(INT_KEYS),
        dir.path(),
        &request(dir.path().join("spine.parquet"), "v"),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("join key `driver_id` (UInt64) cannot be read as int64") && err.contains("18446744073709551615"),
        "{err}"
    );
}
