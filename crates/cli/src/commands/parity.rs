//! Training and serving compared: `parity`, `consistency`.

use std::path::Path;
use std::process::ExitCode;

use skewless::Project;

use super::runtime;
use crate::output::{self, print_json};

pub(crate) fn parity(
    project: &Project,
    options: &skewless::parity::ParityOptions,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let ctx = skewless::engine_session();
    let report = runtime()?.block_on(project.parity(&ctx, options))?;
    if json {
        print_json(&report)?;
    } else {
        println!(
            "parity: {} entities at {} ({} values)",
            report.entities,
            report.instants.join(", "),
            report.values()
        );
        println!(
            "{:<24} {:>8} {:>8} {:>10} {:>6}  online path",
            "view", "values", "present", "mismatches", "late"
        );
        for (view, v) in &report.views {
            println!(
                "{view:<24} {:>8} {:>8} {:>10} {:>6}  {}",
                v.values, v.present, v.mismatches, v.late, v.online_path
            );
        }
        if report.views.values().any(|v| v.late > 0) {
            println!(
                "late: equal on both paths, but the winning row landed after the instant; a store fed as rows \
arrived could not have served it then (as_of: event views; as_of: available avoids this)"
            );
        }
        for m in report.mismatches.iter().take(20) {
            println!(
                "MISMATCH {}:{} for {} at {}: offline {}, online {} ({}): {}",
                m.view, m.feature, m.key, m.at, m.offline, m.online, m.status, m.cause
            );
        }
        if report.mismatches.len() > 20 {
            println!("… and {} more (use --json for all)", report.mismatches.len() - 20);
        }
        if report.mismatches.is_empty() {
            println!("0 mismatches: training and serving agree");
        }
    }
    Ok(if report.mismatches.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `skewless consistency`: logged lookups recomputed offline.
pub(crate) fn consistency(project: &Project, log: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let ctx = skewless::engine_session();
    let report = runtime()?.block_on(project.consistency(&ctx, log))?;
    if json {
        print_json(&report)?;
    } else {
        println!("consistency: {} logged lookups recomputed offline", report.lookups);
        let mut table = output::Table::new(["feature", "values", "mismatches", "rate", "likeliest causes"]);
        for (feature, f) in &report.features {
            let rate = if f.values == 0 {
                0.0
            } else {
                f.mismatches as f64 / f.values as f64
            };
            let causes: Vec<String> = f.causes.iter().map(|(c, n)| format!("{n}× {c}")).collect();
            table.row([
                feature.clone(),
                f.values.to_string(),
                f.mismatches.to_string(),
                format!("{:.4}", rate),
                causes.join("; "),
            ]);
        }
        table.print();
        for feature in &report.undefined {
            println!("not compared: `{feature}` is no longer defined");
        }
    }
    Ok(if report.mismatches() > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
