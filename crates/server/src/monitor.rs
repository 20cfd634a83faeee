//! Drift of what is served: every served value of a feature that has a reference (the
//! training set its service's model learned from, `skewless monitor set-reference`) is
//! counted on the reference's bins, and `/metrics` and `GET /v1/monitor` report the drift
//! of the last 5 minutes, hour and day against it. References named while the server runs
//! are picked up by [`Monitor::refresh`] (`skewless serve` looks every few seconds).
//!
//! Memory is bounded and fixed per feature: per core, 60 one-minute and 24 one-hour slots,
//! each a row count, a null count and one count per bin (at most 21). The request path takes
//! no exclusive lock: a lookup reads the current map of tracked features (a shared read, as
//! it reads the serving core), counts its values per feature on the stack, then adds them to
//! its thread's stripe of slots with relaxed atomic adds (a report sums the stripes). A slot is claimed for a new
//! minute (or hour) by the first request that sees it stale; counts another request adds
//! in the instant between the claim and the reset are lost, a rounding error at a slot's
//! edge that monitoring can afford.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use serde::Serialize;
use skewless_online::Scalar;
use skewless_profile::Profile;
use skewless_profile::drift::{Binning, Counts, Drift, drift_from_counts};
use skewless_profile::reference::{Reference, Thresholds};
use skewless_serving::core::GetOutput;

/// The windows reported: name, length in seconds.
pub const WINDOWS: [(&str, u64); 3] = [("5m", 300), ("1h", 3600), ("1d", 86_400)];
const MINUTES: usize = 60;
/// Bins a tracked feature may have: a profile's top values and the rest (numbers have ten).
const MAX_BINS: usize = skewless_profile::TOP + 1;

/// One lookup's counts of one feature, before they are added to the shared slots.
struct Local {
    count: u64,
    nulls: u64,
    bins: [u64; MAX_BINS],
}
const HOURS: usize = 24;

/// The served-value counts of every feature with a reference.
#[derive(Debug, Default)]
pub struct Monitor {
    /// Swapped whole by [`Monitor::refresh`]; a lookup takes the current map once.
    features: std::sync::RwLock<Arc<Features>>,
}

/// By view, then feature: lookups borrow the names, with no allocation.
type Features = BTreeMap<String, BTreeMap<String, Arc<Tracked>>>;

#[derive(Debug)]
struct Tracked {
    service: String,
    reference: Profile,
    binning: Binning,
    thresholds: Thresholds,
    /// One set of slots per stripe: each serving thread adds to its own, so shards do not
    /// contend for the same counters; a report sums them.
    stripes: Vec<Stripe>,
}

#[derive(Debug)]
struct Stripe {
    minutes: Vec<Slot>,
    hours: Vec<Slot>,
}

impl Stripe {
    fn new(bins: usize) -> Stripe {
        Stripe {
            minutes: (0..MINUTES).map(|_| Slot::new(bins)).collect(),
            hours: (0..HOURS).map(|_| Slot::new(bins)).collect(),
        }
    }
}

/// This thread's stripe, dealt round-robin on a thread's first lookup.
fn stripe_of_this_thread(stripes: usize) -> usize {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static STRIPE: u64 = NEXT.fetch_add(1, Relaxed);
    }
    STRIPE.with(|s| (*s as usize) % stripes.max(1))
}

/// Stripes per feature: one per core the server can run on.
fn stripes() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(16)
}

#[derive(Debug)]
struct Slot {
    /// The minute (or hour) since the epoch these counts belong to, plus one (0: never used).
    stamp: AtomicU64,
    count: AtomicU64,
    nulls: AtomicU64,
    bins: Box<[AtomicU64]>,
}

