//! `skewless-server`: the HTTP front end over the facade's serving core.
//!
//! Routes hold no feature logic: each request is decoded, handed to
//! [`skewless_serving::core::Serving`] (compiled once, before the server starts), and encoded.
//!
//! | route | answers |
//! |---|---|
//! | `POST /v1/features` | skewless's own API: entities as rows, per entity values with statuses and event times |
//! | `POST /get-online-features` | Feast's feature server API: column-major entities and results |
//! | `POST /v1/push` | rows for a push source, as JSON rows or an Arrow IPC stream: logged durably, then written online ([`push`]) |
//! | `POST /push` | Feast's push API: `push_source_name`, column-major `df`, `to` |
//! | `POST /materialize`, `POST /materialize-incremental` | Feast's materialization routes, run by the binary's [`Materializer`] into the store served from ([`materialize`]) |
//! | `POST /write-to-online-store` | Feast's write to one view: `feature_view_name`, column-major `df`; taken as a push to the view's source ([`skewless_serving::view_write`]) |
//! | `GET /health` | alive |
//! | `GET /ready` | definitions compiled and the store answering |
//! | `GET /metrics` | Prometheus text: requests and latency by route and status, errors by code, values by view and status, store round trips, freshness per view |
//! | `POST /internal/store/{call}` | with a [`StoreHandoff`] only: the embedded store's calls for other commands ([`skewless_online::served`]) |
//! | anything else | 404 `NOT_FOUND` (405 `METHOD_NOT_ALLOWED` for a route's wrong method), the JSON error naming the method and path |
//!
//! Errors are JSON, `{"error": {"code": …, "message": …, "request_id": …}}`, with the status
//! and code [`failure`]'s one table gives; bodies are parsed here (never by an extractor that
//! answers in its own words), so a malformed one is a 400 `BAD_REQUEST` naming the problem,
//! and one over the size limit a 413 `BODY_TOO_LARGE`. Nothing a client sends can panic
//! the server. [`run`] serves on a listener until a shutdown future resolves, finishing the
//! requests in flight; tests bind `127.0.0.1:0`. [`sharded::start`] is `skewless serve`: a
//! shard per thread on one port, reloads, the embedded store lent to other commands.

mod accept;
mod auth;
mod failure;
pub mod materialize;
mod memory;
mod metrics;
pub mod monitor;
mod origin;
mod push;
pub mod sharded;
mod streamed;
mod wire;

pub use auth::{ApiKeys, KeysError};
pub use materialize::{MaterializeError, MaterializeRequest, Materializer};
pub use origin::{AllowedHosts, HostsError};
pub use sharded::{Reloader, Running, ServeConfig, ServeError, ServeEvent, start};

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use skewless_defs::FeatureSelection;
use skewless_serving::core::{GetOutput, RequestError, Serving};

use crate::failure::{Failure, Malformed, Missing};

/// Limits on what one request may ask.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_entities: usize,
    pub max_features: usize,
    /// A lookup that takes longer is answered 504 `TIMEOUT`.
    pub request_timeout: std::time::Duration,
    /// Push bodies may be this large (rows come in batches; lookups stay small).
    pub max_push_body_bytes: usize,
    pub max_push_rows: usize,
    /// A request's head must arrive within this of the connection being ready for it; also
    /// how long a kept-alive connection may sit idle ([`accept`]).
    pub header_timeout: std::time::Duration,
    /// A request's body must arrive whole within this (answered 408 otherwise).
    pub body_timeout: std::time::Duration,
    /// Connections open at once, across the server's shards; at the cap new ones wait.
    pub max_connections: usize,
    /// Push bodies being read or processed at once, in bytes, across shards: a push that
    /// would go over is answered 503 `OVERLOADED` with `Retry-After` (a push takes about
    /// ten times its body in memory while it is typed and written).
    pub max_push_bytes_in_flight: usize,
    /// After shutdown begins, requests in flight have this long to finish before their
    /// connections are dropped.
    pub shutdown_grace: std::time::Duration,
}

