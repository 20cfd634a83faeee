//! `reproduce`: re-run a manifest's request and compare outputs and inputs.

use std::path::Path;

use datafusion::prelude::SessionContext;

use crate::Result;
use crate::manifest::{ReproduceReport, changed_inputs, read_manifest, short};

/// Re-runs the training set a manifest records, writing the new output to `out`.
///
/// Inputs are compared first, so a re-run that fails (a spine deleted, a feature removed)
/// still reports what changed.
pub async fn reproduce(ctx: &SessionContext, manifest_path: &Path, out: &Path) -> Result<ReproduceReport> {
    let manifest = read_manifest(manifest_path)?;
    let project = manifest.inputs.request.project();
    let options = manifest.inputs.request.options();
    let mut changed = Vec::new();
    match project.capture_inputs(&options) {
        Ok(now) => changed = changed_inputs(&manifest, &now),
        Err(e) => changed.push(format!("inputs cannot be read as recorded: {e}")),
    }
    let rerun = project.training_set_recorded(ctx, &options, out, false, &|_| {}).await;
    let (reproduced_sha256, error) = match rerun {
        Ok((_, now)) => (now.output.sha256, None),
        Err(e) => (String::new(), Some(e.to_string())),
    };
    let output_matches = error.is_none() && reproduced_sha256 == manifest.output.sha256;
    if !output_matches && error.is_none() && changed.is_empty() {
        // Every recorded input matches, yet the output does not: the manifest's output hash
        // was edited, or the build is not deterministic. skewless cannot tell which.
        changed.push(format!(
            "no recorded input changed, yet the output hash differs ({} → {}): the manifest was edited, or this is a determinism bug in skewless (please report it)",
            short(&manifest.output.sha256),
            short(&reproduced_sha256)
        ));
    }
    Ok(ReproduceReport {
        output_matches,
        recorded_sha256: manifest.output.sha256.clone(),
        reproduced_sha256,
        changed_inputs: changed,
        error,
    })
}