impl Slot {
    fn new(bins: usize) -> Slot {
        Slot {
            stamp: AtomicU64::new(0),
            count: AtomicU64::new(0),
            nulls: AtomicU64::new(0),
            bins: (0..bins).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Adds `local` to this slot, claiming it for `stamp` first when it holds an older one.
    fn add(&self, stamp: u64, local: &Local) {
        let seen = self.stamp.load(Relaxed);
        if seen != stamp && self.stamp.compare_exchange(seen, stamp, Relaxed, Relaxed).is_ok() {
            self.count.store(0, Relaxed);
            self.nulls.store(0, Relaxed);
            for bin in self.bins.iter() {
                bin.store(0, Relaxed);
            }
        }
        self.count.fetch_add(local.count, Relaxed);
        if local.nulls > 0 {
            self.nulls.fetch_add(local.nulls, Relaxed);
        }
        for (bin, n) in self.bins.iter().zip(&local.bins) {
            if *n > 0 {
                bin.fetch_add(*n, Relaxed);
            }
        }
    }

    /// Adds this slot's counts into `total` when its stamp is within `[from, to]`.
    fn read_into(&self, from: u64, to: u64, total: &mut Counts) {
        let stamp = self.stamp.load(Relaxed);
        if stamp == 0 || stamp < from + 1 || stamp > to + 1 {
            return;
        }
        total.count += self.count.load(Relaxed);
        total.nulls += self.nulls.load(Relaxed);
        for (into, bin) in total.bins.iter_mut().zip(self.bins.iter()) {
            *into += bin.load(Relaxed);
        }
    }
}

/// A gauge family: its name, its help, and its value for one feature and window.
type Gauge = (&'static str, &'static str, fn(&FeatureDrift) -> f64);

/// One feature's drift over one window, as `/v1/monitor` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureDrift {
    pub feature: String,
    pub service: String,
    pub window: &'static str,
    pub values: u64,
    pub null_rate: f64,
    pub psi: f64,
    pub js: f64,
    pub reference_null_rate: f64,
    /// What passed a threshold (empty: none, or too few values to judge).
    pub breaches: Vec<String>,
    pub judged: bool,
    pub bins: Vec<skewless_profile::drift::Bin>,
}

impl Monitor {
    /// Tracks the features of `references`. A feature in several services' references is
    /// tracked once, against the first service's (by name).
    pub fn new(references: &BTreeMap<String, Reference>) -> Monitor {
        let monitor = Monitor::default();
        monitor.refresh(references);
        monitor
    }

    /// Tracks the features of `references` from now on: a feature whose reference (service,
    /// profile, thresholds) is unchanged keeps its counts; a new or changed one starts from
    /// zero; one no longer named is dropped. Whether anything changed.
    pub fn refresh(&self, references: &BTreeMap<String, Reference>) -> bool {
        let before = self.snapshot();
        let mut features = Features::new();
        for reference in references.values() {
            for (name, profile) in &reference.profiles {
                let (Some((view, feature)), Some(binning)) = (name.split_once(':'), Binning::of(profile)) else {
                    continue;
                };
                // A reference written by hand with more categories than a profile keeps.
                if binning.bins() > MAX_BINS {
                    continue;
                }
                let same = |t: &&Arc<Tracked>| {
                    t.service == reference.service && t.reference == *profile && t.thresholds == reference.thresholds
                };
                let kept = before.get(view).and_then(|v| v.get(feature)).filter(same).cloned();
                let bins = binning.bins();
                features
                    .entry(view.to_string())
                    .or_default()
                    .entry(feature.to_string())
                    .or_insert_with(|| {
                        kept.unwrap_or_else(|| {
                            Arc::new(Tracked {
                                service: reference.service.clone(),
                                reference: profile.clone(),
                                binning,
                                thresholds: reference.thresholds,
                                stripes: (0..stripes()).map(|_| Stripe::new(bins)).collect(),
                            })
                        })
                    });
            }
        }
        let changed = features.len() != before.len()
            || features.iter().any(|(view, fs)| {
                before.get(view).is_none_or(|old| {
                    old.len() != fs.len() || fs.iter().any(|(f, t)| old.get(f).is_none_or(|o| !Arc::ptr_eq(o, t)))
                })
            });
        if changed {
            *self.features.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(features);
        }
        changed
    }

