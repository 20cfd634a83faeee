//! Drift: how far one profile of a feature's values has moved from a reference profile.
//!
//! Numbers are compared on the reference's own bins (its deciles, so each holds a tenth of
//! the reference): the current profile's share of each bin comes from its histogram when it
//! was binned on the same edges, else from its t-digest's distribution at those edges.
//! Categories are compared over the values either profile ranks among its most frequent,
//! the rest pooled as one. On both: the population stability index (PSI, the industry's
//! rule of thumb: < 0.1 stable, 0.1–0.2 moderate, > 0.2 a shift), the Jensen–Shannon
//! divergence (base 2: 0 equal, 1 disjoint), and the change in the null rate.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::{Profile, ProfileError, Values};

/// A bin's share below which it counts as this much (PSI divides by shares and takes logs).
const SMALLEST_SHARE: f64 = 1e-4;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub psi: f64,
    pub js: f64,
    /// The reference's null rate, and the current one.
    pub null_rate: (f64, f64),
    /// Each bin (or category), with the reference's and the current share: what moved.
    pub bins: Vec<Bin>,
}

impl Drift {
    /// The current null rate minus the reference's.
    pub fn null_rate_change(&self) -> f64 {
        self.null_rate.1 - self.null_rate.0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// `≤ 0.31`, `> 0.98`, `(0.31, 0.47]`, a category, or `(other)`.
    pub label: String,
    pub reference: f64,
    pub current: f64,
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// The drift of `current` from `reference` (profiles of one feature).
pub fn drift(reference: &Profile, current: &Profile) -> Result<Drift, ProfileError> {
    let null_rate = (
        rate(reference.nulls, reference.count),
        rate(current.nulls, current.count),
    );
    let bins = match (&reference.values, &current.values) {
        (Values::Numeric(r), Values::Numeric(c)) => {
            let edges = &r.histogram.edges;
            let current_shares = if c.histogram.edges == *edges {
                shares(&c.histogram.counts)
            } else {
                sketch_shares(c, edges)?
            };
            let reference_shares = shares(&r.histogram.counts);
            (0..reference_shares.len())
                .map(|i| Bin {
                    label: bin_label(edges, i),
                    reference: reference_shares[i],
                    current: current_shares[i],
                })
                .collect()
        }
        (Values::Categorical(r), Values::Categorical(c)) => {
            let values: BTreeSet<&str> = r.top.iter().chain(&c.top).map(|(v, _)| v.as_str()).collect();
            let non_null = |p: &Profile| p.count - p.nulls;
            let share = |top: &[(String, u64)], whole: u64, value: &str| {
                rate(top.iter().find(|(v, _)| v == value).map_or(0, |(_, n)| *n), whole)
            };
            let mut bins: Vec<Bin> = values
                .iter()
                .map(|v| Bin {
                    label: v.to_string(),
                    reference: share(&r.top, non_null(reference), v),
                    current: share(&c.top, non_null(current), v),
                })
                .collect();
            let (rest_r, rest_c) = (
                1.0 - bins.iter().map(|b| b.reference).sum::<f64>(),
                1.0 - bins.iter().map(|b| b.current).sum::<f64>(),
            );
            if rest_r > 1e-12 || rest_c > 1e-12 {
                bins.push(Bin {
                    label: "(other)".into(),
                    reference: rest_r.max(0.0),
                    current: rest_c.max(0.0),
                });
            }
            bins
        }
        (Values::Other { .. }, Values::Other { .. }) => Vec::new(),
        (a, b) => return Err(ProfileError::Kinds(crate::kind(a), crate::kind(b))),
    };
    Ok(scored(bins, null_rate))
}

/// PSI and Jensen–Shannon over bins with both shares.
fn scored(bins: Vec<Bin>, null_rate: (f64, f64)) -> Drift {
    let (mut psi, mut js) = (0.0, 0.0);
    for bin in &bins {
        let (p, q) = (bin.reference.max(SMALLEST_SHARE), bin.current.max(SMALLEST_SHARE));
        psi += (q - p) * (q / p).ln();
        let m = (bin.reference + bin.current) / 2.0;
        let kl = |x: f64| if x > 0.0 { x * (x / m).log2() } else { 0.0 };
        js += (kl(bin.reference) + kl(bin.current)) / 2.0;
    }
    Drift {
        psi,
        js: js.clamp(0.0, 1.0),
        null_rate,
        bins,
    }
}

/// How values are counted against a reference profile, one count per bin, so that a stream
/// of values (what a server serves) can be compared with it without keeping the values:
/// numbers on the reference's histogram edges, strings and bools on its most frequent
/// values plus one bin for the rest.
#[derive(Debug, Clone, PartialEq)]
pub enum Binning {
    Edges(Vec<f64>),
    Categories(Vec<String>),
}

impl Binning {
    /// The binning of a reference profile; `None` for a kind without bins.
    pub fn of(reference: &Profile) -> Option<Binning> {
        match &reference.values {
            Values::Numeric(n) => Some(Binning::Edges(n.histogram.edges.clone())),
            Values::Categorical(c) => Some(Binning::Categories(c.top.iter().map(|(v, _)| v.clone()).collect())),
            Values::Other { .. } => None,
        }
    }

    /// Bins: one more than the edges, or than the categories (the rest).
    pub fn bins(&self) -> usize {
        match self {
            Binning::Edges(edges) => edges.len() + 1,
            Binning::Categories(values) => values.len() + 1,
        }
    }

    /// The bin of a number; `None` for NaN and infinities (counted apart, as profiles do).
    pub fn number(&self, x: f64) -> Option<usize> {
        match self {
            Binning::Edges(edges) if x.is_finite() => Some(crate::Histogram::bin(edges, x)),
            _ => None,
        }
    }

    /// The bin of a category (the last bin: not among the reference's values).
    pub fn category(&self, value: &str) -> usize {
        match self {
            Binning::Categories(values) => values.iter().position(|v| v == value).unwrap_or(values.len()),
            Binning::Edges(edges) => edges.len() + 1,
        }
    }
}

/// Values counted on a reference's [`Binning`]: rows, nulls and the count of each bin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub count: u64,
    pub nulls: u64,
    pub bins: Vec<u64>,
}

/// The drift of values counted on `binning` (which must be [`Binning::of`] `reference`)
/// from the reference profile.
pub fn drift_from_counts(reference: &Profile, binning: &Binning, counts: &Counts) -> Drift {
    let null_rate = (rate(reference.nulls, reference.count), rate(counts.nulls, counts.count));
    let current = shares(&counts.bins);
    let bins = match (binning, &reference.values) {
        (Binning::Edges(edges), Values::Numeric(r)) => shares(&r.histogram.counts)
            .into_iter()
            .enumerate()
            .map(|(i, reference)| Bin {
                label: bin_label(edges, i),
                reference,
                current: current.get(i).copied().unwrap_or(0.0),
            })
            .collect(),
        (Binning::Categories(values), Values::Categorical(c)) => {
            let non_null = reference.count - reference.nulls;
            let mut bins: Vec<Bin> = values
                .iter()
                .zip(&c.top)
                .enumerate()
                .map(|(i, (value, (_, n)))| Bin {
                    label: value.clone(),
                    reference: rate(*n, non_null),
                    current: current.get(i).copied().unwrap_or(0.0),
                })
                .collect();
            let rest = 1.0 - bins.iter().map(|b| b.reference).sum::<f64>();
            bins.push(Bin {
                label: "(other)".into(),
                reference: rest.max(0.0),
                current: current.get(values.len()).copied().unwrap_or(0.0),
            });
            bins
        }
        _ => Vec::new(),
    };
    scored(bins, null_rate)
}

fn shares(counts: &[u64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    counts.iter().map(|c| rate(*c, total)).collect()
}

/// The current values' shares of the reference's bins, from the current sketch: its
/// distribution function at each edge (the quantile whose estimate is the edge, found by
/// bisection, since the sketch estimates quantiles).
fn sketch_shares(current: &crate::Numeric, edges: &[f64]) -> Result<Vec<f64>, ProfileError> {
    if current.sketch.count == 0.0 {
        return Ok(vec![0.0; edges.len() + 1]);
    }
    let digest = current.sketch.digest()?;
    let cdf = |x: f64| {
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        for _ in 0..40 {
            let mid = (lo + hi) / 2.0;
            if digest.estimate_quantile(mid) <= x {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let mut below = 0.0;
    let mut out = Vec::with_capacity(edges.len() + 1);
    for &e in edges {
        let at = cdf(e).max(below);
        out.push(at - below);
        below = at;
    }
    out.push((1.0 - below).max(0.0));
    Ok(out)
}

fn bin_label(edges: &[f64], i: usize) -> String {
    match (i.checked_sub(1).map(|j| edges[j]), edges.get(i)) {
        (None, Some(hi)) => format!("≤ {hi}"),
        (Some(lo), None) => format!("> {lo}"),
        (Some(lo), Some(hi)) => format!("({lo}, {hi}]"),
        (None, None) => "all".into(),
    }
}
