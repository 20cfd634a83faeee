//! Every way a request can fail, and the one table that gives each its HTTP status and code.
//!
//! Handlers and middleware say *what* failed, as a [`Failure`] with typed fields; [`answer`]
//! alone decides the status and the stable code (docs/server.md lists them, and a test checks
//! that the table there and this one agree), and [`Failure::reject`] renders the message. The
//! caller's mistakes say what is wrong; our failures (a store, the disk, a bug) get a fixed
//! message saying what happened and what to do, and their details go only to the server's log,
//! under the answer's request id: never a path, a host or a store's words to the client.

use std::time::Duration;

use skewless_defs::SelectionError;
use skewless_serving::core::RequestError;

/// A request that cannot be answered with what it asked.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The serving core refused or failed (lookups, pushes, readiness).
    Serving(RequestError),
    /// The body or query is not a request of the expected shape.
    BadRequest(Malformed),
    /// Features reading an aggregated view asked at a past `at`.
    PastClock,
    /// Two requested features answer under one short name.
    FeatureNameClash(skewless_defs::NameClash),
    TooManyFeatures {
        asked: usize,
        limit: usize,
    },
    TooManyEntities {
        asked: usize,
        limit: usize,
    },
    TooManyRows {
        asked: usize,
        limit: usize,
    },
    /// API keys are configured and the request has no valid one.
    Unauthorized,
    /// No API keys, and the request's `Host` is not one this server answers.
    HostNotAllowed,
    /// A POST whose `Content-Type` the route does not take.
    UnsupportedMediaType {
        expected: &'static str,
    },
    BodyTimeout(Duration),
    BodyTooLarge {
        limit: usize,
    },
    /// Pushes in flight hold the whole push memory budget.
    Overloaded,
    /// The lookup took longer than the request timeout.
    Timeout(Duration),
    /// The store did not answer a readiness check within the request timeout.
    StoreTimeout(Duration),
    /// A lent-store call the store failed; `detail` goes to the caller (a token holder) too.
    LentStoreFailed {
        detail: String,
    },
    /// A route or store call that does not exist here.
    NotFound(Missing),
    /// Feast's `/materialize` asked for what the definitions refuse (an unknown view).
    MaterializeRefused {
        message: String,
    },
    /// A materialization that failed; `detail` is for the log.
    MaterializeFailed {
        detail: String,
    },
    /// A route that exists, asked with a method it does not take.
    MethodNotAllowed {
        method: String,
        path: String,
    },
    /// A bug; `detail` is for the log.
    Internal {
        detail: String,
    },
}

/// How a body or query is not a request of the route's shape (all answered 400 `BAD_REQUEST`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Malformed {
    /// The JSON is broken or does not have the request's fields (serde says where: line, column).
    #[error("the body is not a valid request: {0}")]
    NotARequest(serde_json::Error),
    /// The body broke off, or its framing is wrong.
    #[error("the body could not be read (the connection broke or its framing is wrong)")]
    BrokenBody,
    #[error("give `features` or `feature_service`, not both")]
    FeaturesAndService,
    #[error("give `features` (a non-empty list) or `feature_service`")]
    NoFeatures,
    #[error("`at`: {0}")]
    At(skewless_serving::json::InstantTextError),
    /// An instant field of a request that is not an instant.
    #[error("`{field}`: {problem}")]
    Instant {
        field: &'static str,
        problem: skewless_serving::json::InstantTextError,
    },
    /// Feast's `/materialize` without `start_ts` and `end_ts`, or with `start_ts` not before
    /// `end_ts`.
    #[error("give `start_ts` before `end_ts` (or `disable_event_timestamp: true` for everything up to now)")]
    MaterializeRange,
    /// A Feast `entities` column that is not a list.
    #[error("entities.{column}: expected a list of values, found {found}")]
    NotAList { column: String, found: serde_json::Value },
    /// Feast `entities` columns of different lengths.
    #[error("entities.{column} has {values} values but entities.{first} has {first_values}")]
    Ragged {
        column: String,
        values: usize,
        first: String,
        first_values: usize,
    },
    #[error("an Arrow push names its source in the query: `/v1/push?source=NAME`")]
    ArrowWithoutSource,
    /// A push's `to` that is none of the three.
    #[error("`to`: expected `online`, `online_and_offline` or `offline`")]
    BadTarget,
    #[error("the body is not an Arrow IPC stream: {0}")]
    NotArrow(arrow::error::ArrowError),
    #[error("the Arrow IPC stream is damaged: {0}")]
    ArrowDamaged(arrow::error::ArrowError),
    /// A query string with a broken `%` escape, or not UTF-8 once decoded.
    #[error("the query `{query}` has a malformed %-escape")]
    BadEscape { query: String },
    #[error("the query `{query}` is not UTF-8")]
    NotUtf8 { query: String },
    /// A lent-store call whose body is not what the call takes.
    #[error("store {call}: {problem}")]
    StoreCall {
        call: &'static str,
        problem: skewless_online::served::WireError,
    },
}