impl Limits {
    /// Checks every limit, so a server never starts with one that makes no sense (a zero
    /// timeout or cap answers nothing); the error names the setting.
    pub fn validate(&self) -> Result<(), LimitError> {
        let positive = [
            ("max body", self.max_body_bytes),
            ("max entities", self.max_entities),
            ("max features", self.max_features),
            ("max push body", self.max_push_body_bytes),
            ("max push rows", self.max_push_rows),
            ("max connections", self.max_connections),
        ];
        if let Some(&(setting, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(LimitError::Zero { setting });
        }
        let durations = [
            ("request timeout", self.request_timeout),
            ("header timeout", self.header_timeout),
            ("body timeout", self.body_timeout),
        ];
        if let Some(&(setting, _)) = durations.iter().find(|(_, d)| d.is_zero()) {
            return Err(LimitError::NoTime { setting });
        }
        if self.max_push_bytes_in_flight < self.max_push_body_bytes {
            return Err(LimitError::InFlightBelowBody {
                in_flight: self.max_push_bytes_in_flight,
                body: self.max_push_body_bytes,
            });
        }
        if self.max_push_bytes_in_flight / 1024 > u32::MAX as usize {
            return Err(LimitError::InFlightTooLarge);
        }
        Ok(())
    }

    /// The largest body `route` takes.
    fn body_limit(&self, route: &str) -> usize {
        match route {
            "/v1/push" | "/push" | "/write-to-online-store" => self.max_push_body_bytes,
            "/internal/store" => MAX_STORE_CALL_BODY,
            _ => self.max_body_bytes,
        }
    }
}

/// A limit that makes no sense, named by its setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{setting} must be at least 1")]
    Zero { setting: &'static str },
    #[error("{setting} must be longer than zero")]
    NoTime { setting: &'static str },
    #[error(
        "max push bytes in flight ({in_flight}) must be at least the max push body ({body}), or the largest push could never run"
    )]
    InFlightBelowBody { in_flight: usize, body: usize },
    #[error("max push bytes in flight must be under 4 TiB")]
    InFlightTooLarge,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 1 << 20,
            max_entities: 1000,
            max_features: 500,
            request_timeout: std::time::Duration::from_secs(5),
            max_push_body_bytes: 64 << 20,
            max_push_rows: 1_000_000,
            header_timeout: std::time::Duration::from_secs(30),
            body_timeout: std::time::Duration::from_secs(60),
            max_connections: 4096,
            max_push_bytes_in_flight: 128 << 20,
            shutdown_grace: std::time::Duration::from_secs(10),
        }
    }
}

/// How the server runs: its limits, the API keys it demands (none: open), and the store it
/// lends to other commands (none: it lends nothing).
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub limits: Limits,
    pub api_keys: Option<ApiKeys>,
    /// Host names served without API keys, besides addresses and `localhost` ([`origin`]).
    pub allowed_hosts: AllowedHosts,
    /// Answer aggregated views at a past `at` (refused otherwise, `PAST_CLOCK`): for an
    /// operator who knows nothing was written after the clocks asked (benchmarks, a replay).
    pub allow_past_clock: bool,
    pub handoff: Option<StoreHandoff>,
    /// Log served feature vectors, sampled by key, for `skewless consistency`.
    pub served_log: Option<skewless_serving::served_log::ServedLogOptions>,
    /// Runs Feast's `/materialize` routes (none: they answer 404).
    pub materializer: Option<Arc<dyn Materializer>>,
    /// Drift of served values against the services' references (none: not measured).
    pub monitor: Option<Arc<monitor::Monitor>>,
}

impl From<Limits> for Options {
    fn from(limits: Limits) -> Self {
        Options {
            limits,
            ..Options::default()
        }
    }
}

/// The embedded store this server holds, lent to other commands (`skewless materialize`,
/// `get`) on `/internal/store/*` to holders of `token`, which the handoff file names.
#[derive(Debug, Clone)]
pub struct StoreHandoff {
    pub store: Arc<dyn skewless_online::OnlineStore>,
    pub token: ApiKeys,
}

/// Bodies of store calls may be this large (the client sends at most 8 MiB).
const MAX_STORE_CALL_BODY: usize = 2 * skewless_online::served::MAX_WRITE_BODY;

