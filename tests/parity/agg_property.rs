//! Property: random aggregated views over random event logs agree offline and online, bit for
//! bit, whether the online tiles come from materialization or from pushes.
//!
//! Each case draws a view: 1–4 aggregations of random functions (all ten) over inputs of every
//! type they take, 1–3 windows each (`10m` to `2h`, `lifetime`), an optional `where`, a tile
//! (`exact`, `10m`, `30m` or the default), `as_of: event | available`, an int or string key.
//! The events are hard on purpose: most on 10-minute tile boundaries or 1 µs from one, exact
//! `(ts, created)` ties, late rows, nulls, NaN, ±0 and ±inf in inputs. Instants fall on events,
//! 1 µs before them, on window edges after them, on tile boundaries and long after the end.
//!
//! Two checks per case:
//! 1. `Project::parity` (the `skewless parity` harness): the training set at each instant
//!    against a fresh store fed up to it, through the serving core; the store is materialized
//!    or, in half the cases (a `push: true` source), fed by replaying the rows as pushes.
//! 2. A twin project whose batch file is empty: the same events are pushed in effective-time
//!    order in batches with ids (a quarter of them pushed twice with the same id, which must
//!    count once), and each key is looked up at each instant once everything effective by then
//!    is pushed. Those served values must equal the twin's training set built afterwards from
//!    its push log, and that training set must equal the batch project's.
//!
//! Seeds come from [`seed_plan`]: 20 fixed (and any that once failed) plus 10 fresh per run;
//! `AGG_PARITY_CASES` sets the fixed range, `AGG_PARITY_FRESH` the fresh count,
//! `AGG_PARITY_SEED` replays one.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use skewless::Project;
use skewless::online_store::{self, StoreConfig};
use skewless::push::{PushInput, PushTo};
use skewless::training::{FeatureSelection, TrainingSetOptions, write_parquet};
use skewless_testkit::fuzz::{Fuzz, seed_plan};

use crate::online::scalar;
use crate::property::{assert_parity, float};
use crate::push::same;

const T0: i64 = 1_767_225_600_000_000;
const MINUTE: i64 = 60_000_000;

/// Inputs by what they can feed: numbers (sum, mean, variance) and discrete values
/// (count_distinct); min, max, first, last and count take any of them.
const NUMERIC: &[(&str, &str)] = &[
    ("a", "float64"),
    ("b", "int64"),
    ("a * 2.5 - b", "float64"),
    ("CAST(b AS INT)", "int32"),
    ("CAST(a AS FLOAT)", "float32"),
];
const DISCRETE: &[(&str, &str)] = &[("b", "int64"), ("s", "string"), ("flag", "bool"), ("b % 7", "int64")];
const FUNCTIONS: &[&str] = &[
    "count",
    "sum",
    "mean",
    "min",
    "max",
    "first",
    "last",
    "var_pop",
    "stddev_pop",
    "count_distinct",
];
const WHERES: &[&str] = &["flag", "b > 0", "a < 10"];

struct Case {
    /// The definitions, with `{PUSH}` where the source may say `, push: true`.
    yaml: String,
    /// Whether the batch project's source takes pushes (then `skewless parity` replays its rows
    /// through the push path; otherwise it materializes them).
    push: bool,
    features: Vec<String>,
    instants: Vec<i64>,
    events: RecordBatch,
    /// Per event, when it starts to count: `ts`, or `max(ts, created)` with `as_of: available`.
    effective: Vec<i64>,
    string_key: bool,
    keys: usize,
}

fn maybe<T>(rng: &mut Fuzz, value: T) -> Option<T> {
    (rng.below(10) != 0).then_some(value)
}