/// A route or lent-store call this server does not have.
#[derive(Debug)]
pub(crate) enum Missing {
    /// The server was started without a store to lend.
    NoLentStore,
    StoreCall(String),
    /// Feast's `/materialize` routes, on a server started without a materializer.
    NoMaterializer,
    /// A route this server does not have (or not with this method).
    Route {
        method: String,
        path: String,
    },
}

/// The one table: each failure's HTTP status and stable code.
pub(crate) fn answer(failure: &Failure) -> (u16, &'static str) {
    match failure {
        Failure::Serving(e) => match e {
            RequestError::UnknownView { .. } => (404, "UNKNOWN_FEATURE"),
            RequestError::Selection(e) => match e {
                SelectionError::UnknownService { .. } | SelectionError::Unresolved(_) => (404, "UNKNOWN_FEATURE"),
                SelectionError::BadReference(_) | SelectionError::Empty => (400, "BAD_FEATURE_REFERENCE"),
            },
            RequestError::UnknownSource { .. } => (404, "UNKNOWN_SOURCE"),
            RequestError::ViewNotOnline(_) => (400, "VIEW_NOT_ONLINE"),
            RequestError::BadEntity { .. } => (400, "BAD_ENTITY"),
            RequestError::MissingRequestField { .. } => (400, "MISSING_REQUEST_FIELD"),
            RequestError::NotPushSource { .. } => (400, "NOT_A_PUSH_SOURCE"),
            RequestError::ViewNotWritable { .. } => (400, "VIEW_NOT_WRITABLE"),
            RequestError::BadRow { .. } => (400, "BAD_ROW"),
            RequestError::BadPushId { .. } => (400, "BAD_PUSH_ID"),
            RequestError::PushIdConflict { .. } => (409, "PUSH_ID_CONFLICT"),
            RequestError::NothingApplied => (503, "NOTHING_APPLIED"),
            RequestError::StoreUnavailable { .. } => (503, "STORE_UNAVAILABLE"),
            RequestError::SourceUnreadable { .. } => (503, "SOURCE_UNREADABLE"),
            RequestError::LogUnavailable { .. } => (503, "OFFLINE_LOG_UNAVAILABLE"),
            RequestError::OnlineWriteFailed { .. } => (503, "ONLINE_WRITE_FAILED"),
            RequestError::Internal(_) => (500, "INTERNAL"),
        },
        Failure::BadRequest(_) => (400, "BAD_REQUEST"),
        Failure::PastClock => (400, "PAST_CLOCK"),
        Failure::FeatureNameClash(_) => (400, "FEATURE_NAME_CLASH"),
        Failure::TooManyFeatures { .. } => (400, "TOO_MANY_FEATURES"),
        Failure::TooManyEntities { .. } => (400, "TOO_MANY_ENTITIES"),
        Failure::Unauthorized => (401, "UNAUTHORIZED"),
        Failure::HostNotAllowed => (403, "HOST_NOT_ALLOWED"),
        Failure::NotFound(_) => (404, "NOT_FOUND"),
        Failure::MethodNotAllowed { .. } => (405, "METHOD_NOT_ALLOWED"),
        Failure::MaterializeRefused { .. } => (400, "MATERIALIZE_REFUSED"),
        Failure::MaterializeFailed { .. } => (500, "MATERIALIZE_FAILED"),
        Failure::BodyTimeout(_) => (408, "BODY_TIMEOUT"),
        Failure::BodyTooLarge { .. } => (413, "BODY_TOO_LARGE"),
        Failure::TooManyRows { .. } => (413, "TOO_MANY_ROWS"),
        Failure::UnsupportedMediaType { .. } => (415, "UNSUPPORTED_MEDIA_TYPE"),
        Failure::Internal { .. } => (500, "INTERNAL"),
        Failure::Overloaded => (503, "OVERLOADED"),
        Failure::StoreTimeout(_) | Failure::LentStoreFailed { .. } => (503, "STORE_UNAVAILABLE"),
        Failure::Timeout(_) => (504, "TIMEOUT"),
    }
}

