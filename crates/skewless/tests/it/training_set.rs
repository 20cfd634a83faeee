//! The demo training set, checked against a naive reference that reads the Parquet files
//! itself and applies the point-in-time rule literally, row by row.

use std::path::Path;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use skewless::Project;
use skewless::training::{FeatureSelection, TrainingSetOptions};

fn read(path: &Path) -> RecordBatch {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn demo_project() -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    let defs = crate::copy_demo_defs(dir.path());
    skewless::demo_data::generate(&dir.path().join("data/demo"), 42).unwrap();
    let project = Project::new(defs, dir.path().join(".skewless"));
    (dir, project)
}

/// conv_rate of `driver` at `t` by the contract: event mode, ttl 2 days, greatest (ts, created),
/// among the rows that keep the view's contracts (`conv_rate` and `acc_rate` in [0, 1] as
/// float32, not NaN; null keeps them): the others are quarantined.
fn reference_conv_rate(stats: &RecordBatch, driver: i64, t: i64) -> Option<f32> {
    let ids = stats.column_by_name("driver_id").unwrap().as_primitive::<Int64Type>();
    let ts = stats
        .column_by_name("event_timestamp")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let created = stats
        .column_by_name("created")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let conv = stats.column_by_name("conv_rate").unwrap().as_primitive::<Float64Type>();
    let acc = stats.column_by_name("acc_rate").unwrap().as_primitive::<Float64Type>();
    let keeps = |column: &arrow::array::Float64Array, r: usize| {
        column.is_null(r) || (0.0..=1.0).contains(&f64::from(column.value(r) as f32))
    };
    let ttl = 2 * 86_400 * 1_000_000;
    (0..stats.num_rows())
        .filter(|&r| ids.value(r) == driver && ts.value(r) <= t && ts.value(r) >= t - ttl)
        .filter(|&r| keeps(conv, r) && keeps(acc, r))
        .max_by_key(|&r| (ts.value(r), created.value(r)))
        .and_then(|r| conv.is_valid(r).then(|| conv.value(r) as f32))
}

/// The trips of `driver` that count at `t` in a window of `window_seconds` with 1h tiles,
/// `as_of: available`: landed by `t`, at or before `t`, in one of the window's tiles.
fn reference_window(trips: &RecordBatch, driver: i64, t: i64, window_seconds: i64) -> Vec<usize> {
    let column = |name| trips.column_by_name(name).unwrap();
    let ids = column("driver_id").as_primitive::<Int64Type>();
    let ts = column("event_timestamp").as_primitive::<TimestampMicrosecondType>();
    let created = column("created").as_primitive::<TimestampMicrosecondType>();
    let hour = 3_600 * 1_000_000;
    let first_hour = t.div_euclid(hour) - window_seconds / 3_600 + 1;
    (0..trips.num_rows())
        .filter(|&r| ids.value(r) == driver && ts.value(r) <= t && created.value(r) <= t)
        .filter(|&r| ts.value(r).div_euclid(hour) >= first_hour)
        .collect()
}

fn fare(trips: &RecordBatch, row: usize) -> f64 {
    trips
        .column_by_name("fare")
        .unwrap()
        .as_primitive::<Float64Type>()
        .value(row)
}

