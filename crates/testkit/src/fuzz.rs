//! Inputs for property tests: random and mutated bytes and text, reproducible by seed.
//!
//! Every parser and decoder that reads what a user, a file or the network gives must return
//! an error, never panic. Tests feed them thousands of inputs from [`Fuzz`] (random text from
//! a parser's own vocabulary, and valid inputs with random edits) and check both that
//! nothing panics ([`no_panic`]) and what the errors say.

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// A SplitMix64 stream: the same seed gives the same inputs on every machine.
#[derive(Debug, Clone)]
pub struct Fuzz {
    state: u64,
}

impl Fuzz {
    pub fn new(seed: u64) -> Self {
        Fuzz { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Up to `max` random bytes.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next_u64() as u8).collect()
    }

    /// Up to `max` tokens from `vocabulary`, concatenated: text near what a parser expects.
    pub fn text(&mut self, vocabulary: &[&str], max: usize) -> String {
        let len = self.below(max + 1);
        (0..len).map(|_| *self.pick(vocabulary)).collect()
    }

    /// `input` with 1 to 8 random edits: a byte changed, inserted or removed, a run
    /// duplicated, or the tail cut.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..1 + self.below(8) {
            let at = self.below(out.len() + 1);
            match self.below(5) {
                0 if at < out.len() => out[at] = self.next_u64() as u8,
                1 => out.insert(at, self.next_u64() as u8),
                2 if at < out.len() => {
                    out.remove(at);
                }
                3 => {
                    let len = self.below(16).min(out.len() - at);
                    let run: Vec<u8> = out[at..at + len].to_vec();
                    out.splice(at..at, run);
                }
                4 => out.truncate(at),
                _ => {}
            }
        }
        out
    }

    /// [`Fuzz::mutate`] of a text, as text (invalid UTF-8 made lossy).
    pub fn mutate_text(&mut self, input: &str) -> String {
        String::from_utf8_lossy(&self.mutate(input.as_bytes())).into_owned()
    }
}

/// Runs `f` on `input`; a panic fails the test showing the input that caused it.
#[track_caller]
pub fn no_panic<I: Debug + ?Sized, T>(what: &str, input: &I, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            panic!("{what} panicked ({message}) on input {input:?}")
        }
    }
}

/// The seeds a property test runs: a fixed regression set (`1..=fixed` plus every seed that
/// ever failed, kept in `regressions`) and `fresh` seeds drawn anew each run from the clock, so
/// that CI explores new cases every time while the known ones keep being checked.
///
/// `{prefix}_SEED` replays one seed; `{prefix}_CASES` replaces the fixed range's length (the
/// soak runs set it high); `{prefix}_FRESH` the number of fresh seeds. The plan is printed, so
/// a failing fresh seed can be replayed and then added to `regressions`.
pub fn seed_plan(prefix: &str, fixed: u64, regressions: &[u64], fresh: u64) -> Vec<u64> {
    let env = |name: &str| {
        let name = format!("{prefix}_{name}");
        std::env::var(&name).ok().map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name} must be a number, got {v:?}"))
        })
    };
    if let Some(seed) = env("SEED") {
        return vec![seed];
    }
    let fixed = env("CASES").unwrap_or(fixed);
    let fresh = env("FRESH").unwrap_or(fresh);
    let mut seeds: Vec<u64> = (1..=fixed).collect();
    seeds.extend(regressions.iter().copied().filter(|s| *s > fixed));
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut rng = Fuzz::new(clock ^ u64::from(std::process::id()));
    // Fresh seeds stay clear of the fixed range, so they are new cases.
    let drawn: Vec<u64> = (0..fresh).map(|_| 1_000_000 + rng.next_u64() % (1 << 40)).collect();
    println!(
        "{prefix}: seeds 1..={fixed}, {} regression seed(s), fresh {drawn:?} (replay one: {prefix}_SEED=<seed>)",
        regressions.len()
    );
    seeds.extend(drawn);
    seeds
}
