//! Property: for random definitions over random event logs, the parity harness finds no
//! mismatch. Each case draws a project (key types, one or two keys, `created` or not, `as_of`,
//! ttl, feature expressions of every type, a contract with an `on_violation`, an on-demand view)
//! and an event log (exact time ties, corrections with a later `created`, late rows, nulls, NaN,
//! ±0, ±inf, contract violations, instants exactly on events and on ttl edges), runs
//! `Project::parity` over every key at those instants, and requires zero mismatches. Every
//! third case is also materialized into a real Redis server (the test's own) at each instant
//! and compared against it. Cases run two at a time, one per core.
//!
//! `make test` runs a fixed regression set (seeds `1..=FIXED_CASES` and every seed that ever
//! failed, in `REGRESSIONS`) plus `FRESH_CASES` seeds drawn anew each run and printed
//! ([`seed_plan`]). `PARITY_CASES` sets the fixed range, `PARITY_FRESH` the fresh count,
//! `PARITY_SCALE` the size of each case (keys and rows grow with it; default 1), `PARITY_SEED`
//! replays one case (with the same scale). A failing case prints its seed and the definitions.
//! `make parity-soak` runs large cases until at least 10⁶ values are compared.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use skewless::Project;
use skewless::parity::ParityOptions;
use skewless::training::{FeatureSelection, write_parquet};

use skewless_testkit::fuzz::{Fuzz, seed_plan};

const T0: i64 = 1_767_225_600_000_000;
const MINUTE: i64 = 60_000_000;
/// The fixed seeds of `make test`, seeds that once failed (add them here), fresh seeds per run,
/// and how many cases run at once.
const FIXED_CASES: u64 = 300;
const REGRESSIONS: &[u64] = &[];
const FRESH_CASES: u64 = 100;
const CONCURRENT_CASES: usize = 2;

/// Feature expressions over the source columns `a` (float64), `b` (int64), `s` (string) and
/// `flag` (bool), with their types.
const EXPRESSIONS: &[(&str, &str)] = &[
    ("a", "float64"),
    ("b", "int64"),
    ("s", "string"),
    ("flag", "bool"),
    ("a * 2.5 - b", "float64"),
    ("a / b", "float64"),
    ("CASE WHEN flag THEN a ELSE -a END", "float64"),
    ("b % 7", "int64"),
    ("CAST(a AS FLOAT)", "float32"),
    ("CAST(b AS INT)", "int32"),
    ("concat(s, '-', CAST(b AS VARCHAR))", "string"),
    ("a > 0 AND flag", "bool"),
    ("coalesce(a, 0.0)", "float64"),
];

struct Case {
    yaml: String,
    features: Vec<String>,
    instants: Vec<i64>,
}

/// A float input: null, NaN, ±0, ±inf, or a multiple of 1/8 in [-125, 125].
pub(crate) fn float(rng: &mut Fuzz) -> Option<f64> {
    match rng.below(14) {
        0 => None,
        1 => Some(f64::NAN),
        2 => Some(-0.0),
        3 => Some(0.0),
        4 => Some(f64::INFINITY),
        5 => Some(f64::NEG_INFINITY),
        _ => Some((rng.below(2001) as f64 - 1000.0) / 8.0),
    }
}