#[tokio::test]
async fn demo_training_set_matches_naive_reference() {
    let (dir, project) = demo_project();
    let spine_path = dir.path().join("data/demo/ride_requests_spine.parquet");
    let options = TrainingSetOptions {
        spine: spine_path.clone().into(),
        selection: FeatureSelection::Service("ranking_v1".into()),
        timestamp_column: "event_timestamp".into(),
        full_names: false,
    };
    let ctx = skewless::engine_session();
    let out = project.training_set(&ctx, &options).await.unwrap();
    let spine = read(&spine_path);
    let batch = &out.batch;
    assert_eq!(batch.num_rows(), spine.num_rows(), "one row per spine row");
    // Spine columns pass through unchanged, in order.
    for (i, field) in spine.schema().fields().iter().enumerate() {
        assert_eq!(batch.schema().field(i).name(), field.name());
        assert_eq!(
            batch.column(i).as_ref(),
            spine.column(i).as_ref(),
            "spine column {}",
            field.name()
        );
    }
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .skip(spine.num_columns())
        .map(|f| f.name().clone())
        .collect();
    assert_eq!(
        names,
        [
            "acc_rate",
            "avg_daily_trips",
            "conv_rate",
            "trips_per_hour",
            "current_balance",
            "tier",
            "score",
            "trips_1d",
            "fare_mean_7d"
        ]
    );

    let stats = read(&dir.path().join("data/demo/driver_hourly_stats.parquet"));
    let drivers = spine.column_by_name("driver_id").unwrap().as_primitive::<Int64Type>();
    let t = spine
        .column_by_name("event_timestamp")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let distance = spine
        .column_by_name("distance_km")
        .unwrap()
        .as_primitive::<Float64Type>();
    let conv = batch.column_by_name("conv_rate").unwrap().as_primitive::<Float32Type>();
    let score = batch.column_by_name("score").unwrap().as_primitive::<Float64Type>();
    let mut nulls = 0;
    for row in 0..300 {
        let want = reference_conv_rate(&stats, drivers.value(row), t.value(row));
        let got = conv.is_valid(row).then(|| conv.value(row));
        assert_eq!(
            got,
            want,
            "row {row}: driver {} at {}",
            drivers.value(row),
            t.value(row)
        );
        nulls += usize::from(want.is_none());
        // The on-demand feature is computed from the joined value and the request field, with
        // SQL typing: `conv_rate * 10` stays float32 (conv_rate is declared float32).
        let want_score = want.map(|c| f64::from(c * 10.0) - distance.value(row));
        assert_eq!(
            score.is_valid(row).then(|| score.value(row)),
            want_score,
            "row {row}: score"
        );
    }
    assert!(
        nulls > 0,
        "the demo spine has drivers without rows; some values must be null"
    );

    // The aggregated view, against the rule read literally (DESIGN rule 6, tile 1h).
    let trips = read(&dir.path().join("data/demo/trips.parquet"));
    let trips_1d = batch.column_by_name("trips_1d").unwrap().as_primitive::<Int64Type>();
    let fare_mean = batch
        .column_by_name("fare_mean_7d")
        .unwrap()
        .as_primitive::<Float64Type>();
    let (mut counted, mut empty) = (0, 0);
    for row in 0..batch.num_rows() {
        let (driver, at) = (drivers.value(row), t.value(row));
        let day = reference_window(&trips, driver, at, 86_400);
        assert_eq!(trips_1d.value(row), day.len() as i64, "row {row}: trips_1d");
        let week = reference_window(&trips, driver, at, 7 * 86_400);
        let fares: Vec<f64> = week.iter().map(|&r| fare(&trips, r)).collect();
        match fares.is_empty() {
            true => assert!(fare_mean.is_null(row), "row {row}: an empty window's mean is null"),
            false => {
                // The reference sums naively; the feature is the correctly rounded exact sum,
                // so the two may differ in the last bits (exactness is the engine's own test).
                let want = fares.iter().sum::<f64>() / fares.len() as f64;
                let got = fare_mean.value(row);
                assert!(
                    (got - want).abs() <= want.abs() * 1e-12,
                    "row {row}: fare_mean_7d {got} vs {want}"
                );
            }
        }
        counted += usize::from(!day.is_empty());
        empty += usize::from(fares.is_empty());
    }
    assert!(
        counted > 0 && empty > 0,
        "both full and empty windows occur ({counted}, {empty})"
    );
    assert_eq!(
        out.rows_read.len(),
        4,
        "four feature views feed ranking_v1: {:?}",
        out.rows_read
    );
}

