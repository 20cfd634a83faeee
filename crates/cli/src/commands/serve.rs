//! `skewless serve`: arguments to options, signals to the sharded server.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use skewless::Project;
use skewless_server::{MaterializeError, MaterializeRequest};

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
        flight,
        flight_max_upload,
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
    limits.validate()?;
    // NaN fails this too.
    if !(0.0..=1.0).contains(&log_sample) {
        anyhow::bail!("--log-sample must be a share between 0 and 1, found {log_sample}");
    }
    let api_keys = match (api_keys, std::env::var("SKEWLESS_API_KEYS")) {
        (Some(file), _) => Some(skewless_server::ApiKeys::from_file(&file)?),
        (None, Ok(keys)) => {
            Some(skewless_server::ApiKeys::parse(&keys).map_err(|e| anyhow::anyhow!("SKEWLESS_API_KEYS: {e}"))?)
        }
        (None, Err(_)) => None,
    };
    let threads = threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, std::num::NonZeroUsize::get);
    // The Flight port demands the same keys as the HTTP one.
    let authorize = api_keys.clone().map(|keys| {
        Arc::new(move |authorization: Option<&[u8]>| keys.admits(authorization)) as skewless_flight::Authorize
    });
    let flight = flight
        .map(|addr| {
            start_flight(
                project,
                &addr,
                skewless_flight::FlightOptions {
                    max_upload_bytes: flight_max_upload,
                    authorize,
                },
            )
        })
        .transpose()?;
    // Drift of served values against each service's reference: those named now, and those
    // named while serving (looked for every few seconds).
    let references = project.references()?;
    if !references.is_empty() {
        eprintln!("measuring drift against the references of {}", services(&references));
    }
    let monitor = Arc::new(skewless_server::monitor::Monitor::new(&references));
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    {
        let (project, monitor, watching) = (project.clone(), Arc::clone(&monitor), Arc::clone(&watching));
        std::thread::Builder::new()
            .name("skewless-references".into())
            .spawn(move || {
                let mut reported = None;
                while watching.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(REFERENCES_EVERY);
                    match project.references() {
                        Ok(references) => {
                            if monitor.refresh(&references) {
                                eprintln!("drift references now: {}", services(&references));
                            }
                            reported = None;
                        }
                        Err(e) if reported.as_ref() != Some(&e.to_string()) => {
                            eprintln!("skewless serve: the drift references stay as they were: {e}");
                            reported = Some(e.to_string());
                        }
                        Err(_) => {}
                    }
                }
            })?;
    }
    let monitor = Some(monitor);
    let served = serve(
        project,
        url,
        &addr,
        threads,
        flight.as_ref().map(|f| f.addr),
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
            materializer: Some(Arc::new(ProjectMaterializer {
                project: project.clone(),
            })),
            monitor,
        },
    );
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    if let Some(flight) = flight {
        flight.stop();
    }
    served
}

/// How often `serve` looks for references named or changed while it runs.
const REFERENCES_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

