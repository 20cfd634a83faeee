//! The point-in-time rule, once: for each spine row, which feature row wins.
//!
//! DESIGN.md ("Point-in-time semantics") in code. A feature row `r` is a *candidate* for a
//! spine row `(k, t)` when `r.key = k`, `r.ts <= t`, `r.ts >= t - ttl` (when there is a
//! ttl), and, with `as_of: available`, `r.created <= t`. The winner is the candidate with
//! the greatest `(ts, created)`; exact ties are broken by the greater feature values,
//! compared column by column (nulls lowest, floats in total order), a rule that depends on
//! values only, never on input order, so every path and every partitioning picks the same row.
//!
//! # Algorithm: sort, then sweep
//!
//! A row becomes a candidate at its *effective time* `e`: `ts` (event) or `max(ts, created)`
//! (available), and it stops qualifying only through the ttl bound. So, per key, with spine
//! rows in `t` order and feature rows in `e` order, one forward sweep keeps the running best
//! `(ts, created, values)` of all rows with `e <= t`; the running best is the winner if it
//! passes the ttl bound, and if it fails it, every other candidate (with a smaller `ts`)
//! fails too. Cost: two sorts and one linear pass, `O((n + m) log(n + m))`, never the
//! per-key cross product that SQL `ROW_NUMBER` templates build.

use std::cmp::Ordering;

use arrow::array::{Array, TimestampMicrosecondArray};

/// Which time decides availability (mirrors `skewless_defs::AsOf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Event,
    Available,
}

/// The spine side: join key ids (see [`FeatureSide::keys`]), which are valid, and the as-of instant.
#[derive(Debug)]
pub struct SpineSide<'a> {
    pub keys: &'a [u64],
    pub key_valid: &'a [bool],
    pub t: &'a TimestampMicrosecondArray,
}

/// Orders two feature rows by their values; consulted only on exact `(ts, created)` ties.
pub type TieBreak<'a> = &'a (dyn Fn(usize, usize) -> Ordering + Send + Sync);

/// The feature side: encoded keys, event time, availability time, and the value order used
/// as the tie-break of last resort.
pub struct FeatureSide<'a> {
    /// Join keys as ids: equal ids on both sides mean equal keys. Their order is irrelevant.
    pub keys: &'a [u64],
    pub key_valid: &'a [bool],
    pub ts: &'a TimestampMicrosecondArray,
    pub created: Option<&'a TimestampMicrosecondArray>,
    pub tie_break: TieBreak<'a>,
}

impl std::fmt::Debug for FeatureSide<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatureSide")
            .field("rows", &self.ts.len())
            .finish_non_exhaustive()
    }
}

impl FeatureSide<'_> {
    fn created(&self, i: usize) -> Option<i64> {
        self.created.and_then(|c| c.is_valid(i).then(|| c.value(i)))
    }

    /// Orders candidates: greater is newer. A null `created` is older than any value.
    fn newer(&self, a: usize, b: usize) -> Ordering {
        self.ts
            .value(a)
            .cmp(&self.ts.value(b))
            .then_with(|| self.created(a).cmp(&self.created(b)))
            .then_with(|| (self.tie_break)(a, b))
    }

    /// When the row becomes a candidate, or `None` if it never can.
    fn effective(&self, i: usize, mode: Mode) -> Option<i64> {
        if !self.key_valid[i] || self.ts.is_null(i) {
            return None;
        }
        match mode {
            Mode::Event => Some(self.ts.value(i)),
            // A row that does not say when it landed cannot be proven to have landed by t.
            Mode::Available => self.created(i).map(|c| c.max(self.ts.value(i))),
        }
    }
}

