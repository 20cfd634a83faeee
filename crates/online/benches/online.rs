//! `make bench-online`: the online path against a real Redis, beside `redis-benchmark` on
//! the same server.
//!
//! 1. Materialization writes: Arrow rows → layout bytes → newer-wins script, pipelined, as
//!    `skewless materialize` writes them. Compared with `redis-benchmark -P 16 SET` (plain
//!    pipelined writes with no compare). Target: ≥ 50 %.
//! 2. Lookups: one entity, two views (one MGET of two keys, decoded, statuses checked) by
//!    one client, one request at a time. Compared with `redis-benchmark -c 1 MGET k1 k2`.
//!    Target: mean latency ≤ 1.5× the raw MGET round trip.
//!
//! It starts its own `redis-server` on a free port and never touches another one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float32Array, Float64Array, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use skewless_defs::{AsOf, FeatureType, KeyType};
use skewless_online::{KeyValue, OnlineStore, RedisStore, Selection, Status, ViewLayout, lookup};

const ROWS: usize = 1_000_000;
const LOOKUPS: usize = 50_000;
const HOUR: i64 = 3_600_000_000;

fn view(name: &str, version: &str) -> ViewLayout {
    ViewLayout::from_parts(
        "bench",
        name,
        version,
        vec![("driver_id".into(), KeyType::Int64)],
        vec![
            ("conv_rate".into(), FeatureType::Float32),
            ("acc_rate".into(), FeatureType::Float32),
            ("avg_daily_trips".into(), FeatureType::Int64),
            ("trips_per_hour".into(), FeatureType::Float64),
        ],
        Some(48 * HOUR),
        AsOf::Event,
        true,
    )
    .unwrap()
}

/// Rows like `driver_hourly_stats` after the as-of step: one per key.
fn batch(rows: usize, t0: i64) -> RecordBatch {
    let ts = || -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| t0 + i as i64)).with_timezone("UTC"))
    };
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("driver_id", DataType::Int64, false),
            Field::new("event_timestamp", utc.clone(), false),
            Field::new("created", utc, true),
            Field::new("conv_rate", DataType::Float32, true),
            Field::new("acc_rate", DataType::Float32, true),
            Field::new("avg_daily_trips", DataType::Int64, true),
            Field::new("trips_per_hour", DataType::Float64, true),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(0..rows as i64)),
            ts(),
            ts(),
            Arc::new(Float32Array::from_iter_values(
                (0..rows).map(|i| (i % 1000) as f32 / 1000.0),
            )),
            Arc::new(Float32Array::from_iter_values(
                (0..rows).map(|i| (i % 997) as f32 / 997.0),
            )),
            Arc::new(Int64Array::from_iter_values((0..rows).map(|i| (i % 50) as i64))),
            Arc::new(Float64Array::from_iter_values(
                (0..rows).map(|i| (i % 50) as f64 / 24.0),
            )),
        ],
    )
    .unwrap()
}