const INTERNAL_MESSAGE: &str = "internal error (a bug): the server's log has the details under this request id";

impl Failure {
    /// The message the client gets, and the details only the log gets.
    fn render(&self) -> (String, Option<String>) {
        let said = |message: String| (message, None);
        let hidden = |message: &str, detail: String| (message.to_string(), Some(detail));
        match self {
            Failure::Serving(e) => match e {
                RequestError::StoreUnavailable { .. } => {
                    hidden("the online store did not answer; try again", e.to_string())
                }
                RequestError::SourceUnreadable { .. } => hidden(
                    "the push source's batch files, which give pushed rows their schema, cannot be read on the \
                     server: nothing was pushed; the server's log has the details under this request id",
                    e.to_string(),
                ),
                RequestError::LogUnavailable { .. } => hidden(
                    "the offline log could not be written: nothing was pushed; try again",
                    e.to_string(),
                ),
                RequestError::OnlineWriteFailed { .. } => hidden(
                    "the rows are in the offline log, but the online store did not confirm them (a write that \
                     timed out may have been applied, in part or whole, even after this answer): retry the push \
                     with the same id, or run `skewless materialize-incremental`",
                    e.to_string(),
                ),
                RequestError::Internal(_) => hidden(INTERNAL_MESSAGE, e.to_string()),
                _ => said(e.to_string()),
            },
            Failure::BadRequest(malformed) => said(malformed.to_string()),
            Failure::PastClock => said(
                "`at` is in the past, and aggregated views are served only as of now: their tiles hold every row \
                 pushed so far, so an earlier clock would count rows that landed after it; build a training set \
                 for past instants"
                    .into(),
            ),
            Failure::FeatureNameClash(clash) => said(clash.to_string()),
            Failure::TooManyFeatures { asked, limit } => {
                said(format!("{asked} features requested; the limit is {limit}"))
            }
            Failure::TooManyEntities { asked, limit } => {
                said(format!("{asked} entities requested; the limit is {limit}"))
            }
            Failure::TooManyRows { asked, limit } => {
                said(format!("{asked} rows pushed; the limit is {limit} per push"))
            }
            Failure::Unauthorized => said("a valid API key is required: `Authorization: Bearer <key>`".into()),
            Failure::HostNotAllowed => said(
                "this server has no API keys, so it answers only requests addressed to an IP address, \
                 `localhost` or a name given with --allowed-hosts"
                    .into(),
            ),
            Failure::UnsupportedMediaType { expected } => {
                said(format!("send the body with `Content-Type: {expected}`"))
            }
            Failure::BodyTimeout(timeout) => said(format!("the body did not arrive whole within {timeout:?}")),
            Failure::BodyTooLarge { limit } => said(format!("the body is over this route's limit of {limit} bytes")),
            Failure::Overloaded => {
                said("the server is busy with other pushes; retry after a second (smaller pushes get in sooner)".into())
            }
            Failure::Timeout(timeout) => said(format!("the lookup took longer than {timeout:?}")),
            Failure::StoreTimeout(timeout) => said(format!("the online store did not answer within {timeout:?}")),
            // Only holders of the handoff token (skewless commands on this machine) call the
            // lent store: they get its words, so `materialize` through a server says what failed.
            Failure::LentStoreFailed { detail } => (format!("the held store failed: {detail}"), Some(detail.clone())),
            Failure::NotFound(Missing::NoLentStore) => said("this server lends no store".into()),
            Failure::NotFound(Missing::StoreCall(call)) => said(format!("no store call `{call}`")),
            Failure::NotFound(Missing::NoMaterializer) => said(
                "this server does not materialize: run `skewless materialize` (or serve with `skewless serve`)".into(),
            ),
            Failure::MaterializeRefused { message } => said(message.clone()),
            Failure::MaterializeFailed { detail } => hidden(
                "the materialization failed; the server's log has the details under this request id",
                detail.clone(),
            ),
            Failure::MethodNotAllowed { method, path } => said(format!(
                "`{path}` does not take {method} (data routes take POST, probes GET)"
            )),
            Failure::NotFound(Missing::Route { method, path }) => said(format!(
                "no route `{method} {path}` (the routes: POST /v1/features, /get-online-features, /v1/push, /push, \
                 /write-to-online-store, /materialize, /materialize-incremental; GET /health, /ready, /metrics)"
            )),
            Failure::Internal { detail } => hidden(INTERNAL_MESSAGE, detail.clone()),
        }
    }

