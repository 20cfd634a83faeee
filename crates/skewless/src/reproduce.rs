//! `reproduce`: re-run a manifest's request and compare outputs and inputs.

use std::path::Path;

use datafusion::prelude::SessionContext;

use crate::manifest::{ReproduceReport, changed_inputs, read_manifest};
use crate::training::write_parquet;
use crate::{Error, Result};

/// Re-runs the training set a manifest records, writing the new output to `out`.
pub async fn reproduce(ctx: &SessionContext, manifest_path: &Path, out: &Path) -> Result<ReproduceReport> {
    let manifest = read_manifest(manifest_path)?;
    let project = manifest.request.project();
    let options = manifest.request.options();
    let built = project.training_set(ctx, &options).await?;
    write_parquet(&built.batch, out)?;
    let now = project.manifest(&options, &built, out)?;
    let report = ReproduceReport {
        output_matches: now.output.sha256 == manifest.output.sha256,
        recorded_sha256: manifest.output.sha256.clone(),
        reproduced_sha256: now.output.sha256.clone(),
        changed_inputs: changed_inputs(&manifest, &now),
    };
    if !report.output_matches && report.changed_inputs.is_empty() {
        // Same inputs, different output: a determinism bug, not a user error.
        return Err(Error::Request(format!(
            "output differs ({} → {}) although no input changed: please report this as a bug",
            &report.recorded_sha256[..12],
            &report.reproduced_sha256[..12]
        )));
    }
    Ok(report)
}
