//! Property tests: the YAML loader and the duration parser never panic, and every problem
//! they report is located (file, line, column).

use std::path::PathBuf;

use skewless_defs::{Duration, Error, load_texts};
use skewless_testkit::fuzz::{Fuzz, no_panic};

use crate::BASE;

fn demo_texts() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../feature_defs");
    let mut files: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            (path, text)
        })
        .collect();
    files.sort();
    files
}

/// Loads `files`; a panic fails the test, and an error must be located problems.
fn check_load(files: &[(PathBuf, String)]) {
    let result = no_panic("load_texts", files, || load_texts(files));
    match result {
        Ok(_) => {}
        Err(Error::Invalid(problems)) => {
            assert!(!problems.is_empty(), "an empty error for {files:?}");
            for d in problems.iter() {
                assert!(
                    d.loc.line >= 1 && d.loc.column >= 1 && files.iter().any(|(p, _)| *d.loc.file == **p),
                    "an unlocated problem `{d}` for {files:?}"
                );
            }
        }
        Err(other) => panic!("load_texts gave {other} for {files:?}"),
    }
}

#[test]
fn mutated_definitions_give_located_errors_never_panics() {
    let demo = demo_texts();
    let mut fuzz = Fuzz::new(8);
    for _ in 0..600 {
        let mut files = demo.clone();
        let i = fuzz.below(files.len());
        files[i].1 = fuzz.mutate_text(&files[i].1);
        check_load(&files);
    }
    for _ in 0..600 {
        check_load(&[(PathBuf::from("base.yaml"), fuzz.mutate_text(BASE))]);
    }
}

#[test]
fn random_yaml_gives_located_errors_never_panics() {
    let vocabulary = [
        "\n",
        "  ",
        ": ",
        "- ",
        "{",
        "}",
        "[",
        "]",
        ",",
        "\"",
        "'",
        "#",
        "&a ",
        "*a",
        "!!str ",
        "|\n",
        ">\n",
        "entities",
        "sources",
        "feature_views",
        "features",
        "keys",
        "entity",
        "source",
        "ttl",
        "expr",
        "type",
        "int64",
        "float64",
        "2d",
        "x",
        "driver",
        "path",
        "timestamp",
        "as_of",
        "available",
        "---\n",
        "...\n",
        "\t",
        "é",
        "\u{feff}",
        "\0",
    ];
    let mut fuzz = Fuzz::new(9);
    for _ in 0..2000 {
        check_load(&[(PathBuf::from("random.yaml"), fuzz.text(&vocabulary, 60))]);
    }
}

#[test]
fn durations_parse_or_explain_never_panic() {
    let vocabulary = [
        "0",
        "1",
        "7",
        "90",
        "99999999999999999999",
        "s",
        "m",
        "h",
        "d",
        "w",
        " ",
        "-",
        "+",
        ".",
        "é",
        "ms",
    ];
    let mut fuzz = Fuzz::new(10);
    for _ in 0..5000 {
        let text = fuzz.text(&vocabulary, 8);
        if let Err(e) = no_panic("Duration::from_str", &text, || text.parse::<Duration>()) {
            assert!(!e.0.is_empty(), "{text}: an empty reason");
        }
    }
    // Sums of valid parts are their total, in seconds.
    let units = [("w", 604_800u64), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];
    for _ in 0..2000 {
        let mut text = String::new();
        let mut total = 0;
        for (unit, seconds) in units {
            if fuzz.below(2) == 1 {
                let n = fuzz.below(1000) as u64;
                text.push_str(&format!("{n}{unit}"));
                total += n * seconds;
            }
        }
        if !text.is_empty() {
            assert_eq!(text.parse::<Duration>().map(Duration::seconds), Ok(total), "{text}");
        }
    }
}
