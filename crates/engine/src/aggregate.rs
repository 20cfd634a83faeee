//! Windowed aggregation state: the partial aggregates both paths build, merge and finish.
//!
//! A view's events are folded into *tiles* (DESIGN.md rule 6): per entity key and tile, one
//! [`State`] per aggregated feature. The training set merges the tiles inside each spine
//! row's window; the online store keeps the same states per tile (encoded by [`State::encode`])
//! and a lookup merges the tiles inside the window at its clock. Parity then needs one thing:
//! **every merge is exact and commutative**, so the result cannot depend on the order events
//! arrived in, how they were grouped into pushes, or how tiles were merged:
//!
//! - counts are integers;
//! - sums are exact ([`ExactSum`]: the float expansion of Shewchuk's algorithm, as in Python's
//!   `math.fsum`) and rounded once, correctly, when finished; mean divides that rounded sum;
//! - `var_pop` is `Σ(x − m)² / n` with `m` the finished mean, the numerator computed exactly
//!   from the exact sums `Σx` and `Σx²` (each square split exactly by a fused multiply-add)
//!   and rounded once;
//! - min and max use a total order (floats by `f64::total_cmp` with NaN canonical, so NaN is
//!   greater than every number and −0 < +0); first and last order rows by
//!   `(event_timestamp, created, value)` with a null `created` lowest, the value breaking exact
//!   ties the way the as-of join does;
//! - count_distinct keeps the set of distinct values (exact; memory grows with the number of
//!   distinct values per tile and entity).
//!
//! Every function skips null inputs. Non-finite inputs: a NaN makes sum, mean, var and stddev
//! NaN; +inf and −inf make them ±inf (or NaN together); var and stddev are NaN when any input
//! is infinite or its square overflows.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array,
    PrimitiveArray, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use skewless_defs::{AggFunction, FeatureType};

/// One input or result value of an aggregate. Ints, int32s and timestamps (µs) are `Int`;
/// float32s are widened exactly to `Float`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl Value {
    /// The total order min, max, first and last use. Values of one input share a variant.
    pub fn total_cmp(&self, other: &Value) -> Ordering {
        match (self, other) {
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Float(a), Value::Float(b)) => a.total_cmp(b),
            (Value::Str(a), Value::Str(b)) => a.as_bytes().cmp(b.as_bytes()),
            (a, b) => variant(a).cmp(&variant(b)),
        }
    }

    /// Order-preserving bytes: what count_distinct keeps.
    fn key_bytes(&self) -> Vec<u8> {
        match self {
            Value::Bool(b) => vec![0, u8::from(*b)],
            Value::Int(i) => [&[1u8][..], &(*i as u64 ^ (1 << 63)).to_be_bytes()].concat(),
            Value::Float(f) => [&[2u8][..], &f.to_bits().to_be_bytes()].concat(),
            Value::Str(s) => [&[3u8][..], s.as_bytes()].concat(),
        }
    }
}

fn variant(v: &Value) -> u8 {
    match v {
        Value::Bool(_) => 0,
        Value::Int(_) => 1,
        Value::Float(_) => 2,
        Value::Str(_) => 3,
    }
}

/// NaN in one canonical form, so its bits (and its place in the total order) are one thing.
fn canonical(x: f64) -> f64 {
    if x.is_nan() { f64::NAN } else { x }
}

