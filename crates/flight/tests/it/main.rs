//! The Flight server over a real socket, called by arrow-flight's own client the way Feast's
//! client calls it: a training set over an uploaded spine equals the CLI's over the same
//! spine file, and every refusal is a status carrying Feast's error detail.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::{FlightClient, FlightDescriptor, Ticket};
use futures::{StreamExt, TryStreamExt};
use skewless::Project;
use skewless::training::{FeatureSelection, TrainingSetOptions};
use skewless_flight::{FlightEvent, FlightOptions};

struct Running {
    client: FlightClient,
    events: Arc<Mutex<Vec<FlightEvent>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(project: &Project, options: FlightOptions) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&events);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(skewless_flight::serve(
        project.clone(),
        listener,
        options,
        Arc::new(move |e| seen.lock().unwrap().push(e)),
        async {
            let _ = stopped.await;
        },
    ));
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Running {
        client: FlightClient::new(channel),
        events,
        _stop: stop,
    }
}

fn demo_project() -> (tempfile::TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    let defs = skewless_testkit::copy_demo_defs(dir.path());
    skewless::demo_data::generate(&dir.path().join("data/demo"), 42).unwrap();
    let project = Project::new(defs, dir.path().join(".skewless"));
    project.apply(false, None).unwrap();
    (dir, project)
}

