//! Profiles of feature values: what a column of feature values looked like.
//!
//! A training set's manifest records one [`Profile`] per feature, so the values a model
//! learned from are known later without the training set: `skewless profile MANIFEST` shows
//! them, and drift checks compare served values with them. That use shapes the format:
//!
//! - Counts are exact: rows, nulls, and for numbers NaN and infinities apart from the finite
//!   values (the moments, quantiles and bins are over the finite values only; JSON has no
//!   NaN or infinity, and one infinity would make a mean meaningless).
//! - A numeric profile keeps a t-digest ([`Sketch`], DataFusion's, 100 centroids): profiles
//!   of parts [`Profile::merge`] into a profile of the whole, quantiles within the sketch's
//!   error. Its `quantiles` are exact when computed from the values (the values are sorted
//!   anyway to build the sketch) and come from the sketch after a merge.
//! - A [`Histogram`] of the finite values over fixed edges: for a training set, the deciles
//!   (equal-frequency bins, what PSI wants), kept in the profile so that served values can
//!   later be binned on the reference's own edges.
//! - Strings and bools keep their most frequent values with counts, exact while there are
//!   at most [`DISTINCT_LIMIT`] distinct values, Misra–Gries lower bounds beyond that.

pub mod drift;
pub mod reference;

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use datafusion_functions_aggregate_common::tdigest::{Centroid, TDigest};
use serde::{Deserialize, Serialize};

/// Centroids in a numeric profile's sketch (DataFusion's default for `approx_percentile_cont`).
pub const SKETCH_SIZE: usize = 100;
/// Most frequent values kept in a categorical profile.
pub const TOP: usize = 20;
/// Distinct values counted exactly; beyond it the counts are Misra–Gries lower bounds.
pub const DISTINCT_LIMIT: usize = 100_000;
/// The quantiles a numeric profile reports, and the deciles that make its histogram's edges.
pub const QUANTILES: [(&str, f64); 7] = [
    ("p01", 0.01),
    ("p05", 0.05),
    ("p25", 0.25),
    ("p50", 0.5),
    ("p75", 0.75),
    ("p95", 0.95),
    ("p99", 0.99),
];
const DECILES: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProfileError {
    #[error("cannot merge a {0} profile with a {1} profile")]
    Kinds(&'static str, &'static str),
    #[error("cannot merge histograms over different edges")]
    Edges,
    #[error("a damaged quantile sketch: {0}")]
    Sketch(String),
}

/// What one column of feature values looked like.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Rows, nulls included.
    pub count: u64,
    pub nulls: u64,
    #[serde(flatten)]
    pub values: Values,
}

/// The non-null values, by the column's kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Values {
    /// Integers, floats and decimals (as f64).
    Numeric(Numeric),
    /// Strings and bools (`"true"`, `"false"`).
    Categorical(Categorical),
    /// Another type (timestamps, lists): counts only.
    Other { data_type: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Numeric {
    pub nan: u64,
    /// +∞ and −∞.
    pub infinite: u64,
    /// The statistics below are over the finite values; `None` when there are none.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    /// The sample standard deviation (n − 1, as pandas' `describe`); `None` below two values.
    pub stddev: Option<f64>,
    /// [`QUANTILES`] by name: exact (linear interpolation, numpy's default) when profiled
    /// from the values, from the sketch after a merge. Empty when there are no finite values.
    pub quantiles: BTreeMap<String, f64>,
    pub sketch: Sketch,
    pub histogram: Histogram,
}

impl Numeric {
    /// Finite values.
    pub fn finite(&self) -> u64 {
        self.sketch.count as u64
    }
}

/// Counts of finite values in the bins `(-∞, e0], (e0, e1], …, (e_last, +∞)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub edges: Vec<f64>,
    /// One more than `edges`.
    pub counts: Vec<u64>,
}

impl Histogram {
    /// The bin of `x`: the number of edges below it.
    pub fn bin(edges: &[f64], x: f64) -> usize {
        edges.partition_point(|e| *e < x)
    }

