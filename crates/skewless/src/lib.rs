//! `skewless`: the facade that server and CLI use.
//!
//! A [`Project`] is a definitions directory, the data it names (paths relative to the
//! project root, the parent of `feature_defs/`) and a local repository directory
//! (`.skewless/`) holding the [registry](registry) of applied definitions. The facade
//! wires the crates below it: `defs` parses, `offline` reads source schemas and builds
//! training sets, `engine` type-checks, `online` stores and looks up, `push_log` keeps pushes.
//!
//! ```text
//! cli / server ──▶ Project ──validate──▶ defs::load_dir ─▶ offline::source schemas ─▶ engine::check
//!                     ├──plan/apply──▶ defs::plan ─▶ registry (applied/NNNNNN.json, full history)
//!                     ├──list──────▶ listing rows (printed by the CLI as tables or JSON)
//!                     ├──training_set──▶ offline::training_set (as-of joins) ─▶ RecordBatch / Parquet / CSV
//!                     ├──materialize──▶ offline::latest (the same join at `end`) ─▶ online store (newer wins)
//!                     ├──get──▶ serving::Serving (compiled once) ─▶ online::lookup (statuses at an injected clock)
//!                     ├──push──▶ push_rows (typed as the source) ─▶ offline log (durable) ─▶ the view's select list ─▶ online store
//!                     ├──parity──▶ training sets against fresh (or live) stores, bit for bit
//!                     └──consistency──▶ the served log recomputed by the training-set path
//! ```
//!
//! Modules: [`project`], [`registry`], [`listing`], [`training`], [`manifest`], [`online`],
//! [`serving`], [`push`], [`push_rows`], [`parity`], [`served_log`], [`consistency`],
//! [`reproduce`], [`demo_data`], [`feast_export`].

pub mod consistency;
pub mod demo_data;
pub mod feast_export;
mod fingerprints;
pub mod listing;
pub mod manifest;
pub mod monitor;
pub mod online;
pub mod parity;
pub mod project;
pub mod push;
pub mod reproduce;
pub mod training;

use std::path::PathBuf;

pub use project::{ApplyOutcome, PlanReport, Project};
pub use skewless_defs as defs;
pub use skewless_engine::{session as engine_session, session_with_memory_limit as engine_session_with_memory_limit};
pub use skewless_offline as offline;
pub use skewless_online as online_store;
pub use skewless_profile as profile;
pub use skewless_push_log as push_log;
pub use skewless_registry as registry;
pub use skewless_serving::core as serving;
pub use skewless_serving::entities as serving_entities;
pub use skewless_serving::{ProjectDirs, push_rows, served_log};

/// The version of skewless, recorded in registry entries and run manifests.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The definitions have problems; each names file, line and column.
    #[error("{0}")]
    Invalid(skewless_defs::Diagnostics),
    #[error(transparent)]
    Defs(skewless_defs::Error),
    /// `apply` would break consumers and `--allow-breaking` was not given.
    #[error("refusing to apply breaking changes (pass --allow-breaking to apply them):\n{}", .0.join("\n"))]
    Breaking(Vec<String>),
    /// The registry cannot be read or written, or an `apply` lost its race.
    #[error(transparent)]
    Registry(#[from] skewless_registry::RegistryError),
    #[error("writing {path}: {message}")]
    Write { path: PathBuf, message: String },
    /// A lookup that cannot be answered, with its stable code.
    #[error(transparent)]
    Serve(#[from] serving::RequestError),
    /// Names something the definitions do not hold, with the nearest name when one is close.
    #[error("unknown {kind} `{name}`{}", near.as_ref().map(|n| format!(" (did you mean `{n}`?)")).unwrap_or_default())]
    Unknown {
        kind: skewless_offline::Kind,
        name: String,
        near: Option<String>,
    },
    /// A selection of features that does not resolve.
    #[error(transparent)]
    Selection(#[from] skewless_defs::SelectionError),
    /// A job over online views was given a view that is not online.
    #[error("feature view `{view}` is not online (`online: false`): nothing is materialized for it")]
    NotOnline { view: String },
    /// A materialization window that ends before it starts.
    #[error("--start {} is after --end {}: nothing could be materialized", skewless_serving::json::format_instant(*start), skewless_serving::json::format_instant(*end))]
    StartAfterEnd { start: i64, end: i64 },
    /// A training set's output path that would destroy an input or be misread.
    #[error("--out {}: {problem}", path.display())]
    Output {
        path: PathBuf,
        problem: training::OutputProblem,
    },
    /// A spine that lacks a column the job needs.
    #[error("spine {}: no column `{column}` ({wanted})", path.display())]
    SpineColumn {
        path: PathBuf,
        column: String,
        wanted: &'static str,
    },
    /// A job that compares paths was run on definitions that are not the applied ones.
    #[error("the definitions on disk are not the applied ones, so the paths would compare different definitions: {} (run `skewless apply` first)", .0.join("; "))]
    NotApplied(Vec<String>),
    /// A view of the parity harness's own store could not be materialized.
    #[error("materializing `{view}`: {detail}")]
    Materialize { view: String, detail: String },
    /// A file of pushed rows that cannot be read.
    #[error(transparent)]
    PushFile(#[from] skewless_serving::push_rows::FileError),
    /// A served-values log that cannot be read.
    #[error("served log {}: {detail}", path.display())]
    ServedLog { path: PathBuf, detail: String },
    /// A manifest that cannot be read, or is not one this skewless reads.
    #[error("{}", manifest::manifest_problem(path, problem))]
    Manifest {
        path: PathBuf,
        problem: manifest::ManifestProblem,
    },
    #[error(transparent)]
    Offline(#[from] skewless_offline::Error),
    #[error(transparent)]
    Online(#[from] skewless_online::Error),
    /// A source's files cannot be listed or read.
    #[error(transparent)]
    Source(Box<skewless_sources::Error>),
    /// A push log that cannot be read or written (its directory and what went wrong).
    #[error(transparent)]
    PushLog(#[from] skewless_push_log::LogError),
    /// A training set that cannot be named a service's reference, or a reference that
    /// cannot be read or written.
    #[error("the reference of `{service}`: {problem}")]
    Reference { service: String, problem: String },
    /// A broken invariant: a bug in skewless, to be reported.
    #[error("internal error (a bug, please report it): {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<skewless_serving::Error> for Error {
    fn from(e: skewless_serving::Error) -> Self {
        match e {
            skewless_serving::Error::Request(e) => Error::Serve(e),
            skewless_serving::Error::Registry(e) => Error::Registry(e),
            skewless_serving::Error::Online(e) => Error::Online(e),
            skewless_serving::Error::Invalid(d) => Error::Invalid(d),
        }
    }
}

impl From<skewless_sources::Error> for Error {
    fn from(e: skewless_sources::Error) -> Self {
        Error::Source(Box::new(e))
    }
}
