//! Drift between profiles: zero against itself, small between samples of one distribution,
//! large after a shift, and the PSI of categories as computed by hand.

use arrow::array::{Float64Array, StringArray};
use skewless_profile::drift::drift;
use skewless_profile::{Histogram, Profile, Values};

fn uniform(seed: u64, n: usize) -> Vec<f64> {
    let mut state = seed;
    (0..n)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            (z ^ (z >> 31)) as f64 / u64::MAX as f64
        })
        .collect()
}

fn numbers(values: &[f64]) -> Profile {
    Profile::of(&Float64Array::from(values.to_vec()))
}

#[test]
fn a_profile_has_no_drift_from_itself() {
    let p = numbers(&uniform(1, 10_000));
    let d = drift(&p, &p).unwrap();
    assert_eq!((d.psi, d.js, d.null_rate_change()), (0.0, 0.0, 0.0));
    assert_eq!(d.bins.len(), 10);
    assert!(d.bins.iter().all(|b| (b.reference - 0.1).abs() < 1e-3), "{:?}", d.bins);
}

#[test]
fn samples_of_one_distribution_are_stable_and_a_shift_is_not() {
    let reference = numbers(&uniform(1, 20_000));
    let same = numbers(&uniform(2, 20_000));
    let shifted: Vec<f64> = uniform(3, 20_000).iter().map(|x| x + 0.3).collect();
    let stable = drift(&reference, &same).unwrap();
    assert!(stable.psi < 0.01 && stable.js < 0.01, "{stable:?}");
    let moved = drift(&reference, &numbers(&shifted)).unwrap();
    assert!(moved.psi > 0.2 && moved.js > 0.1, "{moved:?}");
    // 30% of the shifted values lie above the reference's maximum: its last bin holds them.
    let last = moved.bins.last().unwrap();
    assert!(
        last.label.starts_with("> ") && (last.current - 0.4).abs() < 0.02,
        "{last:?}"
    );
}

#[test]
fn shares_from_the_sketch_match_binning_the_values() {
    let reference = numbers(&uniform(1, 20_000));
    let Values::Numeric(r) = &reference.values else {
        panic!()
    };
    let values: Vec<f64> = uniform(4, 20_000).iter().map(|x| x * x).collect();
    let from_sketch = drift(&reference, &numbers(&values)).unwrap();
    let mut binned = numbers(&values);
    if let Values::Numeric(n) = &mut binned.values {
        n.histogram = Histogram::of(r.histogram.edges.clone(), values.iter().copied());
    }
    let exact = drift(&reference, &binned).unwrap();
    for (s, e) in from_sketch.bins.iter().zip(&exact.bins) {
        assert!(
            (s.current - e.current).abs() < 0.01,
            "{} {} vs {}",
            s.label,
            s.current,
            e.current
        );
    }
    assert!(
        (from_sketch.psi - exact.psi).abs() < 0.05,
        "{} vs {}",
        from_sketch.psi,
        exact.psi
    );
}

#[test]
fn categories_and_null_rates() {
    let column = |a: usize, b: usize, nulls: usize| {
        let mut v: Vec<Option<&str>> = vec![Some("a"); a];
        v.extend(vec![Some("b"); b]);
        v.extend(vec![None; nulls]);
        Profile::of(&StringArray::from(v))
    };
    let d = drift(&column(50, 50, 0), &column(90, 10, 25)).unwrap();
    let by_hand = (0.9 - 0.5) * (0.9f64 / 0.5).ln() + (0.1 - 0.5) * (0.1f64 / 0.5).ln();
    assert!((d.psi - by_hand).abs() < 1e-12, "{} vs {by_hand}", d.psi);
    assert_eq!(d.null_rate, (0.0, 0.2));
    assert_eq!(d.bins.len(), 2, "no `(other)` when the tops are whole: {:?}", d.bins);
    // A category only one side has: its share on the other side is zero.
    let d = drift(&column(50, 0, 0), &column(0, 50, 0)).unwrap();
    assert!((d.js - 1.0).abs() < 1e-12, "{d:?}");
    assert!(drift(&column(1, 1, 0), &numbers(&[1.0])).is_err());
}

#[test]
fn values_counted_on_the_references_bins_drift_as_their_profile_does() {
    use skewless_profile::drift::{Binning, Counts, drift_from_counts};
    let reference = numbers(&uniform(1, 20_000));
    let binning = Binning::of(&reference).unwrap();
    let served: Vec<Option<f64>> = uniform(5, 5_000)
        .iter()
        .enumerate()
        .map(|(i, x)| (i % 10 != 0).then_some(x * 1.2))
        .collect();
    let mut counts = Counts {
        bins: vec![0; binning.bins()],
        ..Counts::default()
    };
    for v in &served {
        counts.count += 1;
        match v {
            None => counts.nulls += 1,
            Some(x) => counts.bins[binning.number(*x).unwrap()] += 1,
        }
    }
    let streamed = drift_from_counts(&reference, &binning, &counts);
    // The same values profiled and binned on the reference's edges: the same drift.
    let mut profiled = Profile::of(&Float64Array::from(served.clone()));
    let Values::Numeric(r) = &reference.values else {
        panic!()
    };
    if let Values::Numeric(n) = &mut profiled.values {
        n.histogram = Histogram::of(r.histogram.edges.clone(), served.iter().flatten().copied());
    }
    let whole = drift(&reference, &profiled).unwrap();
    assert_eq!(streamed, whole);
    assert!(
        streamed.psi > 0.05 && (streamed.null_rate.1 - 0.1).abs() < 1e-12,
        "{streamed:?}"
    );

    // Categories: the reference's top values, then the rest.
    let cats = |values: &[&str]| Profile::of(&StringArray::from(values.to_vec()));
    let reference = cats(&["a", "a", "b", "c"]);
    let binning = Binning::of(&reference).unwrap();
    assert_eq!(
        (binning.category("a"), binning.category("zzz"), binning.bins()),
        (0, 3, 4)
    );
    let counts = Counts {
        count: 4,
        nulls: 0,
        bins: vec![2, 1, 1, 0],
    };
    let same = drift_from_counts(&reference, &binning, &counts);
    assert_eq!((same.psi, same.js), (0.0, 0.0));
}