/// An input array with its type resolved once: reading a row is a match on a small tag, not a
/// type check and a downcast (the sweeps read every event once per feature). The array has
/// the Arrow type of a feature type (or Float64 for the numeric aggregates' inputs).
#[derive(Debug, Clone, Copy)]
pub enum Column<'a> {
    Bool(&'a BooleanArray),
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    Float32(&'a Float32Array),
    Float64(&'a Float64Array),
    Utf8(&'a StringArray),
    Time(&'a TimestampMicrosecondArray),
    /// Inputs are cast to feature types before they get here (`compile`): never read.
    Other,
}

impl<'a> Column<'a> {
    pub fn new(array: &'a dyn Array) -> Self {
        match array.data_type() {
            DataType::Boolean => Column::Bool(array.as_boolean()),
            DataType::Int32 => Column::Int32(array.as_primitive()),
            DataType::Int64 => Column::Int64(array.as_primitive()),
            DataType::Float32 => Column::Float32(array.as_primitive()),
            DataType::Float64 => Column::Float64(array.as_primitive()),
            DataType::Utf8 => Column::Utf8(array.as_string::<i32>()),
            DataType::Timestamp(TimeUnit::Microsecond, _) => Column::Time(array.as_primitive()),
            _ => Column::Other,
        }
    }

    /// Whether this is the Arrow type a feature of type `ty` has ([`crate::types::arrow_type`],
    /// any time zone).
    pub fn holds(&self, ty: FeatureType) -> bool {
        matches!(
            (self, ty),
            (Column::Bool(_), FeatureType::Bool)
                | (Column::Int32(_), FeatureType::Int32)
                | (Column::Int64(_), FeatureType::Int64)
                | (Column::Float32(_), FeatureType::Float32)
                | (Column::Float64(_), FeatureType::Float64)
                | (Column::Utf8(_), FeatureType::String)
                | (Column::Time(_), FeatureType::Timestamp)
        )
    }

    /// Whether `row` is null (an `Other` column reads as all null).
    #[inline]
    pub fn is_null(&self, row: usize) -> bool {
        match self {
            Column::Bool(a) => a.is_null(row),
            Column::Int32(a) => a.is_null(row),
            Column::Int64(a) => a.is_null(row),
            Column::Float32(a) => a.is_null(row),
            Column::Float64(a) => a.is_null(row),
            Column::Utf8(a) => a.is_null(row),
            Column::Time(a) => a.is_null(row),
            Column::Other => true,
        }
    }

    /// The value at `row`, `None` when null.
    #[inline]
    pub fn value(&self, row: usize) -> Option<Value> {
        fn get<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, row: usize) -> Option<T::Native> {
            a.is_valid(row).then(|| a.value(row))
        }
        match self {
            Column::Bool(a) => a.is_valid(row).then(|| Value::Bool(a.value(row))),
            Column::Int32(a) => get(a, row).map(|v| Value::Int(i64::from(v))),
            Column::Int64(a) => get(a, row).map(Value::Int),
            Column::Float32(a) => get(a, row).map(|v| Value::Float(canonical(f64::from(v)))),
            Column::Float64(a) => get(a, row).map(|v| Value::Float(canonical(v))),
            Column::Utf8(a) => a.is_valid(row).then(|| Value::Str(a.value(row).to_string())),
            Column::Time(a) => get(a, row).map(Value::Int),
            Column::Other => None,
        }
    }
}

/// An Arrow array of type `ty` from finished values.
pub fn to_array(ty: FeatureType, values: &[Option<Value>]) -> ArrayRef {
    let int = |v: &Option<Value>| match v {
        Some(Value::Int(i)) => Some(*i),
        _ => None,
    };
    let float = |v: &Option<Value>| match v {
        Some(Value::Float(f)) => Some(*f),
        _ => None,
    };
    match ty {
        FeatureType::Bool => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    Some(Value::Bool(b)) => Some(*b),
                    _ => None,
                })
                .collect::<BooleanArray>(),
        ),
        FeatureType::Int32 => Arc::new(
            values
                .iter()
                .map(|v| int(v).and_then(|i| i32::try_from(i).ok()))
                .collect::<Int32Array>(),
        ),
        FeatureType::Int64 => Arc::new(values.iter().map(int).collect::<Int64Array>()),
        FeatureType::Float32 => Arc::new(
            values
                .iter()
                .map(|v| float(v).map(|f| f as f32))
                .collect::<Float32Array>(),
        ),
        FeatureType::Float64 => Arc::new(values.iter().map(float).collect::<Float64Array>()),
        FeatureType::String => Arc::new(
            values
                .iter()
                .map(|v| match v {
                    Some(Value::Str(s)) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<StringArray>(),
        ),
        FeatureType::Timestamp => Arc::new(
            values
                .iter()
                .map(int)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        ),
    }
}

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
    small: Vec<f64>,
    /// The same for inputs ≥ 2^900, scaled by 2^-600.
    big: Vec<f64>,
    nan: bool,
    pos_inf: bool,
    neg_inf: bool,
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

    fn is_finite(&self) -> bool {
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
fn two_product(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    (p, a.mul_add(b, -p))
}

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

// ---------------------------------------------------------------------------------------------
// Encoding: the bytes of a tile's states in the online store (docs/online.md, "Tiles").

/// Appends `state`'s bytes to `out`.
pub fn encode(state: &State, out: &mut Vec<u8>) {
    match state {
        State::Count(n) => out.extend_from_slice(&n.to_be_bytes()),
        State::Sum { n, sum } => {
            out.extend_from_slice(&n.to_be_bytes());
            encode_sum(sum, out);
        }
        State::Moments { n, sum, squares } => {
            out.extend_from_slice(&n.to_be_bytes());
            encode_sum(sum, out);
            encode_sum(squares, out);
        }
        State::Min(v) | State::Max(v) => match v {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                encode_value(v, out);
            }
        },
        State::First(s) | State::Last(s) => match s {
            None => out.push(0),
            Some(s) => {
                out.push(1);
                out.extend_from_slice(&s.ts.to_be_bytes());
                match s.created {
                    None => out.push(0),
                    Some(c) => {
                        out.push(1);
                        out.extend_from_slice(&c.to_be_bytes());
                    }
                }
                encode_value(&s.value, out);
            }
        },
        State::Distinct(set) => {
            out.extend_from_slice(&(set.len() as u32).to_be_bytes());
            for v in set {
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }
}

fn encode_sum(sum: &ExactSum, out: &mut Vec<u8>) {
    out.push(u8::from(sum.nan) | u8::from(sum.pos_inf) << 1 | u8::from(sum.neg_inf) << 2);
    for part in [&sum.small, &sum.big] {
        out.push(part.len() as u8);
        for p in part {
            out.extend_from_slice(&p.to_bits().to_be_bytes());
        }
    }
}

fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Bool(b) => {
            out.push(b'b');
            out.push(u8::from(*b));
        }
        Value::Int(i) => {
            out.push(b'i');
            out.extend_from_slice(&i.to_be_bytes());
        }
        Value::Float(f) => {
            out.push(b'f');
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::Str(s) => {
            out.push(b's');
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// Reads states written by [`encode`]; every length is checked, so bad bytes are an error,
/// never a panic.
#[derive(Debug)]
pub struct Decoder<'a> {
    bytes: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Decoder { bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err(format!(
                "tile state truncated: needed {n} bytes, {} left",
                self.bytes.len()
            ));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    pub fn u64(&mut self) -> Result<u64, String> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn u32(&mut self) -> Result<usize, String> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b) as usize)
    }

    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_bits(self.u64()?))
    }

    fn sum(&mut self) -> Result<ExactSum, String> {
        let flags = self.u8()?;
        let mut parts = [Vec::new(), Vec::new()];
        for part in &mut parts {
            let len = self.u8()? as usize;
            for _ in 0..len {
                part.push(self.f64()?);
            }
        }
        let [small, big] = parts;
        Ok(ExactSum {
            small,
            big,
            nan: flags & 1 != 0,
            pos_inf: flags & 2 != 0,
            neg_inf: flags & 4 != 0,
        })
    }

    fn value(&mut self) -> Result<Value, String> {
        Ok(match self.u8()? {
            b'b' => Value::Bool(self.u8()? != 0),
            b'i' => Value::Int(self.u64()? as i64),
            b'f' => Value::Float(self.f64()?),
            b's' => {
                let len = self.u32()?;
                let bytes = self.take(len)?;
                Value::Str(String::from_utf8(bytes.to_vec()).map_err(|_| "tile state: string is not UTF-8")?)
            }
            tag => return Err(format!("tile state: unknown value tag {tag}")),
        })
    }

    /// The next state, of `function`.
    pub fn state(&mut self, function: AggFunction) -> Result<State, String> {
        Ok(match State::empty(function) {
            State::Count(_) => State::Count(self.u64()?),
            State::Sum { .. } => State::Sum {
                n: self.u64()?,
                sum: self.sum()?,
            },
            State::Moments { .. } => State::Moments {
                n: self.u64()?,
                sum: self.sum()?,
                squares: self.sum()?,
            },
            State::Min(_) | State::Max(_) => {
                let v = match self.u8()? {
                    0 => None,
                    _ => Some(self.value()?),
                };
                if function == AggFunction::Min {
                    State::Min(v)
                } else {
                    State::Max(v)
                }
            }
            State::First(_) | State::Last(_) => {
                let s = match self.u8()? {
                    0 => None,
                    _ => {
                        let ts = self.u64()? as i64;
                        let created = match self.u8()? {
                            0 => None,
                            _ => Some(self.u64()? as i64),
                        };
                        Some(Stamped {
                            ts,
                            created,
                            value: self.value()?,
                        })
                    }
                };
                if function == AggFunction::First {
                    State::First(s)
                } else {
                    State::Last(s)
                }
            }
            State::Distinct(_) => {
                let n = self.u32()?;
                let mut set = BTreeSet::new();
                for _ in 0..n {
                    let len = self.u32()?;
                    set.insert(self.take(len)?.to_vec());
                }
                State::Distinct(set)
            }
        })
    }
}

/// The tile index of an instant: `floor(ts / tile)`.
pub fn tile_of(ts: i64, tile_micros: i64) -> i64 {
    ts.div_euclid(tile_micros)
}

/// The first tile inside a window of `window_micros` (a multiple of the tile) at `t`: the
/// window is the tile holding `t` and the `window / tile − 1` whole tiles before it.
pub fn first_tile(t: i64, tile_micros: i64, window_micros: i64) -> i64 {
    tile_of(t, tile_micros) - window_micros / tile_micros + 1
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
