//! Profiles against a naive reference computed here from the same values.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, Float64Array, Int64Array, StringArray, StringViewArray};
use skewless_profile::{DISTINCT_LIMIT, Histogram, Profile, ProfileError, QUANTILES, TOP, Values, profile_columns};

/// A seeded stream of values in [0, 1) (SplitMix64), so failures replay.
fn uniform(seed: u64) -> impl Iterator<Item = f64> {
    let mut state = seed;
    std::iter::repeat_with(move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) as f64 / u64::MAX as f64
    })
}

fn naive_quantile(sorted: &[f64], q: f64) -> f64 {
    let h = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (h.floor() as usize, h.ceil() as usize);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn numeric(profile: &Profile) -> &skewless_profile::Numeric {
    match &profile.values {
        Values::Numeric(n) => n,
        other => panic!("expected a numeric profile, got {other:?}"),
    }
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance * b.abs().max(1.0)
}

#[test]
fn numbers_match_a_naive_reference() {
    for seed in 0..5 {
        // Skewed values (an exponential tail), with nulls, NaN and infinities mixed in.
        let raw: Vec<Option<f64>> = uniform(seed)
            .take(20_000)
            .enumerate()
            .map(|(i, u)| match i % 97 {
                0 => None,
                1 => Some(f64::NAN),
                2 => Some(if i % 2 == 0 { f64::INFINITY } else { f64::NEG_INFINITY }),
                _ => Some(-(1.0 - u).ln() * 1000.0 + seed as f64),
            })
            .collect();
        let profile = Profile::of(&Float64Array::from(raw.clone()));
        let n = numeric(&profile);
        let finite: Vec<f64> = raw.iter().flatten().copied().filter(|x| x.is_finite()).collect();
        let mut sorted = finite.clone();
        sorted.sort_by(f64::total_cmp);
        let mean = finite.iter().sum::<f64>() / finite.len() as f64;
        let var = finite.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (finite.len() - 1) as f64;

        assert_eq!(profile.count, 20_000);
        assert_eq!(profile.nulls, raw.iter().filter(|v| v.is_none()).count() as u64);
        assert_eq!(n.nan, raw.iter().flatten().filter(|x| x.is_nan()).count() as u64);
        assert_eq!(
            n.infinite,
            raw.iter().flatten().filter(|x| x.is_infinite()).count() as u64
        );
        assert_eq!(n.finite(), finite.len() as u64);
        assert_eq!(n.min, sorted.first().copied());
        assert_eq!(n.max, sorted.last().copied());
        assert!(close(n.mean.unwrap_or(f64::NAN), mean, 1e-12), "{:?} vs {mean}", n.mean);
        assert!(
            close(n.stddev.unwrap_or(f64::NAN), var.sqrt(), 1e-9),
            "{:?} vs {}",
            n.stddev,
            var.sqrt()
        );
        for (name, q) in QUANTILES {
            assert_eq!(n.quantiles[name], naive_quantile(&sorted, q), "{name}");
            // The sketch's estimate falls within 1% of rank of the true quantile.
            let estimate = n.sketch.quantile(q).unwrap_or_default().unwrap_or(f64::NAN);
            let rank = sorted.partition_point(|x| *x < estimate) as f64 / sorted.len() as f64;
            assert!(
                (rank - q).abs() <= 0.01,
                "{name}: the sketch's {estimate} is at rank {rank}"
            );
        }
        // The histogram: decile edges, each bin the values in (previous edge, edge].
        let h = &n.histogram;
        assert_eq!(h.edges.len(), 9);
        assert_eq!(h.counts.len(), h.edges.len() + 1);
        assert_eq!(h.counts.iter().sum::<u64>(), finite.len() as u64);
        for (i, count) in h.counts.iter().enumerate() {
            let above = |x: f64| i == 0 || x > h.edges[i - 1];
            let below = |x: f64| i == h.edges.len() || x <= h.edges[i];
            assert_eq!(
                *count,
                finite.iter().filter(|x| above(**x) && below(**x)).count() as u64,
                "bin {i}"
            );
            // Equal-frequency bins: each holds about a tenth.
            assert!(
                (*count as f64 / finite.len() as f64 - 0.1).abs() < 0.001,
                "bin {i}: {count}"
            );
        }
    }
}

#[test]
fn integers_and_narrow_floats_are_numbers_and_ties_share_an_edge() {
    let ints = Int64Array::from(vec![
        Some(1),
        Some(1),
        Some(1),
        Some(1),
        Some(1),
        Some(1),
        Some(2),
        None,
        Some(7),
    ]);
    let profile = Profile::of(&ints);
    let n = numeric(&profile);
    assert_eq!((profile.count, profile.nulls, n.finite()), (9, 1, 8));
    assert_eq!((n.min, n.max, n.mean), (Some(1.0), Some(7.0), Some(15.0 / 8.0)));
    // Repeated deciles collapse into one edge; the counts still add up.
    assert!(
        n.histogram.edges.windows(2).all(|w| w[0] < w[1]),
        "{:?}",
        n.histogram.edges
    );
    assert_eq!(n.histogram.counts.iter().sum::<u64>(), 8);
    assert_eq!(n.histogram.counts[0], 6);

    let floats = Float32Array::from(vec![0.5f32, 0.25]);
    let n = numeric(&Profile::of(&floats)).clone();
    assert_eq!(
        (n.min, n.max, n.mean, n.quantiles["p50"]),
        (Some(0.25), Some(0.5), Some(0.375), 0.375)
    );
}

#[test]
fn no_finite_values_leaves_the_statistics_empty() {
    let profile = Profile::of(&Float64Array::from(vec![None, Some(f64::NAN)]));
    let n = numeric(&profile);
    assert_eq!((profile.count, profile.nulls, n.nan, n.finite()), (2, 1, 1, 0));
    assert_eq!((n.min, n.max, n.mean, n.stddev), (None, None, None, None));
    assert!(n.quantiles.is_empty() && n.histogram.edges.is_empty());
    assert_eq!(n.histogram.counts, vec![0]);
    assert_eq!(n.sketch.quantile(0.5), Ok(None));
    // And it survives JSON, which has no NaN.
    let json = serde_json::to_string(&profile).unwrap_or_default();
    assert_eq!(serde_json::from_str::<Profile>(&json).ok(), Some(profile));
}

#[test]
fn strings_and_bools_keep_their_most_frequent_values() {
    let values: Vec<Option<String>> = uniform(7)
        .take(10_000)
        .enumerate()
        .map(|(i, u)| (i % 50 != 0).then(|| format!("v{}", (u * u * 40.0) as u32)))
        .collect();
    for column in [
        Arc::new(StringArray::from(values.clone())) as ArrayRef,
        Arc::new(StringViewArray::from(values.clone())) as ArrayRef,
    ] {
        let profile = Profile::of(&column);
        let Values::Categorical(c) = &profile.values else {
            panic!("expected categorical, got {:?}", profile.values)
        };
        let mut naive: HashMap<&str, u64> = HashMap::new();
        for v in values.iter().flatten() {
            *naive.entry(v).or_default() += 1;
        }
        let mut expected: Vec<(String, u64)> = naive.iter().map(|(v, c)| (v.to_string(), *c)).collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        expected.truncate(TOP);
        assert_eq!(profile.nulls, 200);
        assert_eq!(c.distinct, Some(naive.len() as u64));
        assert_eq!(c.top, expected);
    }
    let bools = BooleanArray::from(vec![Some(true), Some(false), Some(true), None]);
    let profile = Profile::of(&bools);
    let Values::Categorical(c) = &profile.values else {
        panic!("expected categorical")
    };
    assert_eq!(c.top, vec![("true".to_string(), 2), ("false".to_string(), 1)]);
    assert_eq!((c.distinct, profile.nulls), (Some(2), 1));
}

#[test]
fn past_the_distinct_limit_heavy_values_keep_lower_bounds() {
    // Every value distinct but one that is a quarter of the rows.
    let rows = DISTINCT_LIMIT * 2;
    let values: Vec<String> = (0..rows)
        .map(|i| {
            if i % 4 == 0 {
                "heavy".to_string()
            } else {
                format!("id{i}")
            }
        })
        .collect();
    let profile = Profile::of(&StringArray::from(values));
    let Values::Categorical(c) = &profile.values else {
        panic!("expected categorical")
    };
    assert_eq!(c.distinct, None);
    let (value, count) = &c.top[0];
    assert_eq!(value, "heavy");
    assert!(*count <= rows as u64 / 4 && *count > 0, "{count}");
}

#[test]
fn merged_profiles_are_the_profile_of_the_whole() {
    let values: Vec<f64> = uniform(11).take(40_000).map(|u| u * u * 100.0).collect();
    let whole = Profile::of(&Float64Array::from(values.clone()));
    let edges = numeric(&whole).histogram.edges.clone();
    // Served values are binned on the reference's edges: the halves are, here.
    let half = |part: &[f64]| {
        let mut p = Profile::of(&Float64Array::from(part.to_vec()));
        if let Values::Numeric(n) = &mut p.values {
            n.histogram = Histogram::of(edges.clone(), part.iter().copied());
        }
        p
    };
    let mut merged = half(&values[..15_000]);
    merged.merge(&half(&values[15_000..])).unwrap_or_else(|e| panic!("{e}"));
    let (m, w) = (numeric(&merged), numeric(&whole));
    assert_eq!(
        (merged.count, merged.nulls, m.min, m.max),
        (whole.count, whole.nulls, w.min, w.max)
    );
    assert!(close(m.mean.unwrap_or(f64::NAN), w.mean.unwrap_or(f64::NAN), 1e-12));
    assert!(close(m.stddev.unwrap_or(f64::NAN), w.stddev.unwrap_or(f64::NAN), 1e-9));
    assert_eq!(m.histogram, w.histogram);
    let mut sorted = values.clone();
    sorted.sort_by(f64::total_cmp);
    for (name, q) in QUANTILES {
        let rank = sorted.partition_point(|x| *x < m.quantiles[name]) as f64 / sorted.len() as f64;
        assert!((rank - q).abs() <= 0.01, "{name}: {} at rank {rank}", m.quantiles[name]);
    }

    // Different edges, or kinds, do not merge.
    let mut other = Profile::of(&Float64Array::from(vec![1.0, 2.0, 3.0]));
    assert_eq!(other.merge(&whole), Err(ProfileError::Edges));
    assert_eq!(
        other.merge(&Profile::of(&StringArray::from(vec!["a"]))),
        Err(ProfileError::Kinds("numeric", "categorical"))
    );
}

#[test]
fn a_damaged_sketch_is_an_error_not_a_wrong_answer() {
    let mut n = numeric(&Profile::of(&Float64Array::from(vec![1.0, 2.0, 3.0]))).clone();
    n.sketch.centroids.reverse();
    assert!(matches!(n.sketch.quantile(0.5), Err(ProfileError::Sketch(_))));
}

#[test]
fn columns_profile_alike_on_threads() {
    let columns: Vec<(String, ArrayRef)> = (0..5)
        .map(|i| {
            let values: Vec<f64> = uniform(i).take(1000).collect();
            (format!("c{i}"), Arc::new(Float64Array::from(values)) as ArrayRef)
        })
        .collect();
    let profiles = profile_columns(&columns);
    assert_eq!(profiles.len(), 5);
    for (name, column) in &columns {
        assert_eq!(profiles[name], Profile::of(column), "{name}");
    }
}