/// A lookup under the request timeout: `entities` (JSON: rows, or Feast's columns) typed
/// by the selection's plan as they are read, then looked up.
async fn lookup(
    app: &App,
    serving: &Serving,
    selection: &FeatureSelection,
    entities: &serde_json::value::RawValue,
    columns: bool,
    at: i64,
) -> Result<GetOutput, Response> {
    let plan = serving.plan(selection).map_err(request_error)?;
    let mut typed = skewless_serving::Entities::new(plan.fields(), 0);
    match wire::read_entities(entities, columns, &mut typed, app.limits.max_entities) {
        Ok(()) => {}
        Err(wire::EntitiesRefused::Serving(e)) => return Err(request_error(e)),
        Err(wire::EntitiesRefused::Malformed(m)) => return Err(bad_request(m).into_response()),
        Err(wire::EntitiesRefused::TooMany { asked }) => {
            return Err(Failure::TooManyEntities {
                asked,
                limit: app.limits.max_entities,
            }
            .reject()
            .into_response());
        }
    }
    match tokio::time::timeout(app.limits.request_timeout, serving.get_entities(&plan, &typed, at)).await {
        Ok(Ok(found)) => {
            record(app, &found);
            if let Some(log) = &app.served_log {
                log.record(&found);
            }
            if let Some(monitor) = &app.monitor {
                monitor.record(&found, (now() / 1_000_000).max(0) as u64);
            }
            Ok(found)
        }
        Ok(Err(e)) => Err(request_error(e)),
        Err(_) => Err(Failure::Timeout(app.limits.request_timeout).reject().into_response()),
    }
}

/// The serving core in force, swapped atomically when a new version is applied. A request
/// takes the current core once, at its start, so requests in flight finish on the version
/// they began with.
#[derive(Debug)]
pub struct Live {
    current: std::sync::RwLock<Arc<Serving>>,
}

impl Live {
    pub fn new(serving: Serving) -> Arc<Self> {
        Arc::new(Live {
            current: std::sync::RwLock::new(Arc::new(serving)),
        })
    }

    /// The core in force.
    pub fn current(&self) -> Arc<Serving> {
        // A poisoned lock still holds a valid core: a panic cannot happen while swapping.
        Arc::clone(&self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Puts `serving` in force.
    pub fn swap(&self, serving: Serving) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(serving);
    }
}

/// Keeps `live` on the latest applied version: checks the registry every `every`, and at
/// once on each `nudge` (SIGHUP in `skewless serve`). A version that fails to compile is
/// reported with `on_change` (once per distinct failure) and the old one stays in force.
pub async fn watch_registry(
    live: Arc<Live>,
    project: skewless_serving::ProjectDirs,
    store: Arc<dyn skewless_online::OnlineStore>,
    every: std::time::Duration,
    mut nudge: tokio::sync::mpsc::Receiver<()>,
    on_change: impl Fn(Result<u64, &skewless_serving::Error>) + Send,
) {
    // A version that fails to compile is reported once, not at every look.
    let mut reported: Option<String> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {},
            got = nudge.recv() => if got.is_none() { std::future::pending::<()>().await },
        }
        let latest = project.registry().seqs().ok().and_then(|s| s.last().copied());
        if latest.is_some_and(|seq| seq != live.current().applied_seq) {
            match Serving::new(&project, Arc::clone(&store)) {
                Ok(serving) => {
                    let seq = serving.applied_seq;
                    live.swap(serving);
                    reported = None;
                    on_change(Ok(seq));
                }
                Err(e) => {
                    let message = e.to_string();
                    if reported.as_ref() != Some(&message) {
                        on_change(Err(&e));
                        reported = Some(message);
                    }
                }
            }
        }
    }
}

#[derive(Debug)]
struct App {
    live: Arc<Live>,
    /// The push memory budget, in KiB ([`Limits::max_push_bytes_in_flight`]).
    push_budget: Arc<tokio::sync::Semaphore>,
    limits: Limits,
    api_keys: Option<ApiKeys>,
    allowed_hosts: AllowedHosts,
    allow_past_clock: bool,
    handoff: Option<StoreHandoff>,
    metrics: Arc<metrics::Metrics>,
    served_log: Option<Arc<skewless_serving::served_log::ServedLog>>,
    materializer: Option<Arc<dyn Materializer>>,
    monitor: Option<Arc<monitor::Monitor>>,
}

