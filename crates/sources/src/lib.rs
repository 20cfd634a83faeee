//! `skewless-sources`: the files skewless reads rows from and the files it writes rows to
//! aside. [`files`] says which files a source's `path` names, their format and their schema
//! (from Parquet footers and CSV headers, without reading the data); [`quarantine`] writes the
//! rows that break a view's contracts where a person can read why.
//!
//! Training sets, materialization and pushes all read sources through here, so a push is
//! checked against exactly the schema a training set reads. It depends on defs, Arrow and
//! Parquet only: the serving path links it without DataFusion's query engine.

pub mod files;
pub mod quarantine;

use std::path::PathBuf;

/// What went wrong reading a source or writing a quarantine file, and where.
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
    /// Rows of a view that break its contracts could not be set aside, or (with
    /// `on_violation: fail`) stop the job; the message names the file or the first row.
    #[error("feature view `{view}`: {message}")]
    Quarantine { view: String, message: String },
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
