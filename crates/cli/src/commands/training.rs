//! Training sets and their manifests: `training-set`, `reproduce`, `check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use skewless::Project;
use skewless::manifest::{manifest_path, read_manifest, write_manifest};
use skewless::training::TrainingSetOptions;

use super::runtime;
use crate::output::{self, print_json};

/// What `training-set` writes beside the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Record {
    Nothing,
    Manifest,
    ManifestAndProfiles,
}

pub(crate) fn training_set(
    project: &Project,
    options: &TrainingSetOptions,
    out: &Path,
    record: Record,
    memory_limit: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let ctx = match memory_limit {
        Some(bytes) => {
            skewless::engine_session_with_memory_limit(bytes).context("creating a memory-limited session")?
        }
        None => skewless::engine_session(),
    };
    let runtime = runtime()?;
    let progress = output::progress_printer();
    let context = || "training set failed";
    let built = if record != Record::Nothing {
        let profile = record == Record::ManifestAndProfiles;
        let (built, manifest) = runtime
            .block_on(project.training_set_recorded(&ctx, options, out, profile, &progress))
            .with_context(context)?;
        let path = manifest_path(out);
        write_manifest(&manifest, &path)?;
        eprintln!(
            "{}manifest: {}",
            if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                "\n"
            } else {
                ""
            },
            path.display()
        );
        built
    } else {
        runtime
            .block_on(project.training_set_written(&ctx, options, out, &progress))
            .with_context(context)?
    };
    for warning in &built.skew_warnings {
        eprintln!("WARNING: training/serving skew: {warning}");
    }
    for (view, q) in built.broke_contracts.iter().filter(|(_, q)| q.rows > 0) {
        eprintln!(
            "{view}: {} rows broke contracts (as the view's on_violation says){}",
            q.rows,
            q.file
                .as_ref()
                .map(|f| format!("; see {}", f.display()))
                .unwrap_or_default()
        );
    }
    let read: usize = built.rows_read.values().sum();
    println!(
        "wrote {} rows × {} features to {} in {:.2}s ({} feature rows read from {} views)",
        built.batch.num_rows(),
        built.features.len(),
        out.display(),
        built.seconds,
        read,
        built.rows_read.len()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn reproduce(manifest: &Path, out: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
    let recorded = read_manifest(manifest)?;
    let keep = out.is_some();
    let out = out.unwrap_or_else(|| {
        let original = &recorded.output.path;
        let mut name = original.file_name().unwrap_or_default().to_os_string();
        name.push(".reproduced.parquet");
        original.with_file_name(name)
    });
    let ctx = skewless::engine_session();
    let report = runtime()?
        .block_on(skewless::reproduce::reproduce(&ctx, manifest, &out))
        .with_context(|| format!("reproducing {}", manifest.display()))?;
    // The re-run's output is kept only where --out asked for it.
    if !keep {
        let _ = std::fs::remove_file(&out);
    }
    if json {
        print_json(&report)?;
    } else if let Some(error) = &report.error {
        println!("NOT reproduced: the re-run failed: {error}");
        for change in &report.changed_inputs {
            println!("  changed: {change}");
        }
    } else if report.output_matches {
        println!("reproduced: output sha256 {} matches", report.reproduced_sha256);
        for change in &report.changed_inputs {
            println!("  note (did not change the output): {change}");
        }
    } else {
        println!(
            "NOT reproduced: output sha256 {} → {}{}",
            report.recorded_sha256,
            report.reproduced_sha256,
            if keep {
                format!(" (re-run's output: {})", out.display())
            } else {
                " (pass --out FILE to keep the re-run's output)".into()
            }
        );
        for change in &report.changed_inputs {
            println!("  changed: {change}");
        }
    }
    Ok(if report.output_matches {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn check(project: &Project, manifest: &Path, strict: bool, json: bool) -> anyhow::Result<ExitCode> {
    let recorded = read_manifest(manifest)?;
    let check = project.check_manifest(&recorded)?;
    let failed = !check.differences.is_empty() || (strict && !check.notes.is_empty());
    if json {
        print_json(&check)?;
    } else {
        let now = check
            .applied_now
            .map_or_else(|| "nothing applied".to_string(), |seq| format!("applied version {seq}"));
        if check.differences.is_empty() {
            println!("compatible: {} is served as it was trained ({now})", manifest.display());
        } else {
            println!("NOT compatible: {} ({now})", manifest.display());
        }
        for difference in &check.differences {
            println!("  differs: {difference}");
        }
        for note in &check.notes {
            println!("  note: {note}");
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