/// Runs redis-benchmark with `--csv`; returns (requests/s, mean latency ms).
fn redis_benchmark(port: u16, args: &[&str]) -> (f64, f64) {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--csv"])
        .args(args)
        .output()
        .expect("redis-benchmark not found (it comes with redis-tools / redis-server)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default().replace('"', "");
    let cells: Vec<&str> = line.split(',').collect();
    let number = |i: usize| cells.get(i).and_then(|c| c.parse::<f64>().ok()).unwrap_or(f64::NAN);
    (number(1), number(2))
}

fn main() {
    let server = skewless_testkit::RedisServer::start();
    let port = server.port();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "online bench: redis-server on 127.0.0.1:{port}, {ROWS} rows, 3 × {LOOKUPS} lookups; medians of 3 alternating rounds"
    );

    // This machine's speed drifts (shared cores): baseline and library alternate, three
    // rounds each, and the medians are compared.
    let stats = view("driver_hourly_stats", "00000000000000aa");
    let rows = batch(ROWS, 1_000 * HOUR);
    // A plain connection: no response timeout while a million keys are freed.
    let flush = |url: String| {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        redis::cmd("FLUSHALL").arg("SYNC").exec(&mut c).unwrap();
    };
    let (mut set_rps, mut set_px_rps, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    runtime.block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        for _ in 0..3 {
            set_rps.push(
                redis_benchmark(
                    port,
                    &["-t", "set", "-P", "16", "-n", "1000000", "-d", "70", "-r", "1000000"],
                )
                .0,
            );
            flush(server.url());
            let (rps, _) = redis_benchmark(
                port,
                &[
                    "-P",
                    "16",
                    "-n",
                    "1000000",
                    "-r",
                    "1000000",
                    "SET",
                    "key:__rand_int__",
                    "0123456789012345678901234567890123456789012345678901234567890123456789",
                    "PX",
                    "176400000",
                ],
            );
            set_px_rps.push(rps);
            flush(server.url());
            // 1. Materialization writes, chunked like `materialize`, with the view's expiry.
            let started = Instant::now();
            let mut written = 0;
            let mut offset = 0;
            while offset < ROWS {
                let len = 8192.min(ROWS - offset);
                let entries = stats.encode_batch(&rows.slice(offset, len)).unwrap();
                written += store
                    .write(entries, Some(std::time::Duration::from_secs(49 * 3600)))
                    .await
                    .unwrap()
                    .written;
                offset += len;
            }
            assert_eq!(written as usize, ROWS);
            ours.push(ROWS as f64 / started.elapsed().as_secs_f64());
            flush(server.url());
        }
    });
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (set_rps, set_px_rps, rps) = (median(&mut set_rps), median(&mut set_px_rps), median(&mut ours));
    println!(
        "materialize writes (newer-wins script, with expiry): {rps:>8.0} rows/s | redis-benchmark SET -P 16: {set_rps:>8.0}/s | ratio {:.2} (target ≥ 0.50) {}",
        rps / set_rps,
        if rps / set_rps >= 0.5 { "MET" } else { "NOT MET" }
    );
    println!(
        "  for reference, redis-benchmark SET … PX -P 16 (plain writes with an expiry): {set_px_rps:>8.0}/s, ratio {:.2}",
        rps / set_px_rps
    );
    runtime.block_on(async {
        let store = RedisStore::connect(&server.url()).await.unwrap();
        let started = Instant::now();
        let mut offset = 0;
        while offset < ROWS {
            let len = 8192.min(ROWS - offset);
            store.write(stats.encode_batch(&rows.slice(offset, len)).unwrap(), None).await.unwrap();
            offset += len;
        }
        eprintln!("(setup: {ROWS} rows written again in {:.2}s)", started.elapsed().as_secs_f64());
        // Re-writing the same rows: all skipped (the compare costs the same as a write).
        let started = Instant::now();
        let entries = stats.encode_batch(&rows.slice(0, 100_000)).unwrap();
        let skipped = store.write(entries, None).await.unwrap().skipped;
        println!(
            "idempotent re-write: {:>10.0} rows/s (100000 rows, {skipped} skipped as not newer)",
            100_000.0 / started.elapsed().as_secs_f64()
        );

        // 2. Lookups: one entity, two views.
        let trips = view("driver_trips", "00000000000000bb");
        let trip_rows = batch(ROWS, 1_000 * HOUR);
        let mut offset = 0;
        while offset < ROWS {
            let len = 8192.min(ROWS - offset);
            store.write(trips.encode_batch(&trip_rows.slice(offset, len)).unwrap(), None).await.unwrap();
            offset += len;
        }
        let selections = [
            Selection {
                layout: Arc::new(stats),
                features: vec![0, 1, 2, 3],
            },
            Selection {
                layout: Arc::new(trips),
                features: vec![0, 3],
            },
        ];
        let now = 1_001 * HOUR;
        // Rounds alternate with the baseline on two existing keys of the same layout.
        // (Layout keys hold NUL bytes, which a command line cannot: ASCII keys of the same
        // length with values of the same size stand in.)
        let (k1, k2) = ("sk:bench:{i_42_____}:driver_hourly_stats", "sk:bench:{i_42_____}:driver_trips_______");
        {
            let mut c = redis::Client::open(server.url()).unwrap().get_connection().unwrap();
            let value = vec![b'x'; 62];
            redis::cmd("MSET").arg(k1).arg(&value).arg(k2).arg(&value).exec(&mut c).unwrap();
        }
        let (mut baseline, mut means, mut latencies) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..3 {
            baseline.push(redis_benchmark(port, &["-c", "1", "-n", "50000", "MGET", k1, k2]).1);
            let mut round_latencies = Vec::with_capacity(LOOKUPS);
            for i in 0..LOOKUPS {
                let id = ((i + round * LOOKUPS) * 7919 % ROWS) as i64;
                let entity: HashMap<String, KeyValue> = [("driver_id".to_string(), KeyValue::Int64(id))].into();
                let started = Instant::now();
                let found = lookup(&store, &selections, std::slice::from_ref(&entity), now).await.unwrap();
                round_latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                assert!(found.rows[0].iter().all(|v| v.status == Status::Present));
            }
            means.push(round_latencies.iter().sum::<f64>() / LOOKUPS as f64);
            latencies.extend(round_latencies);
        }
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        let (mean, mget_ms) = (median(&mut means), median(&mut baseline));
        println!(
            "lookup 1 entity × 2 views: mean {mean:.3} ms, p50 {:.3}, p99 {:.3} ({:.0}/s, one client) | redis-benchmark MGET 2 keys -c 1: mean {mget_ms:.3} ms | ratio {:.2} (target ≤ 1.50) {}",
            pct(0.5),
            pct(0.99),
            1000.0 / mean,
            mean / mget_ms,
            if mean / mget_ms <= 1.5 { "MET" } else { "NOT MET" }
        );
    });
}