fn services(references: &std::collections::BTreeMap<String, skewless::profile::reference::Reference>) -> String {
    if references.is_empty() {
        return "none".into();
    }
    references
        .keys()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Feast's remote offline store ([`skewless_flight`]) on a thread and runtime of its own:
/// training sets are CPU work the serving threads must not carry.
struct FlightServer {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl FlightServer {
    /// Stops taking calls and waits for the server's thread, which first lets the calls in
    /// progress finish (tonic's graceful shutdown).
    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// Binds `addr` at once (a taken port fails `serve` before it says it serves), then serves
/// Flight on its own thread.
fn start_flight(
    project: &Project,
    addr: &str,
    options: skewless_flight::FlightOptions,
) -> anyhow::Result<FlightServer> {
    use anyhow::Context as _;
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("--flight {addr}: cannot listen"))?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let project = project.clone();
    let events: Arc<dyn Fn(skewless_flight::FlightEvent) + Send + Sync> = Arc::new(|event| match event {
        skewless_flight::FlightEvent::Answered {
            api,
            rows,
            seconds,
            warnings,
        } => {
            eprintln!("flight: {api}: {rows} rows in {seconds:.2}s");
            for warning in warnings {
                eprintln!("warning: flight: {warning}");
            }
        }
        skewless_flight::FlightEvent::Refused { api, message } => eprintln!("flight: {api} refused: {message}"),
    });
    let runtime = super::runtime()?;
    let thread = std::thread::Builder::new()
        .name("flight".into())
        .spawn(move || {
            runtime.block_on(async move {
                let served = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => skewless_flight::serve(project, listener, options, events, async {
                        let _ = stopped.await;
                    })
                    .await
                    .map_err(anyhow::Error::from),
                    Err(e) => Err(anyhow::Error::from(e).context("--flight: adopting the listener")),
                };
                if let Err(e) = served {
                    eprintln!("error: {e:#}");
                }
            });
        })
        .context("starting the Flight server's thread")?;
    Ok(FlightServer {
        addr: local,
        stop,
        thread,
    })
}

/// Feast's `/materialize` routes: `Project::materialize` into the store served from, on a
/// thread and runtime of its own (the as-of join is CPU work the serving threads must not
/// carry).
#[derive(Debug)]
struct ProjectMaterializer {
    project: Project,
}

impl skewless_server::Materializer for ProjectMaterializer {
    fn materialize(
        &self,
        store: Arc<dyn skewless::online_store::OnlineStore>,
        request: MaterializeRequest,
    ) -> Pin<Box<dyn Future<Output = Result<serde_json::Value, MaterializeError>> + Send>> {
        let project = self.project.clone();
        let (done, answer) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new().name("materialize".into()).spawn(move || {
            let options = skewless::online::MaterializeOptions {
                start: request.start,
                end: request.end,
                incremental: request.incremental,
                views: request.views,
            };
            let result = super::runtime()
                .map_err(|e| MaterializeError::Failed(format!("{e:#}")))
                .and_then(|runtime| {
                    runtime
                        .block_on(project.materialize(&*store, &options, &|_| {}))
                        .map(|views| serde_json::json!({ "views": views }))
                        .map_err(|e| match e {
                            e @ (skewless::Error::Unknown { .. }
                            | skewless::Error::NotOnline { .. }
                            | skewless::Error::StartAfterEnd { .. }) => MaterializeError::Refused(e.to_string()),
                            other => MaterializeError::Failed(other.to_string()),
                        })
                });
            let _ = done.send(result);
        });
        Box::pin(async move {
            spawned.map_err(|e| MaterializeError::Failed(format!("starting the materialization thread: {e}")))?;
            answer
                .await
                .unwrap_or_else(|_| Err(MaterializeError::Failed("the materialization thread stopped".into())))
        })
    }
}

/// `skewless serve`: the sharded server of [`skewless_server::sharded`] until ctrl-c or
/// SIGTERM; SIGHUP makes every thread look for a new `apply` at once.
fn serve(
    project: &Project,
    url: Option<&str>,
    addr: &str,
    threads: usize,
    flight: Option<std::net::SocketAddr>,
    options: skewless_server::Options,
) -> anyhow::Result<ExitCode> {
    recover_pushes(project, url)?;
    let config = skewless_server::ServeConfig {
        project: project.dirs(),
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
    let serving = format!(
        "serving applied version {} from {} on http://{} with {threads} thread{}{}{}",
        running.applied_seq(),
        running.described(),
        running.local_addr(),
        if threads == 1 { "" } else { "s" },
        if running.requires_api_keys() {
            " (API keys required)"
        } else {
            ""
        },
        flight
            .map(|a| format!(", and Feast's offline store on grpc://{a}"))
            .unwrap_or_default()
    );
    let reloader = running.reloader();
    running.wait(async move {
        // The signals are caught before the server says it serves: a SIGTERM sent as soon as
        // that line appears stops it cleanly.
        let stop = match Signals::catch() {
            Ok(stop) => stop,
            Err(e) => {
                eprintln!("error: cannot catch ctrl-c and SIGTERM ({e}): stopping");
                return;
            }
        };
        #[cfg(unix)]
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    reloader.reload();
                }
            });
        }
        eprintln!("{serving}");
        stop.received().await;
    })?;
    eprintln!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Before it listens, the server brings the store up to the push logs
/// ([`Project::recover_pushes`]): an acknowledged push that a crash kept from the store is
/// served. A view that cannot be recovered is reported and the others are served.
fn recover_pushes(project: &Project, url: Option<&str>) -> anyhow::Result<()> {
    let now = super::instant("now")?;
    let recovered = super::runtime()?.block_on(async {
        let store = super::online_store(project, url).await?;
        let only_results = |event: skewless::online::MaterializeProgress| match event {
            skewless::online::MaterializeProgress::Done(r) if r.error.is_none() => eprintln!(
                "brought `{}` up to its push log: {} keys written, {} not newer, {} rows read in {:.2}s",
                r.view, r.keys_written, r.writes_skipped_not_newer, r.rows_read, r.seconds
            ),
            skewless::online::MaterializeProgress::Warning(w) => eprintln!("warning: {w}"),
            _ => {}
        };
        anyhow::Ok(project.recover_pushes(&*store, now, &only_results).await?)
    });
    match recovered {
        Ok(reports) => {
            for failed in reports.iter().filter(|r| r.error.is_some()) {
                eprintln!(
                    "warning: view `{}` was not brought up to its push log ({}): rows pushed since its last \
                     materialization may be missing online until `skewless materialize-incremental` succeeds",
                    failed.view,
                    failed.error.as_deref().unwrap_or_default()
                );
            }
        }
        // Nothing applied: the server says so itself as it starts.
        Err(e)
            if matches!(
                e.downcast_ref(),
                Some(skewless::Error::Serve(skewless::serving::RequestError::NothingApplied))
            ) => {}
        Err(e) => eprintln!("warning: the online store was not brought up to the push logs: {e:#}"),
    }
    Ok(())
}

/// Ctrl-c and SIGTERM, caught from the moment [`Signals::catch`] returns.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    /// Must run inside the runtime.
    fn catch() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Resolves on the first signal caught.
    async fn received(mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