/// Every request passes here, in order: the host check (servers without API keys,
/// [`origin`]), the API key, the content type of a POST, and its body read whole under the
/// body timeout and size limit; then the route. Every answer is counted by route and status,
/// with its latency and error code.
async fn track(State(app): State<Arc<App>>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route: &'static str = match request.uri().path() {
        "/v1/features" => "/v1/features",
        "/get-online-features" => "/get-online-features",
        "/v1/push" => "/v1/push",
        "/push" => "/push",
        "/write-to-online-store" => "/write-to-online-store",
        "/materialize" => "/materialize",
        "/materialize-incremental" => "/materialize-incremental",
        "/health" => "/health",
        "/ready" => "/ready",
        "/metrics" => "/metrics",
        "/v1/monitor" => "/v1/monitor",
        path if path.starts_with(skewless_online::served::ROUTE_PREFIX) => "/internal/store",
        _ => "other",
    };
    let started = Instant::now();
    // Store calls need the handoff's token; data routes the API keys; probes nothing.
    let keys = match route {
        "/health" | "/ready" => None,
        "/internal/store" => app.handoff.as_ref().map(|h| &h.token),
        _ => app.api_keys.as_ref(),
    };
    let data_route = !matches!(route, "/health" | "/ready" | "/internal/store");
    if data_route && app.api_keys.is_none() && !app.allowed_hosts.admits(origin::host(request.headers())) {
        let response = Failure::HostNotAllowed.reject().into_response();
        return finish(&app, route, started, response);
    }
    let admitted = keys.is_none_or(|keys| {
        keys.admits(
            request
                .headers()
                .get(axum::http::header::AUTHORIZATION)
                .map(|v| v.as_bytes()),
        )
    });
    if !admitted {
        let mut response = Failure::Unauthorized.reject().into_response();
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return finish(&app, route, started, response);
    }
    if request.method() == axum::http::Method::POST && !origin::content_type_ok(route, request.headers()) {
        let expected = origin::expected_types(route).unwrap_or("application/json");
        let response = Failure::UnsupportedMediaType { expected }.reject().into_response();
        return finish(&app, route, started, response);
    }
    // A push holds its share of the push memory budget from before its body is read until
    // it is answered; a body of unknown length is counted at the route's limit.
    let push_share = if matches!(route, "/v1/push" | "/push" | "/write-to-online-store") {
        let bytes = declared_length(request.headers()).map_or(app.limits.max_push_body_bytes as u64, |n| {
            n.min(app.limits.max_push_body_bytes as u64)
        });
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        match Arc::clone(&app.push_budget).try_acquire_many_owned(kib) {
            Ok(permit) => Some(memory::PushShare::new(
                permit,
                &app.push_budget,
                app.limits.max_push_bytes_in_flight / 1024,
                bytes,
            )),
            Err(_) => {
                let mut response = Failure::Overloaded.reject().into_response();
                response.headers_mut().insert(
                    axum::http::header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
                // The body was not read: the connection cannot carry another request.
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
                return finish(&app, route, started, response);
            }
        }
    } else {
        None
    };
    // The body is read here, whole, under the body timeout and the route's size limit: a
    // client that stalls mid-body is answered 408, not waited for. A push body is read by its
    // route as it is parsed ([`streamed`]), under the same rules.
    let request = if request.method() == axum::http::Method::POST && push_share.is_some() {
        if declared_length(request.headers()).is_some_and(|n| n > app.limits.body_limit(route) as u64) {
            let mut response = body_too_large(app.limits.body_limit(route)).into_response();
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            return finish(&app, route, started, response);
        }
        request
    } else if request.method() == axum::http::Method::POST {
        match read_body(request, app.limits.body_limit(route), app.limits.body_timeout).await {
            Ok(request) => request,
            Err(reject) => {
                let mut response = reject.into_response();
                // The rest of the body was not read: the connection cannot carry another request.
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
                return finish(&app, route, started, response);
            }
        }
    } else {
        request
    };
    let response = next.run(request).await;
    // axum's body limit answers 413 in plain text; every error is the documented JSON shape.
    let response =
        if response.status() == StatusCode::PAYLOAD_TOO_LARGE && response.extensions().get::<ErrorInfo>().is_none() {
            body_too_large(app.limits.body_limit(route)).into_response()
        } else {
            response
        };
    finish(&app, route, started, response)
}

fn body_too_large(limit: usize) -> Reject {
    Failure::BodyTooLarge { limit }.reject()
}

/// The body length a request declares (`Content-Length`).
fn declared_length(headers: &axum::http::HeaderMap) -> Option<u64> {
    headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// `request` with its body read whole (at most `limit` bytes, within `timeout`).
async fn read_body(
    request: axum::extract::Request,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<axum::extract::Request, Reject> {
    if declared_length(request.headers()).is_some_and(|n| n > limit as u64) {
        return Err(body_too_large(limit));
    }
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))),
        Ok(Err(e)) => {
            let over = e
                .into_inner()
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            Err(if over {
                body_too_large(limit)
            } else {
                bad_request(Malformed::BrokenBody)
            })
        }
        Err(_) => Err(Failure::BodyTimeout(timeout).reject()),
    }
}