/// For each spine row, the index of the winning feature row, or `None`.
pub fn winners(
    spine: &SpineSide<'_>,
    features: &FeatureSide<'_>,
    mode: Mode,
    ttl_micros: Option<i64>,
) -> Vec<Option<u32>> {
    let n = spine.t.len();
    let mut out = vec![None; n];

    // Sorting primitive (key id, time, row) tuples: cache-friendly, no per-comparison
    // indirection. The row index makes the order total, so the result is deterministic.
    let mut spine_order: Vec<(u64, i64, u32)> = (0..n)
        .filter(|&i| spine.key_valid[i] && spine.t.is_valid(i))
        .map(|i| (spine.keys[i], spine.t.value(i), i as u32))
        .collect();
    spine_order.sort_unstable();
    let mut feature_order: Vec<(u64, i64, u32)> = (0..features.ts.len())
        .filter_map(|i| features.effective(i, mode).map(|e| (features.keys[i], e, i as u32)))
        .collect();
    feature_order.sort_unstable();

    let mut f = 0; // first feature row of the current key group
    let mut s = 0;
    while s < spine_order.len() {
        let key = spine_order[s].0;
        // Skip feature keys below this spine key.
        while f < feature_order.len() && feature_order[f].0 < key {
            f += 1;
        }
        let mut best: Option<usize> = None;
        while s < spine_order.len() && spine_order[s].0 == key {
            let (_, t, row) = spine_order[s];
            while f < feature_order.len() && feature_order[f].0 == key && feature_order[f].1 <= t {
                let candidate = feature_order[f].2 as usize;
                if best.is_none_or(|b| features.newer(candidate, b) == Ordering::Greater) {
                    best = Some(candidate);
                }
                f += 1;
            }
            out[row as usize] = best
                .filter(|&b| ttl_micros.is_none_or(|ttl| features.ts.value(b) >= t.saturating_sub(ttl)))
                .map(|b| b as u32);
            s += 1;
        }
    }
    out
}

/// Materialization's join: the winners of a spine that holds every valid key with an
/// event time among `features`, each at `at` (the keys a training set at `at` would ask
/// about), computed from one sort of the feature rows. Returns the winning rows (keys
/// without one are left out) and how many such keys there are.
pub fn latest(features: &FeatureSide<'_>, mode: Mode, ttl_micros: Option<i64>, at: i64) -> (Vec<u32>, usize) {
    // Rows that give their key a spine row, by key and effective time; a row that can never
    // be a candidate (no `created` under `as_of: available`) sorts last, past any `at`.
    let mut order: Vec<(u64, i64, u32)> = (0..features.ts.len())
        .filter(|&i| features.key_valid[i] && features.ts.is_valid(i))
        .map(|i| {
            (
                features.keys[i],
                features.effective(i, mode).unwrap_or(i64::MAX),
                i as u32,
            )
        })
        .collect();
    order.sort_unstable();
    let mut winners = Vec::new();
    let mut keys = 0;
    for group in order.chunk_by(|a, b| a.0 == b.0) {
        keys += 1;
        let best = group
            .iter()
            .take_while(|(_, e, _)| *e <= at)
            .map(|&(_, _, row)| row as usize)
            .reduce(|best, candidate| {
                if features.newer(candidate, best) == Ordering::Greater {
                    candidate
                } else {
                    best
                }
            });
        if let Some(best) = best
            && ttl_micros.is_none_or(|ttl| features.ts.value(best) >= at.saturating_sub(ttl))
        {
            winners.push(best as u32);
        }
    }
    (winners, keys)
}

