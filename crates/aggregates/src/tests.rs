//! Every merge exact and order-free, against naive references; the codec round-trips and refuses bad bytes.

use std::collections::BTreeSet;

use skewless_defs::AggFunction;

use crate::*;

use skewless_testkit::fuzz::Fuzz;

/// Floats that stress summation: integers, huge random bit patterns, values near 1e16
/// (where 1 is below an ulp), −0, and ordinary fractions.
fn float(rng: &mut Fuzz) -> f64 {
    match rng.next_u64() % 8 {
        0 => (rng.next_u64() % 200) as f64 - 100.0,
        1 => f64::from_bits(rng.next_u64()) % 1e10,
        2 => 1e16 + (rng.next_u64() % 7) as f64,
        3 => -0.0,
        _ => (rng.next_u64() as f64 / u64::MAX as f64 - 0.5) * 1000.0,
    }
}

fn shuffled<T: Clone>(items: &[T], rng: &mut Fuzz) -> Vec<T> {
    let mut out = items.to_vec();
    for i in (1..out.len()).rev() {
        out.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    out
}

#[test]
fn exact_sum_is_correctly_rounded_and_order_free() {
    // 1e16 + 1 + 1: naive left-to-right gives 1e16, the exact sum is 1e16 + 2.
    let mut s = ExactSum::default();
    for x in [1e16, 1.0, 1.0] {
        s.add(x);
    }
    assert_eq!(s.value(), 1e16 + 2.0);
    // 0.1 * 10 exactly rounded is 1.0; naive summation gives 0.9999999999999999.
    let mut s = ExactSum::default();
    (0..10).for_each(|_| s.add(0.1));
    assert_eq!(s.value(), 1.0);
    let mut rng = Fuzz::new(7);
    for case in 0..300 {
        let xs: Vec<f64> = (0..(case % 40 + 1)).map(|_| float(&mut rng)).collect();
        let mut a = ExactSum::default();
        xs.iter().for_each(|&x| a.add(x));
        // Another order, and split into two merged halves.
        let ys = shuffled(&xs, &mut rng);
        let (l, r) = ys.split_at(ys.len() / 2);
        let (mut b, mut c) = (ExactSum::default(), ExactSum::default());
        l.iter().for_each(|&x| b.add(x));
        r.iter().for_each(|&x| c.add(x));
        c.merge(&b);
        assert_eq!(a.value().to_bits(), c.value().to_bits(), "{xs:?}");
    }
}

#[test]
fn huge_and_special_values() {
    let mut s = ExactSum::default();
    for x in [f64::MAX, f64::MAX, -f64::MAX] {
        s.add(x);
    }
    assert_eq!(s.value(), f64::MAX);
    let mut s = ExactSum::default();
    s.add(f64::INFINITY);
    s.add(1.0);
    assert_eq!(s.value(), f64::INFINITY);
    s.add(f64::NEG_INFINITY);
    assert!(s.value().is_nan());
    let mut s = ExactSum::default();
    s.add(-0.0);
    s.add(-0.0);
    assert_eq!(s.value().to_bits(), (-0.0f64).to_bits());
}

/// Every function against a naive reference over random rows, in random orders and
/// random tile splits, and through encode/decode: one result, bit for bit.
#[test]
fn merges_agree_with_a_naive_reference_in_any_order() {
    let mut rng = Fuzz::new(42);
    for case in 0..200 {
        let rows: Vec<(i64, Option<i64>, Option<Value>)> = (0..(case % 25))
            .map(|_| {
                let v = (!rng.next_u64().is_multiple_of(5))
                    .then(|| Value::Float(((rng.next_u64() % 21) as f64 - 10.0) / 4.0));
                (
                    (rng.next_u64() % 5) as i64,
                    (!rng.next_u64().is_multiple_of(3)).then(|| (rng.next_u64() % 3) as i64),
                    v,
                )
            })
            .collect();
        let xs: Vec<f64> = rows
            .iter()
            .filter_map(|r| match &r.2 {
                Some(Value::Float(f)) => Some(*f),
                _ => None,
            })
            .collect();
        for function in AggFunction::ALL {
            let fold = |rows: &[(i64, Option<i64>, Option<Value>)]| {
                let mut s = State::empty(function);
                rows.iter().for_each(|(ts, c, v)| s.add(v.as_ref(), *ts, *c));
                s
            };
            let whole = fold(&rows).finish(function);
            let other = shuffled(&rows, &mut rng);
            let cut = other.len() / 3;
            let mut merged = fold(&other[cut..]);
            let part = fold(&other[..cut]);
            let mut bytes = Vec::new();
            encode(&part, &mut bytes);
            let decoded = Decoder::new(&bytes).state(function).expect("own encoding decodes");
            assert_eq!(decoded, part);
            merged.merge(&decoded);
            let merged = merged.finish(function);
            assert_eq!(format!("{whole:?}"), format!("{merged:?}"), "{function} over {rows:?}");
            // The naive reference (all inputs are multiples of 1/4, so exact here).
            let n = xs.len() as f64;
            let mean = xs.iter().sum::<f64>() / n;
            let expected = match function {
                AggFunction::Count => Some(Value::Int(xs.len() as i64)),
                AggFunction::CountDistinct => {
                    let set: BTreeSet<u64> = xs.iter().map(|x| x.to_bits()).collect();
                    Some(Value::Int(set.len() as i64))
                }
                _ if xs.is_empty() => None,
                AggFunction::Sum => Some(Value::Float(xs.iter().sum())),
                AggFunction::Mean => Some(Value::Float(mean)),
                AggFunction::Min => Some(Value::Float(xs.iter().copied().fold(f64::INFINITY, f64::min))),
                AggFunction::Max => Some(Value::Float(xs.iter().copied().fold(f64::NEG_INFINITY, f64::max))),
                AggFunction::VarPop | AggFunction::StddevPop => {
                    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
                    Some(Value::Float(if function == AggFunction::VarPop {
                        var
                    } else {
                        var.sqrt()
                    }))
                }
                AggFunction::First | AggFunction::Last => {
                    let mut present: Vec<_> = rows.iter().filter(|r| r.2.is_some()).collect();
                    present.sort_by(|a, b| {
                        (a.0, a.1)
                            .cmp(&(b.0, b.1))
                            .then_with(|| a.2.as_ref().unwrap().total_cmp(b.2.as_ref().unwrap()))
                    });
                    let pick = if function == AggFunction::First {
                        present.first()
                    } else {
                        present.last()
                    };
                    pick.and_then(|r| r.2.clone())
                }
            };
            match (&whole, &expected) {
                (Some(Value::Float(a)), Some(Value::Float(b)))
                    if function == AggFunction::VarPop
                        || function == AggFunction::StddevPop
                        || function == AggFunction::Mean =>
                {
                    assert!(
                        (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                        "{function}: {a} vs {b} over {xs:?}"
                    )
                }
                _ => assert_eq!(whole, expected, "{function} over {rows:?}"),
            }
        }
    }
}

#[test]
fn variance_keeps_precision_far_from_zero() {
    // A naive Σx²/n − mean² loses every digit here; the exact numerator does not.
    let mut s = State::empty(AggFunction::VarPop);
    for x in [1e9 + 1.0, 1e9 + 2.0, 1e9 + 3.0] {
        s.add(Some(&Value::Float(x)), 0, None);
    }
    assert_eq!(s.finish(AggFunction::VarPop), Some(Value::Float(2.0 / 3.0)));
}

#[test]
fn windows_are_whole_tiles() {
    // 1h tiles, a 2h window at 10:30 covers 09:00..=10:30.
    let h = 3_600_000_000;
    assert_eq!(first_tile(10 * h + h / 2, h, 2 * h), 9);
    assert_eq!(tile_of(-1, h), -1);
    // Exact windows: 1 µs tiles make the window (t − w, t].
    assert_eq!(first_tile(1_000, 1, 600), 401);
}

#[test]
fn bad_bytes_are_errors() {
    let mut bytes = Vec::new();
    encode(&State::Count(3), &mut bytes);
    assert!(Decoder::new(&bytes[..5]).state(AggFunction::Count).is_err());
    assert!(Decoder::new(&[1, b'x']).state(AggFunction::Min).is_err());
}