/// A new request id: unique within the process and unlikely across processes.
fn request_id() -> String {
    use std::hash::BuildHasher;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let hash = std::collections::hash_map::RandomState::new().hash_one((std::process::id(), count));
    format!("{hash:016x}")
}

/// Writes an error answer's body, with a request id that the log line of its details (if
/// any) carries too; counts every answer in the metrics.
fn finish(app: &App, route: &'static str, started: Instant, mut response: Response) -> Response {
    let status = response.status().as_u16();
    let code = match response.extensions_mut().remove::<ErrorInfo>() {
        Some(info) => {
            let id = request_id();
            if let Some(detail) = &info.detail {
                eprintln!("skewless serve: request {id}: {status} {}: {detail}", info.code);
            }
            let body = json!({ "error": { "code": info.code, "message": info.message, "request_id": id } });
            let mut rendered = (response.status(), axum::Json(body)).into_response();
            for (name, value) in response.headers() {
                if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
                    rendered.headers_mut().insert(name.clone(), value.clone());
                }
            }
            if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
                rendered.headers_mut().insert("x-request-id", value);
            }
            response = rendered;
            Some(info.code)
        }
        None => None,
    };
    app.metrics
        .request(route, status, started.elapsed().as_secs_f64(), code);
    response
}

/// Records what a lookup served: values by view and status, and the store's round trip.
fn record(app: &App, found: &GetOutput) {
    app.metrics.store_round_trip(found.store_seconds);
    // Counted per request first, so the shared metrics are locked once, with few updates.
    let mut counts: Vec<(&str, &'static str, u64)> = Vec::new();
    for (i, f) in found.features.iter().enumerate() {
        for row in &found.rows {
            let status = row[i].status.name();
            match counts.iter_mut().find(|(v, s, _)| *v == f.view && *s == status) {
                Some(count) => count.2 += 1,
                None => counts.push((&f.view, status, 1)),
            }
        }
    }
    app.metrics.values(counts.into_iter());
}

/// Serves the core in `live` on `listener` until `shutdown` resolves; requests in flight
/// finish first (within the shutdown grace).
pub async fn run(
    listener: tokio::net::TcpListener,
    live: Arc<Live>,
    options: impl Into<Options>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    Server::new(options)?.run(listener, live, shutdown).await
}

/// One server's settings and what all its shards share: the metrics and the served-values
/// log. A server may run as several shards ([`Server::run`] on several listeners of one
/// port), each on its own thread with its own runtime, store connection and [`Live`] core: a
/// request and its store round trip then stay on one thread, with no wakeups across threads.
#[derive(Debug)]
pub struct Server {
    options: Options,
    /// Connections open at once, across shards.
    connections: Arc<tokio::sync::Semaphore>,
    /// Push bytes in flight, in KiB, across shards.
    push_budget: Arc<tokio::sync::Semaphore>,
    metrics: Arc<metrics::Metrics>,
    served_log: Option<Arc<skewless_serving::served_log::ServedLog>>,
}

impl Server {
    /// Starts the served-values log, if the options ask for one.
    pub fn new(options: impl Into<Options>) -> std::io::Result<Self> {
        let options = options.into();
        options
            .limits
            .validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let served_log = options
            .served_log
            .clone()
            .map(skewless_serving::served_log::ServedLog::start)
            .transpose()?
            .map(Arc::new);
        Ok(Server {
            connections: Arc::new(tokio::sync::Semaphore::new(options.limits.max_connections)),
            push_budget: Arc::new(tokio::sync::Semaphore::new(
                options.limits.max_push_bytes_in_flight / 1024,
            )),
            options,
            metrics: Arc::default(),
            served_log,
        })
    }

    pub fn requires_api_keys(&self) -> bool {
        self.options.api_keys.is_some()
    }

    /// Serves on `listener` until `shutdown` resolves, finishing the requests in flight.
    pub async fn run(
        &self,
        listener: tokio::net::TcpListener,
        live: Arc<Live>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Options {
            limits,
            api_keys,
            allowed_hosts,
            allow_past_clock,
            handoff,
            served_log: _,
            materializer,
            monitor,
        } = self.options.clone();
        let lends_store = handoff.is_some();
        let app = Arc::new(App {
            live,
            push_budget: Arc::clone(&self.push_budget),
            limits,
            api_keys,
            allowed_hosts,
            allow_past_clock,
            handoff,
            metrics: Arc::clone(&self.metrics),
            served_log: self.served_log.clone(),
            materializer,
            monitor,
        });
        let mut router = Router::new()
            .route("/v1/features", post(features))
            .route("/get-online-features", post(feast_features))
            .route("/health", get(|| async { (StatusCode::OK, "ok") }))
            .route("/ready", get(ready))
            .route("/metrics", get(render_metrics))
            .route("/v1/monitor", get(monitor_report))
            // Bodies are read as bytes under this limit; over it, axum answers 413 itself.
            .layer(DefaultBodyLimit::max(limits.max_body_bytes))
            // Push bodies are streamed to their parser under the push body limit ([`streamed`]).
            .route("/v1/push", post(push::own))
            .route("/push", post(push::feast))
            .route("/write-to-online-store", post(push::feast_write))
            .route("/materialize", post(materialize::full))
            .route("/materialize-incremental", post(materialize::incremental));
        if lends_store {
            router = router.merge(
                Router::new()
                    .route("/internal/store/{call}", post(store_call))
                    .layer(DefaultBodyLimit::max(MAX_STORE_CALL_BODY)),
            );
        }
        let router = router
            .fallback(no_route)
            .method_not_allowed_fallback(wrong_method)
            .layer(axum::middleware::from_fn_with_state(Arc::clone(&app), track))
            .with_state(app);
        let connection_limits = accept::ConnectionLimits {
            header_timeout: limits.header_timeout,
            shutdown_grace: limits.shutdown_grace,
        };
        accept::serve(
            listener,
            router,
            connection_limits,
            Arc::clone(&self.connections),
            shutdown,
        )
        .await
    }
}

/// A method a route does not take: the JSON error, 405.
async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    Failure::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_string(),
    }
    .reject()
    .into_response()
}

