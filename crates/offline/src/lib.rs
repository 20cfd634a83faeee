//! `skewless-offline`: the offline path, on DataFusion.
//!
//! It owns sources (finding their files, reading their schemas and rows), the as-of join
//! operator, training sets, and the batches that materialization writes online (the
//! latest row per key, computed as a training set at `end`). It never talks to an online store.
//!
//! ```text
//! source path (file | dir | glob) ──source::resolve──▶ files + format ──source::read_schema──▶ Arrow schema
//! spine + sources ──training_set::build──▶ AsOfJoinNode ─▶ AsOfJoinExec ─▶ training set
//! source ──latest::latest──▶ the same join, for every key at `end` ─▶ rows streamed to materialize
//! ```
//!
//! Modules: [`source`], [`check`] (row-by-row data checks that pin a failure to a file,
//! row and feature), [`quarantine`] (rows that break contracts, kept with their reason),
//! [`as_of`] (the point-in-time rule), [`as_of_exec`] (it as a DataFusion operator),
//! [`as_of_node`] (it as a logical plan node), [`columns`] (the operator's internal columns),
//! [`training_set`], [`latest`]. Pushed rows come from `skewless_push_log`'s segments.

pub mod aggregate;
pub mod as_of;
pub mod as_of_exec;
pub mod as_of_node;
pub mod check;
pub use skewless_engine::columns;
pub mod latest;
pub mod quarantine;
pub use skewless_sources::files as source;
pub mod training_set;

use std::path::PathBuf;

/// Offline-path errors. Each names the source and the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A source's files cannot be listed or read, or a quarantine file cannot be written.
    #[error(transparent)]
    Source(#[from] skewless_sources::Error),
    /// A job over a view's source failed on its data, at these places.
    #[error("feature view `{view}`: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Data {
        view: String,
        problems: Vec<check::DataProblem>,
    },
    /// A job over a view's source failed, and checking its data row by row found no cause.
    #[error("feature view `{view}`: {message}")]
    View { view: String, message: String },
    /// The spine of a training set cannot be read, or lacks what the features need.
    #[error("spine {}: {problem}", path.display())]
    Spine { path: PathBuf, problem: SpineProblem },
    /// Names a view or source the definitions do not hold.
    #[error("unknown {kind} `{name}`")]
    Unknown { kind: Kind, name: String },
    /// A view's definition does not compile over its source (each problem names file and line).
    #[error("{0}")]
    Invalid(skewless_defs::Diagnostics),
    /// Two requested features would answer under one column name.
    #[error("{0} (--full-names names columns view__feature)")]
    NameClash(skewless_defs::NameClash),
    /// A feature's output column would repeat a column of the spine.
    #[error("output column `{column}` would repeat a spine column; pass --full-names to name features view__feature")]
    RepeatsSpineColumn { column: String },
    #[error(transparent)]
    Log(#[from] skewless_push_log::LogError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A broken invariant: a bug in skewless.
    #[error("internal error (a bug): {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong with a spine.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpineProblem {
    #[error("expected a .parquet or .csv file")]
    UnknownFormat,
    /// Opening or decoding it failed (the reader's words).
    #[error("{0}")]
    Unreadable(String),
    #[error("the spine has no rows")]
    NoRows,
    #[error("no timestamp column `{column}` (columns: {}); name it with --timestamp-column", columns.join(", "))]
    NoTimestamp { column: String, columns: Vec<String> },
    #[error("timestamp column `{column}` is {found}, not a timestamp")]
    TimestampType {
        column: String,
        found: arrow::datatypes::DataType,
    },
    #[error("no column `{key}`, a join key of feature view `{view}`")]
    NoJoinKey { key: String, view: String },
    #[error("join key `{key}` is {found} but entity keys of type {ty} need {}", if *ty == skewless_defs::KeyType::Int64 { "integers" } else { "strings" })]
    KeyType {
        key: String,
        found: arrow::datatypes::DataType,
        ty: skewless_defs::KeyType,
    },
    #[error("join key `{key}` ({found}) cannot be read as {ty}: {why}")]
    KeyCast {
        key: String,
        found: arrow::datatypes::DataType,
        ty: skewless_defs::KeyType,
        why: String,
    },
    #[error("on-demand view `{view}` needs request field `{field}`, which the spine lacks")]
    NoRequestField { view: String, field: String },
    #[error("request field `{field}` cannot be read as {ty}: {why}")]
    RequestFieldCast {
        field: String,
        ty: skewless_defs::FeatureType,
        why: String,
    },
}

/// What kind of definition an [`Error::Unknown`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    FeatureView,
    OnDemandView,
    Source,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::FeatureView => "feature view",
            Kind::OnDemandView => "on-demand view",
            Kind::Source => "source",
        })
    }
}

impl Error {
    fn unknown(kind: Kind, name: &str) -> Self {
        Error::Unknown {
            kind,
            name: name.to_string(),
        }
    }
}
