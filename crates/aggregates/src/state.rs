//! The partial aggregate of one feature: add rows, merge exactly and commutatively, finish.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use skewless_defs::AggFunction;

use crate::exact_sum::{ExactSum, two_product};
use crate::value::Value;

/// A row's place for first and last: `(event_timestamp, created, value)`, null `created` lowest.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped {
    pub ts: i64,
    pub created: Option<i64>,
    pub value: Value,
}

impl Stamped {
    fn cmp(&self, other: &Stamped) -> Ordering {
        (self.ts, self.created)
            .cmp(&(other.ts, other.created))
            .then_with(|| self.value.total_cmp(&other.value))
    }
}

/// The partial aggregate of one feature over some rows (a tile, or a merge of tiles).
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Count(u64),
    /// sum and mean.
    Sum {
        n: u64,
        sum: ExactSum,
    },
    /// var_pop and stddev_pop.
    Moments {
        n: u64,
        sum: ExactSum,
        squares: ExactSum,
    },
    Min(Option<Value>),
    Max(Option<Value>),
    First(Option<Stamped>),
    Last(Option<Stamped>),
    Distinct(BTreeSet<Vec<u8>>),
}

impl State {
    /// The state of no rows.
    pub fn empty(function: AggFunction) -> State {
        match function {
            AggFunction::Count => State::Count(0),
            AggFunction::Sum | AggFunction::Mean => State::Sum {
                n: 0,
                sum: ExactSum::default(),
            },
            AggFunction::VarPop | AggFunction::StddevPop => State::Moments {
                n: 0,
                sum: ExactSum::default(),
                squares: ExactSum::default(),
            },
            AggFunction::Min => State::Min(None),
            AggFunction::Max => State::Max(None),
            AggFunction::First => State::First(None),
            AggFunction::Last => State::Last(None),
            AggFunction::CountDistinct => State::Distinct(BTreeSet::new()),
        }
    }

    /// Adds one row's input (`None`: null, skipped).
    pub fn add(&mut self, value: Option<&Value>, ts: i64, created: Option<i64>) {
        let Some(value) = value else { return };
        let row = || Stamped {
            ts,
            created,
            value: value.clone(),
        };
        let float = || match value {
            Value::Float(f) => *f,
            Value::Int(i) => *i as f64,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Str(_) => f64::NAN,
        };
        match self {
            State::Count(n) => *n += 1,
            State::Sum { n, sum } => {
                *n += 1;
                sum.add(float());
            }
            State::Moments { n, sum, squares } => {
                *n += 1;
                let x = float();
                sum.add(x);
                let (p, e) = two_product(x, x);
                squares.add(p);
                if p.is_finite() {
                    squares.add(e);
                }
            }
            State::Min(best) => keep(best, value, Ordering::Less),
            State::Max(best) => keep(best, value, Ordering::Greater),
            State::First(best) => keep_row(best, row(), Ordering::Less),
            State::Last(best) => keep_row(best, row(), Ordering::Greater),
            State::Distinct(set) => {
                set.insert(value.key_bytes());
            }
        }
    }

    /// Folds `other` (of the same function) in. Exact and commutative.
    pub fn merge(&mut self, other: &State) {
        match (self, other) {
            (State::Count(a), State::Count(b)) => *a += b,
            (State::Sum { n, sum }, State::Sum { n: m, sum: s }) => {
                *n += m;
                sum.merge(s);
            }
            (
                State::Moments { n, sum, squares },
                State::Moments {
                    n: m,
                    sum: s,
                    squares: q,
                },
            ) => {
                *n += m;
                sum.merge(s);
                squares.merge(q);
            }
            (State::Min(a), State::Min(Some(b))) => keep(a, b, Ordering::Less),
            (State::Max(a), State::Max(Some(b))) => keep(a, b, Ordering::Greater),
            (State::First(a), State::First(Some(b))) if a.as_ref().is_none_or(|x| b.cmp(x) == Ordering::Less) => {
                *a = Some(b.clone());
            }
            (State::Last(a), State::Last(Some(b))) if a.as_ref().is_none_or(|x| b.cmp(x) == Ordering::Greater) => {
                *a = Some(b.clone());
            }
            (State::Distinct(a), State::Distinct(b)) => a.extend(b.iter().cloned()),
            _ => {}
        }
    }

    /// The aggregate's value: `Int` for the counts, `Float` for sum, mean, var and stddev, the
    /// input's value for the others; `None` (null) when no row counted, except the counts' 0.
    pub fn finish(&self, function: AggFunction) -> Option<Value> {
        match self {
            State::Count(n) => Some(Value::Int(*n as i64)),
            State::Distinct(set) => Some(Value::Int(set.len() as i64)),
            State::Sum { n: 0, .. } | State::Moments { n: 0, .. } => None,
            State::Sum { n, sum } => {
                let total = sum.value();
                Some(Value::Float(match function {
                    AggFunction::Mean => total / *n as f64,
                    _ => total,
                }))
            }
            State::Moments { n, sum, squares } => {
                let var = variance(*n, sum, squares);
                Some(Value::Float(match function {
                    AggFunction::StddevPop => var.sqrt(),
                    _ => var,
                }))
            }
            State::Min(v) | State::Max(v) => v.clone(),
            State::First(s) | State::Last(s) => s.as_ref().map(|s| s.value.clone()),
        }
    }
}

fn keep_row(best: &mut Option<Stamped>, row: Stamped, wanted: Ordering) {
    if best.as_ref().is_none_or(|b| row.cmp(b) == wanted) {
        *best = Some(row);
    }
}

fn keep(best: &mut Option<Value>, candidate: &Value, wanted: Ordering) {
    if best.as_ref().is_none_or(|b| candidate.total_cmp(b) == wanted) {
        *best = Some(candidate.clone());
    }
}

/// `Σ(x − m)² / n` with `m = round(Σx) / n`, the numerator `Σx² − 2m·Σx + n·m²` computed
/// exactly and rounded once.
fn variance(n: u64, sum: &ExactSum, squares: &ExactSum) -> f64 {
    if !sum.is_finite() || !squares.is_finite() {
        return f64::NAN;
    }
    let count = n as f64;
    let m = sum.value() / count;
    let mut e = squares.clone();
    for &c in &sum.small {
        let (p, err) = two_product(-2.0 * m, c);
        e.add(p);
        e.add(err);
    }
    let (p, err) = two_product(m, m);
    for part in [p, err] {
        let (q, qerr) = two_product(count, part);
        e.add(q);
        e.add(qerr);
    }
    (e.value().max(0.0)) / count
}
