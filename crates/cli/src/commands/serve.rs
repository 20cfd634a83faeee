//! `skewless serve`: arguments to options, signals to the sharded server.

use std::process::ExitCode;

use skewless::Project;

use super::store_config;
use crate::args::ServeArgs;

/// `skewless serve`: the options from the arguments, then the sharded server.
pub(crate) fn run(project: &Project, url: Option<&str>, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let ServeArgs {
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
    } = args;
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
        (None, Ok(keys)) => {
            Some(skewless_server::ApiKeys::parse(&keys).map_err(|e| anyhow::anyhow!("SKEWLESS_API_KEYS: {e}"))?)
        }
        (None, Err(_)) => None,
    };
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, std::num::NonZeroUsize::get);
    serve(
        project,
        url,
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
        skewless_server::ServeEvent::ReloadFailed { shard, message } => eprintln!(
            "error: serving thread {shard}: the newly applied version cannot be served (the previous one stays): {message}"
        ),
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