    /// Finite values binned on `edges` (strictly increasing, finite).
    pub fn of(edges: Vec<f64>, values: impl IntoIterator<Item = f64>) -> Histogram {
        let mut counts = vec![0; edges.len() + 1];
        for x in values.into_iter().filter(|x| x.is_finite()) {
            counts[Self::bin(&edges, x)] += 1;
        }
        Histogram { edges, counts }
    }
}

/// A t-digest, in parts: serializable, and rebuilt with validation ([`Sketch::digest`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    pub max_size: usize,
    pub count: f64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// `[mean, weight]`, by mean.
    pub centroids: Vec<[f64; 2]>,
}

impl Sketch {
    fn of(digest: &TDigest) -> Sketch {
        let finite = |x: f64| x.is_finite().then_some(x);
        Sketch {
            max_size: digest.max_size(),
            count: digest.count(),
            sum: digest.sum(),
            min: finite(digest.min()),
            max: finite(digest.max()),
            centroids: digest.centroids().iter().map(|c| [c.mean(), c.weight()]).collect(),
        }
    }

    /// The digest these parts describe; an error when they are not one (a damaged manifest).
    pub fn digest(&self) -> Result<TDigest, ProfileError> {
        let centroids = self
            .centroids
            .iter()
            .map(|[mean, weight]| Centroid::new(*mean, *weight))
            .collect();
        TDigest::try_from_parts(
            self.max_size,
            self.sum,
            self.count,
            self.max.unwrap_or(f64::NAN),
            self.min.unwrap_or(f64::NAN),
            centroids,
        )
        .map_err(|e| ProfileError::Sketch(e.to_string()))
    }

    /// The `q` quantile, estimated; `None` when empty.
    pub fn quantile(&self, q: f64) -> Result<Option<f64>, ProfileError> {
        if self.count == 0.0 {
            return Ok(None);
        }
        Ok(Some(self.digest()?.estimate_quantile(q)))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Categorical {
    /// Distinct values; `None` past [`DISTINCT_LIMIT`].
    pub distinct: Option<u64>,
    /// The most frequent values and their counts, most frequent first (ties by value); the
    /// counts are exact when `distinct` is known, lower bounds otherwise.
    pub top: Vec<(String, u64)>,
}

impl Profile {
    /// The profile of one column.
    pub fn of(column: &dyn Array) -> Profile {
        let count = column.len() as u64;
        let nulls = column.logical_null_count() as u64;
        let values = match column.data_type() {
            DataType::Boolean => categorical_of_bools(column),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => categorical_of_strings(column),
            t if t.is_numeric() => match cast(column, &DataType::Float64) {
                Ok(floats) => Values::Numeric(numeric_of(floats.as_primitive())),
                Err(_) => Values::Other {
                    data_type: t.to_string(),
                },
            },
            t => Values::Other {
                data_type: t.to_string(),
            },
        };
        Profile { count, nulls, values }
    }

    /// Folds `other`, a profile of more values of the same column, into this one. Counts,
    /// moments and top values merge exactly (top values while both are exact); the sketch
    /// merges as a t-digest and the quantiles are then read from it; histograms must share
    /// their edges.
    pub fn merge(&mut self, other: &Profile) -> Result<(), ProfileError> {
        match (&mut self.values, &other.values) {
            (Values::Numeric(a), Values::Numeric(b)) => merge_numeric(a, b)?,
            (Values::Categorical(a), Values::Categorical(b)) => merge_categorical(a, b),
            (Values::Other { .. }, Values::Other { .. }) => {}
            (a, b) => return Err(ProfileError::Kinds(kind(a), kind(b))),
        }
        self.count += other.count;
        self.nulls += other.nulls;
        Ok(())
    }
}

fn kind(values: &Values) -> &'static str {
    match values {
        Values::Numeric(_) => "numeric",
        Values::Categorical(_) => "categorical",
        Values::Other { .. } => "other",
    }
}

fn numeric_of(column: &Float64Array) -> Numeric {
    let (mut nan, mut infinite) = (0, 0);
    let mut finite: Vec<f64> = Vec::with_capacity(column.len() - column.null_count());
    for x in column.iter().flatten() {
        if x.is_nan() {
            nan += 1;
        } else if x.is_infinite() {
            infinite += 1;
        } else {
            finite.push(x);
        }
    }
    let n = finite.len();
    let mean = (n > 0).then(|| neumaier_sum(finite.iter().copied()) / n as f64);
    let stddev = match (n, mean) {
        (2.., Some(mean)) => {
            Some((neumaier_sum(finite.iter().map(|x| (x - mean) * (x - mean))) / (n - 1) as f64).sqrt())
        }
        _ => None,
    };
    finite.sort_unstable_by(f64::total_cmp);
    let digest = TDigest::new(SKETCH_SIZE).merge_sorted_f64(&finite);
    let quantiles = if n == 0 {
        BTreeMap::new()
    } else {
        QUANTILES
            .iter()
            .map(|(name, q)| (name.to_string(), exact_quantile(&finite, *q)))
            .collect()
    };
    let mut edges: Vec<f64> = if n == 0 {
        Vec::new()
    } else {
        DECILES.iter().map(|q| exact_quantile(&finite, *q)).collect()
    };
    edges.dedup();
    // Sorted: each bin's count is a difference of two positions.
    let at_most = |e: f64| finite.partition_point(|x| *x <= e) as u64;
    let mut counts = Vec::with_capacity(edges.len() + 1);
    let mut below = 0;
    for &e in &edges {
        let upto = at_most(e);
        counts.push(upto - below);
        below = upto;
    }
    counts.push(n as u64 - below);
    Numeric {
        nan,
        infinite,
        min: finite.first().copied(),
        max: finite.last().copied(),
        mean,
        stddev,
        quantiles,
        sketch: Sketch::of(&digest),
        histogram: Histogram { edges, counts },
    }
}

/// The `q` quantile of sorted values, interpolated linearly between the two nearest ranks.
fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(sorted.len() - 1);
    let fraction = position - below as f64;
    sorted[below] + fraction * (sorted[above] - sorted[below])
}

