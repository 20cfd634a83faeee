//! Hostile and buggy input through the real server: each test here is a probe that once got
//! a wrong answer, lost data or reached a route it should not have (issue 23), kept so it
//! cannot come back. It grows with every fix.

use super::*;

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn trip(driver: i64, event_timestamp: Value, fare: f64) -> Value {
    json!({
        "trip_id": 7_100_000 + driver, "driver_id": driver, "customer_id": 5001,
        "event_timestamp": event_timestamp, "last_trip_distance_km": 2.0, "fare": fare, "rating": null,
    })
}

async fn fare_now(addr: std::net::SocketAddr, driver: i64) -> (Value, String) {
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

fn code(body: &Value) -> Option<&str> {
    body["error"]["code"].as_str()
}

/// A body over the limit is the documented JSON error, on lookups and pushes alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_a_json_413() {
    let server = start(Limits {
        max_body_bytes: 2048,
        max_push_body_bytes: 4096,
        ..Limits::default()
    })
    .await;
    for (path, size, limit) in [
        ("/v1/features", 4096, 2048),
        ("/v1/push", 8192, 4096),
        ("/push", 8192, 4096),
    ] {
        let body = format!("{{\"pad\": \"{}\"}}", "x".repeat(size));
        let (status, text) = request(server.addr, "POST", path, body.as_bytes()).await;
        let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        assert_eq!((status, code(&json)), (413, Some("BODY_TOO_LARGE")), "{path}: {json}");
        let message = json["error"]["message"].as_str().unwrap();
        assert!(message.contains(&limit.to_string()), "{path}: {message}");
    }
    // A push body is parsed as it arrives: one that declares no length is cut off at the
    // limit all the same, however well-formed its start.
    for path in ["/v1/push", "/push"] {
        let mut chunked = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let mut sent = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        );
        let start = "{\"source\": \"trips\", \"rows\": [";
        sent.push_str(&format!("{:x}\r\n{start}\r\n", start.len()));
        let row = trip(1001, json!(1_700_000_000), 1.0).to_string() + ",";
        for _ in 0..(5000 / row.len() + 1) {
            sent.push_str(&format!("{:x}\r\n{row}\r\n", row.len()));
        }
        chunked.write_all(sent.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut chunked, std::time::Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("\"BODY_TOO_LARGE\""), "{path}: {answer}");
    }
    stop(server).await;
}

/// A page on any web site can POST `text/plain` or a form to localhost without a preflight:
/// data routes refuse every type but JSON (and Arrow for pushes), and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_content_types_are_refused_and_write_nothing() {
    let server = start(Limits::default()).await;
    let addr = server.addr;
    let push = json!({"source": "trips", "rows": [trip(1201, json!(now_micros() / 1_000_000), 31.0)]}).to_string();
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let header = format!("Content-Type: {content_type}\r\n");
        for path in ["/v1/push", "/v1/features", "/get-online-features", "/push"] {
            let (status, text) = request_with(addr, "POST", path, &header, push.as_bytes()).await;
            let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(
                (status, code(&json)),
                (415, Some("UNSUPPORTED_MEDIA_TYPE")),
                "{path} {content_type}"
            );
        }
    }
    // No content type at all is refused too (curl -d sends a form type; say what to send).
    let (status, text) = request_with(addr, "POST", "/v1/push", "Content-Type:\r\n", push.as_bytes()).await;
    assert_eq!(status, 415, "{text}");
    assert!(text.contains("application/json"), "{text}");
    assert_eq!(fare_now(addr, 1201).await.1, "NOT_FOUND");
    assert!(
        skewless::push_log::segments(&server.project.root, "trips")
            .unwrap()
            .is_empty()
    );
    // The same push as JSON is taken.
    let (status, body) = post(addr, "/v1/push", serde_json::from_str(&push).unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fare_now(addr, 1201).await, (json!(31.0), "PRESENT".into()));
    stop(server).await;
}

