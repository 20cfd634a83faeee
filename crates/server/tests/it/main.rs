//! The HTTP server through `run()` on `127.0.0.1:0`, with a plain HTTP/1.1 client over TCP,
//! against the embedded store holding the materialized demo data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use skewless::Project;
use skewless::demo_data::START_MICROS;
use skewless::online::MaterializeOptions;
use skewless::online_store::{self, StoreConfig};
use skewless::serving::Serving;
use skewless_server::{ApiKeys, Limits, Live, Options, run};
use skewless_testkit::fuzz::Fuzz;

mod hostile;
mod push;
mod served_log;
mod sharded;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOUR: i64 = 3_600_000_000;
const AT: &str = "2026-11-04T00:00:00Z";

struct Server {
    addr: std::net::SocketAddr,
    project: Project,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

fn demo_project(dir: &Path) -> Project {
    let defs = skewless_testkit::copy_demo_defs(dir);
    // `ranking_v1` without its aggregated features, which are served only as of now: the
    // tests ask it at a fixed past clock.
    std::fs::write(
        defs.join("test_services.yaml"),
        "feature_services:\n  ranking_rows:\n    features: [\"driver_hourly_stats:*\", customer_profile:current_balance, customer_profile:tier, ride_score:score]\n",
    )
    .unwrap();
    skewless::demo_data::generate(&dir.join("data/demo"), 42).unwrap();
    let project = Project::new(defs, dir.join(".skewless"));
    project.apply(false, None).unwrap();
    project
}

async fn materialize(project: &Project, store: &dyn skewless::online_store::OnlineStore) {
    let options = MaterializeOptions {
        start: None,
        end: START_MICROS + 3 * 24 * HOUR,
        incremental: false,
        views: Vec::new(),
    };
    project.materialize(store, &options, &|_| {}).await.unwrap();
}

/// A server over the demo project plus `files` (paths relative to the project root, e.g.
/// `feature_defs/more.yaml`), materialized as `start` does, with default limits.
async fn start_with_files(files: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let defs = skewless_testkit::copy_demo_defs(dir.path());
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    skewless::demo_data::generate(&dir.path().join("data/demo"), 42).unwrap();
    let project = Project::new(defs, dir.path().join(".skewless"));
    project.apply(false, None).unwrap();
    let store = online_store::open(&StoreConfig::Embedded(dir.path().join("s.redb")))
        .await
        .unwrap();
    materialize(&project, &*store).await;
    serve(dir, &project, store, Limits::default()).await
}

async fn start(options: impl Into<Options>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path());
    let store = online_store::open(&StoreConfig::Embedded(dir.path().join("s.redb")))
        .await
        .unwrap();
    materialize(&project, &*store).await;
    serve(dir, &project, store, options).await
}

async fn serve(
    dir: tempfile::TempDir,
    project: &Project,
    store: Arc<dyn skewless::online_store::OnlineStore>,
    options: impl Into<Options>,
) -> Server {
    let serving = Serving::new(&project.dirs(), store).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run(listener, Live::new(serving), options.into(), async {
        let _ = stopped.await;
    }));
    Server {
        addr,
        project: project.clone(),
        stop: Some(stop),
        task,
        _dir: dir,
    }
}

/// One HTTP/1.1 request; the status and the body.
async fn request(addr: std::net::SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    request_with(addr, method, path, "", body).await
}

