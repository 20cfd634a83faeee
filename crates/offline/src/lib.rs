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
pub mod columns;
pub mod latest;
pub mod quarantine;
pub mod source;
pub mod training_set;

use std::path::PathBuf;

/// Offline-path errors. Each names the source and the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("source `{source_name}`: path `{path}` matches no files")]
    NoFiles { source_name: String, path: String },
    #[error("source `{source_name}`: invalid glob `{path}`: {message}")]
    BadGlob {
        source_name: String,
        path: String,
        message: String,
    },
    #[error("source `{source_name}`: cannot tell the format of {file}; name files *.parquet or *.csv, or set `format`")]
    UnknownFormat { source_name: String, file: PathBuf },
    #[error("source `{source_name}`: reading {file}: {message}")]
    Read {
        source_name: String,
        file: PathBuf,
        message: String,
    },
    #[error(
        "source `{source_name}`: {file} has columns {found} but {first} has {expected}; all files of a source must share one schema"
    )]
    SchemaMismatch {
        source_name: String,
        file: PathBuf,
        first: PathBuf,
        found: String,
        expected: String,
    },
    #[error("source `{source_name}` has no files: it only receives pushed events")]
    PushOnly { source_name: String },
    /// A job over a view's source failed on its data, at these places.
    #[error("feature view `{view}`: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Data {
        view: String,
        problems: Vec<check::DataProblem>,
    },
    /// A job over a view's source failed, and checking its data row by row found no cause.
    #[error("feature view `{view}`: {message}")]
    View { view: String, message: String },
    #[error("spine {path}: {message}")]
    Spine { path: PathBuf, message: String },
    /// A request that cannot be served as asked (names, clashes, definitions).
    #[error("{0}")]
    Request(String),
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