/// DNS rebinding: a page on `evil.example` resolved to 127.0.0.1 is same-origin to the
/// browser but says `Host: evil.example`. Without API keys only addresses, `localhost` and
/// allowed names are served; the probes stay open; with API keys the key guards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_a_rebinding_page_would_use_are_refused_without_api_keys() {
    let lookup =
        json!({"features": ["driver_hourly_stats:conv_rate"], "entities": [{"driver_id": 1001}], "at": AT}).to_string();
    let with_host = |host: &str| format!("Host: {host}\r\n");
    let send = |addr, host: &str, path: &str, extra: &str| {
        let head = format!("{}{extra}", with_host(host));
        let body = lookup.clone();
        let path = path.to_string();
        async move { raw_request(addr, "POST", &path, &head, body.as_bytes()).await }
    };
    let server = start(Limits::default()).await;
    let addr = server.addr;
    for host in ["evil.example", "evil.example:6566", "localhost.evil.example"] {
        let (status, text) = send(addr, host, "/v1/features", "").await;
        assert_eq!(status, 403, "{host}: {text}");
        assert!(text.contains("HOST_NOT_ALLOWED"), "{text}");
    }
    for host in ["127.0.0.1:1", "localhost", "[::1]:6566"] {
        assert_eq!(send(addr, host, "/v1/features", "").await.0, 200, "{host}");
    }
    let (status, _) = raw_request(addr, "GET", "/health", &with_host("evil.example"), b"").await;
    assert_eq!(status, 200);
    stop(server).await;

    let server = start(Options {
        allowed_hosts: skewless_server::AllowedHosts::parse("fs.internal").unwrap(),
        ..Options::default()
    })
    .await;
    assert_eq!(send(server.addr, "fs.internal:6566", "/v1/features", "").await.0, 200);
    assert_eq!(send(server.addr, "evil.example", "/v1/features", "").await.0, 403);
    stop(server).await;

    let server = start(Options {
        api_keys: Some(ApiKeys::parse("k-secret-one").unwrap()),
        ..Options::default()
    })
    .await;
    let auth = "Authorization: Bearer k-secret-one\r\n";
    assert_eq!(send(server.addr, "fs.example", "/v1/features", auth).await.0, 200);
    assert_eq!(send(server.addr, "fs.example", "/v1/features", "").await.0, 401);
    stop(server).await;
}

