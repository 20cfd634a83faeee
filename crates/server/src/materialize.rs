//! Feast's `POST /materialize` and `POST /materialize-incremental`: what Feast's SDK (0.66 and
//! later) sends for `store.materialize(...)` and `store.materialize_incremental(...)` when its
//! online store is remote.
//!
//! Materializing runs the training-set path (the as-of join at `end`), which this crate does
//! not link: the binary hands the server a [`Materializer`] (the CLI's runs
//! `Project::materialize` into the store the server serves from, on its own thread). Without
//! one, the routes answer 404 saying so.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::failure::{Failure, Malformed, Missing};
use crate::{App, bad_request, now, parse};

/// A materialization the server was asked for, in skewless's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterializeRequest {
    /// Only rows new since this instant (µs); `None`: from the beginning.
    pub start: Option<i64>,
    /// The instant whose values are written (µs).
    pub end: i64,
    /// Each view from its watermark (`materialize-incremental`).
    pub incremental: bool,
    /// Feature views; empty: every online view.
    pub views: Vec<String>,
}

/// Why a materialization did not run to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MaterializeError {
    /// The request asks for something the definitions refuse (sent to the client).
    #[error("{0}")]
    Refused(String),
    /// The run failed (a source, the store, a bug): logged, not sent.
    #[error("{0}")]
    Failed(String),
}

/// Runs materializations for the server, into the store it serves from; answers the run's
/// report as JSON.
pub trait Materializer: std::fmt::Debug + Send + Sync {
    fn materialize(
        &self,
        store: Arc<dyn skewless_online::OnlineStore>,
        request: MaterializeRequest,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, MaterializeError>> + Send>>;
}

/// Feast's `/materialize` body.
#[derive(Debug, Deserialize)]
struct FeastMaterialize {
    start_ts: Option<String>,
    end_ts: Option<String>,
    feature_views: Option<Vec<String>>,
    #[serde(default)]
    disable_event_timestamp: bool,
    // Names in the answer and a view version to pin change nothing here: skewless answers
    // with its own report, and serves the applied version.
    #[serde(default, rename = "full_feature_names")]
    _full_feature_names: Option<bool>,
    #[serde(default, rename = "version")]
    _version: Option<String>,
}

/// Feast's `/materialize-incremental` body.
#[derive(Debug, Deserialize)]
struct FeastMaterializeIncremental {
    end_ts: String,
    feature_views: Option<Vec<String>>,
    #[serde(default, rename = "full_feature_names")]
    _full_feature_names: Option<bool>,
    #[serde(default, rename = "version")]
    _version: Option<String>,
}

fn instant(field: &'static str, text: &str) -> Result<i64, Malformed> {
    skewless_serving::json::parse_instant(text).map_err(|problem| Malformed::Instant { field, problem })
}

pub(crate) async fn full(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let request: FeastMaterialize = match parse(&body) {
        Ok(r) => r,
        Err(reject) => return reject.into_response(),
    };
    let (start, end) = if request.disable_event_timestamp {
        (None, now())
    } else {
        let (Some(start), Some(end)) = (&request.start_ts, &request.end_ts) else {
            return bad_request(Malformed::MaterializeRange).into_response();
        };
        match (instant("start_ts", start), instant("end_ts", end)) {
            (Ok(start), Ok(end)) if start < end => (Some(start), end),
            (Ok(_), Ok(_)) => return bad_request(Malformed::MaterializeRange).into_response(),
            (Err(malformed), _) | (_, Err(malformed)) => return bad_request(malformed).into_response(),
        }
    };
    run(
        &app,
        MaterializeRequest {
            start,
            end,
            incremental: false,
            views: request.feature_views.unwrap_or_default(),
        },
    )
    .await
}

pub(crate) async fn incremental(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let request: FeastMaterializeIncremental = match parse(&body) {
        Ok(r) => r,
        Err(reject) => return reject.into_response(),
    };
    let end = match instant("end_ts", &request.end_ts) {
        Ok(end) => end,
        Err(malformed) => return bad_request(malformed).into_response(),
    };
    run(
        &app,
        MaterializeRequest {
            start: None,
            end,
            incremental: true,
            views: request.feature_views.unwrap_or_default(),
        },
    )
    .await
}

async fn run(app: &App, request: MaterializeRequest) -> Response {
    let Some(materializer) = &app.materializer else {
        return Failure::NotFound(Missing::NoMaterializer).reject().into_response();
    };
    let serving = app.live.current();
    match materializer.materialize(serving.store(), request).await {
        Ok(report) => axum::Json(report).into_response(),
        Err(MaterializeError::Refused(message)) => Failure::MaterializeRefused { message }.reject().into_response(),
        Err(MaterializeError::Failed(detail)) => Failure::MaterializeFailed { detail }.reject().into_response(),
    }
}
