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
//! [`reproduce`], [`demo_data`].

pub mod consistency;
pub mod demo_data;
pub mod listing;
pub mod manifest;
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
pub use skewless_push_log as push_log;
pub use skewless_registry as registry;
pub use skewless_serving::core as serving;
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
    /// A request that names something that does not exist, or asks the impossible.
    #[error("{0}")]
    Request(String),
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