    fn snapshot(&self) -> Arc<Features> {
        // A poisoned lock still holds a whole map: it is only ever replaced whole.
        Arc::clone(&self.features.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }

    /// Counts a lookup's values (`now`: seconds since the epoch).
    pub fn record(&self, found: &GetOutput, now: u64) {
        // The read guard, not a clone of the Arc: one shared atomic per lookup, not two.
        let features = self.features.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if features.is_empty() {
            return;
        }
        let (minute, hour) = (now / 60, now / 3600);
        for (i, f) in found.features.iter().enumerate() {
            let Some(tracked) = features.get(&f.view).and_then(|v| v.get(&f.feature)) else {
                continue;
            };
            // Counted on the stack, then added to the shared slots once per bin.
            let mut local = Local {
                count: 0,
                nulls: 0,
                bins: [0; MAX_BINS],
            };
            for row in &found.rows {
                let Some(value) = row.get(i) else { continue };
                local.count += 1;
                let bin = match &value.value {
                    Scalar::Null => {
                        local.nulls += 1;
                        None
                    }
                    Scalar::Bool(b) => Some(tracked.binning.category(if *b { "true" } else { "false" })),
                    Scalar::String(s) => Some(tracked.binning.category(s)),
                    Scalar::Int32(x) => tracked.binning.number(f64::from(*x)),
                    Scalar::Int64(x) => tracked.binning.number(*x as f64),
                    Scalar::Float32(x) => tracked.binning.number(f64::from(*x)),
                    Scalar::Float64(x) => tracked.binning.number(*x),
                    Scalar::Timestamp(_) => None,
                };
                if let Some(bin) = bin.filter(|b| *b < local.bins.len()) {
                    local.bins[bin] += 1;
                }
            }
            let Some(stripe) = tracked.stripes.get(stripe_of_this_thread(tracked.stripes.len())) else {
                continue;
            };
            stripe.minutes[(minute % MINUTES as u64) as usize].add(minute + 1, &local);
            stripe.hours[(hour % HOURS as u64) as usize].add(hour + 1, &local);
        }
    }

    /// Every tracked feature's drift over every window (`now`: seconds since the epoch).
    pub fn report(&self, now: u64) -> Vec<FeatureDrift> {
        let mut out = Vec::new();
        for (view, features) in self.snapshot().iter() {
            for (feature, tracked) in features {
                for (window, seconds) in WINDOWS {
                    let mut counts = Counts {
                        count: 0,
                        nulls: 0,
                        bins: vec![0; tracked.binning.bins()],
                    };
                    let length = if seconds <= 3600 { 60 } else { 3600 };
                    // The current slot and the ones before it, back to the window's length.
                    let to = now / length;
                    let from = (now + 1).saturating_sub(seconds) / length;
                    for stripe in &tracked.stripes {
                        let slots = if seconds <= 3600 {
                            &stripe.minutes
                        } else {
                            &stripe.hours
                        };
                        for slot in slots.iter() {
                            slot.read_into(from, to, &mut counts);
                        }
                    }
                    let drift = drift_from_counts(&tracked.reference, &tracked.binning, &counts);
                    out.push(judged(format!("{view}:{feature}"), tracked, window, &counts, drift));
                }
            }
        }
        out
    }

    /// Prometheus gauges of [`Monitor::report`].
    pub fn render(&self, now: u64, text: &mut String) {
        if self.is_empty() {
            return;
        }
        let report = self.report(now);
        let gauges: [Gauge; 4] = [
            (
                "skewless_feature_drift_psi",
                "Population stability index of served values against the service's reference training set, on its bins.",
                |d| d.psi,
            ),
            (
                "skewless_feature_drift_js",
                "Jensen-Shannon divergence (base 2) of served values against the reference.",
                |d| d.js,
            ),
            (
                "skewless_feature_null_ratio",
                "Share of served values that were null.",
                |d| d.null_rate,
            ),
            ("skewless_feature_served_values", "Values served in the window.", |d| {
                d.values as f64
            }),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
            for d in &report {
                let _ = writeln!(
                    text,
                    "{name}{{service=\"{}\",feature=\"{}\",window=\"{}\"}} {}",
                    d.service,
                    d.feature,
                    d.window,
                    value(d)
                );
            }
        }
        let _ = writeln!(
            text,
            "# HELP skewless_monitor_breaches Features whose served values passed a drift or null-rate threshold.\n# TYPE skewless_monitor_breaches gauge"
        );
        for (window, _) in WINDOWS {
            let breaches = report
                .iter()
                .filter(|d| d.window == window && !d.breaches.is_empty())
                .count();
            let _ = writeln!(text, "skewless_monitor_breaches{{window=\"{window}\"}} {breaches}");
        }
    }
}

fn judged(feature: String, tracked: &Tracked, window: &'static str, counts: &Counts, drift: Drift) -> FeatureDrift {
    let t = tracked.thresholds;
    let judged = counts.count >= t.min_values;
    let mut breaches = Vec::new();
    if judged && drift.psi > t.psi {
        breaches.push(format!("psi {:.3} > {}", drift.psi, t.psi));
    }
    if judged && drift.null_rate_change().abs() > t.null_rate {
        breaches.push(format!(
            "null rate {:.1}% (trained on {:.1}%)",
            100.0 * drift.null_rate.1,
            100.0 * drift.null_rate.0
        ));
    }
    FeatureDrift {
        feature,
        service: tracked.service.clone(),
        window,
        values: counts.count,
        null_rate: drift.null_rate.1,
        psi: drift.psi,
        js: drift.js,
        reference_null_rate: drift.null_rate.0,
        breaches,
        judged,
        bins: drift.bins,
    }
}
