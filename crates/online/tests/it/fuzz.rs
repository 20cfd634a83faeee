//! Property tests: the value decoder and the key and value parsers never panic on any bytes
//! or text, and the decoder reads back exactly what was encoded.

use skewless_defs::{AsOf, FeatureType, KeyType};
use skewless_online::layout::Row;
use skewless_online::{Decoded, KeyValue, Scalar, ViewLayout};
use skewless_testkit::fuzz::{Fuzz, no_panic};

fn layout(types: &[FeatureType], created: bool) -> ViewLayout {
    ViewLayout::from_parts(
        "p",
        "v",
        "0123456789abcdef",
        vec![("id".into(), KeyType::Int64)],
        types.iter().enumerate().map(|(i, t)| (format!("f{i}"), *t)).collect(),
        None,
        AsOf::Event,
        created,
    )
    .unwrap()
}

fn scalar(fuzz: &mut Fuzz, ty: FeatureType) -> Scalar {
    if fuzz.below(5) == 0 {
        return Scalar::Null;
    }
    let bits = fuzz.next_u64();
    match ty {
        FeatureType::Bool => Scalar::Bool(bits & 1 == 1),
        FeatureType::Int32 => Scalar::Int32(bits as i32),
        FeatureType::Int64 => Scalar::Int64(bits as i64),
        FeatureType::Float32 => Scalar::Float32(f32::from_bits(bits as u32)),
        FeatureType::Float64 => Scalar::Float64(f64::from_bits(bits)),
        FeatureType::String => Scalar::String(String::from_utf8_lossy(&fuzz.bytes(12)).into_owned()),
        FeatureType::Timestamp => Scalar::Timestamp(bits as i64),
    }
}

/// Bitwise equality, so NaN payloads count.
fn same(a: &Scalar, b: &Scalar) -> bool {
    match (a, b) {
        (Scalar::Float32(x), Scalar::Float32(y)) => x.to_bits() == y.to_bits(),
        (Scalar::Float64(x), Scalar::Float64(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}

#[test]
fn values_round_trip_and_damage_never_panics() {
    let mut fuzz = Fuzz::new(11);
    for _ in 0..300 {
        let types: Vec<FeatureType> = (0..1 + fuzz.below(6)).map(|_| *fuzz.pick(&FeatureType::ALL)).collect();
        let created = fuzz.below(2) == 1;
        let l = layout(&types, created);
        let values: Vec<Scalar> = types.iter().map(|t| scalar(&mut fuzz, *t)).collect();
        let ts = fuzz.next_u64() as i64;
        let created_at = created.then(|| fuzz.next_u64() as i64);
        let bytes = l.value(ts, created_at, &values).unwrap();
        match l.decode(&bytes) {
            Decoded::Row(Row {
                event_ts,
                created,
                values: got,
            }) => {
                assert_eq!((event_ts, created), (ts, created_at));
                assert!(values.iter().zip(&got).all(|(a, b)| same(a, b)), "{values:?} → {got:?}");
            }
            other => panic!("{values:?} decoded as {other:?}"),
        }
        for _ in 0..30 {
            let damaged = fuzz.mutate(&bytes);
            no_panic("decode", &damaged, || l.decode(&damaged));
        }
        let noise = fuzz.bytes(64);
        no_panic("decode", &noise, || l.decode(&noise));
    }
}

#[test]
fn key_and_request_text_parses_or_explains_never_panics() {
    let vocabulary = [
        "0",
        "1",
        "-",
        "+",
        "9223372036854775807",
        "9223372036854775808",
        "e",
        "E",
        ".",
        "NaN",
        "inf",
        "true",
        "T",
        "Z",
        ":",
        "2026-01-01",
        "T00:00:00",
        "+01:00",
        " ",
        "é",
        "\0",
    ];
    let mut fuzz = Fuzz::new(12);
    for _ in 0..4000 {
        let text = fuzz.text(&vocabulary, 6);
        for ty in KeyType::ALL {
            no_panic("KeyValue::parse", &text, || KeyValue::parse(&text, ty).ok());
        }
        for ty in FeatureType::ALL {
            if let Err(e) = no_panic("Scalar::parse", &text, || Scalar::parse(&text, ty)) {
                let e = e.to_string();
                // Quoted whole, or its start when long.
                let quoted: String = text.chars().take(skewless_online::input::QUOTED_CHARS).collect();
                assert!(
                    e.contains(&format!("`{text}`")) || e.contains(&format!("`{quoted}…`")),
                    "the error does not quote the input: {e}"
                );
            }
        }
    }
}
