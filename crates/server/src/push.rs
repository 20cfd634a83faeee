//! The push routes: `POST /v1/push` (JSON rows, or an Arrow IPC stream) and Feast's
//! `POST /push` (column-major `df`). Both hand the rows to [`Serving::push`], which logs
//! them durably before writing them online; the answer is the push's report.
//!
//! Pushes run without the lookup timeout: a push cut short after its log append would be
//! durable yet unacknowledged, and a retry without an `id` would log it twice.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value};
use skewless_serving::push::{PushInput, PushTo};

use crate::failure::{Failure, Malformed};
use crate::streamed::BodyReader;
use crate::{App, Reject, bad_request, now, request_error, streamed};

/// The content type of an Arrow IPC stream.
pub(crate) const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// `POST /v1/push` with a JSON body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushRequest {
    source: String,
    rows: skewless_serving::push_rows::RowColumns,
    /// Makes the push idempotent: a replayed id is acknowledged and appends nothing.
    id: Option<String>,
    /// `online_and_offline` (default) or `offline`.
    to: Option<String>,
}

/// `POST /push`, as Feast's feature server takes it.
#[derive(Debug, Deserialize)]
struct FeastPushRequest {
    push_source_name: String,
    #[serde(deserialize_with = "crate::wire::unique_map")]
    df: Map<String, Value>,
    #[serde(default)]
    to: Option<String>,
    // Feast's `allow_registry_cache` and `transform_on_write` change nothing here: the
    // definitions are compiled once per applied version, and transforms always run.
    #[serde(default, rename = "allow_registry_cache")]
    _allow_registry_cache: Option<bool>,
    #[serde(default, rename = "transform_on_write")]
    _transform_on_write: Option<bool>,
}

/// `POST /write-to-online-store`, as Feast's feature server takes it (and Feast's remote
/// online store sends, one request per feature view): taken as a push to the view's source
/// ([`skewless_serving::view_write`]).
#[derive(Debug, Deserialize)]
struct FeastWriteRequest {
    feature_view_name: String,
    #[serde(deserialize_with = "crate::wire::unique_map")]
    df: Map<String, Value>,
    // As for `/push`: the definitions are compiled once per applied version, and a write's
    // rows always go through the view's expressions.
    #[serde(default, rename = "allow_registry_cache")]
    _allow_registry_cache: Option<bool>,
    #[serde(default, rename = "transform_on_write")]
    _transform_on_write: Option<bool>,
}

pub(crate) async fn own(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    query: axum::http::Uri,
    body: Body,
) -> Response {
    let is_arrow = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(ARROW_STREAM));
    let (source, input, id, to) = if is_arrow {
        let params = match query_params(query.query().unwrap_or("")) {
            Ok(p) => p,
            Err(reject) => return reject.into_response(),
        };
        let Some(source) = param(&params, "source") else {
            return bad_request(Malformed::ArrowWithoutSource).into_response();
        };
        let batches = match read(&app, &headers, body, read_arrow_stream).await {
            Ok(b) => b,
            Err(response) => return response,
        };
        (
            source.to_string(),
            PushInput::Batches(batches),
            param(&params, "id").map(str::to_string),
            param(&params, "to").map(str::to_string),
        )
    } else {
        let request: PushRequest = match read(&app, &headers, body, parse_json).await {
            Ok(r) => r,
            Err(response) => return response,
        };
        (request.source, PushInput::Rows(request.rows), request.id, request.to)
    };
    push(&app, &source, input, id, to.as_deref()).await
}

pub(crate) async fn feast(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let request: FeastPushRequest = match read(&app, &headers, body, parse_json).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    push(
        &app,
        &request.push_source_name,
        PushInput::Columns(request.df),
        None,
        request.to.as_deref(),
    )
    .await
}

pub(crate) async fn feast_write(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let request: FeastWriteRequest = match read(&app, &headers, body, parse_json).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    if let Some(response) = too_many_rows(&app, columns_len(&request.df)) {
        return response;
    }
    let serving = app.live.current();
    match serving.write_view(&request.feature_view_name, request.df, now()).await {
        Ok(report) => {
            app.metrics.pushed(&report.source, report.rows as u64, report.appended);
            axum::Json(report).into_response()
        }
        Err(e) => request_error(e),
    }
}

/// The rows of a column-major `df`: its longest column.
fn columns_len(df: &Map<String, Value>) -> usize {
    df.values().filter_map(Value::as_array).map(Vec::len).max().unwrap_or(0)
}

/// The 400 for a push of more rows than allowed.
fn too_many_rows(app: &App, rows: usize) -> Option<Response> {
    (rows > app.limits.max_push_rows).then(|| {
        Failure::TooManyRows {
            asked: rows,
            limit: app.limits.max_push_rows,
        }
        .reject()
        .into_response()
    })
}

/// The push body, parsed as it arrives ([`streamed`]): the body is never held whole. An
/// answer given before the body was read to its end closes the connection.
async fn read<T: Send + 'static>(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    parse: fn(BodyReader) -> Result<T, Reject>,
) -> Result<T, Response> {
    let parsed = streamed::parse(
        body,
        crate::declared_length(headers),
        app.limits.max_push_body_bytes,
        app.limits.body_timeout,
        parse,
    )
    .await;
    parsed.result.map_err(|reject| {
        let mut response = reject.into_response();
        if !parsed.whole {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    })
}

/// A JSON body, or a 400 saying where it is wrong.
fn parse_json<T: for<'de> Deserialize<'de>>(reader: BodyReader) -> Result<T, Reject> {
    serde_json::from_reader(reader).map_err(|e| bad_request(Malformed::NotARequest(e)))
}

async fn push(app: &App, source: &str, input: PushInput, id: Option<String>, to: Option<&str>) -> Response {
    let to = match to.map(PushTo::parse) {
        None => PushTo::default(),
        Some(Some(to)) => to,
        Some(None) => {
            return bad_request(Malformed::BadTarget).into_response();
        }
    };
    let rows = match &input {
        PushInput::Rows(rows) => rows.len(),
        PushInput::Columns(df) => columns_len(df),
        PushInput::Batches(batches) => batches.iter().map(|b| b.num_rows()).sum(),
    };
    if let Some(response) = too_many_rows(app, rows) {
        return response;
    }
    let serving = app.live.current();
    match serving.push(source, input, id, to, now()).await {
        Ok(report) => {
            app.metrics.pushed(source, report.rows as u64, report.appended);
            axum::Json(report).into_response()
        }
        Err(e) => request_error(e),
    }
}

fn read_arrow_stream(body: BodyReader) -> Result<Vec<arrow::array::RecordBatch>, Reject> {
    let reader =
        arrow::ipc::reader::StreamReader::try_new(body, None).map_err(|e| bad_request(Malformed::NotArrow(e)))?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_request(Malformed::ArrowDamaged(e)))
}

/// `a=1&b=x%20y` as pairs, percent-decoded; a malformed escape is a 400.
fn query_params(query: &str) -> Result<Vec<(String, String)>, Reject> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn decode(text: &str) -> Result<String, Reject> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        bad_request(Malformed::BadEscape {
                            query: text.to_string(),
                        })
                    })?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| {
        bad_request(Malformed::NotUtf8 {
            query: text.to_string(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_percent_decoded() {
        let params = query_params("source=trips&id=a%2Fb+c&to=").unwrap();
        assert_eq!(param(&params, "source"), Some("trips"));
        assert_eq!(param(&params, "id"), Some("a/b c"));
        assert_eq!(param(&params, "to"), Some(""));
        assert!(query_params("id=%zz").is_err());
        assert!(query_params("id=%ff").is_err());
    }
}