#[tokio::test]
async fn name_clashes_and_missing_columns_are_explained() {
    let (dir, project) = demo_project();
    let ctx = skewless::engine_session();
    let options = |selection, full_names, ts: &str| TrainingSetOptions {
        spine: dir.path().join("data/demo/ride_requests_spine.parquet").into(),
        selection,
        timestamp_column: ts.into(),
        full_names,
    };
    // `driver_last_trip:last_trip_fare` and an on-demand feature reading it are both fine;
    // `customer_profile:*` twice is deduplicated; a clash needs --full-names.
    std::fs::write(
        dir.path().join("feature_defs/clash.yaml"),
        "on_demand_views:\n  other:\n    features:\n      score: { type: float64, expr: \"driver_hourly_stats.conv_rate * 2\" }\n",
    )
    .unwrap();
    let clash = FeatureSelection::Features(vec!["ride_score:score".into(), "other:score".into()]);
    let err = project
        .training_set(&ctx, &options(clash.clone(), false, "event_timestamp"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("feature name `score` comes from both `ride_score` and `other`"),
        "{err}"
    );
    let ok = project
        .training_set(&ctx, &options(clash, true, "event_timestamp"))
        .await
        .unwrap();
    assert!(
        ok.batch.column_by_name("ride_score__score").is_some() && ok.batch.column_by_name("other__score").is_some()
    );

    let wrong_ts = FeatureSelection::Features(vec!["driver_hourly_stats:conv_rate".into()]);
    let err = project
        .training_set(&ctx, &options(wrong_ts, false, "ts"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no timestamp column `ts`"), "{err}");
    let unknown = FeatureSelection::Service("ranking_v2".into());
    let err = project
        .training_set(&ctx, &options(unknown, false, "event_timestamp"))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown feature service `ranking_v2` (did you mean `ranking_v1`?)"
    );
    assert!(
        matches!(
            &err,
            skewless::Error::Selection(skewless::defs::SelectionError::UnknownService { name, did_you_mean: Some(near) })
                if name == "ranking_v2" && near == "ranking_v1"
        ),
        "{err:?}"
    );
}

/// Errors carry what they are about as fields (the messages are rendered from them).
#[tokio::test]
async fn errors_carry_their_fields() {
    use skewless::Error;
    let (dir, project) = demo_project();
    let ctx = skewless::engine_session();
    let spine = dir.path().join("data/demo/ride_requests_spine.parquet");
    let clash = TrainingSetOptions {
        spine: spine.clone().into(),
        selection: FeatureSelection::Features(vec![
            "driver_hourly_stats:conv_rate".into(),
            "driver_hourly_stats:conv_rate".into(),
        ]),
        timestamp_column: "event_timestamp".into(),
        full_names: false,
    };
    // The same feature twice is one column, not a clash.
    assert!(project.training_set(&ctx, &clash).await.is_ok());

    let no_time = TrainingSetOptions {
        timestamp_column: "when".into(),
        ..clash
    };
    let err = project.training_set(&ctx, &no_time).await.unwrap_err();
    assert!(
        matches!(&err, Error::Offline(skewless::offline::Error::Spine {
            path,
            problem: skewless::offline::SpineProblem::NoTimestamp { column, columns },
        }) if path == &spine && column == "when" && columns.iter().any(|c| c == "event_timestamp")),
        "{err:?}"
    );

    let defs = project.load().unwrap();
    let err = skewless::training::check_output(&defs, dir.path(), &spine.clone().into(), &spine).unwrap_err();
    assert!(
        matches!(&err, Error::Output { problem: skewless::training::OutputProblem::IsSpine, path } if path == &spine),
        "{err:?}"
    );
    let err = skewless::training::check_output(&defs, dir.path(), &spine.clone().into(), &dir.path().join("out.txt"))
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Output {
                problem: skewless::training::OutputProblem::Extension,
                ..
            }
        ),
        "{err:?}"
    );

    let err = project.compact("trip").unwrap_err();
    assert!(
        matches!(&err, Error::Unknown { kind: skewless::offline::Kind::Source, name, near: Some(near) }
            if name == "trip" && near == "trips"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "unknown source `trip` (did you mean `trips`?)");

    let not_a_manifest = dir.path().join("manifest.json");
    std::fs::write(&not_a_manifest, "{}").unwrap();
    let err = skewless::manifest::read_manifest(&not_a_manifest).unwrap_err();
    assert!(
        matches!(&err, Error::Manifest { problem: skewless::manifest::ManifestProblem::NotAManifest(_), path }
            if path == &not_a_manifest),
        "{err:?}"
    );
}
