//! The push routes: JSON rows, Feast's `/push` and Arrow IPC are logged and served; a
//! replayed id writes nothing; bad pushes are 4xx naming row and field, and write nothing.

use super::*;

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn instant(micros: i64) -> String {
    skewless::online::format_instant(micros)
}

fn trip(driver: i64, ts: i64, fare: f64) -> Value {
    json!({
        "trip_id": 7_000_000 + driver, "driver_id": driver, "customer_id": 5001,
        "event_timestamp": instant(ts), "last_trip_distance_km": 2.0, "fare": fare, "rating": null,
    })
}

/// `driver_last_trip:last_trip_fare` served now for `driver`: (value, status).
async fn served_fare(addr: std::net::SocketAddr, driver: i64) -> (Value, String) {
    let (status, body) = post(
        addr,
        "/v1/features",
        json!({"features": ["driver_last_trip:last_trip_fare"], "entities": [{"driver_id": driver}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let f = &body["results"][0]["features"]["last_trip_fare"];
    (f["value"].clone(), f["status"].as_str().unwrap().to_string())
}

/// The rows in `source`'s log (folded into segments).
fn logged_rows(project: &Project, source: &str) -> i64 {
    skewless::push_log::segments(&project.root, source)
        .unwrap()
        .iter()
        .map(|path| {
            let file = std::fs::File::open(path).unwrap();
            parquet::file::reader::FileReader::metadata(
                &parquet::file::reader::SerializedFileReader::new(file).unwrap(),
            )
            .file_metadata()
            .num_rows()
        })
        .sum()
}

/// The training set's one feature column (after the key and the timestamp), as floats.
async fn trained_floats(project: &Project, options: &skewless::training::TrainingSetOptions) -> Vec<f64> {
    let batch = project
        .training_set(&skewless::engine_session(), options)
        .await
        .unwrap()
        .batch;
    batch
        .column(2)
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()
        .unwrap()
        .values()
        .to_vec()
}

/// An Arrow IPC stream of one trip row.
fn arrow_trip(driver: i64, ts: i64, fare: f64) -> Vec<u8> {
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("trip_id", arrow::datatypes::DataType::Int64, false),
        arrow::datatypes::Field::new("driver_id", arrow::datatypes::DataType::Int64, false),
        arrow::datatypes::Field::new("customer_id", arrow::datatypes::DataType::Int64, false),
        arrow::datatypes::Field::new("event_timestamp", arrow::datatypes::DataType::Utf8, false),
        arrow::datatypes::Field::new("fare", arrow::datatypes::DataType::Float64, true),
    ]));
    let batch = arrow::array::RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(arrow::array::Int64Array::from(vec![8_000_000 + driver])),
            Arc::new(arrow::array::Int64Array::from(vec![driver])),
            Arc::new(arrow::array::Int64Array::from(vec![5001])),
            Arc::new(arrow::array::StringArray::from(vec![instant(ts)])),
            Arc::new(arrow::array::Float64Array::from(vec![fare])),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut writer = arrow::ipc::writer::StreamWriter::try_new(&mut out, &schema).unwrap();
    writer.write(&batch).unwrap();
    writer.finish().unwrap();
    drop(writer);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_logged_then_served_and_bad_ones_write_nothing() {
    let limits = Limits {
        max_push_body_bytes: 64 * 1024,
        ..Limits::default()
    };
    let server = start(limits).await;
    let addr = server.addr;
    let t = now_micros() - 1_000_000;

    // JSON rows with an id.
    let (status, body) = post(
        addr,
        "/v1/push",
        json!({"source": "trips", "rows": [trip(1001, t, 11.5), trip(1002, t, 12.5)], "id": "p1"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["appended"], true);
    assert_eq!(body["views"]["driver_last_trip"]["written"], 2, "{body}");
    assert_eq!(served_fare(addr, 1001).await, (json!(11.5), "PRESENT".into()));

    // The same id again, with the same rows: acknowledged, appended nothing (the online
    // write is made again: newer-wins leaves what is there).
    let (status, body) = post(
        addr,
        "/v1/push",
        json!({"source": "trips", "rows": [trip(1001, t, 11.5), trip(1002, t, 12.5)], "id": "p1"}),
    )
    .await;
    assert_eq!((status, &body["appended"]), (200, &json!(false)), "{body}");
    assert_eq!(body["views"]["driver_last_trip"]["skipped_not_newer"], 2, "{body}");
    // With other rows: 409 naming the id, nothing written anywhere.
    let (status, body) = post(
        addr,
        "/v1/push",
        json!({"source": "trips", "rows": [trip(1001, t + 1, 99.0)], "id": "p1"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("PUSH_ID_CONFLICT")),
        "{body}"
    );
    assert!(body["error"]["message"].as_str().unwrap().contains("`p1`"), "{body}");
    assert_eq!(served_fare(addr, 1001).await.0, json!(11.5));

    // Feast's body: column-major `df`, `to: online` (logged offline too).
    let (status, body) = post(
        addr,
        "/push",
        json!({
            "push_source_name": "trips",
            "df": {
                "trip_id": [9001], "driver_id": [1003], "customer_id": [5001],
                "event_timestamp": [instant(t)], "fare": [13.5],
                "last_trip_distance_km": [1.0], "rating": [4]
            },
            "to": "online",
            "allow_registry_cache": true
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(served_fare(addr, 1003).await.0, json!(13.5));

    // An Arrow IPC stream; columns it lacks are null, strings are cast to timestamps.
    let (status, text) = request_with(
        addr,
        "POST",
        "/v1/push?source=trips&id=arrow-1",
        "Content-Type: application/vnd.apache.arrow.stream\r\n",
        &arrow_trip(1004, t, 14.5),
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(served_fare(addr, 1004).await.0, json!(14.5));
    assert_eq!(logged_rows(&server.project, "trips"), 4);

    // Bad pushes: 4xx with a code naming the row and field; nothing logged, nothing served.
    let mut wrong_type = trip(4242, t, 1.0);
    wrong_type["fare"] = json!("cheap");
    let mut no_key = trip(4242, t, 1.0);
    no_key.as_object_mut().unwrap().remove("driver_id");
    let big: Vec<Value> = (0..2000).map(|i| trip(4242, t + i, 1.0)).collect();
    for (path, body, status, code, says) in [
        (
            "/v1/push",
            json!({"source": "trips", "rows": [trip(4242, t, 1.0), wrong_type]}),
            400,
            "BAD_ROW",
            "row 1, field `fare`: expected a float64 (a JSON number, or \"NaN\", \"Infinity\", \"-Infinity\"), found the string \"cheap\"",
        ),
        (
            "/v1/push",
            json!({"source": "trips", "rows": [no_key]}),
            400,
            "BAD_ROW",
            "row 0, field `driver_id`: missing",
        ),
        (
            "/v1/push",
            json!({"source": "trip", "rows": [trip(4242, t, 1.0)]}),
            404,
            "UNKNOWN_SOURCE",
            "did you mean `trips`?",
        ),
        (
            "/v1/push",
            json!({"source": "driver_hourly", "rows": [trip(4242, t, 1.0)]}),
            400,
            "NOT_A_PUSH_SOURCE",
            "push: true",
        ),
        (
            "/v1/push",
            json!({"source": "trips", "rows": [trip(4242, t, 1.0)], "to": "somewhere"}),
            400,
            "BAD_REQUEST",
            "`to`",
        ),
        (
            "/push",
            json!({"push_source_name": "trips", "df": {"driver_id": [4242, 4243], "event_timestamp": [instant(t)]}}),
            400,
            "BAD_ROW",
            "field `event_timestamp`: 1 values, but column `driver_id` has 2",
        ),
        (
            "/v1/push",
            json!({"source": "trips", "rows": big}),
            413,
            "BODY_TOO_LARGE",
            "",
        ),
    ] {
        let (got, text) = request(addr, "POST", path, body.to_string().as_bytes()).await;
        assert_eq!(got, status, "{path}: {text}");
        if status != 413 {
            let answer: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(answer["error"]["code"], code, "{text}");
            assert!(answer["error"]["message"].as_str().unwrap().contains(says), "{text}");
        }
    }
    let (status, text) = request_with(
        addr,
        "POST",
        "/v1/push?source=trips",
        "Content-Type: application/vnd.apache.arrow.stream\r\n",
        b"not arrow at all",
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(logged_rows(&server.project, "trips"), 4, "a bad push was logged");
    assert_eq!(served_fare(addr, 4242).await.1, "NOT_FOUND");

    // The training set reads the log: what was served is what it holds.
    let spine = server.project.root.join("push_spine.csv");
    std::fs::write(
        &spine,
        format!(
            "driver_id,event_timestamp\n1001,{0}\n1003,{0}\n1004,{0}\n",
            instant(t + 500_000)
        ),
    )
    .unwrap();
    let options = skewless::training::TrainingSetOptions {
        spine: spine.into(),
        selection: skewless::training::FeatureSelection::Features(vec!["driver_last_trip:last_trip_fare".into()]),
        timestamp_column: "event_timestamp".into(),
        full_names: false,
    };
    // `created` is the ingestion instant, after `t`: an `as_of: available` view sees the rows
    // from then on. Ask at the end of this second instead.
    let later = skewless::training::TrainingSetOptions {
        spine: {
            let path = server.project.root.join("push_spine_later.csv");
            std::fs::write(
                &path,
                format!(
                    "driver_id,event_timestamp\n1001,{0}\n1003,{0}\n1004,{0}\n",
                    instant(now_micros() + 1_000_000)
                ),
            )
            .unwrap();
            path.into()
        },
        ..options.clone()
    };
    let early = server
        .project
        .training_set(&skewless::engine_session(), &options)
        .await
        .unwrap()
        .batch;
    assert_eq!(
        early.column(2).null_count(),
        3,
        "rows were visible before they were pushed"
    );
    assert_eq!(trained_floats(&server.project, &later).await, [11.5, 13.5, 14.5]);

    let (_, text) = request(addr, "GET", "/metrics", b"").await;
    assert_eq!(metric(&text, "skewless_pushed_rows_total{source=\"trips\"}"), 4.0);
    assert_eq!(metric(&text, "skewless_replayed_pushes_total{source=\"trips\"}"), 1.0);
    assert_eq!(metric(&text, "skewless_errors_total{code=\"BAD_ROW\"}"), 3.0);
    stop(server).await;
}

/// A push source whose batch files (which give pushed rows their schema) are gone from the
/// server is the server's problem, not the store's or the caller's: 503 `SOURCE_UNREADABLE`,
/// with the path kept out of the answer, and nothing logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_source_without_its_files_is_503_source_unreadable() {
    let server = start(Limits::default()).await;
    let trips = server.project.root.join("data/demo/trips.parquet");
    std::fs::remove_file(&trips).unwrap();
    let now = now_micros();
    let (status, body) = post(
        server.addr,
        "/v1/push",
        json!({"source": "trips", "rows": [trip(1001, now, 9.0)]}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("SOURCE_UNREADABLE")),
        "{body}"
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(!message.contains("trips.parquet"), "{message}");
    assert!(
        skewless::push_log::segments(&server.project.root, "trips")
            .unwrap()
            .is_empty()
    );
    stop(server).await;
}

/// Feast's `write_to_online_store` (and `push` through Feast's remote online store): a write
/// to a view is a push to its source, so it is logged, served and seen by a later training
/// set; a write that cannot be one is a 400 saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feast_writes_to_a_view_are_pushes_of_its_source() {
    let server = start_with_files(&[
        (
            "data/fares.csv",
            "driver_id,event_timestamp,created,fare\n1,2025-01-01T00:00:00Z,2025-01-01T00:00:00Z,1.0\n",
        ),
        (
            "feature_defs/fares_now.yaml",
            "sources:\n  fares:\n    path: data/fares.csv\n    timestamp: event_timestamp\n    created: created\n    push: true\n\
             feature_views:\n  driver_fare_now:\n    entity: driver\n    source: fares\n    ttl: 7d\n    features:\n      fare: { type: float64 }\n",
        ),
    ])
    .await;
    let project = server.project.clone();
    let addr = server.addr;

    // As Feast's remote online store sends it: naive UTC times, `created` null.
    let t = now_micros() - 1_000_000;
    let naive = instant(t).trim_end_matches('Z').to_string();
    let write_once = json!({
        "feature_view_name": "driver_fare_now",
        "df": {"driver_id": [4242, 4243], "fare": [12.5, 3.0], "event_timestamp": [naive, naive], "created": [null, null]},
        "allow_registry_cache": false,
    });
    let (status, body) = post(addr, "/write-to-online-store", write_once.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["source"].as_str(), body["rows"].as_u64(), &body["appended"]),
        (Some("fares"), Some(2), &json!(true)),
        "{body}"
    );
    // The same rows again (Feast sends a source's rows once per view, and retries a 5xx):
    // a replay, logged once.
    let (status, again) = post(addr, "/write-to-online-store", write_once.clone()).await;
    assert_eq!((status, &again["appended"]), (200, &json!(false)), "{again}");
    let (status, body) = post(
        addr,
        "/get-online-features",
        json!({"features": ["driver_fare_now:fare"], "entities": {"driver_id": [4242, 4243]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][1]["values"], json!([12.5, 3.0]), "{body}");
    assert_eq!(body["results"][1]["statuses"], json!(["PRESENT", "PRESENT"]), "{body}");

    // The training set sees what was written, from its ingestion instant on.
    let spine = project.root.join("fares_spine.csv");
    std::fs::write(
        &spine,
        format!(
            "driver_id,event_timestamp\n4242,{}\n",
            instant(now_micros() + 1_000_000)
        ),
    )
    .unwrap();
    let options = skewless::training::TrainingSetOptions {
        spine: spine.into(),
        selection: skewless::training::FeatureSelection::Features(vec!["driver_fare_now:fare".into()]),
        timestamp_column: "event_timestamp".into(),
        full_names: false,
    };
    assert_eq!(trained_floats(&project, &options).await, [12.5]);

    // Writes that cannot be pushes of whole source rows say why, and write nothing.
    let write = |view: &str, df: Value| json!({"feature_view_name": view, "df": df});
    for (body, status, code, says) in [
        (
            write(
                "driver_hourly_stats",
                json!({"driver_id": [1], "conv_rate": [0.5], "event_timestamp": [naive]}),
            ),
            400,
            "VIEW_NOT_WRITABLE",
            "reads source `driver_hourly`, which takes no pushes",
        ),
        (
            write(
                "driver_last_trip",
                json!({"driver_id": [1], "last_trip_rated": [true], "event_timestamp": [naive]}),
            ),
            400,
            "VIEW_NOT_WRITABLE",
            "its feature `last_trip_rated` is computed (`rating IS NOT NULL`)",
        ),
        (
            write(
                "driver_trip_stats",
                json!({"driver_id": [1], "event_timestamp": [naive]}),
            ),
            400,
            "VIEW_NOT_WRITABLE",
            "it is aggregated",
        ),
        (
            write("driver_fare_nope", json!({"driver_id": [1]})),
            404,
            "UNKNOWN_FEATURE",
            "driver_fare_nope",
        ),
        (
            write(
                "driver_fare_now",
                json!({"driver_id": [1], "fare": ["cheap"], "event_timestamp": [naive]}),
            ),
            400,
            "BAD_ROW",
            "found the string \"cheap\"",
        ),
    ] {
        let (got, answer) = post(addr, "/write-to-online-store", body.clone()).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{message}");
    }
    let rows = logged_rows(&project, "fares");
    assert_eq!(rows, 2, "only the good write is in the log");
    stop(server).await;
}