/// A sum that stays accurate over millions of values of mixed magnitude (Neumaier's
/// compensated summation).
fn neumaier_sum(values: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut compensation) = (0.0f64, 0.0f64);
    for x in values {
        let t = sum + x;
        if sum.abs() >= x.abs() {
            compensation += (sum - t) + x;
        } else {
            compensation += (x - t) + sum;
        }
        sum = t;
    }
    sum + compensation
}

fn merge_numeric(a: &mut Numeric, b: &Numeric) -> Result<(), ProfileError> {
    if a.histogram.edges != b.histogram.edges {
        return Err(ProfileError::Edges);
    }
    let (na, nb) = (a.finite() as f64, b.finite() as f64);
    let n = na + nb;
    // Chan et al.'s pairwise update of the mean and the sum of squared deviations.
    let m2 = |s: &Numeric, count: f64| s.stddev.map_or(0.0, |sd| sd * sd * (count - 1.0));
    let (mean, stddev) = match (a.mean, b.mean) {
        (Some(ma), Some(mb)) => {
            let delta = mb - ma;
            let mean = ma + delta * nb / n;
            let m2 = m2(a, na) + m2(b, nb) + delta * delta * na * nb / n;
            (Some(mean), (n >= 2.0).then(|| (m2 / (n - 1.0)).sqrt()))
        }
        (Some(_), None) => (a.mean, a.stddev),
        (None, _) => (b.mean, b.stddev),
    };
    let digest = TDigest::merge_digests([&a.sketch.digest()?, &b.sketch.digest()?]);
    a.nan += b.nan;
    a.infinite += b.infinite;
    a.min = min_of(a.min, b.min, f64::min);
    a.max = min_of(a.max, b.max, f64::max);
    a.mean = mean;
    a.stddev = stddev;
    a.sketch = Sketch::of(&digest);
    a.quantiles = if digest.count() == 0.0 {
        BTreeMap::new()
    } else {
        QUANTILES
            .iter()
            .map(|(name, q)| (name.to_string(), digest.estimate_quantile(*q)))
            .collect()
    };
    for (into, from) in a.histogram.counts.iter_mut().zip(&b.histogram.counts) {
        *into += from;
    }
    Ok(())
}

