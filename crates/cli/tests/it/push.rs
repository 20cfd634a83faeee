//! `skewless push` and a server killed with SIGKILL in the middle of pushes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::commands::{Serve, demo_project};

const DRIVERS: usize = 50;

/// Push `i`: one trip of driver `1001 + i % DRIVERS` at `at`, with id `k{i}`.
fn trip(i: usize, at: &str) -> String {
    format!(
        r#"{{"source": "trips", "id": "k{i}", "rows": [{{"trip_id": {}, "driver_id": {}, "customer_id": 5001,
            "event_timestamp": "{at}", "fare": {i}.5}}]}}"#,
        900_000 + i,
        1001 + i % DRIVERS
    )
}

/// One push over a fresh connection; `None` when the server is gone.
fn push(port: u16, body: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "POST /v1/push HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split(' ').nth(1).and_then(|s| s.parse().ok())
}

/// Pushes run back to back until the server is killed with SIGKILL. Afterwards every
/// acknowledged push is in the log exactly once, every segment is whole (its footer and every
/// row read back); after a restart every logged push is served (the count of each driver's
/// trips in the last day is the count of its pushes in the log, whether or not the kill
/// came between a push's append and its online write), and a replayed acknowledged id
/// appends nothing and counts nothing twice.
#[test]
fn a_killed_server_loses_no_acknowledged_push_and_leaves_no_torn_segment() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    let minute_ago = skewless::online::format_instant(skewless::online::parse_instant("now").unwrap() - 60_000_000);
    let mut server = Serve::start(&p, &[]);
    let port = server.port;
    let acked = Arc::new(AtomicUsize::new(0));
    let pusher = {
        let acked = Arc::clone(&acked);
        let at = minute_ago.clone();
        std::thread::spawn(move || {
            let mut ids = Vec::new();
            for i in 0.. {
                match push(port, &trip(i, &at)) {
                    Some(200) => {
                        ids.push(i);
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    Some(status) => panic!("push {i} answered {status}"),
                    None => break,
                }
            }
            ids
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while acked.load(Ordering::SeqCst) < 100 {
        assert!(std::time::Instant::now() < deadline, "pushes are not acknowledged");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    server.child.kill().unwrap(); // SIGKILL, mid-push
    server.child.wait().unwrap();
    let ids = pusher.join().unwrap();
    assert!(ids.len() >= 100);

    let by_segment = skewless::push_log::ids_by_segment(p.path(), "trips").unwrap();
    let mut logged: Vec<String> = by_segment.values().flatten().cloned().collect();
    logged.sort();
    let before = logged.len();
    logged.dedup();
    assert_eq!(before, logged.len(), "an id was logged twice");
    for i in &ids {
        assert!(
            logged.contains(&format!("k{i}")),
            "acknowledged push k{i} is not in the log"
        );
    }
    // At most the one push in flight was logged without its answer.
    assert!(
        logged.len() <= ids.len() + 1,
        "{} logged, {} acknowledged",
        logged.len(),
        ids.len()
    );
    // Every row of every segment reads back, and is evaluated by every feature reading it.
    p.run(&["validate", "--data"]).ok();

    // Restarted on the same store: every logged push is served, and an acknowledged id is a
    // replay that counts nothing twice.
    let server = Serve::start(&p, &[]);
    let said = server.said_first.join("");
    assert!(
        said.contains("brought `driver_trip_stats` up to its push log"),
        "{said}"
    );
    let trips_per_driver = |server: &Serve| -> Vec<serde_json::Value> {
        let drivers: Vec<usize> = (0..DRIVERS).map(|d| 1001 + d).collect();
        let lookup =
            serde_json::json!({"features": ["driver_trip_stats:trips_1d"], "entities": {"driver_id": drivers}});
        let (status, body) = server.post("/get-online-features", &lookup.to_string());
        assert_eq!(status, 200, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        body["results"][1]["values"].as_array().unwrap().clone()
    };
    let expected: Vec<serde_json::Value> = (0..DRIVERS)
        .map(|d| {
            let pushes = logged
                .iter()
                .filter(|id| id[1..].parse::<usize>().unwrap() % DRIVERS == d)
                .count();
            serde_json::json!(pushes)
        })
        .collect();
    assert_eq!(trips_per_driver(&server), expected);
    let (status, body) = server.post("/v1/push", &trip(ids[0], &minute_ago));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""appended":false"#), "{body}");
    assert_eq!(trips_per_driver(&server), expected, "a replay counted twice");
    server.stop();
}

/// `skewless push` reads JSON lines and CSV typed as the source, refuses a bad row naming it
/// (writing nothing), and `skewless compact` merges the segments; `get` serves the pushes.
#[test]
fn push_files_then_compact() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    let now = |offset: &str| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", offset, "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let ts = now("-1 minute");
    std::fs::write(
        p.path().join("a.jsonl"),
        format!(
            "{{\"trip_id\": 1, \"driver_id\": 1001, \"customer_id\": 5001, \"event_timestamp\": \"{ts}\", \"fare\": 21.5}}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        p.path().join("b.csv"),
        format!("trip_id,driver_id,customer_id,event_timestamp,fare\n2,1002,5001,{ts},22.5\n"),
    )
    .unwrap();
    std::fs::write(
        p.path().join("bad.csv"),
        format!("trip_id,driver_id,customer_id,event_timestamp,fare\n3,1003,5001,{ts},23.5\n4,x,5001,{ts},1\n"),
    )
    .unwrap();
    let first = p.run(&["push", "--source", "trips", "a.jsonl", "--id", "a"]).ok();
    assert!(first.stdout().contains("pushed 1 rows"), "{}", first.stdout());
    p.run(&["push", "--source", "trips", "b.csv"]).ok();
    let bad = p.run(&["push", "--source", "trips", "bad.csv"]);
    assert_eq!(bad.code(), 1);
    assert!(bad.stderr().contains("bad.csv"), "{}", bad.stderr());
    let replay = p.run(&["push", "--source", "trips", "a.jsonl", "--id", "a"]).ok();
    assert!(replay.stdout().contains("nothing written"), "{}", replay.stdout());
    let log = p.path().join(".skewless/push/trips");
    let segments = || {
        std::fs::read_dir(&log)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".parquet"))
            .count()
    };
    // Both pushes are in the journal; `validate --data` reads the log, folding it into a segment.
    assert_eq!(segments(), 0);
    p.run(&["validate", "--data"]).ok();
    assert_eq!(segments(), 1);
    p.run(&["push", "--source", "trips", "b.csv", "--id", "b2"]).ok();
    let compacted = p.run(&["compact", "--source", "trips"]).ok();
    assert!(
        compacted
            .stdout()
            .contains("pushes folded from the journal into a segment: 1"),
        "{}",
        compacted.stdout()
    );
    assert!(
        compacted.stdout().contains("merged 2 segments (3 rows)"),
        "{}",
        compacted.stdout()
    );
    assert_eq!(segments(), 1);
    let got = p
        .run(&[
            "get",
            "--features",
            "driver_last_trip:last_trip_fare",
            "--entity",
            "driver_id=1001",
            "--entity",
            "driver_id=1002",
            "--entity",
            "driver_id=1003",
            "--json",
        ])
        .ok()
        .json();
    let fare = |i: usize| got["results"][i]["features"]["driver_last_trip:last_trip_fare"]["value"].clone();
    assert_eq!(
        (fare(0), fare(1)),
        (serde_json::json!(21.5), serde_json::json!(22.5)),
        "{got}"
    );
    assert!(fare(2).is_null(), "{got}");
}

/// A push that reached the log but not the store (a crash between the append and the online
/// write; `--offline-only` leaves exactly that state) is served once the server restarts: it
/// brings each view fed by a push source up to its log before it listens. With nothing pushed
/// since the last materialization, start-up reads no source at all.
#[test]
fn a_restarted_server_serves_what_its_push_log_holds_beyond_the_store() {
    let p = demo_project();
    p.run(&["apply"]).ok();
    p.run(&["materialize", "--end", "2026-11-15"]).ok();
    // The demo's log changed after that `--end`: the first start brings the views up to now,
    // and the next one has nothing to do.
    Serve::start(&p, &[]).stop();
    let server = Serve::start(&p, &[]);
    assert!(server.said_first.is_empty(), "{:?}", server.said_first);
    server.stop();

    let minute_ago = skewless::online::format_instant(skewless::online::parse_instant("now").unwrap() - 60_000_000);
    std::fs::write(
        p.path().join("late.jsonl"),
        format!(
            "{{\"trip_id\": 7, \"driver_id\": 1001, \"customer_id\": 5001, \"event_timestamp\": \"{minute_ago}\", \"fare\": 21.5}}\n"
        ),
    )
    .unwrap();
    p.run(&["push", "--source", "trips", "late.jsonl", "--offline-only"])
        .ok();
    let lookup = r#"{"features": ["driver_last_trip:last_trip_fare", "driver_trip_stats:trips_1d"], "entities": {"driver_id": [1001]}}"#;
    let served = |server: &Serve| {
        let (status, body) = server.post("/get-online-features", lookup);
        assert_eq!(status, 200, "{body}");
        let body: serde_json::Value = serde_json::from_str(&body).unwrap();
        let value = |i: usize| body["results"][i + 1]["values"][0].clone();
        (value(0), value(1))
    };

    let server = Serve::start(&p, &[]);
    let said = server.said_first.join("");
    for view in ["driver_last_trip", "driver_trip_stats"] {
        assert!(said.contains(&format!("brought `{view}` up to its push log")), "{said}");
    }
    assert!(
        !said.contains("driver_hourly_stats"),
        "a view without pushes was recovered: {said}"
    );
    assert_eq!(served(&server), (serde_json::json!(21.5), serde_json::json!(1)));
    server.stop();

    // The recovery was a materialization: its watermark covers the log now.
    let server = Serve::start(&p, &[]);
    assert!(server.said_first.is_empty(), "{:?}", server.said_first);
    assert_eq!(served(&server), (serde_json::json!(21.5), serde_json::json!(1)));
    server.stop();
}
