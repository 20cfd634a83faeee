//! Rows that break a view's contracts: counted, and kept where a person can read why.
//!
//! Every job that reads a view with contracts (a training set, a materialization) splits its
//! rows by the engine's contract verdict ([`skewless_engine::contracts`]); the breaking rows
//! come here. With `on_violation: quarantine` they were excluded from the candidates, with
//! `null` their breaking features were nulled; either way each is written, with its keys, event
//! time and reason, to `.skewless/quarantine/<view>/<job>-<µs>-<nonce>.parquet`. With `fail`
//! the job stops, naming the first row.
//!
//! Pushes are many and small, so a file per push would bury the directory under a stream that
//! keeps breaking a contract: they append the same columns, one JSON object per line, to one
//! file per view and UTC day, `push-<YYYY-MM-DD>.jsonl` ([`append_rows`]). The pushed rows
//! themselves are in the push log either way; the quarantine says which broke what and why.

use std::path::Path;

use arrow::compute::concat_batches;
use datafusion::prelude::DataFrame;
use skewless_defs::{Definitions, FeatureView};
pub use skewless_sources::quarantine::{Quarantined, append_rows, quarantine_dir};

use crate::Result;

/// Collects `violations` (`[__k.., __ts, __created?, __violation]`, from
/// [`crate::training_set::FeatureFrame`]) and writes them for `job` (`training-set`,
/// `materialize`) ([`skewless_sources::quarantine::write_rows`]).
pub async fn record(
    defs: &Definitions,
    root: &Path,
    view: &FeatureView,
    violations: DataFrame,
    job: &str,
    write: bool,
) -> Result<Quarantined> {
    let batches = violations.collect().await?;
    let Some(first) = batches.first() else {
        return Ok(Quarantined::default());
    };
    let batch = concat_batches(&first.schema(), &batches)?;
    Ok(skewless_sources::quarantine::write_rows(
        defs, root, view, &batch, job, write,
    )?)
}