/// One HTTP/1.1 request with extra header lines (each ending in `\r\n`); the status and the
/// body.
async fn request_with(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let content_type = if headers.contains("Content-Type:") {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{content_type}{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

async fn post(addr: std::net::SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let (status, text) = request(addr, "POST", path, body.to_string().as_bytes()).await;
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_answer_and_errors_carry_codes() {
    let server = start(Limits::default()).await;
    let addr = server.addr;
    assert_eq!(request(addr, "GET", "/health", b"").await.0, 200);
    assert_eq!(request(addr, "GET", "/ready", b"").await.0, 200);

    // A service with aggregated features at a past clock: refused (tiles are served as of
    // now); as of now it answers.
    let ranking = |at: Option<&str>| {
        let mut body = json!({
            "feature_service": "ranking_v1",
            "entities": [{"driver_id": 1001, "customer_id": 5001, "distance_km": 3.5}],
        });
        if let Some(at) = at {
            body["at"] = json!(at);
        }
        body
    };
    let (status, body) = post(addr, "/v1/features", ranking(Some(AT))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("PAST_CLOCK")),
        "{body}"
    );
    let (status, body) = post(addr, "/v1/features", ranking(None)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["results"][0]["features"]["trips_1d"].is_object(), "{body}");

    // Own API: a service, an entity with a request field, at a fixed clock.
    let (status, body) = post(
        addr,
        "/v1/features",
        json!({
            "feature_service": "ranking_rows",
            "entities": [{"driver_id": 1001, "customer_id": 5001, "distance_km": 3.5}],
            "at": AT,
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let features = &body["results"][0]["features"];
    assert_eq!(features["conv_rate"]["status"], "PRESENT", "{body}");
    assert!(features["score"]["value"].is_number(), "{body}");
    assert_eq!(body["results"][0]["entity"]["driver_id"], 1001);
    assert_eq!(body["applied_version"], 1);
    // The versions served are those of the applied definitions: the service, the views it
    // reads and the on-demand view it evaluates.
    let applied = skewless::defs::version::versions(&server.project.applied().unwrap());
    assert_eq!(
        body["versions"]["service"].as_str(),
        applied.feature_services.get("ranking_rows").map(String::as_str),
        "{body}"
    );
    for view in ["driver_hourly_stats", "customer_profile"] {
        assert_eq!(
            body["versions"]["views"][view].as_str(),
            applied.feature_views.get(view).map(String::as_str),
            "{body}"
        );
    }
    assert_eq!(
        body["versions"]["views"]["ride_score"].as_str(),
        applied.on_demand_views.get("ride_score").map(String::as_str),
        "{body}"
    );

    for (request_body, status, code) in [
        (
            json!({"features": ["driver_hourly_stats:conv_rat"], "entities": [{"driver_id": 1}]}),
            404,
            "UNKNOWN_FEATURE",
        ),
        (
            json!({"feature_service": "ranking_v9", "entities": [{"driver_id": 1}]}),
            404,
            "UNKNOWN_FEATURE",
        ),
        // A malformed reference is the caller's shape, not a missing feature.
        (
            json!({"features": ["driver_hourly_stats"], "entities": [{"driver_id": 1}]}),
            400,
            "BAD_FEATURE_REFERENCE",
        ),
        (
            json!({"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": "x1"}]}),
            400,
            "BAD_ENTITY",
        ),
        (
            json!({"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": [1]}]}),
            400,
            "BAD_ENTITY",
        ),
        (
            json!({"feature_service": "ranking_v1", "entities": [{"driver_id": 1, "customer_id": 2}]}),
            400,
            "MISSING_REQUEST_FIELD",
        ),
        (json!({"features": [], "entities": []}), 400, "BAD_REQUEST"),
        (
            json!({"features": ["driver_hourly_stats:conv_rate"], "entities": [], "at": "yesterday"}),
            400,
            "BAD_REQUEST",
        ),
        (
            json!({"features": ["driver_hourly_stats:conv_rate"], "entities": [], "typo": 1}),
            400,
            "BAD_REQUEST",
        ),
    ] {
        let (got, body) = post(addr, "/v1/features", request_body.clone()).await;
        assert_eq!(
            (got, body["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{request_body}: {body}"
        );
    }
    let (status, _) = request(addr, "POST", "/v1/features", b"{ not json").await;
    assert_eq!(status, 400);

    // Routes that do not exist, and methods a route does not take, answer the JSON error too.
    for (method, path, status, code, says) in [
        (
            "POST",
            "/materialize-everything",
            404,
            "NOT_FOUND",
            "`POST /materialize-everything`",
        ),
        ("GET", "/", 404, "NOT_FOUND", "`GET /`"),
        (
            "GET",
            "/v1/features",
            405,
            "METHOD_NOT_ALLOWED",
            "`/v1/features` does not take GET",
        ),
        (
            "POST",
            "/health",
            405,
            "METHOD_NOT_ALLOWED",
            "`/health` does not take POST",
        ),
    ] {
        let (got, text) = request(addr, method, path, b"{}").await;
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: {e}: {text:?}"));
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(says), "{message}");
    }

    // Random and truncated bodies: always an answer, never a dropped connection.
    let valid = json!({"feature_service": "ranking_v1", "entities": [{"driver_id": 1001, "customer_id": 5001, "distance_km": 1}]}).to_string();
    let mut fuzz = Fuzz::new(21);
    for i in 0..150 {
        let body = if i % 3 == 0 {
            fuzz.bytes(200)
        } else {
            fuzz.mutate(valid.as_bytes())
        };
        let path = if i % 2 == 0 {
            "/v1/features"
        } else {
            "/get-online-features"
        };
        let (status, text) = request(addr, "POST", path, &body).await;
        assert!(
            (200..500).contains(&status),
            "{status} for {:?}: {text}",
            String::from_utf8_lossy(&body)
        );
    }
    // Feast's write and materialize routes, likewise (this server has no materializer, and
    // every write here is refused: none reaches the log).
    let valid = [
        json!({"feature_view_name": "driver_last_trip", "df": {"driver_id": [1001], "last_trip_fare": [2.5], "event_timestamp": ["2026-11-14T00:00:00"], "created": [null]}}),
        json!({"start_ts": "2026-11-01T00:00:00", "end_ts": "2026-11-15T00:00:00", "feature_views": ["driver_hourly_stats"]}),
    ];
    for i in 0..120 {
        let (path, valid) = if i % 2 == 0 {
            ("/write-to-online-store", &valid[0])
        } else {
            ("/materialize", &valid[1])
        };
        let body = if i % 3 == 0 {
            fuzz.bytes(200)
        } else {
            fuzz.mutate(valid.to_string().as_bytes())
        };
        let (status, text) = request(addr, "POST", path, &body).await;
        assert!(
            (400..500).contains(&status),
            "{status} for {path} {:?}: {text}",
            String::from_utf8_lossy(&body)
        );
        assert!(text.starts_with("{\"error\""), "{path}: {text}");
    }
    assert_eq!(request(addr, "GET", "/health", b"").await.0, 200);

    // Everything above is counted: by route and status, errors by code, values by view.
    let (status, metrics) = request(addr, "GET", "/metrics", b"").await;
    assert_eq!(status, 200);
    for line in [
        "skewless_requests_total{route=\"/v1/features\",status=\"200\"}",
        "skewless_requests_total{route=\"/v1/features\",status=\"404\"}",
        "skewless_errors_total{code=\"UNKNOWN_FEATURE\"}",
        "skewless_errors_total{code=\"MISSING_REQUEST_FIELD\"}",
        "skewless_errors_total{code=\"BAD_REQUEST\"}",
        "skewless_values_served_total{view=\"driver_hourly_stats\",status=\"PRESENT\"}",
        "skewless_request_duration_seconds_bucket{route=\"/v1/features\",le=\"+Inf\"}",
        "skewless_store_round_trip_seconds_count",
        "skewless_applied_version 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    // Freshness: the newest event time materialized, per view. The demo's hourly stats have
    // a row every hour, so the newest is within the hour before the materialization's end.
    let end = (START_MICROS + 3 * 24 * HOUR) as f64 / 1e6;
    let newest = metric(
        &metrics,
        "skewless_view_newest_event_timestamp_seconds{view=\"driver_hourly_stats\"}",
    );
    assert!(newest <= end && newest > end - 3600.0, "{newest} vs {end}");
    let age = metric(
        &metrics,
        "skewless_view_freshness_seconds{view=\"driver_hourly_stats\"}",
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - newest - age).abs() < 60.0, "{age}");
    for view in ["customer_profile", "driver_last_trip"] {
        metric(&metrics, &format!("skewless_view_freshness_seconds{{view=\"{view}\"}}"));
    }
    stop(server).await;
}

/// The value of the sample `name` (with its labels) in Prometheus text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
}

/// Request and response shapes transcribed from Feast's feature-server documentation:
/// `features` (or `feature_service`), column-major `entities`, `full_feature_names`; the
/// answer's `metadata.feature_names` has the join keys first, and each result column holds
/// `values`, `statuses` and `event_timestamps` (the epoch where there is no value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feast_get_online_features_is_wire_compatible() {
    let server = start(Limits::default()).await;
    let (status, body) = post(
        server.addr,
        "/get-online-features",
        json!({
            "features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"],
            "entities": {"driver_id": [1001, 1002, 999999]},
            "full_feature_names": false,
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["metadata"]["feature_names"],
        json!(["driver_id", "conv_rate", "acc_rate", "avg_daily_trips"])
    );
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0]["values"], json!([1001, 1002, 999999]));
    assert_eq!(results[0]["statuses"], json!(["PRESENT", "PRESENT", "PRESENT"]));
    for column in results {
        for key in ["values", "statuses", "event_timestamps"] {
            assert_eq!(column[key].as_array().unwrap().len(), 3, "{key}: {column}");
        }
    }
    // The unknown driver: NOT_FOUND, null, and the epoch as its event time.
    assert_eq!(results[1]["statuses"][2], "NOT_FOUND");
    assert_eq!(results[1]["values"][2], Value::Null);
    assert_eq!(results[1]["event_timestamps"][2], "1970-01-01T00:00:00Z");

    let (status, body) = post(
        server.addr,
        "/get-online-features",
        json!({
            "feature_service": "ranking_v1",
            "entities": {"driver_id": [1001], "customer_id": [5001], "distance_km": [2.0]},
            "full_feature_names": true,
        }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let names = body["metadata"]["feature_names"].as_array().unwrap();
    assert_eq!(names[..2], [json!("customer_id"), json!("driver_id")]);
    assert!(names.contains(&json!("driver_hourly_stats__conv_rate")), "{body}");
    assert!(names.contains(&json!("ride_score__score")), "{body}");

    let (status, body) = post(
        server.addr,
        "/get-online-features",
        json!({"feature_service": "ranking_v1", "entities": {"driver_id": [1, 2], "customer_id": [3]}}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("BAD_REQUEST")),
        "{body}"
    );
    stop(server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_answered_with_codes() {
    let server = start(Limits {
        max_body_bytes: 2048,
        max_entities: 3,
        max_features: 2,
        ..Limits::default()
    })
    .await;
    let big = vec![b' '; 4096];
    assert_eq!(request(server.addr, "POST", "/v1/features", &big).await.0, 413);
    let (status, body) = post(
        server.addr,
        "/v1/features",
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": 1}, {"driver_id": 2}, {"driver_id": 3}, {"driver_id": 4}]}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("TOO_MANY_ENTITIES")),
        "{body}"
    );
    let (status, body) = post(
        server.addr,
        "/get-online-features",
        json!({"features": ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"], "entities": {"driver_id": [1]}}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("TOO_MANY_FEATURES")),
        "{body}"
    );
    stop(server).await;
}

/// With API keys, data routes need a valid bearer token (401 otherwise, naming no key);
/// the probes stay open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_guard_every_data_route() {
    let keys = ApiKeys::parse("k-one-secret\nk-two-secret\n").unwrap();
    let server = start(Options {
        api_keys: Some(keys),
        ..Options::default()
    })
    .await;
    let body = json!({"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": 1001}]}).to_string();
    let feast = json!({"features": ["driver_hourly_stats:conv_rate"], "entities": {"driver_id": [1001]}}).to_string();
    for (method, path, body) in [
        ("POST", "/v1/features", body.as_str()),
        ("POST", "/get-online-features", feast.as_str()),
        ("GET", "/metrics", ""),
    ] {
        for headers in [
            "",
            "Authorization: Bearer k-one\r\n",
            "Authorization: Basic k-one-secret\r\n",
            "Authorization: Bearer k-one-secret-\r\n",
        ] {
            let (status, text) = request_with(server.addr, method, path, headers, body.as_bytes()).await;
            assert_eq!(status, 401, "{path} {headers:?}: {text}");
            assert!(text.contains("UNAUTHORIZED") && !text.contains("secret"), "{text}");
        }
        for key in ["k-one-secret", "k-two-secret"] {
            let headers = format!("Authorization: Bearer {key}\r\n");
            let (status, text) = request_with(server.addr, method, path, &headers, body.as_bytes()).await;
            assert_eq!(status, 200, "{path}: {text}");
        }
    }
    for probe in ["/health", "/ready"] {
        assert_eq!(request(server.addr, "GET", probe, b"").await.0, 200, "{probe}");
    }
    let (_, metrics) = request_with(
        server.addr,
        "GET",
        "/metrics",
        "Authorization: Bearer k-two-secret\r\n",
        b"",
    )
    .await;
    assert!(
        metrics.contains(r#"skewless_errors_total{code="UNAUTHORIZED"} 12"#),
        "{metrics}"
    );
    stop(server).await;
}

/// Shutdown finishes: `run` returns once the shutdown future resolves.
async fn stop(mut server: Server) {
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), server.task)
        .await
        .expect("the server did not stop")
        .unwrap()
        .unwrap();
}

/// Redis goes down: 503 `STORE_UNAVAILABLE` and `/ready` says so; the server keeps running
/// and answers again by itself once Redis is back (and materialized again: it kept nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_goes_down_is_503_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path());
    let mut redis = skewless_testkit::RedisServer::start();
    let store = online_store::open(&StoreConfig::Redis(redis.url())).await.unwrap();
    materialize(&project, &*store).await;
    let server = serve(dir, &project, Arc::clone(&store), Limits::default()).await;
    let ask = json!({"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": 1001}], "at": AT});
    let status_of = |body: &Value| {
        body["results"][0]["features"]["conv_rate"]["status"]
            .as_str()
            .map(String::from)
    };
    let (status, body) = post(server.addr, "/v1/features", ask.clone()).await;
    assert_eq!((status, status_of(&body).as_deref()), (200, Some("PRESENT")), "{body}");

    redis.stop();
    let (status, body) = post(server.addr, "/v1/features", ask.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("STORE_UNAVAILABLE")),
        "{body}"
    );
    // The client gets a safe message and a request id; the store's address and words stay
    // in the server's log.
    let message = body["error"]["message"].as_str().unwrap();
    let port = redis.url().rsplit(':').next().unwrap().to_string();
    assert!(!message.contains(&port) && !message.contains("127.0.0.1"), "{message}");
    assert_eq!(body["error"]["request_id"].as_str().map(str::len), Some(16), "{body}");
    assert_eq!(request(server.addr, "GET", "/ready", b"").await.0, 503);
    assert_eq!(request(server.addr, "GET", "/health", b"").await.0, 200);

    redis.restart();
    // The first request after the restart is answered (the lost connection is reconnected
    // and the read sent again), not failed with "broken pipe"; the restarted Redis is empty.
    let (status, body) = post(server.addr, "/v1/features", ask.clone()).await;
    assert_eq!(
        (status, status_of(&body).as_deref()),
        (200, Some("NOT_FOUND")),
        "{body}"
    );
    materialize(&project, &*store).await;
    let (status, body) = post(server.addr, "/v1/features", ask.clone()).await;
    assert_eq!((status, status_of(&body).as_deref()), (200, Some("PRESENT")), "{body}");
    assert_eq!(request(server.addr, "GET", "/ready", b"").await.0, 200);

    // A restart while no request flows: the connection is stale, yet the first request is
    // answered, not failed with "broken pipe".
    redis.stop();
    redis.restart();
    // First a push: `trips` feeds an aggregated view, whose tile appends are tagged, so they
    // too are sent again on the new connection (and would count once had the first landed).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let trip = json!({"trip_id": 7_100_001, "driver_id": 1001, "customer_id": 5001, "event_timestamp": now,
        "last_trip_distance_km": 2.0, "fare": 31.0, "rating": null});
    let (status, body) = post(
        server.addr,
        "/v1/push",
        json!({"source": "trips", "rows": [trip], "id": "after-restart"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["views"]["driver_trip_stats"]["written"], json!(1), "{body}");
    let trips = json!({"features": ["driver_trip_stats:trips_1h"], "entities": [{"driver_id": 1001}]});
    let (status, body) = post(server.addr, "/v1/features", trips).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["features"]["trips_1h"]["value"], json!(1), "{body}");
    let (status, body) = post(server.addr, "/v1/features", ask).await;
    assert_eq!(
        (status, status_of(&body).as_deref()),
        (200, Some("NOT_FOUND")),
        "{body}"
    );
    stop(server).await;
}