    /// The answer: status, code, the client's message (cut at [`MAX_MESSAGE_CHARS`]) and the
    /// log's details.
    pub(crate) fn reject(self) -> crate::Reject {
        let (status, code) = answer(&self);
        let (mut message, detail) = self.render();
        if message.len() > MAX_MESSAGE_CHARS {
            let end = message.floor_char_boundary(MAX_MESSAGE_CHARS);
            message.truncate(end);
            message.push_str("… (cut)");
        }
        crate::Reject {
            status,
            code,
            message,
            detail,
        }
    }
}

/// Client messages are capped: an answer never echoes a huge input back whole.
pub(crate) const MAX_MESSAGE_CHARS: usize = 1024;

#[cfg(test)]
mod tests {
    use super::*;

    /// One of every failure, each with the status and code docs/server.md promises.
    fn every_failure() -> Vec<Failure> {
        let s = || "x".to_string();
        let clash = skewless_defs::output_name_clash(
            &[
                skewless_defs::ResolvedFeature {
                    view: "a".into(),
                    feature: "f".into(),
                    ty: skewless_defs::FeatureType::Int64,
                    on_demand: false,
                },
                skewless_defs::ResolvedFeature {
                    view: "b".into(),
                    feature: "f".into(),
                    ty: skewless_defs::FeatureType::Int64,
                    on_demand: false,
                },
            ],
            false,
        )
        .expect("two features named f clash");
        let d = Duration::from_secs(1);
        vec![
            Failure::Serving(RequestError::UnknownView { name: s() }),
            Failure::Serving(RequestError::Selection(SelectionError::UnknownService {
                name: s(),
                did_you_mean: None,
            })),
            Failure::Serving(RequestError::Selection(SelectionError::Unresolved(
                skewless_defs::Unresolved(vec![skewless_defs::UnresolvedRef {
                    reference: s(),
                    unknown_view: false,
                    did_you_mean: None,
                }]),
            ))),
            Failure::Serving(RequestError::Selection(SelectionError::BadReference(s()))),
            Failure::Serving(RequestError::Selection(SelectionError::Empty)),
            Failure::Serving(RequestError::UnknownSource { name: s(), near: None }),
            Failure::Serving(RequestError::ViewNotOnline(s())),
            Failure::Serving(RequestError::BadEntity {
                entity: 1,
                problem: skewless_serving::core::EntityProblem::Twice { field: s() },
            }),
            Failure::Serving(RequestError::MissingRequestField {
                entity: 0,
                view: s(),
                field: s(),
            }),
            Failure::Serving(RequestError::NotPushSource {
                name: s(),
                has_path: true,
            }),
            Failure::Serving(RequestError::ViewNotWritable {
                view: s(),
                reason: skewless_serving::view_write::WriteRefusal::Aggregated { source_name: s() },
            }),
            Failure::Serving(RequestError::BadRow {
                file: None,
                push_source: s(),
                problem: skewless_serving::core::RowProblem::Contract {
                    row: 0,
                    view: s(),
                    reason: s(),
                },
            }),
            Failure::Serving(RequestError::BadPushId { problem: s() }),
            Failure::Serving(RequestError::PushIdConflict { id: s() }),
            Failure::Serving(RequestError::NothingApplied),
            Failure::Serving(RequestError::StoreUnavailable { cause: cause(&s()) }),
            Failure::Serving(RequestError::SourceUnreadable {
                push_source: s(),
                detail: s(),
            }),
            Failure::Serving(RequestError::LogUnavailable { cause: cause(&s()) }),
            Failure::Serving(RequestError::OnlineWriteFailed {
                view: s(),
                pushed: skewless_serving::core::Pushed::FromLog,
                cause: cause(&s()),
            }),
            Failure::Serving(RequestError::Internal(s())),
            Failure::BadRequest(Malformed::NoFeatures),
            Failure::PastClock,
            Failure::FeatureNameClash(clash),
            Failure::TooManyFeatures { asked: 2, limit: 1 },
            Failure::TooManyEntities { asked: 2, limit: 1 },
            Failure::TooManyRows { asked: 2, limit: 1 },
            Failure::Unauthorized,
            Failure::HostNotAllowed,
            Failure::UnsupportedMediaType {
                expected: "application/json",
            },
            Failure::BodyTimeout(d),
            Failure::BodyTooLarge { limit: 1 },
            Failure::Overloaded,
            Failure::Timeout(d),
            Failure::StoreTimeout(d),
            Failure::LentStoreFailed { detail: s() },
            Failure::NotFound(Missing::NoLentStore),
            Failure::NotFound(Missing::Route {
                method: "GET".into(),
                path: "/nope".into(),
            }),
            Failure::MethodNotAllowed {
                method: "GET".into(),
                path: "/push".into(),
            },
            Failure::MaterializeRefused { message: s() },
            Failure::MaterializeFailed { detail: s() },
            Failure::Internal { detail: s() },
        ]
    }

