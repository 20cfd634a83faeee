//! `skewless-loadgen`: a closed-loop HTTP/1.1 load generator for `make bench-server`.
//!
//! `--concurrency` connections, each kept alive and sending the next request only when the
//! previous answer has been read in full (closed loop: the measured latency is what a caller
//! waits, and throughput is what the server sustains at that concurrency). Every answer's
//! status is checked; anything but 200 counts as an error. Latencies of the whole run (after a
//! warm-up) are kept and sorted, so percentiles are exact. It prints one JSON object.
//!
//! It runs on one thread by default (`--threads`), and each connection writes its request as
//! bytes built once and parses the answer in place (httparse): on a 2-core machine the client
//! shares the cores with the server and Redis, so every microsecond it spends is taken from
//! the server it measures. `redis-benchmark`, the baseline beside it, is as lean. (A hyper
//! client, with a task per connection and a hand-off between tasks per request, cost the
//! server about 10 % of its throughput here: benches/README.md.)

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use tokio::net::TcpStream;

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

async fn connection(
    args: std::sync::Arc<Args>,
    request: std::sync::Arc<[u8]>,
    start: Instant,
    end: Instant,
) -> anyhow::Result<Tally> {
    let stream = TcpStream::connect(&args.addr)
        .await
        .with_context(|| format!("connecting to {}", args.addr))?;
    stream.set_nodelay(true)?;
    let mut tally = Tally::default();
    let mut buffer = vec![0; 1 << 16];
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        write_all(&stream, &request).await?;
        let (status, body) = read_response(&stream, &mut buffer).await?;
        if sent < start {
            continue;
        }
        tally
            .latencies_us
            .push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if status != 200 {
            tally.errors += 1;
            tally
                .first_error
                .get_or_insert_with(|| format!("{status}: {}", String::from_utf8_lossy(&buffer[body])));
        }
    }
    Ok(tally)
}

/// The request, whole: a POST of `body` to `args.path`, kept alive.
fn request_bytes(args: &Args, body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        args.path,
        args.addr,
        body.len()
    );
    if let Some((name, value)) = args.header.as_deref().and_then(|h| h.split_once(':')) {
        head.push_str(&format!("{}: {}\r\n", name.trim(), value.trim()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one answer into `buffer` (kept at its length between answers, so no read zeroes
/// it): its status, and where its body is in `buffer`. The server answers with a
/// `Content-Length` (a chunked answer is refused, not misread).
async fn read_response(stream: &TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<(u16, std::ops::Range<usize>)> {
    let mut filled = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) =
            response.parse(&buffer[..filled]).context("a malformed HTTP answer")?
        {
            let status = response.code.context("an HTTP answer without a status")?;
            let length = response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                .context("an HTTP answer without a Content-Length")?;
            while filled < head + length {
                filled += read_some(stream, buffer, filled).await?;
            }
            if filled > head + length {
                bail!("the server sent more than its answer");
            }
            return Ok((status, head..head + length));
        }
        filled += read_some(stream, buffer, filled).await?;
    }
}

/// Reads what has arrived into `buffer` after `filled` (growing it when full): how much.
async fn read_some(stream: &TcpStream, buffer: &mut Vec<u8>, filled: usize) -> anyhow::Result<usize> {
    if filled == buffer.len() {
        buffer.resize((2 * buffer.len()).max(1 << 16), 0);
    }
    loop {
        stream.readable().await?;
        match stream.try_read(&mut buffer[filled..]) {
            Ok(0) => bail!("the server closed the connection"),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
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
    let body = std::fs::read(&args.body).with_context(|| format!("reading {}", args.body.display()))?;
    let request: std::sync::Arc<[u8]> = request_bytes(&args, &body).into();
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let tallies = runtime.block_on(async {
        let start = Instant::now() + Duration::from_secs_f64(args.warmup);
        let end = start + Duration::from_secs_f64(args.seconds);
        let tasks: Vec<_> = (0..args.concurrency)
            .map(|_| tokio::spawn(connection(args.clone(), request.clone(), start, end)))
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