fn draw(seed: u64) -> Case {
    let mut rng = Fuzz::new(seed.wrapping_mul(0x2545_F491).wrapping_add(7));
    let string_key = rng.below(2) == 0;
    let push = rng.below(2) == 0;
    let available = rng.below(2) == 0;
    let (tile_line, tile_minutes) = match rng.below(4) {
        0 => ("    tile: exact\n", None),
        1 => ("    tile: 10m\n", Some(10)),
        2 => ("    tile: 30m\n", Some(30)),
        _ => ("", None),
    };
    let windows: Vec<(&str, Option<i64>)> = [
        ("10m", Some(10)),
        ("30m", Some(30)),
        ("1h", Some(60)),
        ("2h", Some(120)),
        ("lifetime", None),
    ]
    .into_iter()
    .filter(|(_, w)| match (w, tile_minutes) {
        (Some(w), Some(t)) => w % t == 0,
        _ => true,
    })
    .collect();

    let key_type = if string_key { "string" } else { "int64" };
    let mut yaml = format!(
        "project: aggprop\nentities:\n  e: {{ keys: {{ k1: {key_type} }} }}\n\
         sources:\n  src: {{ path: data/src.parquet, timestamp: ts, created: created{{PUSH}} }}\n\
         feature_views:\n  v:\n    entity: e\n    source: src\n    as_of: {}\n{tile_line}    aggregations:\n",
        if available { "available" } else { "event" }
    );
    let mut features = Vec::new();
    let mut window_micros = Vec::new();
    for i in 0..1 + rng.below(4) {
        let function = FUNCTIONS[rng.below(FUNCTIONS.len())];
        let (expr, ty) = match function {
            "sum" | "mean" | "var_pop" | "stddev_pop" => NUMERIC[rng.below(NUMERIC.len())],
            "count_distinct" => DISCRETE[rng.below(DISCRETE.len())],
            _ if rng.below(2) == 0 => NUMERIC[rng.below(NUMERIC.len())],
            _ => DISCRETE[rng.below(DISCRETE.len())],
        };
        let mut entry = format!("function: {function}");
        if !(function == "count" && rng.below(2) == 0) {
            entry.push_str(&format!(", expr: \"{expr}\""));
        }
        if matches!(function, "min" | "max" | "first" | "last") {
            entry.push_str(&format!(", type: {ty}"));
        }
        if rng.below(3) == 0 {
            entry.push_str(&format!(", where: \"{}\"", WHERES[rng.below(WHERES.len())]));
        }
        let mut chosen: Vec<(&str, Option<i64>)> = (0..1 + rng.below(3))
            .map(|_| windows[rng.below(windows.len())])
            .collect();
        chosen.sort();
        chosen.dedup();
        let names: Vec<&str> = chosen.iter().map(|(n, _)| *n).collect();
        yaml.push_str(&format!("      a{i}: {{ {entry}, windows: [{}] }}\n", names.join(", ")));
        for (name, minutes) in chosen {
            features.push(format!("v:a{i}_{name}"));
            window_micros.extend(minutes.map(|m| m * MINUTE));
        }
    }

    // Events: few keys and times, so ties are common; most on a tile boundary or 1 µs off.
    let rows = 20 + rng.below(100);
    let keys = 1 + rng.below(5);
    let (mut k1, mut ts, mut created) = (Vec::new(), Vec::new(), Vec::new());
    let (mut a, mut b, mut s, mut flag) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rows {
        k1.push(rng.below(keys) as i64);
        let boundary = T0 + rng.below(12) as i64 * 10 * MINUTE;
        let event = boundary
            + match rng.below(6) {
                0 => 1,
                1 => -1,
                2 => rng.below(10 * MINUTE as usize) as i64,
                _ => 0,
            };
        ts.push(event);
        created.push(match rng.below(6) {
            0 => event + rng.below(180) as i64 * MINUTE,
            1 => event,
            _ => event + rng.below(3) as i64 * MINUTE,
        });
        a.push(float(&mut rng));
        let (int, text, bool) = (
            rng.below(200) as i64 - 100,
            format!("s{}", rng.below(4)),
            rng.below(2) == 0,
        );
        b.push(maybe(&mut rng, int));
        s.push(maybe(&mut rng, text));
        flag.push(maybe(&mut rng, bool));
    }
    let effective: Vec<i64> = ts
        .iter()
        .zip(&created)
        .map(|(&t, &c)| if available { t.max(c) } else { t })
        .collect();
    let instant_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Schema::new(vec![
        Field::new("k1", if string_key { DataType::Utf8 } else { DataType::Int64 }, true),
        Field::new("ts", instant_type.clone(), true),
        Field::new("created", instant_type, true),
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Int64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
    ]);
    let events = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            key_column(string_key, &k1),
            Arc::new(TimestampMicrosecondArray::from(ts.clone()).with_timezone("UTC")),
            Arc::new(TimestampMicrosecondArray::from(created.clone()).with_timezone("UTC")),
            Arc::new(Float64Array::from(a)),
            Arc::new(Int64Array::from(b)),
            Arc::new(StringArray::from(s)),
            Arc::new(BooleanArray::from(flag)),
        ],
    )
    .unwrap();

    // Instants: on an event and 1 µs before, on window edges after events, on tile
    // boundaries, when a late row landed, and long after the end.
    let pick = |rng: &mut Fuzz| ts[rng.below(ts.len())];
    let mut instants = vec![pick(&mut rng), pick(&mut rng) - 1, T0 + 24 * 60 * MINUTE];
    for &w in &window_micros {
        let at = pick(&mut rng) + w;
        instants.extend([at, at - 1]);
    }
    let tile = tile_minutes.unwrap_or(10) * MINUTE;
    let boundary = pick(&mut rng).div_euclid(tile) * tile;
    instants.extend([boundary, boundary - 1, created[rng.below(created.len())]]);
    instants.sort_unstable();
    instants.dedup();
    Case {
        yaml,
        push,
        features,
        instants,
        events,
        effective,
        string_key,
        keys,
    }
}