fn min_of(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

fn merge_categorical(a: &mut Categorical, b: &Categorical) {
    let mut counts: HashMap<&str, u64> = a.top.iter().map(|(v, c)| (v.as_str(), *c)).collect();
    for (v, c) in &b.top {
        *counts.entry(v.as_str()).or_default() += c;
    }
    // The union of two top lists is exact only when both lists are whole (no value cut).
    let whole = |c: &Categorical| c.distinct.is_some_and(|d| d as usize <= c.top.len());
    let distinct = (whole(a) && whole(b)).then_some(counts.len() as u64);
    a.top = top_of(counts.into_iter().map(|(v, c)| (v.to_string(), c)));
    a.distinct = distinct;
}

fn categorical_of_bools(column: &dyn Array) -> Values {
    let bools = column.as_boolean();
    let trues = bools.true_count() as u64;
    let falses = bools.false_count() as u64;
    let counts = [("true".to_string(), trues), ("false".to_string(), falses)];
    let present = counts.into_iter().filter(|(_, c)| *c > 0).collect::<Vec<_>>();
    Values::Categorical(Categorical {
        distinct: Some(present.len() as u64),
        top: top_of(present),
    })
}

fn categorical_of_strings(column: &dyn Array) -> Values {
    let mut counter = Counter::default();
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().iter().flatten().for_each(|v| counter.add(v)),
        DataType::LargeUtf8 => column.as_string::<i64>().iter().flatten().for_each(|v| counter.add(v)),
        _ => column.as_string_view().iter().flatten().for_each(|v| counter.add(v)),
    }
    Values::Categorical(Categorical {
        distinct: (!counter.overflowed).then_some(counter.counts.len() as u64),
        top: top_of(counter.counts.into_iter().map(|(v, c)| (v.to_string(), c))),
    })
}

/// Exact counts of up to [`DISTINCT_LIMIT`] values; past it, Misra–Gries: a new value when
/// full takes one from every count (each decrement round is paid for by the increments it
/// removes, so the cost stays linear), and the counts that remain are lower bounds.
#[derive(Default)]
struct Counter<'a> {
    counts: HashMap<&'a str, u64>,
    overflowed: bool,
}

impl<'a> Counter<'a> {
    fn add(&mut self, value: &'a str) {
        if let Some(c) = self.counts.get_mut(value) {
            *c += 1;
        } else if self.counts.len() < DISTINCT_LIMIT {
            self.counts.insert(value, 1);
        } else {
            self.overflowed = true;
            self.counts.retain(|_, c| {
                *c -= 1;
                *c > 0
            });
        }
    }
}

fn top_of(counts: impl IntoIterator<Item = (String, u64)>) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = counts.into_iter().collect();
    let order = |a: &(String, u64), b: &(String, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if all.len() > TOP {
        all.select_nth_unstable_by(TOP - 1, order);
        all.truncate(TOP);
    }
    all.sort_by(order);
    all
}

/// Profiles of `columns` (name, values), each on a thread of its own when there are several
/// and the machine has cores for them.
pub fn profile_columns(columns: &[(String, ArrayRef)]) -> BTreeMap<String, Profile> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(columns.len());
    if threads <= 1 {
        return columns.iter().map(|(name, c)| (name.clone(), Profile::of(c))).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some((name, column)) = columns.get(i) else {
                return done;
            };
            done.push((name.clone(), Profile::of(column)));
        }
    };
    std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut all = work();
        for other in others {
            match other.join() {
                Ok(done) => all.extend(done),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        all.into_iter().collect()
    })
}
