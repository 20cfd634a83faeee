//! The online store: `materialize`, `materialize-incremental`, `push`, `compact`, `get`.

use std::path::Path;
use std::process::ExitCode;

use skewless::Project;
use skewless::online::{MaterializeOptions, format_instant, parse_instant, scalar_to_json};
use skewless::training::FeatureSelection;

use super::{online_store, runtime};
use crate::output::{self, Table, print_json};

pub(crate) fn materialize(
    project: &Project,
    url: Option<&str>,
    options: &MaterializeOptions,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    let reports = runtime.block_on(async {
        let store = online_store(project, url).await?;
        eprintln!("materializing into {}", store.describe());
        let progress = output::materialize_progress_printer();
        anyhow::Ok(project.materialize(&*store, options, &progress).await?)
    })?;
    // Every view ran; the run failed if any view did.
    let code = if reports.iter().any(|r| r.error.is_some()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    };
    if json {
        print_json(&reports)?;
        return Ok(code);
    }
    let mut table = Table::new([
        "view",
        "from",
        "to",
        "rows read",
        "quarantined",
        "broke contracts",
        "keys",
        "with value",
        "written",
        "not newer",
        "seconds",
    ]);
    for r in &reports {
        table.row([
            r.view.clone(),
            r.start.map_or_else(|| "beginning".into(), format_instant),
            format_instant(r.end),
            r.rows_read.to_string(),
            r.rows_quarantined.to_string(),
            r.rows_breaking_contracts.to_string(),
            r.keys.to_string(),
            r.keys_with_value.to_string(),
            r.keys_written.to_string(),
            r.writes_skipped_not_newer.to_string(),
            format!("{:.2}", r.seconds),
        ]);
    }
    table.print();
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| r.error.is_some())
        .map(|r| r.view.as_str())
        .collect();
    for r in reports.iter().filter(|r| r.error.is_some()) {
        eprintln!("error: view `{}`: {}", r.view, r.error.as_deref().unwrap_or_default());
    }
    if !failed.is_empty() {
        eprintln!(
            "{} of {} views failed ({}); the others were materialized",
            failed.len(),
            reports.len(),
            failed.join(", ")
        );
    }
    Ok(code)
}

pub(crate) fn get(
    project: &Project,
    url: Option<&str>,
    selection: &FeatureSelection,
    entities: &[Vec<(String, String)>],
    at: i64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let runtime = runtime()?;
    let found = runtime.block_on(async {
        let store = online_store(project, url).await?;
        let serving = skewless::serving::Serving::new(&project.dirs(), store).map_err(skewless::Error::from)?;
        anyhow::Ok(serving.get(selection, entities, at).await?)
    })?;
    let now = parse_instant("now").map_err(anyhow::Error::msg)?;
    if found.reads_tiles && at < now - skewless::defs::instant::PUSH_AHEAD_MICROS {
        // The server refuses this (PAST_CLOCK); the command line answers, but says so.
        eprintln!(
            "warning: aggregated views are served as of now: at a past --at their values count every row the store holds, also rows that landed later (right only when nothing was written after that instant)"
        );
    }
    let text = |v: &skewless::online_store::Scalar| match scalar_to_json(v) {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    let entity_text = |e: &[(String, skewless::online_store::Scalar)]| {
        e.iter()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect::<Vec<_>>()
            .join(",")
    };
    if json {
        print_json(&skewless::online::lookup_json(&found))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(["entity", "feature", "value", "status", "event_timestamp"]);
    for (entity, row) in found.entities.iter().zip(&found.rows) {
        for (f, v) in found.features.iter().zip(row) {
            table.row([
                entity_text(entity),
                format!("{}:{}", f.view, f.feature),
                text(&v.value),
                v.status.name().to_string(),
                v.event_timestamp.map(format_instant).unwrap_or_default(),
            ]);
        }
    }
    table.print();
    eprintln!("as of {}", format_instant(found.at));
    if found.stats.other_version > 0 || found.stats.corrupt > 0 {
        eprintln!(
            "note: {} values were written under another view version and {} did not parse; they read as NOT_FOUND (materialize again)",
            found.stats.other_version, found.stats.corrupt
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `skewless push`: rows from a file, logged durably, then written online.
pub(crate) fn push(
    project: &Project,
    url: Option<&str>,
    source: &str,
    file: &Path,
    id: Option<String>,
    offline_only: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let to = if offline_only {
        skewless::push::PushTo::Offline
    } else {
        skewless::push::PushTo::OnlineAndOffline
    };
    let report = runtime()?.block_on(async {
        let store = online_store(project, url).await?;
        let now = parse_instant("now").map_err(anyhow::Error::msg)?;
        anyhow::Ok(project.push_file(&*store, source, file, id, to, now).await?)
    })?;
    if json {
        print_json(&report)?;
    } else if !report.appended {
        println!(
            "push id seen before: nothing written ({} rows in this push)",
            report.rows
        );
    } else {
        println!(
            "pushed {} rows to `{}`: logged in {}",
            report.rows,
            report.source,
            report.logged.as_deref().unwrap_or("-")
        );
        for (view, w) in &report.views {
            println!(
                "  {view}: {} keys written, {} not newer than the store's",
                w.written, w.skipped_not_newer
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `skewless compact`: a source's push log segments merged into one.
pub(crate) fn compact(project: &Project, source: &str) -> anyhow::Result<ExitCode> {
    let done = project.compact(source)?;
    if done.folded > 0 {
        println!(
            "`{source}`: pushes folded from the journal into a segment: {}",
            done.folded
        );
    }
    if done.segments == 0 {
        println!("`{source}`: fewer than two segments, nothing to merge");
    } else {
        println!(
            "`{source}`: merged {} segments ({} rows) into one",
            done.segments, done.rows
        );
    }
    if done.leftovers_removed > 0 {
        println!(
            "  removed {} segments an interrupted compaction had replaced",
            done.leftovers_removed
        );
    }
    Ok(ExitCode::SUCCESS)
}
