//! The connection loop: accepts on a listener and serves each connection over HTTP/1.1 under
//! the limits that keep slow or hostile clients from holding the server.
//!
//! - **Header and idle timeout.** A request's head must arrive within `header_timeout` of
//!   the connection being ready for it, which is also how long a kept-alive connection may
//!   sit idle between requests (hyper's header read timer runs while it waits for a head).
//! - **Body timeout.** A body must arrive whole within `body_timeout` (read by
//!   [`crate::read_body`] in the middleware, not here), so a stalled upload or a chunked
//!   push that never ends is answered 408 and its connection closed.
//! - **Connection cap.** At most `max_connections` connections are open at once, across all
//!   shards of a server; at the cap the loop stops accepting (new clients wait in the
//!   kernel's backlog) until one closes. Stalled connections end by the timeouts above, so
//!   the cap cannot be held for long.
//! - **Bounded shutdown.** When `shutdown` resolves the listener closes, every connection is
//!   told to finish its request in flight and close, and after `shutdown_grace` the ones
//!   still open are dropped: a client that never reads cannot keep the process alive.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// What the loop enforces (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    pub header_timeout: Duration,
    pub shutdown_grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves; `permits` caps the connections
/// open at once (shared by the shards of one server).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ConnectionLimits,
    permits: Arc<Semaphore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (close, closing) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let tcp = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                // Out of descriptors, or a connection reset before it was accepted: wait a
                // moment (the next accept may succeed once others close) rather than spin.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        // Answers go out at once, not held back to be coalesced (Nagle).
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(router.clone());
        let mut closing = closing.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            let connection = http.serve_connection(TokioIo::new(tcp), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = async { closing.wait_for(|closing| *closing).await.map(|_| ()) } => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        // Reap the connections that ended, so the set holds only open ones.
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = close.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
    Ok(())
}
