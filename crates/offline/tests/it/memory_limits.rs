//! A memory limit ends in the unlimited result or in a clear error, never in a hang.
//!
//! Under a small pool, DataFusion 55's repartitioning could park every thread forever
//! (apache/datafusion#24883): a 10M-row training set hung at `--memory-limit 32MiB`. This
//! runs a smaller training set over several files (so several input tasks feed each
//! repartition) at limits from roomy to too small, each run under a timeout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use skewless_defs::{FeatureType, ResolvedFeature, load_texts};
use skewless_offline::training_set::{Spine, TrainingSetRequest, build};

const DEFS: &str = r#"
entities: { driver: { keys: { driver_id: int64 } } }
sources: { stats: { path: data/stats, timestamp: event_timestamp } }
feature_views:
  v: { entity: driver, source: stats, ttl: 30d, features: { conv_rate: float64 } }
"#;

fn instant() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn write(path: &Path, batch: &RecordBatch) {
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// A reproducible hash of `i`, for keys and times: the first draw of a stream seeded by it.
fn mix(i: u64) -> u64 {
    skewless_testkit::fuzz::Fuzz::new(i).next_u64()
}

const BASE: i64 = 1_767_225_600_000_000;
const MONTH: u64 = 30 * 86_400_000_000;

fn data(dir: &Path, files: u64, rows_per_file: u64, keys: u64, spine_rows: u64) -> PathBuf {
    std::fs::create_dir_all(dir.join("data/stats")).unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("driver_id", DataType::Int64, false),
        Field::new("event_timestamp", instant(), false),
        Field::new("conv_rate", DataType::Float64, false),
    ]));
    for f in 0..files {
        let ids = (0..rows_per_file).map(|i| f * rows_per_file + i);
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from_iter_values(
                    ids.clone().map(|i| (mix(i) % keys) as i64),
                )),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        ids.clone().map(|i| BASE + (mix(i ^ 1) % MONTH) as i64),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(Float64Array::from_iter_values(
                    ids.map(|i| (mix(i ^ 2) % 1000) as f64 / 1000.0),
                )),
            ],
        )
        .unwrap();
        write(&dir.join(format!("data/stats/part{f}.parquet")), &batch);
    }
    let spine = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("driver_id", DataType::Int64, false),
            Field::new("event_timestamp", instant(), false),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(
                (0..spine_rows).map(|i| (mix(i ^ 3) % keys) as i64),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..spine_rows).map(|i| BASE + (mix(i ^ 4) % MONTH) as i64),
                )
                .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap();
    let path = dir.join("spine.parquet");
    write(&path, &spine);
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_memory_limits_give_the_result_or_an_error_never_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let spine = data(dir.path(), 4, 50_000, 10_000, 10_000);
    let defs = load_texts(&[(PathBuf::from("t.yaml"), DEFS.to_string())]).unwrap();
    let request = TrainingSetRequest {
        spine: Spine::File(spine),
        timestamp_column: "event_timestamp".into(),
        features: vec![ResolvedFeature {
            view: "v".into(),
            feature: "conv_rate".into(),
            ty: FeatureType::Float64,
            on_demand: false,
        }],
        full_names: false,
    };
    let config = datafusion::prelude::SessionConfig::new()
        .with_target_partitions(2)
        .with_batch_size(1024);
    let unlimited = build(&skewless_engine::session(), &defs, dir.path(), &request, &|_| {})
        .await
        .unwrap()
        .batch;
    let mut results = Vec::new();
    for limit_kib in [2048, 1024, 768, 512, 384, 256] {
        for attempt in 0..2 {
            let ctx = skewless_engine::session_with_memory_limit(limit_kib << 10).unwrap();
            let ctx = datafusion::prelude::SessionContext::new_with_config_rt(config.clone(), ctx.runtime_env());
            let run = build(&ctx, &defs, dir.path(), &request, &|_| {});
            match tokio::time::timeout(Duration::from_secs(60), run).await {
                Err(_) => panic!("{limit_kib} KiB, attempt {attempt}: the training set hung"),
                Ok(Ok(built)) => {
                    assert_eq!(built.batch, unlimited, "{limit_kib} KiB: a different result");
                    results.push((limit_kib, "ok".to_string()));
                }
                Ok(Err(e)) => {
                    let e = e.to_string();
                    assert!(e.contains("the memory limit is too small"), "{limit_kib} KiB: {e}");
                    results.push((limit_kib, "too small".to_string()));
                }
            }
        }
    }
    eprintln!("{results:?}");
    assert!(
        results.iter().any(|(_, r)| r == "ok"),
        "no limit completed: {results:?}"
    );
}
