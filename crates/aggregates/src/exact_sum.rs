//! Exact float sums: the same correctly rounded result for any order of additions and merges.

/// 2^900: finite inputs at least this large are summed scaled down by 2^-600, so no
/// intermediate sum of finite inputs can overflow (whatever the order).
const BIG: f64 = f64::from_bits((1023 + 900) << 52);
const SCALE_DOWN: f64 = f64::from_bits((1023 - 600) << 52);
const SCALE_UP: f64 = f64::from_bits((1023 + 600) << 52);

/// An exact sum of floats, rounded once when read: the same result for any order of
/// additions and merges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExactSum {
    /// Non-overlapping partials in increasing magnitude (Shewchuk); their exact sum is the sum.
    pub(crate) small: Vec<f64>,
    /// The same for inputs ≥ 2^900, scaled by 2^-600.
    pub(crate) big: Vec<f64>,
    pub(crate) nan: bool,
    pub(crate) pos_inf: bool,
    pub(crate) neg_inf: bool,
}

impl ExactSum {
    pub fn add(&mut self, x: f64) {
        if x.is_nan() {
            self.nan = true;
        } else if x == f64::INFINITY {
            self.pos_inf = true;
        } else if x == f64::NEG_INFINITY {
            self.neg_inf = true;
        } else if x.abs() >= BIG {
            grow(&mut self.big, x * SCALE_DOWN);
        } else {
            grow(&mut self.small, x);
        }
    }

    pub fn merge(&mut self, other: &ExactSum) {
        for &p in &other.small {
            grow(&mut self.small, p);
        }
        for &p in &other.big {
            grow(&mut self.big, p);
        }
        self.nan |= other.nan;
        self.pos_inf |= other.pos_inf;
        self.neg_inf |= other.neg_inf;
    }

    pub(crate) fn is_finite(&self) -> bool {
        !(self.nan || self.pos_inf || self.neg_inf) && self.big.iter().all(|&b| b == 0.0)
    }

    /// The sum, correctly rounded (inputs ≥ 2^900 aside, whose part is rounded on its own).
    pub fn value(&self) -> f64 {
        if self.nan || (self.pos_inf && self.neg_inf) {
            return f64::NAN;
        }
        if self.pos_inf {
            return f64::INFINITY;
        }
        if self.neg_inf {
            return f64::NEG_INFINITY;
        }
        let small = round(&self.small);
        let big = round(&self.big);
        if big == 0.0 { small } else { big * SCALE_UP + small }
    }
}

/// Adds `x` to the partials exactly (Shewchuk's grow-expansion, as Python's `msum`).
fn grow(partials: &mut Vec<f64>, mut x: f64) {
    let mut kept = 0;
    for j in 0..partials.len() {
        let mut y = partials[j];
        if x.abs() < y.abs() {
            std::mem::swap(&mut x, &mut y);
        }
        let hi = x + y;
        let lo = y - (hi - x);
        if lo != 0.0 {
            partials[kept] = lo;
            kept += 1;
        }
        x = hi;
    }
    partials.truncate(kept);
    partials.push(x);
}

/// The correctly rounded sum of non-overlapping partials (Python's `fsum`, final step).
fn round(p: &[f64]) -> f64 {
    let Some(mut n) = p.len().checked_sub(1) else {
        return 0.0;
    };
    let mut hi = p[n];
    let mut lo = 0.0;
    while n > 0 {
        let x = hi;
        n -= 1;
        let y = p[n];
        hi = x + y;
        let yr = hi - x;
        lo = y - yr;
        if lo != 0.0 {
            break;
        }
    }
    // Half-way cases: round half to even on the exact value, not on `hi + lo`.
    if n > 0 && ((lo < 0.0 && p[n - 1] < 0.0) || (lo > 0.0 && p[n - 1] > 0.0)) {
        let y = lo * 2.0;
        let x = hi + y;
        if y == x - hi {
            hi = x;
        }
    }
    hi
}

/// `a · b` as an exact pair `(p, e)` with `p + e = a · b` (barring over- and underflow).
pub(crate) fn two_product(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}
