//! `skewless-engine`: the one definition of feature computation.
//!
//! Both paths compute features through this crate: the offline path projects source rows
//! through [`compile_view`] before its as-of join, and the online path evaluates the very
//! same expressions on pushed events and requests. That shared compilation is how parity
//! holds by construction rather than by discipline.
//!
//! ```text
//! Definitions + source schema ──compile_view──▶ [key, timestamp, created, feature...] as DataFusion Exprs
//! Definitions + view schemas  ──compile_on_demand──▶ on-demand features as DataFusion Exprs
//! on-demand view ──OnDemandProgram::compile (once)──▶ evaluate(inputs) ──▶ feature arrays (offline and online alike)
//! feature contracts ──contracts::violation──▶ one verdict expression every path acts on
//!                             └─check──▶ every type error, located in the YAML
//! ```
//!
//! What it is not: it reads no files and talks to no server. Schemas come from the caller
//! (the offline crate reads them from Parquet footers and CSV headers).

mod check;
pub mod columns;
mod compile;
pub mod contracts;
mod memory;
mod on_demand;
mod select;
mod types;

pub use check::{SourceSchemas, check};
pub use compile::{
    CompiledFeature, compile_on_demand, compile_view, on_demand_input_schema, physical_expr, session,
    session_with_memory_limit,
};
pub use on_demand::{EvalError, OnDemandInput, OnDemandProgram};
pub use select::{ViewSelect, instant_column, instant_type, view_select};
pub use types::{arrow_type, fits, key_fits, timestamp_fits};

/// Problems compiling an expression; `Invalid` are the user's, `DataFusion` are not.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