/// Any route this server does not have: the JSON error every other failure answers (Feast's
/// clients parse it), not an empty 404.
async fn no_route(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    Failure::NotFound(Missing::Route {
        method: method.to_string(),
        path: uri.path().to_string(),
    })
    .reject()
    .into_response()
}

/// An error answer: the status and stable code of the error, the message the client gets,
/// and, for failures that are not the client's (a store, the disk, a bug), the details only
/// the server's log gets ([`finish`] writes them there with the answer's request id).
#[derive(Debug)]
struct Reject {
    status: u16,
    code: &'static str,
    message: String,
    detail: Option<String>,
}

/// What [`finish`] needs of an error answer.
#[derive(Debug, Clone)]
struct ErrorInfo {
    code: &'static str,
    message: String,
    detail: Option<String>,
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        // The body is written by `finish`, with the request id.
        let mut response = status.into_response();
        response.extensions_mut().insert(ErrorInfo {
            code: self.code,
            message: self.message,
            detail: self.detail,
        });
        response
    }
}

/// A serving core's error as an answer ([`failure::answer`] gives its status and code).
fn request_error(e: RequestError) -> Response {
    Failure::Serving(e).reject().into_response()
}

fn bad_request(malformed: Malformed) -> Reject {
    Failure::BadRequest(malformed).reject()
}

/// Parses a JSON body into `T`, or answers 400 saying where it is wrong.
fn parse<'a, T: Deserialize<'a>>(body: &'a Bytes) -> Result<T, Reject> {
    serde_json::from_slice(body).map_err(|e| bad_request(Malformed::NotARequest(e)))
}

/// A feature list or a service, as both APIs name them.
fn selection(
    features: Option<Vec<String>>,
    service: Option<String>,
    limits: &Limits,
) -> Result<FeatureSelection, Reject> {
    match (features, service) {
        (Some(_), Some(_)) => Err(bad_request(Malformed::FeaturesAndService)),
        (None, Some(service)) => Ok(FeatureSelection::Service(service)),
        (Some(features), None) if features.len() > limits.max_features => Err(Failure::TooManyFeatures {
            asked: features.len(),
            limit: limits.max_features,
        }
        .reject()),
        (Some(features), None) if !features.is_empty() => Ok(FeatureSelection::Features(features)),
        _ => Err(bad_request(Malformed::NoFeatures)),
    }
}

