//! `skewless`: the command-line tool. Argument parsing and printing only; every decision is
//! made in the `skewless` facade crate.

mod args;
mod output;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use std::path::{Path, PathBuf};

use skewless::listing;
use skewless::manifest::{manifest_path, read_manifest, write_manifest};
use skewless::online::{MaterializeOptions, format_instant, parse_instant, scalar_to_json};
use skewless::online_store::{OnlineStore, StoreConfig};
use skewless::training::{FeatureSelection, TrainingSetOptions};
use skewless::{ApplyOutcome, Error, Project};
use std::sync::Arc;

use crate::args::{Cli, Command, ListKind, RegistryCommand};
use crate::output::{Table, print_json};

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
    match cli.command {
        Command::Validate { data, json } => validate(&project, data, json),
        Command::Plan { json } => plan(&project, json),
        Command::Apply {
            allow_breaking,
            expect_version,
            json,
        } => apply(&project, allow_breaking, expect_version, json),
        Command::List { kind, json } => list(&project, kind, json),
        Command::Registry { command } => registry(&project, command),
        Command::TrainingSet {
            spine,
            selection,
            out,
            full_names,
            timestamp_column,
            no_manifest,
            memory_limit,
        } => {
            let options = TrainingSetOptions {
                spine,
                selection: selection.into_selection(),
                timestamp_column,
                full_names,
            };
            training_set(&project, &options, &out, !no_manifest, memory_limit)
        }
        Command::Reproduce { manifest, out, json } => reproduce(&manifest, out, json),
        Command::Check { manifest, strict, json } => check(&project, &manifest, strict, json),
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
                Some(runtime()?.block_on(online_store(&project, cli.online.as_deref()))?)
            } else {
                None
            };
            let options = skewless::parity::ParityOptions {
                spine,
                selection: selection.into_selection(),
                timestamp_column,
                at: at.iter().map(|t| instant(t)).collect::<anyhow::Result<_>>()?,
                sample,
                seed,
                store,
                planted: None,
            };
            parity(&project, &options, json)
        }
        Command::Materialize { start, run } => {
            let options = MaterializeOptions {
                start: start.as_deref().map(instant).transpose()?,
                end: instant(&run.end)?,
                incremental: false,
                views: run.views,
            };
            materialize(&project, cli.online.as_deref(), &options, run.json)
        }
        Command::MaterializeIncremental { run } => {
            let options = MaterializeOptions {
                start: None,
                end: instant(&run.end)?,
                incremental: true,
                views: run.views,
            };
            materialize(&project, cli.online.as_deref(), &options, run.json)
        }
        Command::Push {
            source,
            file,
            id,
            offline_only,
            json,
        } => {
            let to = if offline_only {
                skewless::push::PushTo::Offline
            } else {
                skewless::push::PushTo::OnlineAndOffline
            };
            let report = runtime()?.block_on(async {
                let store = online_store(&project, cli.online.as_deref()).await?;
                let now = parse_instant("now").map_err(anyhow::Error::msg)?;
                anyhow::Ok(project.push_file(&*store, &source, &file, id, to, now).await?)
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
        Command::Consistency { log, json } => {
            let ctx = skewless::engine_session();
            let report = runtime()?.block_on(project.consistency(&ctx, &log))?;
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
        Command::Compact { source } => {
            let done = project.compact(&source)?;
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
        Command::Get {
            selection,
            entities,
            at,
            json,
        } => get(
            &project,
            cli.online.as_deref(),
            &selection.into_selection(),
            &entities,
            instant(&at)?,
            json,
        ),
        Command::Serve {
            addr,
            max_body,
            max_entities,
            max_features,
            request_timeout,
            max_push_body,
            max_push_rows,
            header_timeout,
            body_timeout,
            max_connections,
            max_push_in_flight,
            shutdown_grace,
            log_served,
            log_sample,
            log_max_bytes,
            api_keys,
            allowed_hosts,
            allow_past_clock,
            threads,
        } => {
            let limits = skewless_server::Limits {
                max_body_bytes: max_body,
                max_entities,
                max_features,
                request_timeout,
                max_push_body_bytes: max_push_body,
                max_push_rows,
                header_timeout,
                body_timeout,
                max_connections,
                max_push_bytes_in_flight: max_push_in_flight,
                shutdown_grace,
            };
            limits.validate().map_err(anyhow::Error::msg)?;
            // NaN fails this too.
            if !(0.0..=1.0).contains(&log_sample) {
                anyhow::bail!("--log-sample must be a share between 0 and 1, found {log_sample}");
            }
            let api_keys = match (api_keys, std::env::var("SKEWLESS_API_KEYS")) {
                (Some(file), _) => Some(skewless_server::ApiKeys::from_file(&file).map_err(anyhow::Error::msg)?),
                (None, Ok(keys)) => Some(
                    skewless_server::ApiKeys::parse(&keys).map_err(|e| anyhow::anyhow!("SKEWLESS_API_KEYS: {e}"))?,
                ),
                (None, Err(_)) => None,
            };
            let threads = threads
                .or_else(|| std::thread::available_parallelism().ok())
                .map_or(1, std::num::NonZeroUsize::get);
            serve(
                &project,
                cli.online.as_deref(),
                &addr,
                threads,
                skewless_server::Options {
                    limits,
                    api_keys,
                    allowed_hosts: allowed_hosts.unwrap_or_default(),
                    allow_past_clock,
                    handoff: None,
                    served_log: log_served.map(|dir| skewless::served_log::ServedLogOptions {
                        dir,
                        sample: log_sample,
                        max_bytes: log_max_bytes as u64,
                    }),
                },
            )
        }
        Command::DemoData { out, seed } => {
            let written = skewless::demo_data::generate(&out, seed)
                .with_context(|| format!("generating demo data in {}", out.display()))?;
            for w in written {
                println!("wrote {:>6} rows  {}", w.rows, w.file.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
}

fn instant(text: &str) -> anyhow::Result<i64> {
    parse_instant(text).map_err(anyhow::Error::msg)
}

/// Opens the configured online store (default: the embedded one in the repository).
fn store_config(project: &Project, url: Option<&str>) -> anyhow::Result<StoreConfig> {
    Ok(match url {
        Some(url) => StoreConfig::parse(url)?,
        None => StoreConfig::default_for(&project.repo_dir),
    })
}

/// The configured store; an embedded one held by a running server is reached through it.
async fn online_store(project: &Project, url: Option<&str>) -> anyhow::Result<Arc<dyn OnlineStore>> {
    Ok(skewless::online_store::open(&store_config(project, url)?).await?)
}

fn materialize(
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

/// `skewless serve`: the sharded server of [`skewless_server::sharded`] until ctrl-c or
/// SIGTERM; SIGHUP makes every thread look for a new `apply` at once.
fn serve(
    project: &Project,
    url: Option<&str>,
    addr: &str,
    threads: usize,
    options: skewless_server::Options,
) -> anyhow::Result<ExitCode> {
    let config = skewless_server::ServeConfig {
        project: project.clone(),
        store: store_config(project, url)?,
        addr: addr.to_string(),
        threads,
        options,
        registry_poll: std::time::Duration::from_secs(1),
    };
    let running = skewless_server::start(config, |event| match event {
        skewless_server::ServeEvent::Reloaded { applied_seq } => eprintln!("now serving applied version {applied_seq}"),
        skewless_server::ServeEvent::ReloadFailed { message } => {
            eprintln!("error: the newly applied version cannot be served (the previous one stays): {message}")
        }
    })?;
    eprintln!(
        "serving applied version {} from {} on http://{} with {threads} thread{}{}",
        running.applied_seq(),
        running.described(),
        running.local_addr(),
        if threads == 1 { "" } else { "s" },
        if running.requires_api_keys() {
            " (API keys required)"
        } else {
            ""
        }
    );
    let reloader = running.reloader();
    running.wait(async move {
        #[cfg(unix)]
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    reloader.reload();
                }
            });
        }
        shutdown_signal().await;
    })?;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn get(
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
        let serving = skewless::serving::Serving::new(project, store)?;
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
        let results: Vec<serde_json::Value> = found
            .entities
            .iter()
            .zip(&found.rows)
            .map(|(entity, row)| {
                let features: serde_json::Map<String, serde_json::Value> = found
                    .features
                    .iter()
                    .zip(row)
                    .map(|(f, v)| {
                        (
                            format!("{}:{}", f.view, f.feature),
                            serde_json::json!({
                                "value": scalar_to_json(&v.value),
                                "status": v.status.name(),
                                "event_timestamp": v.event_timestamp.map(format_instant),
                            }),
                        )
                    })
                    .collect();
                serde_json::json!({
                    "entity": entity.iter().map(|(k, v)| (k.clone(), scalar_to_json(v))).collect::<serde_json::Map<_, _>>(),
                    "features": features,
                })
            })
            .collect();
        print_json(&serde_json::json!({
            "at": format_instant(found.at),
            "results": results,
            "versions": &*found.served,
            "stats": {
                "keys_read": found.stats.keys_read,
                "other_version": found.stats.other_version,
                "corrupt": found.stats.corrupt,
            },
        }))?;
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

fn training_set(
    project: &Project,
    options: &TrainingSetOptions,
    out: &Path,
    with_manifest: bool,
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
    let built = if with_manifest {
        let (built, manifest) = runtime
            .block_on(project.training_set_recorded(&ctx, options, out, &progress))
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

fn parity(project: &Project, options: &skewless::parity::ParityOptions, json: bool) -> anyhow::Result<ExitCode> {
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

fn check(project: &Project, manifest: &Path, strict: bool, json: bool) -> anyhow::Result<ExitCode> {
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

fn reproduce(manifest: &Path, out: Option<PathBuf>, json: bool) -> anyhow::Result<ExitCode> {
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

fn validate(project: &Project, data: bool, json: bool) -> anyhow::Result<ExitCode> {
    let result = project.load();
    let mut errors: Vec<serde_json::Value> = match &result {
        Ok(_) => Vec::new(),
        Err(Error::Invalid(d)) if json => d.iter().map(|d| serde_json::json!(d)).collect(),
        Err(_) => {
            return Err(result
                .err()
                .map(anyhow::Error::from)
                .unwrap_or_else(|| anyhow::anyhow!("unreachable")));
        }
    };
    let Ok(defs) = result else {
        print_json(&serde_json::json!({ "valid": false, "errors": errors }))?;
        return Ok(ExitCode::FAILURE);
    };
    let problems = if data {
        project.check_data(&defs).context("checking the data")?
    } else {
        Vec::new()
    };
    if json {
        errors.extend(problems.iter().map(|p| {
            serde_json::json!({
                "source": p.source,
                "file": p.file,
                "row": p.row,
                "view": p.feature.as_ref().map(|f| &f.0),
                "feature": p.feature.as_ref().map(|f| &f.1),
                "message": p.to_string(),
            })
        }));
        print_json(&serde_json::json!({ "valid": errors.is_empty(), "errors": errors }))?;
        return Ok(if errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("error: {p}");
        }
        eprintln!("{} problems in the data", problems.len());
        return Ok(ExitCode::FAILURE);
    }
    let features: usize = defs.feature_views.values().map(|v| v.features.len()).sum::<usize>()
        + defs.on_demand_views.values().map(|v| v.features.len()).sum::<usize>();
    println!(
        "ok: project `{}`: {} entities, {} sources, {} feature views, {} on-demand views, {} features, {} services{}",
        defs.project,
        defs.entities.len(),
        defs.sources.len(),
        defs.feature_views.len(),
        defs.on_demand_views.len(),
        features,
        defs.feature_services.len(),
        if data { "; every source row evaluates" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

fn plan(project: &Project, json: bool) -> anyhow::Result<ExitCode> {
    let report = project.plan().context("planning")?;
    if json {
        print_json(&serde_json::json!({ "applied_seq": report.applied_seq, "changes": report.plan.changes }))?;
        return Ok(ExitCode::SUCCESS);
    }
    match report.applied_seq {
        Some(seq) => println!("Plan against applied version {seq}:"),
        None => println!("Plan (nothing applied yet):"),
    }
    output::print_plan(&report.plan);
    Ok(ExitCode::SUCCESS)
}

fn apply(project: &Project, allow_breaking: bool, expect: Option<u64>, json: bool) -> anyhow::Result<ExitCode> {
    let outcome = project.apply(allow_breaking, expect).context("applying")?;
    match outcome {
        ApplyOutcome::UpToDate { seq } => {
            if json {
                print_json(&serde_json::json!({ "applied_seq": seq, "changed": false }))?;
            } else {
                println!("Nothing to apply: the registry already holds these definitions (version {seq}).");
            }
        }
        ApplyOutcome::Applied(record) => {
            if json {
                print_json(
                    &serde_json::json!({ "applied_seq": record.seq, "changed": true, "changes": record.changes.changes }),
                )?;
            } else {
                output::print_plan(&record.changes);
                println!("Applied as version {} ({}).", record.seq, project.repo_dir.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list(project: &Project, kind: ListKind, json: bool) -> anyhow::Result<ExitCode> {
    let defs = project.load().context("loading definitions")?;
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    match kind {
        ListKind::Views => {
            let rows = listing::views(&defs);
            if json {
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new([
                "VIEW", "KIND", "ENTITIES", "TTL", "AS_OF", "ONLINE", "FEATURES", "OWNER", "VERSION",
            ]);
            for r in rows {
                t.row([
                    r.name,
                    r.kind.replace('_', "-"),
                    if r.entities.is_empty() {
                        "-".into()
                    } else {
                        r.entities.join(",")
                    },
                    opt(&r.ttl),
                    r.as_of.unwrap_or("-").into(),
                    r.online.to_string(),
                    r.features.to_string(),
                    opt(&r.owner),
                    r.version,
                ]);
            }
            t.print();
        }
        ListKind::Features => {
            let rows = listing::features(&defs);
            if json {
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new(["FEATURE", "TYPE", "TTL", "OWNER", "VERSION", "EXPR"]);
            for r in rows {
                t.row([
                    format!("{}:{}", r.view, r.feature),
                    r.ty,
                    opt(&r.ttl),
                    opt(&r.owner),
                    r.view_version,
                    r.expr,
                ]);
            }
            t.print();
        }
        ListKind::Services => {
            let rows = listing::services(&defs);
            if json {
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new(["SERVICE", "OWNER", "VERSION", "FEATURES"]);
            for r in rows {
                t.row([r.name, opt(&r.owner), r.version, r.features.join(", ")]);
            }
            t.print();
        }
        ListKind::Entities => {
            let rows = listing::entities(&defs);
            if json {
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new(["ENTITY", "KEYS", "VERSION", "DESCRIPTION"]);
            for r in rows {
                t.row([r.name, r.keys.join(", "), r.version, opt(&r.description)]);
            }
            t.print();
        }
        ListKind::Sources => {
            let rows = listing::sources(&defs);
            if json {
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new(["SOURCE", "PATH", "FORMAT", "TIMESTAMP", "CREATED", "PUSH", "VERSION"]);
            for r in rows {
                t.row([
                    r.name,
                    opt(&r.path),
                    r.format.unwrap_or("-").into(),
                    r.timestamp,
                    opt(&r.created),
                    r.push.to_string(),
                    r.version,
                ]);
            }
            t.print();
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn registry(project: &Project, command: RegistryCommand) -> anyhow::Result<ExitCode> {
    let registry = project.registry();
    match command {
        RegistryCommand::Log { json } => {
            let history = registry.history().context("reading the registry")?;
            if json {
                let rows: Vec<_> = history
                    .iter()
                    .map(|r| serde_json::json!({ "seq": r.seq, "applied_at": r.applied_at, "skewless_version": r.skewless_version, "text_hash": r.text_hash, "changes": r.changes.changes.len() }))
                    .collect();
                return print_json(&rows).map(|_| ExitCode::SUCCESS);
            }
            let mut t = Table::new(["VERSION", "APPLIED_AT", "CHANGES", "BREAKING", "TEXT_HASH"]);
            for r in history {
                let breaking = r.changes.breaking().count();
                t.row([
                    r.seq.to_string(),
                    r.applied_at.to_rfc3339(),
                    r.changes.changes.len().to_string(),
                    breaking.to_string(),
                    skewless::manifest::short(&r.text_hash).to_string(),
                ]);
            }
            t.print();
        }
        RegistryCommand::Show { seq } => {
            let record = match seq {
                Some(seq) => registry.get(seq)?,
                None => registry.latest()?.context("nothing has been applied yet")?,
            };
            print_json(&record)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