#[cfg(test)]
mod tests {
    //! Differential tests: the sweep against an obviously correct quadratic reference.

    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, Int64Array};
    use arrow::row::{RowConverter, Rows, SortField};

    use super::*;

    /// What a winner is, observably: its `(ts, created, encoded values)`.
    type Winner = (i64, Option<i64>, Vec<u8>);

    /// The contract read literally: filter the candidates, take the greatest.
    fn reference(spine: &SpineSide<'_>, features: &FeatureSide<'_>, mode: Mode, ttl: Option<i64>) -> Vec<Option<u32>> {
        (0..spine.t.len())
            .map(|s| {
                if !spine.key_valid[s] || spine.t.is_null(s) {
                    return None;
                }
                let t = spine.t.value(s);
                (0..features.ts.len())
                    .filter(|&r| features.key_valid[r] && features.ts.is_valid(r))
                    .filter(|&r| features.keys[r] == spine.keys[s])
                    .filter(|&r| features.ts.value(r) <= t)
                    .filter(|&r| ttl.is_none_or(|ttl| features.ts.value(r) >= t - ttl))
                    .filter(|&r| mode == Mode::Event || features.created(r).is_some_and(|c| c <= t))
                    .max_by(|&a, &b| features.newer(a, b))
                    .map(|r| r as u32)
            })
            .collect()
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below
        }
    }

    fn encode(columns: Vec<ArrayRef>) -> Rows {
        let fields = columns.iter().map(|c| SortField::new(c.data_type().clone())).collect();
        RowConverter::new(fields).unwrap().convert_columns(&columns).unwrap()
    }

    fn timestamps(rng: &mut Rng, len: usize, span: u64, null_every: u64) -> TimestampMicrosecondArray {
        (0..len)
            .map(|_| (rng.next(null_every) != 0).then(|| rng.next(span) as i64))
            .collect()
    }

    #[test]
    fn sweep_matches_reference_on_random_data() {
        let mut rng = Rng(0x5EED_1234_ABCD_0001);
        for case in 0..400 {
            let (n, m) = (rng.next(40) as usize, rng.next(60) as usize);
            let keys_of = |rng: &mut Rng, len| -> Int64Array {
                (0..len)
                    .map(|_| (rng.next(25) != 0).then(|| rng.next(5) as i64))
                    .collect()
            };
            // Small time spans force exact ties on ts and on (ts, created).
            let span = 1 + rng.next(30);
            let spine_keys = keys_of(&mut rng, n);
            let spine_t = timestamps(&mut rng, n, span + 5, 30);
            let feature_keys = keys_of(&mut rng, m);
            let ts = timestamps(&mut rng, m, span, 20);
            let created: TimestampMicrosecondArray = (0..m)
                .map(|i| (rng.next(10) != 0).then(|| ts.value(i) + rng.next(4) as i64 * rng.next(2) as i64))
                .collect();
            let values: Float64Array = (0..m).map(|_| (rng.next(5) != 0).then(|| rng.next(3) as f64)).collect();
            let spine_valid: Vec<bool> = (0..n).map(|i| spine_keys.is_valid(i)).collect();
            let feature_valid: Vec<bool> = (0..m).map(|i| feature_keys.is_valid(i)).collect();
            // Int64 keys are their own ids (null slots are masked by the validity vectors).
            let spine_rows: Vec<u64> = spine_keys.values().iter().map(|&k| k as u64).collect();
            let feature_rows: Vec<u64> = feature_keys.values().iter().map(|&k| k as u64).collect();
            let value_rows = encode(vec![Arc::new(values)]);
            let spine = SpineSide {
                keys: &spine_rows,
                key_valid: &spine_valid,
                t: &spine_t,
            };
            for mode in [Mode::Event, Mode::Available] {
                for with_created in [true, false] {
                    if mode == Mode::Available && !with_created {
                        continue;
                    }
                    let by_values = |a: usize, b: usize| value_rows.row(a).cmp(&value_rows.row(b));
                    let features = FeatureSide {
                        keys: &feature_rows,
                        key_valid: &feature_valid,
                        ts: &ts,
                        created: with_created.then_some(&created),
                        tie_break: &by_values,
                    };
                    // Rows equal in (ts, created, values) are interchangeable: compare what won,
                    // not which copy.
                    let observed = |w: Vec<Option<u32>>| -> Vec<Option<Winner>> {
                        w.into_iter()
                            .map(|r| {
                                r.map(|r| {
                                    let r = r as usize;
                                    (ts.value(r), features.created(r), value_rows.row(r).as_ref().to_vec())
                                })
                            })
                            .collect()
                    };
                    for ttl in [None, Some(0), Some(3), Some(span as i64)] {
                        assert_eq!(
                            observed(winners(&spine, &features, mode, ttl)),
                            observed(reference(&spine, &features, mode, ttl)),
                            "case {case}, {mode:?}, created {with_created}, ttl {ttl:?}"
                        );
                    }
                }
            }
        }
    }

    /// `latest` is `winners` over the spine it describes: every valid key with an event time,
    /// at `at`.
    #[test]
    fn latest_is_winners_over_every_timed_key_at_one_instant() {
        let mut rng = Rng(0x5EED_1234_ABCD_0002);
        for case in 0..400 {
            let m = rng.next(80) as usize;
            let span = 1 + rng.next(30);
            let feature_keys: Int64Array = (0..m)
                .map(|_| (rng.next(25) != 0).then(|| rng.next(6) as i64))
                .collect();
            let ts = timestamps(&mut rng, m, span, 15);
            let created: TimestampMicrosecondArray = (0..m)
                .map(|i| (rng.next(8) != 0).then(|| ts.value(i) + rng.next(6) as i64))
                .collect();
            let values: Float64Array = (0..m).map(|_| (rng.next(5) != 0).then(|| rng.next(3) as f64)).collect();
            let feature_valid: Vec<bool> = (0..m).map(|i| feature_keys.is_valid(i)).collect();
            let feature_ids: Vec<u64> = feature_keys.values().iter().map(|&k| k as u64).collect();
            let value_rows = encode(vec![Arc::new(values)]);
            let by_values = |a: usize, b: usize| value_rows.row(a).cmp(&value_rows.row(b));
            let at = rng.next(span + 6) as i64;
            // The spine `latest` stands for.
            let mut spine_keys: Vec<u64> = (0..m)
                .filter(|&i| feature_valid[i] && ts.is_valid(i))
                .map(|i| feature_ids[i])
                .collect();
            spine_keys.sort_unstable();
            spine_keys.dedup();
            let spine_t = TimestampMicrosecondArray::from(vec![at; spine_keys.len()]);
            let spine = SpineSide {
                keys: &spine_keys,
                key_valid: &vec![true; spine_keys.len()],
                t: &spine_t,
            };
            for (mode, with_created) in [(Mode::Event, false), (Mode::Event, true), (Mode::Available, true)] {
                let features = FeatureSide {
                    keys: &feature_ids,
                    key_valid: &feature_valid,
                    ts: &ts,
                    created: with_created.then_some(&created),
                    tie_break: &by_values,
                };
                let observed = |rows: Vec<u32>| -> Vec<(u64, Winner)> {
                    let mut w: Vec<(u64, Winner)> = rows
                        .into_iter()
                        .map(|r| {
                            let r = r as usize;
                            let winner = (ts.value(r), features.created(r), value_rows.row(r).as_ref().to_vec());
                            (feature_ids[r], winner)
                        })
                        .collect();
                    w.sort();
                    w
                };
                for ttl in [None, Some(0), Some(3), Some(span as i64)] {
                    let (found, keys) = latest(&features, mode, ttl, at);
                    let expected: Vec<u32> = winners(&spine, &features, mode, ttl).into_iter().flatten().collect();
                    assert_eq!(keys, spine_keys.len(), "case {case}");
                    assert_eq!(
                        observed(found),
                        observed(expected),
                        "case {case}, {mode:?}, created {with_created}, ttl {ttl:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn empty_sides() {
        let none: [u64; 0] = [];
        let empty_ts = TimestampMicrosecondArray::from(Vec::<i64>::new());
        let spine_rows = [1u64];
        let spine_t = TimestampMicrosecondArray::from(vec![10]);
        let spine = SpineSide {
            keys: &spine_rows,
            key_valid: &[true],
            t: &spine_t,
        };
        let features = FeatureSide {
            keys: &none,
            key_valid: &[],
            ts: &empty_ts,
            created: None,
            tie_break: &|_, _| Ordering::Equal,
        };
        assert_eq!(winners(&spine, &features, Mode::Event, None), [None]);
        let no_spine = SpineSide {
            keys: &none,
            key_valid: &[],
            t: &empty_ts,
        };
        assert!(winners(&no_spine, &features, Mode::Event, Some(1)).is_empty());
    }
}
