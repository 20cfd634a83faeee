//! The production server: `skewless serve` as a function tests can call.
//!
//! [`start`] binds one port with a listening socket per thread (SO_REUSEPORT: the kernel
//! spreads new connections over them; one socket shared by all would let whichever thread
//! wakes first accept a whole burst), and runs a *shard* per thread: its own current-thread
//! runtime, store connection and [`Live`] serving core, so a request and its store round trip
//! stay on one thread. The shards share one [`Server`] (metrics, limits, the served-values
//! log). An embedded store is opened once and shared (redb allows one opener per file); while
//! the server runs it is lent to other commands through a published handoff file
//! ([`skewless_online::served`]), removed at shutdown. A Redis store is opened once to
//! check it and again per shard: a connection per thread.
//!
//! Each shard keeps its core on the latest applied version ([`watch_registry`]): every
//! `registry_poll`, and at once on [`Reloader::reload`] (SIGHUP in the CLI). [`Running::wait`]
//! serves until a shutdown future resolves or a shard ends on its own (it could not connect,
//! say), then stops every shard, lets requests in flight finish, and joins them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use skewless_online::{OnlineStore, StoreConfig};
use skewless_serving::ProjectDirs;
use skewless_serving::core::Serving;
use tokio::sync::{mpsc, watch};

use crate::{ApiKeys, Live, Options, Server, StoreHandoff, watch_registry};

/// What [`start`] serves, where, and how.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub project: ProjectDirs,
    pub store: StoreConfig,
    /// `host:port`; port 0 picks a free one ([`Running::local_addr`] says which).
    pub addr: String,
    /// Serving threads (shards), at least 1.
    pub threads: usize,
    pub options: Options,
    /// How often each shard looks for a new applied version on its own.
    pub registry_poll: Duration,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("listening on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("serving needs at least one thread")]
    NoThreads,
    #[error("starting {what}: {source}")]
    Start { what: &'static str, source: std::io::Error },
    #[error(transparent)]
    Serving(#[from] skewless_serving::Error),
    #[error(transparent)]
    Store(#[from] skewless_online::Error),
    #[error("serving thread {shard}: {source}")]
    Shard { shard: usize, source: std::io::Error },
    #[error("serving thread {shard} panicked")]
    Panicked { shard: usize },
}

/// What the shards report while serving: a reload in force once (from shard 0), a failure
/// from each shard that meets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeEvent {
    /// A newly applied version is in force.
    Reloaded { applied_seq: u64 },
    /// A newly applied version cannot be served by `shard`; its previous one stays (reported
    /// once per distinct failure).
    ReloadFailed { shard: usize, message: String },
}

/// A started server: serving on [`Running::local_addr`] until [`Running::wait`] stops it.
#[derive(Debug)]
pub struct Running {
    local_addr: SocketAddr,
    applied_seq: u64,
    described: String,
    requires_api_keys: bool,
    /// The runtime that opened the store; it also waits for the shutdown future.
    runtime: tokio::runtime::Runtime,
    stop: watch::Sender<bool>,
    first_end: mpsc::UnboundedReceiver<()>,
    reloader: Reloader,
    shards: Vec<std::thread::JoinHandle<Result<(), ServeError>>>,
    /// The handoff file of a held embedded store; removed when dropped.
    _published: Option<skewless_online::served::Published>,
}

/// Makes every shard look for a new applied version at once.
#[derive(Debug, Clone)]
pub struct Reloader {
    nudges: Vec<mpsc::Sender<()>>,
}

impl Reloader {
    pub fn reload(&self) {
        for nudge in &self.nudges {
            // A full channel already holds a pending look.
            let _ = nudge.try_send(());
        }
    }
}

/// Binds, opens the store, publishes the handoff (embedded store) and starts the shards.
/// `events` hears of reloads. Call it (and [`Running::wait`], and drop [`Running`]) outside
/// any tokio runtime: the server runs its own.
pub fn start(config: ServeConfig, events: impl Fn(ServeEvent) + Send + Sync + 'static) -> Result<Running, ServeError> {
    let ServeConfig {
        project,
        store: store_config,
        addr,
        threads,
        mut options,
        registry_poll,
    } = config;
    if threads == 0 {
        return Err(ServeError::NoThreads);
    }
    crate::memory::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|source| ServeError::Start {
            what: "the runtime",
            source,
        })?;
    let listen_error = |source| ServeError::Listen {
        addr: addr.clone(),
        source,
    };
    // A plain bind first, so that a port another server holds is an error here, not shared.
    let local = std::net::TcpListener::bind(&addr)
        .and_then(|probe| probe.local_addr())
        .map_err(listen_error)?;
    let store: Arc<dyn OnlineStore> = runtime.block_on(async {
        Ok::<_, ServeError>(match &store_config {
            StoreConfig::Embedded(path) => Arc::new(skewless_online::EmbeddedStore::open(path)?),
            StoreConfig::Redis(_) => skewless_online::open(&store_config).await?,
        })
    })?;
    let described = store.describe();
    let applied_seq = Serving::new(&project, Arc::clone(&store))?.applied_seq;
    // They listen now, before the shards connect to their stores, so a client that connects
    // early waits in the backlog instead of being refused.
    let listeners = {
        let _runtime = runtime.enter();
        (0..threads)
            .map(|_| reuse_port_socket(local)?.listen(1024)?.into_std())
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(|source| ServeError::Listen {
                addr: local.to_string(),
                source,
            })?
    };
    let published = match &store_config {
        StoreConfig::Embedded(path) => {
            let token = skewless_online::layout::new_instance_id();
            let mut reach = local;
            if reach.ip().is_unspecified() {
                reach.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let handoff = skewless_online::served::Handoff {
                addr: reach.to_string(),
                token: token.clone(),
                pid: std::process::id(),
            };
            let published = skewless_online::served::publish(path, &handoff)?;
            options.handoff = Some(StoreHandoff {
                store: Arc::clone(&store),
                // A fresh instance id is a valid key (hex); a failure here is a bug.
                token: ApiKeys::parse(&token).map_err(|e| {
                    skewless_serving::Error::from(skewless_serving::RequestError::Internal(e.to_string()))
                })?,
            });
            Some(published)
        }
        StoreConfig::Redis(_) => None,
    };
    let server = Arc::new(Server::new(options).map_err(|source| ServeError::Start {
        what: "the server",
        source,
    })?);
    let requires_api_keys = server.requires_api_keys();
    let (stop, stopped) = watch::channel(false);
    let (ended, first_end) = mpsc::unbounded_channel::<()>();
    let events = Arc::new(events);
    let mut nudges = Vec::new();
    let mut shards = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let (nudge, nudged) = mpsc::channel(1);
        nudges.push(nudge);
        let shard = Shard {
            index,
            project: project.clone(),
            config: store_config.clone(),
            store: Arc::clone(&store),
            server: Arc::clone(&server),
            registry_poll,
            events: Arc::clone(&events),
        };
        let stopped = stopped.clone();
        let ended = ended.clone();
        let run = move || {
            // Sent when the shard ends, even by a panic: the server then stops.
            let _ended = Ended(ended);
            shard.serve(listener, nudged, stopped)
        };
        let thread = std::thread::Builder::new()
            .name(format!("serve-{index}"))
            .spawn(run)
            .map_err(|source| ServeError::Start {
                what: "a serving thread",
                source,
            });
        match thread {
            Ok(thread) => shards.push(thread),
            Err(e) => {
                // Stop what started before failing.
                let _ = stop.send(true);
                shards.into_iter().for_each(|s| drop(s.join()));
                return Err(e);
            }
        }
    }
    Ok(Running {
        local_addr: local,
        applied_seq,
        described,
        requires_api_keys,
        runtime,
        stop,
        first_end,
        reloader: Reloader { nudges },
        shards,
        _published: published,
    })
}

impl Running {
    /// The address it listens on (the port chosen, when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The applied version served at start.
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// The store, in words (no secrets).
    pub fn described(&self) -> &str {
        &self.described
    }

    pub fn requires_api_keys(&self) -> bool {
        self.requires_api_keys
    }

    /// Reloads every shard on demand.
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// Serves until `shutdown` resolves (polled on this server's runtime, so it may spawn
    /// tasks and listen for signals) or a shard ends on its own; then stops every shard and
    /// waits for them. The first shard's error, if any, is the answer.
    pub fn wait(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
        let first_end = &mut self.first_end;
        self.runtime.block_on(async {
            tokio::select! {
                () = shutdown => {},
                _ = first_end.recv() => {},
            }
        });
        let _ = self.stop.send(true);
        let mut failed = None;
        for (shard, thread) in self.shards.drain(..).enumerate() {
            let result = thread.join().unwrap_or(Err(ServeError::Panicked { shard }));
            if let Err(e) = result {
                failed = failed.or(Some(e));
            }
        }
        failed.map_or(Ok(()), Err)
    }
}

impl Drop for Running {
    /// A server dropped without [`Running::wait`] stops too (a test that failed half-way).
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for thread in self.shards.drain(..) {
            let _ = thread.join();
        }
    }
}