fn read_parquet(path: &std::path::Path) -> Vec<RecordBatch> {
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .with_batch_size(700)
        .build()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Feast's client (pyarrow): the JSON command alone in a first message, then the table, then
/// the answer.
async fn exchange(
    client: &mut FlightClient,
    command: serde_json::Value,
    upload: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>, tonic::Status> {
    let first = arrow_flight::FlightData::new().with_descriptor(FlightDescriptor::new_cmd(command.to_string()));
    let data = futures::stream::once(async { Ok(first) })
        .chain(FlightDataEncoderBuilder::new().build(futures::stream::iter(upload.into_iter().map(Ok))));
    let answer = client.do_exchange(data).await.map_err(status)?;
    answer.try_collect().await.map_err(status)
}

fn status(e: FlightError) -> tonic::Status {
    match e {
        FlightError::Tonic(status) => *status,
        other => panic!("expected a status, got {other}"),
    }
}

/// Feast's error detail in a status: (class, message).
fn feast_error(status: &tonic::Status) -> (String, String) {
    let detail = status
        .message()
        .strip_prefix("Flight error: ")
        .unwrap_or_else(|| panic!("not Feast's error detail: {}", status.message()));
    let detail: serde_json::Value = serde_json::from_str(detail).unwrap();
    assert_eq!(detail["module"], "feast.errors");
    (
        detail["class"].as_str().unwrap().to_string(),
        detail["message"].as_str().unwrap().to_string(),
    )
}

fn historical(features: &[&str], full_names: bool) -> serde_json::Value {
    serde_json::json!({
        "command_id": "6b1f", "api": "get_historical_features",
        "feature_view_names": [], "name_aliases": [], "project": "demo",
        "feature_refs": features, "full_feature_names": full_names,
    })
}

#[tokio::test]
async fn a_training_set_over_flight_is_the_clis() {
    let (dir, project) = demo_project();
    let mut running = start(&project, FlightOptions::default()).await;
    let spine_path = dir.path().join("data/demo/ride_requests_spine.parquet");
    let spine = read_parquet(&spine_path);
    assert!(spine.len() > 2, "the upload comes in several batches");
    let features = [
        "driver_hourly_stats:conv_rate",
        "driver_trip_stats:trips_1d",
        "customer_profile:tier",
        "ride_score:score",
    ];
    for full_names in [false, true] {
        let got = exchange(&mut running.client, historical(&features, full_names), spine.clone())
            .await
            .unwrap();
        let got = arrow::compute::concat_batches(&got[0].schema(), &got).unwrap();
        let want = project
            .training_set(
                &skewless::engine_session(),
                &TrainingSetOptions {
                    spine: spine_path.clone().into(),
                    selection: FeatureSelection::Features(features.iter().map(|f| f.to_string()).collect()),
                    timestamp_column: "event_timestamp".into(),
                    full_names,
                },
            )
            .await
            .unwrap()
            .batch;
        assert_eq!(got.num_rows(), want.num_rows());
        assert_eq!(got.schema().fields(), want.schema().fields());
        for (i, field) in want.schema().fields().iter().enumerate() {
            assert_eq!(got.column(i), want.column(i), "column {}", field.name());
        }
        let tier = if full_names { "customer_profile__tier" } else { "tier" };
        assert!(
            got.column_by_name(tier).unwrap().null_count() < got.num_rows(),
            "features were found"
        );
    }
    let events = running.events.lock().unwrap();
    assert!(
        matches!(&events[0], FlightEvent::Answered { api, rows, warnings, .. }
            if api == "get_historical_features" && *rows == spine.iter().map(RecordBatch::num_rows).sum::<usize>() && warnings.is_empty()),
        "{events:?}"
    );
}

#[tokio::test]
async fn refusals_are_feast_errors_with_skewless_words() {
    let (dir, project) = demo_project();
    let mut running = start(&project, FlightOptions::default()).await;
    let spine = read_parquet(&dir.path().join("data/demo/ride_requests_spine.parquet"));

    let unknown = exchange(
        &mut running.client,
        historical(&["driver_hourly_stats:conv_rat"], false),
        spine.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let (class, message) = feast_error(&unknown);
    assert_eq!(class, "FeastObjectNotFoundException");
    assert!(message.contains("conv_rat"), "{message}");

    let sql = serde_json::json!({"api": "get_historical_features", "feature_refs": ["driver_hourly_stats:conv_rate"],
        "full_feature_names": false, "entity_df_sql": "SELECT 1"});
    let refused = exchange(&mut running.client, sql, spine.clone()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    assert!(feast_error(&refused).1.contains("SQL"), "{refused}");

    let pull = serde_json::json!({"api": "pull_latest_from_table_or_query", "data_source_name": "trips"});
    let refused = exchange(&mut running.client, pull, spine.clone()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    assert!(
        feast_error(&refused).1.contains("`pull_latest_from_table_or_query`"),
        "{refused}"
    );

    // A spine without the view's join key: the spine's problem, named.
    let keyless: Vec<RecordBatch> = spine.iter().map(|b| b.project(&[0, 2]).unwrap()).collect();
    let refused = exchange(
        &mut running.client,
        historical(&["customer_profile:tier"], false),
        keyless,
    )
    .await
    .unwrap_err();
    let (class, message) = feast_error(&refused);
    assert_eq!(class, "FeastError", "{message}");
    assert!(
        message.contains("Feast's entity DataFrame") && message.contains("customer_id"),
        "{message}"
    );

    let ticket = running
        .client
        .do_get(Ticket::new("x"))
        .await
        .map(|_| ())
        .map_err(status)
        .unwrap_err();
    assert_eq!(ticket.code(), tonic::Code::Unimplemented);
    assert!(ticket.message().contains("DoExchange"), "{}", ticket.message());

    let events = running.events.lock().unwrap();
    assert!(
        events.iter().all(|e| matches!(e, FlightEvent::Refused { .. })),
        "{events:?}"
    );
    assert_eq!(events.len(), 4, "{events:?}");
}

#[tokio::test]
async fn feast_apply_validates_sources_by_put() {
    let (_dir, project) = demo_project();
    let mut running = start(&project, FlightOptions::default()).await;
    let put = |name: &str| {
        let proto = serde_json::json!({"type": "BATCH_FILE", "name": name}).to_string();
        let command = serde_json::json!({"command_id": "c", "api": "validate_data_source", "data_source_proto": proto});
        // Feast uploads a one-row placeholder table with the command.
        let key = arrow::array::StringArray::from(vec!["mock_key"]);
        let batch = RecordBatch::try_from_iter([("key", Arc::new(key) as arrow::array::ArrayRef)]).unwrap();
        FlightDataEncoderBuilder::new()
            .with_flight_descriptor(Some(FlightDescriptor::new_cmd(command.to_string())))
            .build(futures::stream::iter([Ok(batch)]))
    };
    for ours in ["driver_hourly", "trips__batch"] {
        let answer = running.client.do_put(put(ours)).await.unwrap();
        let results: Vec<_> = answer.collect().await;
        assert!(results.iter().all(Result::is_ok), "{ours}: {results:?}");
    }
    for not_ours in ["driver_hourly__batch", "rides"] {
        let refused = match running.client.do_put(put(not_ours)).await {
            Err(e) => status(e),
            Ok(answer) => answer.try_collect::<Vec<_>>().await.map_err(status).unwrap_err(),
        };
        let (class, message) = feast_error(&refused);
        assert_eq!(class, "FeastObjectNotFoundException");
        assert!(message.contains(&format!("source `{not_ours}`")), "{message}");
    }
}

#[tokio::test]
async fn an_upload_over_the_limit_is_refused() {
    let (dir, project) = demo_project();
    let mut running = start(
        &project,
        FlightOptions {
            max_upload_bytes: 4096,
            authorize: None,
        },
    )
    .await;
    let spine = read_parquet(&dir.path().join("data/demo/ride_requests_spine.parquet"));
    let refused = exchange(
        &mut running.client,
        historical(&["customer_profile:tier"], false),
        spine,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(refused.code(), tonic::Code::ResourceExhausted | tonic::Code::OutOfRange),
        "{refused:?}"
    );
}

#[tokio::test]
async fn with_keys_only_a_key_is_admitted() {
    let (dir, project) = demo_project();
    let options = FlightOptions {
        authorize: Some(Arc::new(|authorization: Option<&[u8]>| {
            authorization == Some(&b"Bearer k1"[..])
        })),
        ..FlightOptions::default()
    };
    let mut running = start(&project, options).await;
    let spine = read_parquet(&dir.path().join("data/demo/ride_requests_spine.parquet"));
    let command = historical(&["customer_profile:tier"], false);
    let refused = exchange(&mut running.client, command.clone(), spine.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    assert!(feast_error(&refused).1.contains("Bearer"), "{refused}");
    running.client.add_header("authorization", "Bearer k2").unwrap();
    let refused = exchange(&mut running.client, command.clone(), spine.clone())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    running.client.add_header("authorization", "Bearer k1").unwrap();
    let answered = exchange(&mut running.client, command, spine).await.unwrap();
    assert!(answered.iter().map(RecordBatch::num_rows).sum::<usize>() > 0);
}