/// A request written exactly as given: `head` holds every header line but the length.
async fn raw_request(addr: std::net::SocketAddr, method: &str, path: &str, head: &str, body: &[u8]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let text = format!(
        "{method} {path} HTTP/1.1\r\n{head}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(text.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

/// Event times a unit mistake makes (a millisecond epoch read as seconds: year ~58,900;
/// `1e20`) or far ahead of the clock are refused naming the row and field, on JSON and
/// Feast pushes; nothing is logged, and the key keeps serving what training sets see.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impossible_event_times_are_refused_and_cannot_block_a_key() {
    let server = start(Limits::default()).await;
    let addr = server.addr;
    let now_s = now_micros() / 1_000_000;
    let (status, body) = post(
        addr,
        "/v1/push",
        json!({"source": "trips", "rows": [trip(1301, json!(now_s - 5), 20.0)]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fare_now(addr, 1301).await, (json!(20.0), "PRESENT".into()));
    let poison = [
        json!(1_796_300_000_000i64),
        json!(1e20),
        json!(now_s + 3600),
        json!("2200-01-01T00:00:00Z"),
        json!("1899-12-31T23:59:59Z"),
    ];
    for (i, ts) in poison.iter().enumerate() {
        let rows = json!([trip(1302, json!(now_s), 1.0), trip(1301, ts.clone(), 99.0)]);
        let (status, body) = post(addr, "/v1/push", json!({"source": "trips", "rows": rows})).await;
        assert_eq!((status, code(&body)), (400, Some("BAD_ROW")), "{ts}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("row 1, field `event_timestamp`"), "{ts}: {message}");
        let (status, body) = post(
            addr,
            "/push",
            json!({"push_source_name": "trips", "df": {
                "trip_id": [9_300_000 + i], "driver_id": [1301], "customer_id": [5001],
                "event_timestamp": [ts], "fare": [99.0], "last_trip_distance_km": [1.0], "rating": [4]}}),
        )
        .await;
        assert_eq!((status, code(&body)), (400, Some("BAD_ROW")), "{ts}: {body}");
    }
    // Nothing of the refused pushes is served (1302 was in a refused push too)...
    assert_eq!(fare_now(addr, 1301).await, (json!(20.0), "PRESENT".into()));
    assert_eq!(fare_now(addr, 1302).await.1, "NOT_FOUND");
    // ...and the key still takes newer rows.
    let (status, body) = post(
        addr,
        "/v1/push",
        json!({"source": "trips", "rows": [trip(1301, json!(now_s), 21.0)]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(fare_now(addr, 1301).await, (json!(21.0), "PRESENT".into()));
    // A lookup clock out of range is refused too.
    let (status, body) = post(
        addr,
        "/v1/features",
        json!({"features": ["driver_last_trip:last_trip_fare"], "entities": [{"driver_id": 1301}], "at": "2200-01-02"}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, Some("BAD_REQUEST")), "{body}");
    stop(server).await;
}

/// An empty id would turn every later push with an empty id into a silently dropped
/// "replay"; an id of any length would be kept forever. Both are 400 and write nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_oversized_and_control_push_ids_are_refused() {
    let server = start(Limits::default()).await;
    let addr = server.addr;
    let now_s = now_micros() / 1_000_000;
    for id in [String::new(), "x".repeat(257), "a\u{0}b".to_string()] {
        let (status, body) = post(
            addr,
            "/v1/push",
            json!({"source": "trips", "rows": [trip(1401, json!(now_s), 5.0)], "id": id}),
        )
        .await;
        assert_eq!((status, code(&body)), (400, Some("BAD_PUSH_ID")), "{body}");
    }
    assert_eq!(fare_now(addr, 1401).await.1, "NOT_FOUND");
    let (status, body) = post(
        addr,
        "/v1/push",
        json!({"source": "trips", "rows": [trip(1401, json!(now_s), 5.0)], "id": "x".repeat(256)}),
    )
    .await;
    assert_eq!((status, &body["appended"]), (200, &json!(true)), "{body}");
    stop(server).await;
}

/// Two views with a feature of one name, asked for together with short names: both APIs
/// refuse (one value would hide the other), naming both views; full names answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn features_of_one_name_from_two_views_are_refused_with_short_names() {
    let server = start_with_files(&[(
        "feature_defs/clash.yaml",
        "on_demand_views:\n  other:\n    features:\n      score: { type: float64, expr: \"driver_hourly_stats.conv_rate * 2\" }\n",
    )])
    .await;
    let features = json!(["ride_score:score", "other:score"]);
    let (status, body) = post(
        server.addr,
        "/v1/features",
        json!({"features": features, "entities": [{"driver_id": 1001, "distance_km": 2.0}], "at": AT}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, Some("FEATURE_NAME_CLASH")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`score` comes from both `ride_score` and `other`"),
        "{message}"
    );
    let (status, body) = post(
        server.addr,
        "/get-online-features",
        json!({"features": features, "entities": {"driver_id": [1001], "distance_km": [2.0]}}),
    )
    .await;
    assert_eq!((status, code(&body)), (400, Some("FEATURE_NAME_CLASH")), "{body}");
    let (status, body) = post(
        server.addr,
        "/v1/features",
        json!({"features": features, "entities": [{"driver_id": 1001, "distance_km": 2.0}], "at": AT, "full_names": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let values = &body["results"][0]["features"];
    assert!(
        values["ride_score__score"].is_object() && values["other__score"].is_object(),
        "{body}"
    );
    let (status, body) = post(
        server.addr,
        "/get-online-features",
        json!({"features": features, "entities": {"driver_id": [1001], "distance_km": [2.0]}, "full_feature_names": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    stop(server).await;
}

/// Limits with short connection timeouts, for the slow-client probes.
fn impatient() -> Limits {
    Limits {
        header_timeout: std::time::Duration::from_millis(300),
        body_timeout: std::time::Duration::from_millis(300),
        ..Limits::default()
    }
}

/// Reads until the server closes the connection (or `within` passes: a failure).
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut got))
        .await
        .unwrap_or_else(|_| panic!("the server kept the connection open past {within:?}"))
        .ok();
    String::from_utf8_lossy(&got).into_owned()
}

/// Partial headers, a silent socket and an idle kept-alive connection are closed by the
/// header timeout; a partial body and a chunked body that never ends are answered 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_timed_out() {
    let server = start(impatient()).await;
    let addr = server.addr;
    let within = std::time::Duration::from_secs(5);

    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    read_until_closed(&mut silent, within).await;

    let mut partial_head = tokio::net::TcpStream::connect(addr).await.unwrap();
    partial_head
        .write_all(b"POST /v1/features HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Ty")
        .await
        .unwrap();
    read_until_closed(&mut partial_head, within).await;

    let head = "POST /v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n";
    let mut partial_body = tokio::net::TcpStream::connect(addr).await.unwrap();
    partial_body
        .write_all(format!("{head}Content-Length: 100\r\n\r\n{{\"source\"").as_bytes())
        .await
        .unwrap();
    let answer = read_until_closed(&mut partial_body, within).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"BODY_TIMEOUT\""), "{answer}");

    let mut endless = tokio::net::TcpStream::connect(addr).await.unwrap();
    endless
        .write_all(format!("{head}Transfer-Encoding: chunked\r\n\r\n5\r\n{{\"sou\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_until_closed(&mut endless, within).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A kept-alive connection that answered once and then idles is closed too.
    let mut idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle, within).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // The server still answers.
    assert_eq!(request(addr, "GET", "/health", b"").await.0, 200);
    stop(server).await;
}

/// At the connection cap, a new client waits until a connection closes, then is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_for_one_to_close() {
    let server = start(Limits {
        max_connections: 2,
        ..Limits::default()
    })
    .await;
    let addr = server.addr;
    let first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Let the server accept both.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let third = tokio::spawn(async move { request(addr, "GET", "/health", b"").await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "a connection over the cap was served");
    drop(first);
    let (status, _) = tokio::time::timeout(std::time::Duration::from_secs(5), third)
        .await
        .expect("the waiting client was never served after a connection closed")
        .unwrap();
    assert_eq!(status, 200);
    stop(server).await;
}

/// Shutdown ends within its grace even when a client holds a request open forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_by_its_grace_whatever_clients_do() {
    let server = start(Limits {
        body_timeout: std::time::Duration::from_secs(600),
        header_timeout: std::time::Duration::from_secs(600),
        shutdown_grace: std::time::Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(b"POST /v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let _silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    stop(server).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
}

/// Settings that would make the server answer nothing are refused when it starts.
#[test]
fn limits_that_make_no_sense_are_refused_at_start() {
    for (limits, name) in [
        (
            Limits {
                max_connections: 0,
                ..Limits::default()
            },
            "max connections",
        ),
        (
            Limits {
                body_timeout: std::time::Duration::ZERO,
                ..Limits::default()
            },
            "body timeout",
        ),
        (
            Limits {
                max_entities: 0,
                ..Limits::default()
            },
            "max entities",
        ),
    ] {
        let err = skewless_server::Server::new(limits).unwrap_err().to_string();
        assert!(err.contains(name), "{err}");
    }
}

/// An unknown feature name of 900 KB is not echoed back whole: client messages are capped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_names_are_not_echoed_back() {
    let server = start(Limits {
        max_body_bytes: 2 << 20,
        ..Limits::default()
    })
    .await;
    let name = format!("driver_hourly_stats:{}", "x".repeat(900_000));
    let (status, text) = request(
        server.addr,
        "POST",
        "/v1/features",
        json!({"features": [name], "entities": [{"driver_id": 1001}]})
            .to_string()
            .as_bytes(),
    )
    .await;
    assert_eq!(status, 404, "{}", &text[..200.min(text.len())]);
    assert!(text.len() < 2048, "{} bytes answered", text.len());
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], "UNKNOWN_FEATURE");
    assert!(body["error"]["request_id"].is_string(), "{body}");
    stop(server).await;
}

/// Pushes in flight are bounded by bytes: while one push holds most of the budget (its body
/// still arriving), another is answered 503 `OVERLOADED` with `Retry-After`, and gets in once
/// the first is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_over_the_memory_budget_are_told_to_retry() {
    let server = start(Limits {
        max_push_body_bytes: 64 * 1024,
        max_push_bytes_in_flight: 64 * 1024,
        body_timeout: std::time::Duration::from_millis(500),
        ..Limits::default()
    })
    .await;
    let addr = server.addr;
    let mut holder = tokio::net::TcpStream::connect(addr).await.unwrap();
    holder
        .write_all(
            b"POST /v1/push HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n{\"source\"",
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let now_s = now_micros() / 1_000_000;
    let push = json!({"source": "trips", "rows": [trip(1501, json!(now_s), 3.0)]}).to_string();
    let (status, text) = raw_request(addr, "POST", "/v1/push", "Host: 127.0.0.1\r\n", push.as_bytes()).await;
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.contains("OVERLOADED") && text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    assert_eq!(status, 503);
    // The holder times out (408); the budget is free again.
    let answer = read_until_closed(&mut holder, std::time::Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let (status, text) = raw_request(addr, "POST", "/v1/push", "Host: 127.0.0.1\r\n", push.as_bytes()).await;
    assert_eq!(status, 200, "{text}");
    stop(server).await;
}

/// A corrupt registry record is reported once, not at every look; the old version keeps
/// serving, and a good apply after it is picked up and reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_registry_record_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let project = demo_project(dir.path());
    let store = online_store::open(&StoreConfig::Embedded(dir.path().join("s.redb")))
        .await
        .unwrap();
    let live = Live::new(Serving::new(&project.dirs(), Arc::clone(&store)).unwrap());
    std::fs::write(
        project.root.join(".skewless/registry/applied/000002.json"),
        b"{ not json",
    )
    .unwrap();
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (_nudge, nudged) = tokio::sync::mpsc::channel(1);
    let seen = Arc::clone(&reports);
    let watcher = tokio::spawn(skewless_server::watch_registry(
        Arc::clone(&live),
        project.dirs(),
        Arc::clone(&store),
        std::time::Duration::from_millis(10),
        nudged,
        move |change| seen.lock().unwrap().push(change.map_err(|_| ())),
    ));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(*reports.lock().unwrap(), [Err(())], "reported at every look");
    assert_eq!(live.current().applied_seq, 1);
    watcher.abort();
}