fn key_column(string_key: bool, keys: &[i64]) -> ArrayRef {
    if string_key {
        Arc::new(StringArray::from(
            keys.iter().map(|k| format!("key{k}")).collect::<Vec<_>>(),
        ))
    } else {
        Arc::new(Int64Array::from(keys.to_vec()))
    }
}

/// A project in `dir` with the case's definitions and `events` as its batch file.
fn project(dir: &std::path::Path, case: &Case, events: &RecordBatch, push: bool) -> Project {
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::create_dir_all(dir.join("feature_defs")).unwrap();
    let yaml = case.yaml.replace("{PUSH}", if push { ", push: true" } else { "" });
    std::fs::write(dir.join("feature_defs/defs.yaml"), yaml).unwrap();
    write_parquet(events, &dir.join("data/src.parquet")).unwrap();
    let project = Project::new(dir.join("feature_defs"), dir.join(".skewless"));
    if let Err(e) = project.apply(false, None) {
        panic!("the drawn definitions do not apply: {e}\n{}", case.yaml);
    }
    project
}

/// Every key (and one without events) at every instant: `k1`, `ts`.
fn spine(case: &Case) -> RecordBatch {
    let keys: Vec<i64> = (0..=case.keys as i64).collect();
    let mut k1 = Vec::new();
    let mut at = Vec::new();
    for &t in &case.instants {
        k1.extend_from_slice(&keys);
        at.extend(std::iter::repeat_n(t, keys.len()));
    }
    let schema = Schema::new(vec![
        Field::new(
            "k1",
            if case.string_key {
                DataType::Utf8
            } else {
                DataType::Int64
            },
            false,
        ),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            key_column(case.string_key, &k1),
            Arc::new(TimestampMicrosecondArray::from(at).with_timezone("UTC")),
        ],
    )
    .unwrap()
}

/// The training set over `spine.parquet` in `dir`: one feature column per case feature.
async fn training_set(dir: &std::path::Path, project: &Project, case: &Case) -> Vec<ArrayRef> {
    let options = TrainingSetOptions {
        spine: dir.join("spine.parquet").into(),
        selection: FeatureSelection::Features(case.features.clone()),
        timestamp_column: "ts".into(),
        full_names: false,
    };
    let built = project
        .training_set(&skewless::engine_session(), &options)
        .await
        .unwrap_or_else(|e| panic!("training set: {e}\n{}", case.yaml));
    let first = built.batch.num_columns() - case.features.len();
    built.batch.columns()[first..].to_vec()
}

