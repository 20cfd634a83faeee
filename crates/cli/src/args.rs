//! Command-line arguments: each flag defined once, with its help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "skewless",
    version,
    about = "A feature store that gives models the same numbers in training and serving"
)]
pub struct Cli {
    /// Directory of feature definitions (*.yaml, searched recursively). Source paths are
    /// resolved against its parent directory.
    #[arg(long, global = true, default_value = "feature_defs", env = "SKEWLESS_DEFS")]
    pub defs: PathBuf,
    /// Local repository directory: the registry of applied definitions.
    #[arg(long, global = true, default_value = ".skewless", env = "SKEWLESS_REPO")]
    pub repo: PathBuf,
    /// Online store: `redis://[user:password@]host:port/db` (or `rediss://`), or a path for
    /// the embedded store. Default: the embedded store in the repository directory.
    #[arg(long, global = true, env = "SKEWLESS_ONLINE")]
    pub online: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the definitions and the sources they read; list every problem (exit 1 if any).
    Validate {
        /// Also read every source row and evaluate every feature on it: finds what fails
        /// only on data (bad casts, division by zero, bad CSV rows, damaged files).
        #[arg(long)]
        data: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show what `apply` would change, and which changes break consumers.
    Plan {
        #[arg(long)]
        json: bool,
    },
    /// Record the definitions in the registry as a new version.
    Apply {
        /// Apply even if features are removed or retyped, keys change, or online semantics change.
        #[arg(long)]
        allow_breaking: bool,
        /// Apply only if the registry is still at this version (the one `plan` showed; 0:
        /// nothing applied yet); otherwise fail, so what is recorded is what was reviewed.
        #[arg(long, value_name = "N")]
        expect_version: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// List what the definitions declare.
    List {
        kind: ListKind,
        #[arg(long)]
        json: bool,
    },
    /// Read the registry's history of applied versions.
    Registry {
        #[command(subcommand)]
        command: RegistryCommand,
    },
    /// Write the applied definitions for another tool to read.
    Export {
        #[command(subcommand)]
        target: ExportTarget,
    },
    /// Build a point-in-time-correct training set for a spine and write it as Parquet.
    TrainingSet {
        /// The spine: entity keys, an as-of timestamp and any other columns (labels, request
        /// fields), as Parquet or CSV. Every row is kept, in order.
        #[arg(long)]
        spine: PathBuf,
        #[command(flatten)]
        selection: Selection,
        /// Output Parquet file.
        #[arg(long)]
        out: PathBuf,
        /// Name feature columns `view__feature` instead of `feature`.
        #[arg(long)]
        full_names: bool,
        /// The spine's as-of timestamp column.
        #[arg(long, default_value = "event_timestamp")]
        timestamp_column: String,
        /// Do not write the run manifest (`<out>.manifest.json`).
        #[arg(long)]
        no_manifest: bool,
        /// Leave the features' profiles out of the manifest (they are computed while the
        /// rows are written; `skewless profile` reads them).
        #[arg(long)]
        no_profile: bool,
        /// Cap DataFusion's memory pool (e.g. `2GiB`, `512MiB`); default: no cap.
        #[arg(long, value_parser = parse_bytes)]
        memory_limit: Option<usize>,
    },
    /// Show what each feature's values looked like in a training set, from its manifest:
    /// counts, nulls, NaN, min, quantiles, max, mean, stddev, or the most frequent values.
    Profile {
        manifest: PathBuf,
        /// Only these features (`view:feature`, comma-separated).
        #[arg(long, value_delimiter = ',')]
        features: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Compare a training set's features with a reference training set's (both from their
    /// manifests): PSI and Jensen–Shannon divergence on the reference's bins, and the change
    /// in null rate. Exit 1 when a feature passes a threshold.
    Drift {
        /// The reference manifest, then the current one: `--manifest REF --manifest NEW`.
        #[arg(long = "manifest", num_args = 1, required = true)]
        manifests: Vec<PathBuf>,
        /// A feature drifted when its PSI is above this (0.1–0.2 is the usual "moderate").
        #[arg(long, default_value_t = 0.2)]
        psi: f64,
        /// ... or when its null rate moved by more than this (a fraction: 0.05 is 5 points).
        #[arg(long, default_value_t = 0.05)]
        null_rate: f64,
        #[arg(long)]
        json: bool,
    },
    /// Monitoring: name the training set a service's model learned from (its reference), and
    /// check the drift of what a running server serves against it.
    Monitor {
        #[command(subcommand)]
        command: MonitorCommand,
    },
    /// Re-run the training set a manifest records; report whether the output hash matches
    /// and, if not, which input changed (exit 1).
    Reproduce {
        manifest: PathBuf,
        /// Where to write the re-run's output (default: beside the original, `.reproduced.parquet`;
        /// removed again when it matches).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Check training/serving parity on your own data: for the spine's keys (and request
    /// fields) at each instant, the training set's values against what materialization into a
    /// fresh store serves, bit for bit. Prints a summary per view; exit 1 on any mismatch.
    Parity {
        /// The keys to check: a spine (Parquet or CSV) with the join keys and request fields.
        #[arg(long)]
        spine: PathBuf,
        #[command(flatten)]
        selection: Selection,
        /// The spine's timestamp column.
        #[arg(long, default_value = "event_timestamp")]
        timestamp_column: String,
        /// An instant to check (repeatable); default: the spine's earliest, median and latest.
        #[arg(long = "at")]
        at: Vec<String>,
        /// Check at most this many spine rows, chosen by --seed.
        #[arg(long)]
        sample: Option<usize>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Compare against what the configured online store (--online, SKEWLESS_ONLINE, or the
        /// embedded default) serves at each instant, instead of fresh stores materialized for it:
        /// is the production store consistent with the training set?
        #[arg(long)]
        against_store: bool,
        #[arg(long)]
        json: bool,
    },
    /// Compare a training set's manifest with what is served now: the applied versions of the
    /// views, on-demand views and service it used. Exit 1 on any difference: the gate between
    /// a model and the features it is served.
    Check {
        #[arg(long)]
        manifest: PathBuf,
        /// Fail also when the registry moved on without changing anything the model uses.
        #[arg(long)]
        strict: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write every online view's values at --end into the online store: per key, the value a
    /// training set would give at --end (same transforms, as-of rules and ttl).
    Materialize {
        /// Only rows that became available at or after this instant (default: all rows).
        #[arg(long)]
        start: Option<String>,
        #[command(flatten)]
        run: MaterializeRun,
    },
    /// Materialize from each view's watermark (kept in the registry) up to --end.
    MaterializeIncremental {
        #[command(flatten)]
        run: MaterializeRun,
    },
    /// Serve lookups over HTTP (POST /v1/features, Feast's POST /get-online-features,
    /// GET /health, GET /ready) from the applied definitions, until ctrl-c or SIGTERM.
    Serve(ServeArgs),
    /// Push rows to a source declared `push: true`: appended durably to its offline log,
    /// then written to the online store (the running server's embedded store, if it holds it).
    Push {
        /// The push source.
        #[arg(long)]
        source: String,
        /// Rows: .parquet, .csv, or JSON lines (.jsonl, .ndjson, .json).
        file: PathBuf,
        /// Makes the push idempotent: a push with an id seen before appends nothing.
        #[arg(long)]
        id: Option<String>,
        /// Log the rows offline only, without writing the online store.
        #[arg(long)]
        offline_only: bool,
        #[arg(long)]
        json: bool,
    },
    /// Recompute the values the server logged (`serve --log-served DIR`) with the training-set
    /// path at the instants they were served, and report the mismatch rate per feature with
    /// causes. Exit 1 on any mismatch.
    Consistency {
        #[arg(long)]
        log: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Merge the segments of a source's push log into one, atomically (training sets read
    /// the same rows before and after).
    Compact {
        #[arg(long)]
        source: String,
    },
    /// Look features up in the online store by entity key.
    Get {
        #[command(flatten)]
        selection: Selection,
        /// An entity key: `driver_id=1001`, or `driver_id=1001,customer_id=7` for several
        /// keys. Repeat for more entities.
        #[arg(long = "entity", required = true, value_parser = parse_entity)]
        entities: Vec<Vec<(String, String)>>,
        /// The clock: values are judged as of this instant (RFC 3339, a date, or `now`).
        #[arg(long, default_value = "now")]
        at: String,
        #[arg(long)]
        json: bool,
    },
    /// Generate the deterministic ride-hailing demo data set as Parquet.
    DemoData {
        /// Directory to write into.
        #[arg(long, default_value = "data/demo")]
        out: PathBuf,
        /// Seed of the generator: the same seed writes the same bytes.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

/// What a materialization writes, and how it reports.
#[derive(Debug, Args)]
pub struct MaterializeRun {
    /// The instant to materialize: RFC 3339, a date, or `now`.
    #[arg(long, default_value = "now")]
    pub end: String,
    /// Feature views, comma-separated (default: every view with `online: true`).
    #[arg(long, value_delimiter = ',')]
    pub views: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

/// Which features: a list or a feature service (exactly one).
#[derive(Debug, Args)]
pub struct Selection {
    /// Features as `view:feature` or `view:*`, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        required_unless_present = "service",
        conflicts_with = "service"
    )]
    pub features: Vec<String>,
    /// A feature service whose features to use.
    #[arg(long)]
    pub service: Option<String>,
}

impl Selection {
    pub fn into_selection(self) -> skewless::training::FeatureSelection {
        match self.service {
            Some(name) => skewless::training::FeatureSelection::Service(name),
            None => skewless::training::FeatureSelection::Features(self.features),
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListKind {
    Views,
    Features,
    Services,
    Entities,
    Sources,
}

#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// A Feast repository (feature_store.yaml, definitions.py, the version gate
    /// skewless_check.py) whose SDK reads and writes through `skewless serve`.
    Feast {
        /// The directory to write (created; files there are replaced).
        dir: std::path::PathBuf,
        /// The URL of `skewless serve` that Feast's SDK is to call.
        #[arg(long, default_value = "http://localhost:6566")]
        server_url: String,
        /// HOST:PORT of the Arrow Flight offline server (`skewless serve --flight`) that
        /// Feast's `get_historical_features` is to call.
        #[arg(long, default_value = "localhost:8815", value_parser = parse_host_port)]
        flight_addr: (String, u16),
        /// Feast's project name.
        #[arg(long, default_value = "skewless")]
        project: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum MonitorCommand {
    /// Name a training set (by its manifest) the reference of a service: `skewless serve`
    /// then measures the drift of each served feature against it (a running server picks
    /// it up within seconds).
    SetReference {
        #[arg(long)]
        service: String,
        manifest: PathBuf,
        /// A feature breaches when its PSI is above this (default: the service's `monitoring:
        /// psi`, else 0.2) ...
        #[arg(long)]
        psi: Option<f64>,
        /// ... or its null rate moved by more than this fraction (`null_rate`, else 0.05) ...
        #[arg(long)]
        null_rate: Option<f64>,
        /// ... judged once a window holds this many served values (`min_values`, else 100).
        #[arg(long)]
        min_values: Option<u64>,
    },
    /// The references named, one line per service.
    References {
        #[arg(long)]
        json: bool,
    },
    /// Ask a running server for the drift of what it served; print every breach and exit 1
    /// when there is one (for cron and CI).
    Check {
        /// The server (http://host:port).
        #[arg(long, default_value = "http://127.0.0.1:6566", env = "SKEWLESS_SERVER")]
        server: String,
        /// Only this service's features.
        #[arg(long)]
        service: Option<String>,
        /// The window judged: 5m, 1h or 1d.
        #[arg(long, default_value = "1h")]
        window: String,
        /// Sent as `Authorization: Bearer KEY` to a server that demands keys.
        #[arg(long, env = "SKEWLESS_API_KEY", hide_env_values = true)]
        api_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegistryCommand {
    /// One line per applied version, oldest first.
    Log {
        #[arg(long)]
        json: bool,
    },
    /// Print an applied version as JSON (default: the one in force).
    Show { seq: Option<u64> },
}

/// `driver_id=1001,customer_id=7` → pairs. A name given twice is an error: one entity has
/// one value per key (repeat `--entity` for more entities).
pub fn parse_entity(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in text.split(',') {
        let (name, value) = pair
            .split_once('=')
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .filter(|(k, _)| !k.is_empty())
            .ok_or_else(|| format!("expected `key=value`, found `{pair}`"))?;
        if let Some((_, first)) = pairs.iter().find(|(n, _)| *n == name) {
            return Err(format!(
                "`{name}` is given twice (`{first}` and `{value}`); repeat --entity for another entity"
            ));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// `500ms`, `5s`, `2m` → a duration.
pub fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if let Some(ms) = text.strip_suffix("ms") {
        return ms
            .parse::<u64>()
            .map(std::time::Duration::from_millis)
            .map_err(|_| format!("expected a duration like 500ms or 5s, found `{text}`"));
    }
    text.parse::<skewless::defs::Duration>()
        .map(|d| std::time::Duration::from_secs(d.seconds()))
        .map_err(|e| format!("`{text}`: {}; or milliseconds like 500ms", e.0))
}

/// `2GiB`, `1.5GiB`, `512MiB`, `100MB`, `1000000` → bytes (rounded down).
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let expected = || format!("expected a size like 2GiB or 1.5GiB, found `{text}`");
    if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
        return Err(expected());
    }
    let number: f64 = number.parse().map_err(|_| expected())?;
    let scale: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        "TiB" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{text}`: use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ));
        }
    };
    let bytes = number * scale;
    // Anything at or above 2^63 does not fit.
    if !bytes.is_finite() || bytes >= 2f64.powi(63) {
        return Err(format!("size `{text}` is too large"));
    }
    Ok(bytes as usize)
}

/// The arguments of `skewless serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, default_value = "127.0.0.1:6566")]
    pub addr: String,
    /// Largest request body accepted (answered 413 above it).
    #[arg(long, default_value = "1MiB", value_parser = parse_bytes)]
    pub max_body: usize,
    /// Most entities per request.
    #[arg(long, default_value_t = 1000)]
    pub max_entities: usize,
    /// Most features per request.
    #[arg(long, default_value_t = 500)]
    pub max_features: usize,
    /// A lookup that takes longer is answered 504 (a duration: 500ms, 5s).
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub request_timeout: std::time::Duration,
    /// Largest push body accepted (POST /v1/push and /push; answered 413 above it).
    #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
    pub max_push_body: usize,
    /// Most rows per push.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_push_rows: usize,
    /// A request's head must arrive within this; also how long a kept-alive connection
    /// may sit idle.
    #[arg(long, default_value = "30s", value_parser = parse_timeout)]
    pub header_timeout: std::time::Duration,
    /// A request's body must arrive whole within this (answered 408 otherwise).
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    pub body_timeout: std::time::Duration,
    /// Connections open at once; at the cap new ones wait to be accepted.
    #[arg(long, default_value_t = 4096)]
    pub max_connections: usize,
    /// Push bodies in flight at once (a push takes three to four times its body in memory);
    /// over it a push is answered 503 with Retry-After. At least --max-push-body.
    #[arg(long, default_value = "128MiB", value_parser = parse_bytes)]
    pub max_push_in_flight: usize,
    /// On ctrl-c or SIGTERM, requests in flight get this long to finish.
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub shutdown_grace: std::time::Duration,
    /// Log served feature vectors to this directory (Parquet), for `skewless consistency`.
    #[arg(long)]
    pub log_served: Option<PathBuf>,
    /// The share of entity keys whose lookups are logged (by a hash of the key).
    #[arg(long, default_value_t = 0.01)]
    pub log_sample: f64,
    /// The served log's size budget: the oldest files are deleted beyond it.
    #[arg(long, default_value = "256MiB", value_parser = parse_bytes)]
    pub log_max_bytes: usize,
    /// Demand `Authorization: Bearer <key>` on every route but /health and /ready, with
    /// the keys in this file (one per line). Or give the keys themselves, comma-separated,
    /// in SKEWLESS_API_KEYS.
    #[arg(long, env = "SKEWLESS_API_KEYS_FILE")]
    pub api_keys: Option<std::path::PathBuf>,
    /// Without API keys, the server answers only requests addressed to an IP address or
    /// `localhost` (a guard against DNS rebinding); name the other host names it is
    /// reached by here, comma-separated (`fs.prod,fs`), or `*` for any.
    #[arg(long, env = "SKEWLESS_ALLOWED_HOSTS", value_parser = skewless_server::AllowedHosts::parse)]
    pub allowed_hosts: Option<skewless_server::AllowedHosts>,
    /// Answer aggregated views at a past `at` (refused by default: their tiles hold every
    /// row written so far). For benchmarks and replays where nothing was written after.
    #[arg(long)]
    pub allow_past_clock: bool,
    /// Serving threads, each with its own runtime and store connection (default: one
    /// per core). A request and its store round trip stay on one thread.
    #[arg(long)]
    pub threads: Option<std::num::NonZeroUsize>,
    /// Also serve Feast's remote offline store (`get_historical_features`) over Arrow Flight
    /// on this address (Feast's default port is 8815): training sets built by skewless, on
    /// threads of their own.
    #[arg(long)]
    pub flight: Option<String>,
    /// The most Arrow data one Flight call may upload (an entity DataFrame).
    #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
    pub flight_max_upload: usize,
}

/// `HOST:PORT`, the port a number.
fn parse_host_port(text: &str) -> Result<(String, u16), String> {
    let bad = || format!("expected HOST:PORT (like localhost:8815), found `{text}`");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, parse_entity, parse_host_port, parse_timeout};

    #[test]
    fn host_and_port() {
        assert_eq!(parse_host_port("localhost:8815"), Ok(("localhost".into(), 8815)));
        assert_eq!(parse_host_port("[::1]:1"), Ok(("[::1]".into(), 1)));
        for bad in ["localhost", ":8815", "h:port", "h:70000"] {
            assert!(parse_host_port(bad).unwrap_err().contains(bad), "{bad}");
        }
    }

    #[test]
    fn timeouts() {
        use std::time::Duration;
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_timeout("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_timeout("soon").unwrap_err().contains("`soon`"));
        assert!(parse_timeout("5xs").is_err());
    }

    #[test]
    fn entities() {
        assert_eq!(
            parse_entity("driver_id=1001"),
            Ok(vec![("driver_id".into(), "1001".into())])
        );
        assert_eq!(parse_entity("a=1, b=x").unwrap().len(), 2);
        assert!(parse_entity("1001").is_err());
        assert!(parse_entity("=3").is_err());
        let twice = parse_entity("driver_id=1001,driver_id=1002").unwrap_err();
        assert!(twice.contains("`driver_id` is given twice"), "{twice}");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("2GiB"), Ok(2 << 30));
        assert_eq!(parse_bytes("512MiB"), Ok(512 << 20));
        assert_eq!(parse_bytes("100MB"), Ok(100_000_000));
        assert_eq!(parse_bytes("77"), Ok(77));
        assert_eq!(parse_bytes("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_bytes("0.5KiB"), Ok(512));
        assert!(parse_bytes("1.5.5GiB").is_err());
        assert!(parse_bytes(".5GiB").is_err());
        assert!(parse_bytes("99999999999TiB").is_err());
        assert!(parse_bytes("2 parsecs").is_err());
        assert!(parse_bytes("GiB").is_err());
    }

    /// Whatever text `--memory-limit` and `--entity` get, they answer or explain; never panic.
    #[test]
    fn size_and_entity_text_never_panics() {
        use skewless_testkit::fuzz::{Fuzz, no_panic};
        let mut fuzz = Fuzz::new(15);
        let sizes = [
            "0",
            "1",
            "5",
            ".",
            "99999999999999999999",
            "KiB",
            "MiB",
            "GiB",
            "TiB",
            "KB",
            "B",
            " ",
            "-",
            "e9",
            "é",
        ];
        for _ in 0..5000 {
            let text = fuzz.text(&sizes, 6);
            if let Err(e) = no_panic("parse_bytes", &text, || parse_bytes(&text)) {
                assert!(
                    e.contains(&format!("`{}`", text.trim())),
                    "the error does not quote the input: {e}"
                );
            }
        }
        let entities = ["driver_id", "=", ",", "1001", " ", "x", "==", "é", "\0"];
        for _ in 0..5000 {
            let text = fuzz.text(&entities, 8);
            if let Ok(pairs) = no_panic("parse_entity", &text, || parse_entity(&text)) {
                let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                assert_eq!(names.len(), pairs.len(), "{text}: a key twice");
            }
        }
    }
}
