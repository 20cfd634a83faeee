//! Push bodies parsed as they arrive, so a push never holds its whole body.
//!
//! A lookup body is small and read whole. A push body can be tens of megabytes, and read
//! whole it sat in memory beside the rows parsed from it (docs/push.md). Here the body's
//! chunks go, as they arrive, through a short channel to a parser on a blocking thread, and
//! each chunk is freed once parsed: a push holds its parsed rows plus a few chunks. The
//! channel gives back-pressure: a client that sends faster than the parser reads waits.
//!
//! The body rules are those of every other route: at most `limit` bytes (413), within the
//! body timeout (408), and a body that breaks off is a 400, whatever the parser made of the
//! bytes it saw.

use std::io::{self, Read};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use crate::Reject;
use crate::failure::Failure;

/// A body that declares at most this length is read whole and parsed where it is awaited:
/// the hop to a blocking thread cost one-row pushes 12–16 % of their rate (bench-push, 2026-12-05).
const WHOLE_UP_TO: u64 = 1 << 20;

/// Chunks read ahead of the parser.
const CHUNKS_AHEAD: usize = 4;

/// The parser's read buffer: serde_json reads byte by byte, fast only through a `BufReader`.
const READ_BUFFER: usize = 64 << 10;

/// A body parsed while it is read: `whole` says whether the body was read to its end (when it
/// was not, the connection cannot carry another request).
pub(crate) struct Parsed<T> {
    pub(crate) result: Result<T, Reject>,
    pub(crate) whole: bool,
}

/// Reads `body` (at most `limit` bytes, within `timeout`) and hands its bytes to `parse` on a
/// blocking thread as they arrive. A body that cannot be read is answered as such, whatever
/// `parse` said; otherwise `parse` decides.
pub(crate) async fn parse<T, P>(
    body: Body,
    declared: Option<u64>,
    limit: usize,
    timeout: Duration,
    parse: P,
) -> Parsed<T>
where
    T: Send + 'static,
    P: FnOnce(BodyReader) -> Result<T, Reject> + Send + 'static,
{
    if declared.is_some_and(|n| n <= WHOLE_UP_TO) {
        return match tokio::time::timeout(timeout, body.collect()).await {
            Err(_) => Parsed {
                result: Err(Failure::BodyTimeout(timeout).reject()),
                whole: false,
            },
            Ok(Err(_)) => Parsed {
                result: Err(broken()),
                whole: false,
            },
            Ok(Ok(collected)) => Parsed {
                result: parse(io::BufReader::with_capacity(
                    READ_BUFFER,
                    Received {
                        received: None,
                        current: collected.to_bytes(),
                    },
                )),
                whole: true,
            },
        };
    }
    let (chunks, received) = mpsc::channel(CHUNKS_AHEAD);
    let parser = tokio::task::spawn_blocking(move || {
        parse(io::BufReader::with_capacity(
            READ_BUFFER,
            Received {
                received: Some(received),
                current: Bytes::new(),
            },
        ))
    });
    let read = pump(body, limit, timeout, &chunks).await;
    if read.is_err() {
        // The parser must not take a body cut short for a whole one.
        let _ = chunks.try_send(Err(()));
    }
    drop(chunks);
    let parsed = match parser.await {
        Ok(result) => result,
        Err(e) => Err(Failure::Internal {
            detail: format!("the body parser ended abnormally: {e}"),
        }
        .reject()),
    };
    match read {
        Err(reject) => Parsed {
            result: Err(reject),
            whole: false,
        },
        Ok(whole) => Parsed { result: parsed, whole },
    }
}

/// Sends the body's chunks to the parser until the body ends (`Ok(true)`) or the parser stops
/// taking them (`Ok(false)`: it has its answer).
async fn pump(
    mut body: Body,
    limit: usize,
    timeout: Duration,
    chunks: &mpsc::Sender<Result<Bytes, ()>>,
) -> Result<bool, Reject> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut total = 0usize;
    loop {
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_) => return Err(Failure::BodyTimeout(timeout).reject()),
            Ok(None) => return Ok(true),
            Ok(Some(Err(_))) => return Err(broken()),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(Failure::BodyTooLarge { limit }.reject());
        }
        if chunks.send(Ok(data)).await.is_err() {
            return Ok(false);
        }
    }
}

/// The body as the parser reads it.
pub(crate) type BodyReader = io::BufReader<Received>;

fn broken() -> Reject {
    crate::bad_request(crate::failure::Malformed::BrokenBody)
}

/// The parser's side of the channel (`None`: the body is all in `current`), as a reader.
pub(crate) struct Received {
    received: Option<mpsc::Receiver<Result<Bytes, ()>>>,
    current: Bytes,
}

impl Read for Received {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            let Some(received) = &mut self.received else {
                return Ok(0);
            };
            match received.blocking_recv() {
                None => return Ok(0),
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(())) => return Err(io::Error::other("the body broke off")),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    fn body_of(chunks: Vec<&'static [u8]>) -> Body {
        let stream = futures::stream::iter(chunks.into_iter().map(|c| Ok::<_, io::Error>(Bytes::from_static(c))));
        Body::from_stream(stream)
    }

    fn read_all(mut reader: BodyReader) -> Result<Vec<u8>, Reject> {
        let mut all = Vec::new();
        reader
            .read_to_end(&mut all)
            .map_err(|_| crate::bad_request(crate::failure::Malformed::BrokenBody))?;
        Ok(all)
    }

    #[tokio::test]
    async fn the_parser_sees_every_chunk_in_order() {
        let body = body_of(vec![b"{\"a\":", b"", b"[1,2", b",3]}"]);
        let parsed = parse(body, None, 100, Duration::from_secs(5), read_all).await;
        assert!(parsed.whole);
        assert_eq!(parsed.result.ok().as_deref(), Some(&b"{\"a\":[1,2,3]}"[..]));
    }

    #[tokio::test]
    async fn a_short_body_of_declared_length_is_parsed_whole() {
        let parsed = parse(Body::from("{\"a\": 1}"), Some(8), 100, Duration::from_secs(5), read_all).await;
        assert!(parsed.whole);
        assert_eq!(parsed.result.ok().as_deref(), Some(&b"{\"a\": 1}"[..]));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_whatever_the_parser_saw() {
        let body = body_of(vec![b"0123456789", b"0123456789"]);
        let parsed = parse(body, None, 15, Duration::from_secs(5), read_all).await;
        assert!(!parsed.whole);
        let reject = parsed.result.err().map(|r| r.status);
        assert_eq!(reject, Some(413));
    }

    #[tokio::test]
    async fn a_parser_that_stops_early_ends_the_read() {
        let body = body_of(vec![b"x"; 1000]);
        let parsed = parse(body, None, 1 << 20, Duration::from_secs(5), |mut reader: BodyReader| {
            let mut first = [0u8; 1];
            reader
                .read_exact(&mut first)
                .map_err(|_| crate::bad_request(crate::failure::Malformed::BrokenBody))?;
            Err::<(), _>(crate::bad_request(crate::failure::Malformed::BrokenBody))
        })
        .await;
        assert!(!parsed.whole);
        assert_eq!(parsed.result.err().map(|r| r.status), Some(400));
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        let stream =
            futures::stream::iter([Ok::<_, io::Error>(Bytes::from_static(b"{"))]).chain(futures::stream::pending());
        let parsed = parse(
            Body::from_stream(stream),
            None,
            100,
            Duration::from_millis(50),
            read_all,
        )
        .await;
        assert!(!parsed.whole);
        assert_eq!(parsed.result.err().map(|r| r.status), Some(408));
    }
}