/// Draws a project into `dir` and returns what to check.
fn draw(dir: &std::path::Path, seed: u64, scale: usize) -> Case {
    let mut rng = Fuzz::new(seed.wrapping_mul(0x9E37_79B9).wrapping_add(1));
    let string_key = rng.below(2) == 0;
    let two_keys = rng.below(3) == 0;
    let has_created = rng.below(4) != 0;
    let available = has_created && rng.below(2) == 0;
    let ttl_minutes = [None, Some(5), Some(30), Some(120)][rng.below(4)];
    let n_features = 1 + rng.below(4);
    let mut chosen: Vec<(String, &str, &str)> = Vec::new();
    for i in 0..n_features {
        let (expr, ty) = EXPRESSIONS[rng.below(EXPRESSIONS.len())];
        chosen.push((format!("f{i}"), expr, ty));
    }
    // A contract on the first numeric feature, sometimes.
    let contract_on = chosen
        .iter()
        .position(|(_, _, ty)| matches!(*ty, "float64" | "int64" | "float32" | "int32"))
        .filter(|_| rng.below(2) == 0);
    // (`fail` stops the jobs, so parity has nothing to compare; its own test covers it.)
    let on_violation = ["quarantine", "\"null\""][rng.below(2)];

    let key_type = if string_key { "string" } else { "int64" };
    let mut yaml = format!("project: prop\nentities:\n  e: {{ keys: {{ k1: {key_type}");
    if two_keys {
        yaml.push_str(", k2: int64");
    }
    yaml.push_str(" } }\nsources:\n  src:\n    path: data/src.parquet\n    timestamp: ts\n");
    // A push source: the harness replays its rows through the push path instead of materializing.
    if rng.below(2) == 0 {
        yaml.push_str("    push: true\n");
    }
    if has_created {
        yaml.push_str("    created: created\n");
    }
    yaml.push_str("feature_views:\n  v:\n    entity: e\n    source: src\n");
    if let Some(m) = ttl_minutes {
        yaml.push_str(&format!("    ttl: {m}m\n"));
    }
    yaml.push_str(&format!(
        "    as_of: {}\n    on_violation: {on_violation}\n    features:\n",
        if available { "available" } else { "event" }
    ));
    for (i, (name, expr, ty)) in chosen.iter().enumerate() {
        let contract = if Some(i) == contract_on {
            ", contract: { min: -50, max: 50 }"
        } else {
            ""
        };
        yaml.push_str(&format!("      {name}: {{ type: {ty}, expr: \"{expr}\"{contract} }}\n"));
    }
    let mut features: Vec<String> = chosen.iter().map(|(n, _, _)| format!("v:{n}")).collect();
    // An on-demand view over the first feature when it is float64.
    if chosen[0].2 == "float64" && rng.below(2) == 0 {
        yaml.push_str("on_demand_views:\n  od:\n    request: { r: float64 }\n    features:\n");
        yaml.push_str("      g: { type: float64, expr: \"v.f0 * r + 1\" }\n");
        features.push("od:g".into());
    }

    // The event log: few keys and few distinct times, so ties and corrections are common.
    let rows = 20 + rng.below(120 * scale);
    let keys = 1 + rng.below(6 * scale) as i64;
    let mut k1s = Vec::new();
    let mut k2s = Vec::new();
    let mut ts = Vec::new();
    let mut created = Vec::new();
    let (mut a, mut b, mut s, mut flag) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rows {
        let key = rng.below(keys as usize) as i64;
        k1s.push(key);
        k2s.push(key % 2);
        let event = T0 + rng.below(12) as i64 * 10 * MINUTE;
        ts.push(event);
        // Mostly prompt; sometimes late by up to 3 hours; now and then an exact tie.
        created.push(match rng.below(6) {
            0 => event + rng.below(180) as i64 * MINUTE,
            1 => event,
            _ => event + rng.below(3) as i64 * MINUTE,
        });
        a.push(float(&mut rng));
        b.push(if rng.below(10) == 0 {
            None
        } else {
            Some(rng.below(200) as i64 - 100)
        });
        s.push(if rng.below(10) == 0 {
            None
        } else {
            Some(format!("s{}", rng.below(4)))
        });
        flag.push(if rng.below(10) == 0 {
            None
        } else {
            Some(rng.below(2) == 0)
        });
    }
    let instant = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut fields = vec![Field::new(
        "k1",
        if string_key { DataType::Utf8 } else { DataType::Int64 },
        true,
    )];
    let mut columns: Vec<ArrayRef> = vec![if string_key {
        Arc::new(StringArray::from(
            k1s.iter().map(|k| format!("key{k}")).collect::<Vec<_>>(),
        ))
    } else {
        Arc::new(Int64Array::from(k1s.clone()))
    }];
    if two_keys {
        fields.push(Field::new("k2", DataType::Int64, true));
        columns.push(Arc::new(Int64Array::from(k2s.clone())));
    }
    fields.push(Field::new("ts", instant.clone(), true));
    columns.push(Arc::new(
        TimestampMicrosecondArray::from(ts.clone()).with_timezone("UTC"),
    ));
    if has_created {
        fields.push(Field::new("created", instant.clone(), true));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(created.clone()).with_timezone("UTC"),
        ));
    }
    fields.extend([
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
    ]);
    columns.extend([
        Arc::new(Float64Array::from(a)) as ArrayRef,
        Arc::new(Int64Array::from(b)),
        Arc::new(StringArray::from(s)),
        Arc::new(BooleanArray::from(flag)),
    ]);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("feature_defs")).unwrap();
    std::fs::write(dir.join("feature_defs/defs.yaml"), &yaml).unwrap();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    write_parquet(&batch, &dir.join("data/src.parquet")).unwrap();

    // The spine: every key (and one without data), with the request field.
    let n = keys as usize + 1;
    let mut spine_fields = vec![Field::new(
        "k1",
        if string_key { DataType::Utf8 } else { DataType::Int64 },
        false,
    )];
    let mut spine_columns: Vec<ArrayRef> = vec![if string_key {
        Arc::new(StringArray::from((0..n).map(|k| format!("key{k}")).collect::<Vec<_>>()))
    } else {
        Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>()))
    }];
    if two_keys {
        spine_fields.push(Field::new("k2", DataType::Int64, false));
        spine_columns.push(Arc::new(Int64Array::from(
            (0..n as i64).map(|k| k % 2).collect::<Vec<_>>(),
        )));
    }
    spine_fields.push(Field::new("ts", instant, false));
    spine_columns.push(Arc::new(
        TimestampMicrosecondArray::from(vec![T0; n]).with_timezone("UTC"),
    ));
    spine_fields.push(Field::new("r", DataType::Float64, false));
    spine_columns.push(Arc::new(Float64Array::from(
        (0..n).map(|i| i as f64 - 1.5).collect::<Vec<_>>(),
    )));
    let spine = RecordBatch::try_new(Arc::new(Schema::new(spine_fields)), spine_columns).unwrap();
    write_parquet(&spine, &dir.join("spine.parquet")).unwrap();

    // Instants: exactly on an event, on a ttl edge after one, a µs before one, and past the end.
    let pick = |rng: &mut Fuzz| ts[rng.below(ts.len())];
    let mut instants = vec![pick(&mut rng), pick(&mut rng) - 1, T0 + 24 * 60 * MINUTE];
    if let Some(m) = ttl_minutes {
        instants.push(pick(&mut rng) + m * MINUTE);
    }
    if has_created {
        instants.push(created[rng.below(created.len())]);
    }
    instants.sort_unstable();
    instants.dedup();
    Case {
        yaml,
        features,
        instants,
    }
}