/// `POST /v1/features`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FeaturesRequest<'a> {
    features: Option<Vec<String>>,
    feature_service: Option<String>,
    /// One object per entity: join keys and request fields. Read once the selection's plan
    /// says what their types are.
    #[serde(borrow)]
    entities: &'a serde_json::value::RawValue,
    /// The clock: RFC 3339 or a date (default: now).
    at: Option<String>,
    #[serde(default)]
    full_names: bool,
}

async fn features(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let request: FeaturesRequest<'_> = match parse(&body) {
        Ok(r) => r,
        Err(reject) => return reject.into_response(),
    };
    let selection = match selection(request.features, request.feature_service, &app.limits) {
        Ok(s) => s,
        Err(reject) => return reject.into_response(),
    };
    let at = match request
        .at
        .as_deref()
        .map(skewless_serving::json::parse_instant)
        .transpose()
    {
        Ok(at) => at.unwrap_or_else(now),
        Err(e) => return bad_request(Malformed::At(e)).into_response(),
    };
    let serving = app.live.current();
    match lookup(&app, &serving, &selection, request.entities, false, at).await {
        Ok(found) if let Some(clash) = name_clash(&found, request.full_names) => clash,
        // Tiles hold every row pushed so far: at a past clock they would count rows that
        // landed (or happened) after it, which no training set at that instant sees.
        Ok(found)
            if found.reads_tiles && !app.allow_past_clock && at < now() - skewless_defs::instant::PUSH_AHEAD_MICROS =>
        {
            Failure::PastClock.reject().into_response()
        }
        Ok(found) => json_answer(
            &wire::OwnResponse {
                found: &found,
                full_names: request.full_names,
                applied_seq: serving.applied_seq,
            },
            &found,
        ),
        Err(response) => response,
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// `POST /get-online-features`, as Feast's feature server takes it.
#[derive(Debug, Deserialize)]
struct FeastRequest<'a> {
    features: Option<Vec<String>>,
    feature_service: Option<String>,
    /// Column-major: each join key (or request field) with one value per entity. Read once
    /// the selection's plan says what their types are.
    #[serde(borrow)]
    entities: &'a serde_json::value::RawValue,
    #[serde(default)]
    full_feature_names: bool,
}

async fn feast_features(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let request: FeastRequest<'_> = match parse(&body) {
        Ok(r) => r,
        Err(reject) => return reject.into_response(),
    };
    let selection = match selection(request.features, request.feature_service, &app.limits) {
        Ok(s) => s,
        Err(reject) => return reject.into_response(),
    };
    let found = match lookup(&app, &app.live.current(), &selection, request.entities, true, now()).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    if let Some(clash) = name_clash(&found, request.full_feature_names) {
        return clash;
    }
    // Join keys first (as given, typed), then features; every column a {values, statuses,
    // event_timestamps}.
    json_answer(
        &wire::FeastResponse {
            found: &found,
            full_names: request.full_feature_names,
        },
        &found,
    )
}

/// A 400 when two of the answer's features would share a name (the rule training sets
/// follow too: [`skewless_defs::output_name_clash`]); one would silently hide the other.
fn name_clash(found: &GetOutput, full_names: bool) -> Option<Response> {
    skewless_defs::output_name_clash(&found.features, full_names)
        .map(|clash| Failure::FeatureNameClash(clash).reject().into_response())
}

