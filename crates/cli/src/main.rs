//! `skewless`: the command-line tool. Argument dispatch only: each command's printing lives in
//! its module under `commands/`, and every decision is made in the library crates.

mod args;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;
use skewless::online::MaterializeOptions;
use skewless::training::TrainingSetOptions;
use skewless::{Error, Project};

use crate::args::{Cli, Command};
use crate::commands::{instant, monitor, online, online_store, parity, project, runtime, serve, training};

/// Where the last panic happened and what it said; printed only if nothing contained it.
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    // Panics inside dependencies (a decoder meeting a damaged file, say) are contained where
    // they happen and reported as that file's error; the hook only remembers them, so a
    // contained panic prints nothing, and one that reaches `main` is reported once, below.
    std::panic::set_hook(Box::new(|info| {
        let message = skewless::offline::check::panic_message(info.payload());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(format!("{message}{at}"));
        }
    }));
    match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            // Definition problems are already formatted one per line; other errors get their chain.
            match e.downcast_ref::<Error>() {
                Some(Error::Invalid(d)) => eprintln!("{d}"),
                _ => eprintln!("error: {}", error_chain(&e)),
            }
            ExitCode::FAILURE
        }
        Err(_) => {
            let last = LAST_PANIC.lock().ok().and_then(|l| l.clone()).unwrap_or_default();
            eprintln!("internal error (a bug in skewless, please report it): panic: {last}");
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes, each said once: a cause whose text the message already holds
/// (wrapped engine errors repeat their source) is left out.
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let project = Project::new(&cli.defs, &cli.repo);
    let url = cli.online.as_deref();
    match cli.command {
        Command::Validate { data, json } => project::validate(&project, data, json),
        Command::Plan { json } => project::plan(&project, json),
        Command::Apply {
            allow_breaking,
            expect_version,
            json,
        } => project::apply(&project, allow_breaking, expect_version, json),
        Command::List { kind, json } => project::list(&project, kind, json),
        Command::Registry { command } => project::registry(&project, command),
        Command::Export { target } => project::export(&project, target),
        Command::DemoData { out, seed } => project::demo_data(&out, seed),
        Command::TrainingSet {
            spine,
            selection,
            out,
            full_names,
            timestamp_column,
            no_manifest,
            no_profile,
            memory_limit,
        } => {
            let options = TrainingSetOptions {
                spine: spine.into(),
                selection: selection.into_selection(),
                timestamp_column,
                full_names,
            };
            let record = match (no_manifest, no_profile) {
                (true, _) => training::Record::Nothing,
                (false, true) => training::Record::Manifest,
                (false, false) => training::Record::ManifestAndProfiles,
            };
            training::training_set(&project, &options, &out, record, memory_limit)
        }
        Command::Profile {
            manifest,
            features,
            json,
        } => monitor::profile(&manifest, &features, json),
        Command::Monitor { command } => monitor::monitor(&project, command),
        Command::Drift {
            manifests,
            psi,
            null_rate,
            json,
        } => match manifests.as_slice() {
            [reference, current] => monitor::drift(reference, current, monitor::Thresholds { psi, null_rate }, json),
            _ => anyhow::bail!(
                "give two manifests, the reference first: --manifest REFERENCE --manifest CURRENT (got {})",
                manifests.len()
            ),
        },
        Command::Reproduce { manifest, out, json } => training::reproduce(&manifest, out, json),
        Command::Check { manifest, strict, json } => training::check(&project, &manifest, strict, json),
        Command::Parity {
            spine,
            selection,
            timestamp_column,
            at,
            sample,
            seed,
            against_store,
            json,
        } => {
            let store = if against_store {
                Some(runtime()?.block_on(online_store(&project, url))?)
            } else {
                None
            };
            let options = skewless::parity::ParityOptions {
                spine: spine.into(),
                selection: selection.into_selection(),
                timestamp_column,
                at: at.iter().map(|t| instant(t)).collect::<anyhow::Result<_>>()?,
                sample,
                seed,
                store,
                planted: None,
            };
            parity::parity(&project, &options, json)
        }
        Command::Materialize { start, run } => {
            let options = MaterializeOptions {
                start: start.as_deref().map(instant).transpose()?,
                end: instant(&run.end)?,
                incremental: false,
                views: run.views,
            };
            online::materialize(&project, url, &options, run.json)
        }
        Command::MaterializeIncremental { run } => {
            let options = MaterializeOptions {
                start: None,
                end: instant(&run.end)?,
                incremental: true,
                views: run.views,
            };
            online::materialize(&project, url, &options, run.json)
        }
        Command::Push {
            source,
            file,
            id,
            offline_only,
            json,
        } => online::push(&project, url, &source, &file, id, offline_only, json),
        Command::Consistency { log, json } => parity::consistency(&project, &log, json),
        Command::Compact { source } => online::compact(&project, &source),
        Command::Get {
            selection,
            entities,
            at,
            json,
        } => online::get(
            &project,
            url,
            &selection.into_selection(),
            &entities,
            instant(&at)?,
            json,
        ),
        Command::Serve(args) => serve::run(&project, url, args),
    }
}
