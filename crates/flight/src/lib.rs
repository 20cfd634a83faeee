//! Feast's remote offline store (`offline_store: type: remote` in `feature_store.yaml`),
//! answered by skewless's training-set path over Arrow Flight.
//!
//! A Feast user's training code calls `store.get_historical_features(entity_df, features)`;
//! with this server behind it, the training set is skewless's: the same point-in-time join,
//! contracts and values `skewless training-set` gives on the same spine, never a second
//! engine's idea of "as of". Its own crate because it links gRPC (tonic) and the whole offline
//! path, which the online server (`skewless-server`) must not.
//!
//! The protocol, as Feast 0.67's client speaks it (`feast/infra/offline_stores/remote.py`):
//! - Every call names itself in the descriptor's command, JSON `{"command_id", "api", ...}`.
//! - Reads are one `DoExchange`: the client uploads one table (the entity DataFrame, or a
//!   one-column `key` placeholder when it has none), then reads the answer on the same
//!   stream. `get_historical_features` is answered ([`historical`]); the other reads
//!   (`pull_latest_from_table_or_query`, `pull_all_from_table_or_query`, column listing) are
//!   refused with a reason.
//! - Checks and writes are `DoPut` with the same command. `validate_data_source`, which
//!   `feast apply` sends for every batch source, is answered: the source must be one skewless
//!   defines. Writes to the offline store are refused: rows enter through a push, which
//!   reaches both paths.
//! - Errors carry Feast's error detail, `Flight error: {"module", "class", "message"}`, so
//!   Feast's client raises its own exception class with skewless's message ([`Refusal`]).

mod command;
mod historical;
mod refusal;
mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use arrow_flight::flight_service_server::FlightServiceServer;
use skewless::Project;

pub use refusal::{FeastClass, Refusal};
pub use service::OfflineService;

/// What the server reports as it answers; the caller decides how to show it.
#[derive(Debug, Clone)]
pub enum FlightEvent {
    /// A call was answered.
    Answered {
        api: String,
        rows: usize,
        seconds: f64,
        /// Where the training set's definitions differ from the applied ones (what is served).
        warnings: Vec<String>,
    },
    /// A call was refused or failed; the client was told `message`.
    Refused { api: String, message: String },
}

/// Decides whether a call's `authorization` metadata (`Bearer <key>`) admits it.
pub type Authorize = Arc<dyn Fn(Option<&[u8]>) -> bool + Send + Sync>;

/// How much a client may send, and who may call.
#[derive(Clone)]
pub struct FlightOptions {
    /// The most bytes of Arrow data one call may upload (its entity DataFrame).
    pub max_upload_bytes: usize,
    /// `None`: every call is admitted (a private address). Feast's client sends
    /// `authorization: Bearer <token>` with `auth: {type: kubernetes, user_token: ...}`.
    pub authorize: Option<Authorize>,
}

impl Default for FlightOptions {
    fn default() -> Self {
        FlightOptions {
            max_upload_bytes: 1 << 30,
            authorize: None,
        }
    }
}

impl std::fmt::Debug for FlightOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightOptions")
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("authorize", &self.authorize.is_some())
            .finish()
    }
}

/// The server's failure to run (not a call's: those go to the client).
#[derive(Debug, thiserror::Error)]
#[error("the Arrow Flight offline server on {addr}: {source}")]
pub struct ServeError {
    addr: String,
    #[source]
    source: tonic::transport::Error,
}

/// Serves Feast's remote offline store on `listener` until `shutdown` resolves. Training sets
/// run on the calling runtime: give it one of its own, apart from the lookups'.
pub async fn serve(
    project: Project,
    listener: tokio::net::TcpListener,
    options: FlightOptions,
    events: Arc<dyn Fn(FlightEvent) + Send + Sync>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_string(), |a: SocketAddr| a.to_string());
    let service = FlightServiceServer::new(OfflineService::new(project, options.max_upload_bytes, events))
        .max_decoding_message_size(options.max_upload_bytes)
        .max_encoding_message_size(usize::MAX);
    let authorize = options.authorize;
    let service =
        tonic::service::interceptor::InterceptedService::new(
            service,
            move |call: tonic::Request<()>| match &authorize {
                Some(admits) if !admits(call.metadata().get("authorization").map(|v| v.as_bytes())) => {
                    Err(Refusal::unauthenticated().into())
                }
                _ => Ok(call),
            },
        );
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(listener), shutdown)
        .await
        .map_err(|source| ServeError { addr, source })
}