/// Says a shard ended when dropped, however it ended.
struct Ended(mpsc::UnboundedSender<()>);

impl Drop for Ended {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// What one serving thread starts from.
struct Shard<E> {
    index: usize,
    project: ProjectDirs,
    config: StoreConfig,
    /// The embedded store, which the threads share (a Redis store is opened per thread).
    store: Arc<dyn OnlineStore>,
    server: Arc<Server>,
    registry_poll: Duration,
    events: Arc<E>,
}

impl<E: Fn(ServeEvent) + Send + Sync + 'static> Shard<E> {
    /// One serving thread: its own runtime, store connection and serving core, reloaded when
    /// `nudged` or every `registry_poll`, serving `listener` until `stopped` turns true.
    fn serve(
        self,
        listener: std::net::TcpListener,
        nudged: mpsc::Receiver<()>,
        mut stopped: watch::Receiver<bool>,
    ) -> Result<(), ServeError> {
        let index = self.index;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ServeError::Shard { shard: index, source })?;
        runtime.block_on(async move {
            let store = match &self.config {
                StoreConfig::Embedded(_) => self.store,
                StoreConfig::Redis(_) => skewless_online::open(&self.config).await?,
            };
            let live = Live::new(Serving::new(&self.project, Arc::clone(&store))?);
            let events = self.events;
            tokio::spawn(watch_registry(
                Arc::clone(&live),
                self.project,
                store,
                self.registry_poll,
                nudged,
                move |change| match change {
                    Ok(applied_seq) if index == 0 => (*events)(ServeEvent::Reloaded { applied_seq }),
                    Ok(_) => {}
                    Err(e) => (*events)(ServeEvent::ReloadFailed {
                        shard: index,
                        message: e.to_string(),
                    }),
                },
            ));
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|source| ServeError::Shard { shard: index, source })?;
            let shutdown = async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            };
            self.server
                .run(listener, live, shutdown)
                .await
                .map_err(|source| ServeError::Shard { shard: index, source })
        })
    }
}

/// A TCP socket bound to `at` with SO_REUSEPORT (and SO_REUSEADDR), not yet listening.
fn reuse_port_socket(at: SocketAddr) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = match at {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    socket.bind(at)?;
    Ok(socket)
}