/// Check 2: pushes with ids (some replayed) into a twin project with an empty batch file.
/// Returns how many values were compared, and how many of them were not null.
async fn pushed_parity(seed: u64, case: &Case, batch_offline: &[ArrayRef]) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let twin = project(dir.path(), case, &case.events.slice(0, 0), true);
    let spine = spine(case);
    write_parquet(&spine, &dir.path().join("spine.parquet")).unwrap();
    let store = online_store::open(&StoreConfig::Embedded(dir.path().join("pushed.redb")))
        .await
        .unwrap();
    let mut order: Vec<usize> = (0..case.events.num_rows()).collect();
    order.sort_by_key(|&i| case.effective[i]);
    let mut rng = Fuzz::new(seed ^ 0x5eed);
    let mut next = 0;
    let mut batches = 0;
    let selection = FeatureSelection::Features(case.features.clone());
    let per_instant = case.keys + 1;
    let mut served = BTreeMap::new();
    for (n, &t) in case.instants.iter().enumerate() {
        // Everything effective by t, in batches of 1–3 events.
        while next < order.len() && case.effective[order[next]] <= t {
            let mut rows = vec![order[next] as u64];
            next += 1;
            while rows.len() < 1 + rng.below(3) && next < order.len() && case.effective[order[next]] <= t {
                rows.push(order[next] as u64);
                next += 1;
            }
            let indices = arrow::array::UInt64Array::from(rows);
            let columns = case
                .events
                .columns()
                .iter()
                .map(|c| arrow::compute::take(c, &indices, None).unwrap())
                .collect();
            let input = PushInput::Batches(vec![RecordBatch::try_new(case.events.schema(), columns).unwrap()]);
            let id = format!("batch-{batches}");
            batches += 1;
            for _ in 0..1 + usize::from(rng.below(4) == 0) {
                twin.push(&*store, "src", &input, Some(id.clone()), PushTo::OnlineAndOffline, t)
                    .await
                    .unwrap_or_else(|e| panic!("seed {seed}: push: {e}\n{}", case.yaml));
            }
        }
        let keys = spine.column(0).slice(n * per_instant, per_instant);
        let entities: Vec<Vec<(String, String)>> = (0..per_instant)
            .map(|r| {
                let text = match scalar(&keys, r) {
                    skewless::online_store::Scalar::String(s) => s,
                    skewless::online_store::Scalar::Int64(i) => i.to_string(),
                    other => panic!("key {other:?}"),
                };
                vec![("k1".to_string(), text)]
            })
            .collect();
        let out = crate::lookup(&twin, &store, &selection, &entities, t).await.unwrap();
        served.insert(n, out.rows);
    }
    let offline = training_set(dir.path(), &twin, case).await;
    let (mut compared, mut present) = (0, 0);
    for (j, column) in offline.iter().enumerate() {
        let feature = &case.features[j];
        for row in 0..column.len() {
            let want = scalar(column, row);
            let batch_want = scalar(&batch_offline[j], row);
            assert!(
                same(&want, &batch_want),
                "seed {seed} (replay: AGG_PARITY_SEED={seed}): {feature}, spine row {row}: the push log's training set has {want:?}, the batch file's {batch_want:?}\n{}",
                case.yaml
            );
            let got = &served[&(row / per_instant)][row % per_instant][j].value;
            assert!(
                same(&want, got),
                "seed {seed} (replay: AGG_PARITY_SEED={seed}): {feature}, spine row {row} at {}: served {got:?} after pushes, the training set has {want:?}\n{}",
                case.instants[row / per_instant],
                case.yaml
            );
            compared += 1;
            present += usize::from(column.is_valid(row));
        }
    }
    (compared, present)
}

/// Values compared and, of those, values not null.
async fn check(seed: u64) -> (usize, usize) {
    let case = draw(seed);
    let dir = tempfile::tempdir().unwrap();
    let batch_project = project(dir.path(), &case, &case.events, case.push);
    write_parquet(&spine(&case), &dir.path().join("spine.parquet")).unwrap();
    let replay = format!("seed {seed} (replay: AGG_PARITY_SEED={seed})");
    let at = case.instants.clone();
    let report = assert_parity(
        &batch_project,
        dir.path(),
        &case.features,
        at,
        None,
        &replay,
        &case.yaml,
    )
    .await;
    let batch_offline = training_set(dir.path(), &batch_project, &case).await;
    let (pushed, pushed_present) = pushed_parity(seed, &case, &batch_offline).await;
    let present: usize = report.views.values().map(|v| v.present).sum();
    (report.values() + pushed, present + pushed_present)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_aggregations_agree_materialized_and_pushed() {
    // 20 fixed seeds (and any that once failed) plus 10 fresh ones per run.
    let seeds = seed_plan("AGG_PARITY", 20, &[], 10);
    let (mut values, mut present) = (0, 0);
    for &seed in &seeds {
        let (v, p) = check(seed).await;
        values += v;
        present += p;
    }
    println!(
        "aggregation parity property: {} cases, {values} values compared ({present} not null), 0 mismatches",
        seeds.len()
    );
    // Mostly values, not nulls agreeing with nulls.
    assert!(present * 2 > values, "only {present} of {values} values are not null");
}