/// An `apply` while requests flow: the server swaps to the new version, and not one request
/// fails across the swap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_on_apply_drops_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path());
    let store = online_store::open(&StoreConfig::Embedded(dir.path().join("s.redb")))
        .await
        .unwrap();
    materialize(&project, &*store).await;
    let live = Live::new(Serving::new(&project.dirs(), Arc::clone(&store)).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(run(listener, Arc::clone(&live), Limits::default(), async {
        let _ = stop_rx.await;
    }));
    let (_nudge, nudged) = tokio::sync::mpsc::channel(1);
    let watcher = tokio::spawn(skewless_server::watch_registry(
        Arc::clone(&live),
        project.dirs(),
        Arc::clone(&store),
        std::time::Duration::from_millis(50),
        nudged,
        |_| {},
    ));

    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let traffic = {
        let running = Arc::clone(&running);
        tokio::spawn(async move {
            let ask = json!({"features": ["customer_profile:current_balance"], "entities": [{"customer_id": 5001}], "at": AT});
            let (mut failed, mut versions) = (0, std::collections::BTreeSet::new());
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let (status, body) = post(addr, "/v1/features", ask.clone()).await;
                if status == 200 {
                    versions.insert(body["applied_version"].as_u64().unwrap_or(0));
                } else {
                    failed += 1;
                }
            }
            (failed, versions)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let customers = dir.path().join("feature_defs/customers.yaml");
    let text = std::fs::read_to_string(&customers).unwrap();
    let edited = text.replacen(
        "      current_balance:     float64\n",
        "      current_balance:     float64\n      balance_k:           { type: float64, expr: \"current_balance / 1000\" }\n",
        1,
    );
    assert_ne!(text, edited, "the edit must apply");
    std::fs::write(&customers, edited).unwrap();
    project.apply(false, None).unwrap();
    materialize(&project, &*store).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while live.current().applied_seq != 2 {
        assert!(std::time::Instant::now() < deadline, "version 2 was never picked up");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    let (failed, versions) = traffic.await.unwrap();
    assert_eq!(failed, 0, "requests failed across the reload");
    assert_eq!(versions.into_iter().collect::<Vec<_>>(), [1, 2]);
    let (status, body) = post(
        addr,
        "/v1/features",
        json!({"features": ["customer_profile:balance_k"], "entities": [{"customer_id": 5001}], "at": AT}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    watcher.abort();
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// A store that stalls: the lookup is answered 504 `TIMEOUT` at the limit, not left hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_times_out_with_504() {
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path());
    let redis = skewless_testkit::RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let store = online_store::open(&StoreConfig::Redis(redis.url())).await.unwrap();
    materialize(&project, &*store).await;
    let limits = Limits {
        request_timeout: std::time::Duration::from_millis(300),
        ..Limits::default()
    };
    let server = serve(dir, &project, Arc::clone(&store), limits).await;
    // Redis sleeps 2 s on another connection; the lookup waits behind it.
    let url = redis.url();
    let sleeper = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-cli")
            .args(["-u", &url, "DEBUG", "SLEEP", "2"])
            .output()
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let (status, body) = post(
        server.addr,
        "/v1/features",
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": 1001}], "at": AT}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (504, Some("TIMEOUT")),
        "{body}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    // `/ready` answers within the request timeout too: a hung store is not ready.
    let started = std::time::Instant::now();
    let (status, body) = request(server.addr, "GET", "/ready", b"").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("STORE_UNAVAILABLE"), "{body}");
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    sleeper.await.unwrap();
    stop(server).await;
}

/// A server that lends its embedded store: the `ServedStore` client found through the
/// handoff file writes (newer wins) and reads what the store itself holds; wrong tokens are
/// 401, and random or truncated call bodies are 400, never a panic or a write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lent_store_answers_through_the_handoff() {
    use skewless::online_store::served::{Handoff, ServedStore, encode_write, publish};
    use skewless::online_store::{EmbeddedStore, OnlineStore};
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path());
    let path = dir.path().join("s.redb");
    let store: Arc<dyn OnlineStore> = Arc::new(EmbeddedStore::open(&path).unwrap());
    materialize(&project, &*store).await;
    let token = "handoff-token-1234".to_string();
    let server = serve(
        dir,
        &project,
        Arc::clone(&store),
        Options {
            handoff: Some(skewless_server::StoreHandoff {
                store: Arc::clone(&store),
                token: ApiKeys::parse(&token).unwrap(),
            }),
            ..Options::default()
        },
    )
    .await;
    let handoff = Handoff {
        addr: server.addr.to_string(),
        token: token.clone(),
        pid: std::process::id(),
    };
    let _published = publish(&path, &handoff).unwrap();
    // The file is held by this process, so `open` goes through the server.
    assert!(matches!(
        EmbeddedStore::open(&path),
        Err(skewless::online_store::Error::EmbeddedBusy(_))
    ));
    let opened = online_store::open(&StoreConfig::Embedded(path.clone())).await.unwrap();
    assert!(
        opened.describe().contains("through the server"),
        "{}",
        opened.describe()
    );
    let client = ServedStore::find(&path).await.unwrap().unwrap();
    assert_eq!(client.identity(), store.identity());
    assert_eq!(client.instance_id().await.unwrap(), store.instance_id().await.unwrap());

    // Values: a later one replaces, an earlier one is skipped, as on the store itself.
    let layouts = project.applied().unwrap();
    let view = &layouts.feature_views["driver_hourly_stats"];
    let layout = skewless::online_store::ViewLayout::new(&layouts, view).unwrap();
    let key = layout.key(&[skewless::online_store::KeyValue::Int64(424_242)]).unwrap();
    let nulls = vec![skewless::online_store::Scalar::Null; view.features.len()];
    let newer = layout.value(START_MICROS + 2 * HOUR, None, &nulls).unwrap();
    let older = layout.value(START_MICROS + HOUR, None, &nulls).unwrap();
    let written = client.write(vec![(key.clone(), newer.clone())], None).await.unwrap();
    assert_eq!((written.written, written.skipped), (1, 0));
    let skipped = client.write(vec![(key.clone(), older)], None).await.unwrap();
    assert_eq!((skipped.written, skipped.skipped), (0, 1));
    let missing = b"sk:nope".to_vec();
    assert_eq!(
        client.read(&[key.clone(), missing.clone()]).await.unwrap(),
        vec![Some(newer.clone()), None]
    );
    assert_eq!(
        store.read(&[key.clone(), missing]).await.unwrap(),
        vec![Some(newer.clone()), None]
    );
    assert_eq!(client.purge_expired().await.unwrap(), 0);

    let call = |path: &'static str, auth: &'static str, body: Vec<u8>| {
        let addr = server.addr;
        async move { request_with(addr, "POST", path, auth, &body).await }
    };
    let good = "Authorization: Bearer handoff-token-1234\r\n";
    for auth in ["", "Authorization: Bearer handoff-token\r\n"] {
        assert_eq!(call("/internal/store/instance", auth, Vec::new()).await.0, 401);
    }
    assert_eq!(call("/internal/store/nope", good, Vec::new()).await.0, 404);
    let valid = encode_write(&[(key.clone(), vec![0xff; 40])], None);
    let mut fuzz = Fuzz::new(7);
    for i in 0..100 {
        let body = if i % 2 == 0 {
            valid[..fuzz.below(valid.len())].to_vec()
        } else {
            fuzz.bytes(64)
        };
        let path = if i % 3 == 0 {
            "/internal/store/read"
        } else {
            "/internal/store/write"
        };
        let (status, text) = call(path, good, body).await;
        assert!(matches!(status, 200 | 400), "{status}: {text}");
    }
    // The store still answers, and the key still holds a value (writes only ever supersede).
    let now = client.read(std::slice::from_ref(&key)).await.unwrap();
    assert!(now[0].is_some(), "{now:?}");
    stop(server).await;
}

/// Shutdown with a request in flight: the request (held up by a stalled Redis) still gets its
/// answer, new connections are refused, and `run` returns once it is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path());
    let redis = skewless_testkit::RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let store = online_store::open(&StoreConfig::Redis(redis.url())).await.unwrap();
    materialize(&project, &*store).await;
    let mut server = serve(dir, &project, Arc::clone(&store), Limits::default()).await;
    let url = redis.url();
    let sleeper = tokio::task::spawn_blocking(move || {
        std::process::Command::new("redis-cli")
            .args(["-u", &url, "DEBUG", "SLEEP", "1"])
            .output()
            .unwrap()
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let addr = server.addr;
    let in_flight = tokio::spawn(async move {
        post(
            addr,
            "/v1/features",
            json!({"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": 1001}], "at": AT}),
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    server.stop.take().unwrap().send(()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "a new connection was accepted after shutdown began"
    );
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["results"][0]["features"]["conv_rate"]["status"], "PRESENT",
        "{body}"
    );
    tokio::time::timeout(std::time::Duration::from_secs(10), server.task)
        .await
        .expect("the server did not stop")
        .unwrap()
        .unwrap();
    sleeper.await.unwrap();
}