/// A 200 answer with `body` as JSON, written into one buffer sized for the lookup's values
/// (so a large answer is not copied as its buffer grows).
fn json_answer(body: &impl serde::Serialize, found: &GetOutput) -> Response {
    let mut bytes = Vec::with_capacity(256 + 96 * found.rows.len() * (found.features.len() + 1));
    match serde_json::to_writer(&mut bytes, body) {
        Ok(()) => ([(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => Failure::Internal {
            detail: format!("encoding the answer: {e}"),
        }
        .reject()
        .into_response(),
    }
}

/// `GET /metrics`: Prometheus text format.
async fn render_metrics(State(app): State<Arc<App>>) -> Response {
    let serving = app.live.current();
    // Freshness is read from the store now; a store that does not answer leaves it out.
    let freshness = match tokio::time::timeout(app.limits.request_timeout, serving.freshness()).await {
        Ok(Ok(freshness)) => freshness,
        _ => Vec::new(),
    };
    let mut text = app.metrics.render(serving.applied_seq, &freshness, now());
    if let Some(log) = &app.served_log {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        let _ = write!(
            text,
            "# HELP skewless_served_log_files_total Served-log files written.\n# TYPE skewless_served_log_files_total counter\nskewless_served_log_files_total {}\n\
             # HELP skewless_served_log_dropped_total Served-log records dropped because the writer fell behind.\n# TYPE skewless_served_log_dropped_total counter\nskewless_served_log_dropped_total {}\n\
             # HELP skewless_served_log_failures_total Served-log files that could not be written.\n# TYPE skewless_served_log_failures_total counter\nskewless_served_log_failures_total {}\n",
            log.files.load(Relaxed),
            log.dropped.load(Relaxed),
            log.failures.load(Relaxed)
        );
    }
    if let Some(monitor) = &app.monitor {
        monitor.render((now() / 1_000_000).max(0) as u64, &mut text);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// `GET /v1/monitor`: each monitored feature's drift over each window, with its breaches.
async fn monitor_report(State(app): State<Arc<App>>) -> Response {
    let features = app
        .monitor
        .as_ref()
        .map(|m| m.report((now() / 1_000_000).max(0) as u64))
        .unwrap_or_default();
    let breaches = features.iter().filter(|d| !d.breaches.is_empty()).count();
    axum::Json(json!({
        "monitored": app.monitor.as_ref().is_some_and(|m| !m.is_empty()),
        "windows": monitor::WINDOWS.iter().map(|(w, _)| *w).collect::<Vec<_>>(),
        "breaches": breaches,
        "features": features,
    }))
    .into_response()
}

/// `GET /ready`: the store answers a read.
async fn ready(State(app): State<Arc<App>>) -> Response {
    let serving = app.live.current();
    // A hung store is not ready: answered within the request timeout, like a lookup.
    match tokio::time::timeout(app.limits.request_timeout, serving.check_store()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready").into_response(),
        Ok(Err(e)) => request_error(e),
        Err(_) => Failure::StoreTimeout(app.limits.request_timeout)
            .reject()
            .into_response(),
    }
}

/// `POST /internal/store/{call}`: one call on the lent store, in the binary format of
/// [`skewless_online::served`]. A malformed body is 400; a store failure 503.
async fn store_call(
    State(app): State<Arc<App>>,
    axum::extract::Path(call): axum::extract::Path<String>,
    body: Bytes,
) -> Response {
    use skewless_online::served;
    let Some(handoff) = &app.handoff else {
        return Failure::NotFound(Missing::NoLentStore).reject().into_response();
    };
    let store = &handoff.store;
    let unavailable = |e: skewless_online::Error| {
        Failure::LentStoreFailed { detail: e.to_string() }
            .reject()
            .into_response()
    };
    match call.as_str() {
        "write" => match served::decode_write(&body) {
            Ok((entries, expire_after)) => match store.write(entries, expire_after).await {
                Ok(summary) => served::encode_summary(summary).into_response(),
                Err(e) => unavailable(e),
            },
            Err(problem) => bad_request(Malformed::StoreCall { call: "write", problem }).into_response(),
        },
        "read" => match served::decode_keys(&body) {
            Ok(keys) => match store.read(&keys).await {
                Ok(values) => served::encode_values(&values).into_response(),
                Err(e) => unavailable(e),
            },
            Err(problem) => bad_request(Malformed::StoreCall { call: "read", problem }).into_response(),
        },
        "tiles_write" => match served::decode_tile_writes(&body) {
            Ok(writes) => match store.write_tiles(writes).await {
                Ok(()) => Vec::new().into_response(),
                Err(e) => unavailable(e),
            },
            Err(problem) => bad_request(Malformed::StoreCall {
                call: "tiles_write",
                problem,
            })
            .into_response(),
        },
        "tiles_read" => match served::decode_keys(&body) {
            Ok(keys) => match store.read_tiles(&keys).await {
                Ok(maps) => served::encode_tile_maps(&maps).into_response(),
                Err(e) => unavailable(e),
            },
            Err(problem) => bad_request(Malformed::StoreCall {
                call: "tiles_read",
                problem,
            })
            .into_response(),
        },
        "instance" => match store.instance_id().await {
            Ok(id) => id.into_response(),
            Err(e) => unavailable(e),
        },
        "purge" => match store.purge_expired().await {
            Ok(removed) => removed.to_be_bytes().to_vec().into_response(),
            Err(e) => unavailable(e),
        },
        other => Failure::NotFound(Missing::StoreCall(other.to_string()))
            .reject()
            .into_response(),
    }
}