    /// `| `CODE`, `CODE` | status | … |` rows of docs/server.md's error table.
    fn documented() -> std::collections::BTreeMap<String, u16> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/server.md");
        let text = std::fs::read_to_string(path).expect("docs/server.md");
        let table = text
            .split("| code | status | when |")
            .nth(1)
            .expect("docs/server.md has the error table");
        let mut codes = std::collections::BTreeMap::new();
        for line in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let status: u16 = cells[2].parse().unwrap_or_else(|_| panic!("a status in `{line}`"));
            for code in cells[1].split(',') {
                codes.insert(code.trim().trim_matches('`').to_string(), status);
            }
        }
        codes
    }

    #[test]
    fn every_code_is_documented_with_its_status_and_every_documented_code_exists() {
        let documented = documented();
        let mut answered = std::collections::BTreeMap::new();
        for failure in every_failure() {
            let (status, code) = answer(&failure);
            if let Some(previous) = answered.insert(code.to_string(), status) {
                assert_eq!(previous, status, "{code} answers with two statuses");
            }
            let reject = failure.reject();
            assert_eq!((reject.status, reject.code), (status, code));
            assert!(!reject.message.is_empty(), "{code} has no message");
        }
        assert_eq!(answered, documented, "docs/server.md's error table and `answer` differ");
    }

    /// Another library's error saying `text`.
    fn cause(text: &str) -> skewless_serving::core::Cause {
        skewless_serving::core::Cause::new(std::io::Error::other(text.to_string()))
    }

    /// Failures that are not the client's never send their details.
    #[test]
    fn our_failures_keep_their_details_in_the_log() {
        let secret = "redis://10.0.0.7:6379 said NOAUTH at /srv/skewless/.skewless";
        for failure in [
            Failure::Serving(RequestError::StoreUnavailable { cause: cause(secret) }),
            Failure::Serving(RequestError::SourceUnreadable {
                push_source: "trips".into(),
                detail: secret.into(),
            }),
            Failure::Serving(RequestError::LogUnavailable { cause: cause(secret) }),
            Failure::Serving(RequestError::OnlineWriteFailed {
                view: "trips".into(),
                pushed: skewless_serving::core::Pushed::Logged {
                    rows: 1,
                    at: "journal@0".into(),
                },
                cause: cause(secret),
            }),
            Failure::Serving(RequestError::Internal(secret.into())),
            Failure::Internal { detail: secret.into() },
            Failure::MaterializeFailed { detail: secret.into() },
        ] {
            let reject = failure.reject();
            assert!(!reject.message.contains("10.0.0.7"), "{}", reject.message);
            assert!(reject.detail.is_some_and(|d| d.contains("10.0.0.7")), "{}", reject.code);
        }
    }

    /// The lent store's callers hold its token: they get the store's words.
    #[test]
    fn the_lent_store_says_what_failed_to_its_token_holders() {
        let reject = Failure::LentStoreFailed {
            detail: "redb: the file is damaged".into(),
        }
        .reject();
        assert!(reject.message.contains("the file is damaged"), "{}", reject.message);
    }

    #[test]
    fn long_messages_are_cut() {
        let reject = Failure::BadRequest(Malformed::NotAList {
            column: "é".repeat(2000),
            found: serde_json::Value::Null,
        })
        .reject();
        assert!(reject.message.ends_with("… (cut)"));
        assert!(reject.message.len() <= MAX_MESSAGE_CHARS + "… (cut)".len());
    }
}
