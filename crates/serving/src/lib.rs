//! `skewless-serving`: what the feature server does with a request, over the applied
//! definitions, compiled once per applied version. It links no training-set code: a lookup
//! or a push reaches the store through the online crate and computes features through the
//! engine's select lists, the same expressions a training set runs.
//!
//! ```text
//! lookup ─ core::Serving::plan ─ entities (typed as read) ─ Serving::get_entities ─ online::lookup (one store read) ─ on-demand ─ GetOutput
//! push   ─ core::Serving::push ─ push_rows (typed as the source) ─ push_log (durable: the ack)
//!                              ─ per online view: engine::view_select, evaluated ─ online store (newer wins, tiles)
//! ```
//!
//! Modules: [`core`] (the serving core and [`RequestError`]), [`push`] and [`push_rows`] (the
//! push path), [`served_log`] (sampled served values for `skewless consistency`), [`json`]
//! (instants and values as text, one convention everywhere).

pub mod core;
pub mod entities;
pub mod json;
pub mod push;
pub mod push_rows;
pub mod served_log;
pub mod view_write;

use std::path::PathBuf;

pub use core::{GetOutput, Plan, RequestError, Serving};
pub use entities::{Entities, Field, FieldTable};
use skewless_registry::Registry;

/// The directories of a project that serving reads: the project root (source files, push
/// logs) and the repository directory (the registry of applied versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectDirs {
    pub root: PathBuf,
    pub repo_dir: PathBuf,
}

impl ProjectDirs {
    pub fn registry(&self) -> Registry {
        Registry::open(&self.repo_dir)
    }
}

/// Why the serving core cannot be built from the applied definitions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing applied, or a request-shaped failure while building.
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Registry(#[from] skewless_registry::RegistryError),
    /// A view whose store layout cannot be made.
    #[error(transparent)]
    Online(#[from] skewless_online::Error),
    /// An on-demand view that does not compile (located in the YAML).
    #[error("{0}")]
    Invalid(skewless_defs::Diagnostics),
}
