//! `skewless-loadgen`: a closed-loop HTTP/1.1 load generator for `make bench-server`.
//!
//! `--concurrency` connections, each kept alive and sending the next request only when the
//! previous answer has been read in full (closed loop: the measured latency is what a caller
//! waits, and throughput is what the server sustains at that concurrency). Every answer's
//! status is checked; anything but 200 counts as an error. Latencies of the whole run (after a
//! warm-up) are kept and sorted, so percentiles are exact. It prints one JSON object.
//!
//! It runs on `--threads` runtime threads (default 1), so that on a small machine it leaves
//! the other cores to the server and Redis.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

#[derive(Debug, Parser)]
struct Args {
    /// `host:port` of the server.
    #[arg(long)]
    addr: String,
    /// The path to POST to.
    #[arg(long, default_value = "/v1/features")]
    path: String,
    /// A file holding the request body (JSON).
    #[arg(long)]
    body: std::path::PathBuf,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// An extra header, `Name: value`.
    #[arg(long)]
    header: Option<String>,
}

/// What one connection saw while measuring.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

async fn connection(args: std::sync::Arc<Args>, body: Bytes, start: Instant, end: Instant) -> anyhow::Result<Tally> {
    let stream = tokio::net::TcpStream::connect(&args.addr)
        .await
        .with_context(|| format!("connecting to {}", args.addr))?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let header = args.header.as_deref().and_then(|h| h.split_once(':'));
    let mut tally = Tally::default();
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let mut request = hyper::Request::post(&args.path)
            .header(hyper::header::HOST, &args.addr)
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some((name, value)) = header {
            request = request.header(name.trim(), value.trim());
        }
        let request = request.body(Full::new(body.clone()))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        if sent < start {
            continue;
        }
        tally
            .latencies_us
            .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if status != hyper::StatusCode::OK {
            tally.errors += 1;
            tally
                .first_error
                .get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&answer)));
        }
    }
    Ok(tally)
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn main() -> anyhow::Result<()> {
    let args = std::sync::Arc::new(Args::parse());
    let body = Bytes::from(std::fs::read(&args.body).with_context(|| format!("reading {}", args.body.display()))?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()?;
    let tallies = runtime.block_on(async {
        let start = Instant::now() + Duration::from_secs_f64(args.warmup);
        let end = start + Duration::from_secs_f64(args.seconds);
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|_| tokio::spawn(connection(args.clone(), body.clone(), start, end)))
            .collect();
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await??);
        }
        anyhow::Ok(tallies)
    })?;
    let mut latencies: Vec<u32> = tallies.iter().flat_map(|t| t.latencies_us.iter().copied()).collect();
    latencies.sort_unstable();
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let first_error = tallies.iter().find_map(|t| t.first_error.clone());
    let report = serde_json::json!({
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "requests": latencies.len(),
        "errors": errors,
        "first_error": first_error,
        "rps": latencies.len() as f64 / args.seconds,
        "p50_ms": percentile(&latencies, 0.50),
        "p99_ms": percentile(&latencies, 0.99),
        "p999_ms": percentile(&latencies, 0.999),
        "max_ms": percentile(&latencies, 1.0),
    });
    println!("{report}");
    Ok(())
}