/// A Redis server of the test's own, for the cases also checked on Redis: one fresh database
/// per instant (flushed before use, cycling through them).
struct Redis {
    server: skewless_testkit::RedisServer,
    next_db: std::sync::atomic::AtomicUsize,
}

const REDIS_DATABASES: usize = 1024;

impl Redis {
    fn start() -> Self {
        Redis {
            server: skewless_testkit::RedisServer::start_with(&["--databases", &REDIS_DATABASES.to_string()]),
            next_db: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// An empty database of the test's server.
    async fn fresh_store(&self) -> std::sync::Arc<dyn skewless::online_store::OnlineStore> {
        let db = self.next_db.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % REDIS_DATABASES;
        let flushed = std::process::Command::new("redis-cli")
            .args(["-p", &self.server.port().to_string(), "-n", &db.to_string(), "flushdb"])
            .output()
            .unwrap();
        assert!(flushed.status.success(), "{}", String::from_utf8_lossy(&flushed.stderr));
        let config = skewless::online_store::StoreConfig::Redis(format!("{}/{db}", self.server.url()));
        skewless::online_store::open(&config).await.unwrap()
    }
}

/// Runs the harness over `spine.parquet` in `dir` for `features` at `at`, against `store`
/// (`None`: the harness's fresh stores), and fails on any mismatch, naming `replay` (how to
/// run the case again) and the drawn definitions.
pub(crate) async fn assert_parity(
    project: &Project,
    dir: &std::path::Path,
    features: &[String],
    at: Vec<i64>,
    store: Option<std::sync::Arc<dyn skewless::online_store::OnlineStore>>,
    replay: &str,
    yaml: &str,
) -> skewless::parity::ParityReport {
    let options = ParityOptions {
        spine: dir.join("spine.parquet").into(),
        selection: FeatureSelection::Features(features.to_vec()),
        timestamp_column: "ts".into(),
        at,
        sample: None,
        seed: 0,
        store,
        planted: None,
    };
    let report = project
        .parity(&skewless::engine_session(), &options)
        .await
        .unwrap_or_else(|e| panic!("{replay}: parity failed to run: {e}\n{yaml}"));
    assert!(
        report.mismatches.is_empty(),
        "{replay}: {} mismatches, first {:?}\n{yaml}",
        report.mismatches.len(),
        report.mismatches.first(),
    );
    report
}

/// Every third case runs on Redis too: materialized into a fresh database at each instant,
/// then compared by the harness against that store (`skewless parity --against-store`).
async fn check_on_redis(
    seed: u64,
    scale: usize,
    dir: &std::path::Path,
    project: &Project,
    case: &Case,
    redis: &Redis,
) -> usize {
    let mut values = 0;
    for &t in &case.instants {
        let store = redis.fresh_store().await;
        let materialize = skewless::online::MaterializeOptions {
            start: None,
            end: t,
            incremental: false,
            views: Vec::new(),
        };
        project
            .materialize(&*store, &materialize, &|_| {})
            .await
            .unwrap_or_else(|e| panic!("seed {seed}: materialize into Redis: {e}\n{}", case.yaml));
        let replay = format!("seed {seed} on Redis (replay: PARITY_SEED={seed} PARITY_SCALE={scale})");
        let report = assert_parity(project, dir, &case.features, vec![t], Some(store), &replay, &case.yaml).await;
        values += report.values();
    }
    values
}

/// Values compared, and how many of them on Redis.
async fn check(seed: u64, scale: usize, redis: &Redis) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let case = draw(dir.path(), seed, scale);
    let project = Project::new(dir.path().join("feature_defs"), dir.path().join(".skewless"));
    if let Err(e) = project.apply(false, None) {
        panic!("seed {seed}: the drawn definitions do not apply: {e}\n{}", case.yaml);
    }
    let replay = format!("seed {seed} (replay: PARITY_SEED={seed} PARITY_SCALE={scale})");
    let at = case.instants.clone();
    let report = assert_parity(&project, dir.path(), &case.features, at, None, &replay, &case.yaml).await;
    let on_redis = if seed.is_multiple_of(3) {
        check_on_redis(seed, scale, dir.path(), &project, &case, redis).await
    } else {
        0
    };
    (report.values() + on_redis, on_redis)
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is a number")))
}

#[test]
fn random_definitions_and_event_logs_have_no_mismatch() {
    let scale = env("PARITY_SCALE").unwrap_or(1).max(1) as usize;
    let seeds = seed_plan("PARITY", FIXED_CASES, REGRESSIONS, FRESH_CASES);
    // Cases run on two threads, each with a runtime of its own: planning dominates these small
    // jobs and runs on one core per job (the harness's futures are not `Send`, so one runtime
    // cannot spread them).
    let redis = Redis::start();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let tallies: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONCURRENT_CASES)
            .map(|_| {
                scope.spawn(|| {
                    let runtime = tokio::runtime::Builder::new_multi_thread()
                        .worker_threads(1)
                        .enable_all()
                        .build()
                        .unwrap();
                    let mut tally = (0, 0);
                    while let Some(&seed) = seeds.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                        let (v, r) = runtime.block_on(check(seed, scale, &redis));
                        tally = (tally.0 + v, tally.1 + r);
                    }
                    tally
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let values: usize = tallies.iter().map(|t| t.0).sum();
    let on_redis: usize = tallies.iter().map(|t| t.1).sum();
    println!(
        "parity property: {} cases at scale {scale}, {values} values compared ({on_redis} on Redis), 0 mismatches",
        seeds.len()
    );
    assert!(on_redis > 0 || seeds.len() < 3, "no case ran on Redis");
    let floor = env("PARITY_MIN_VALUES").unwrap_or(1) as usize;
    assert!(
        values >= floor,
        "only {values} values compared; at least {floor} wanted (raise PARITY_CASES)"
    );
}
