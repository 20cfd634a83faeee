//! The bytes of a tile's states in the online store (docs/online.md, "Tiles").
//!
//! The format is stored data: changing it needs a new tile record format in `online::layout`.

use std::collections::BTreeSet;

use skewless_defs::AggFunction;

use crate::exact_sum::ExactSum;
use crate::state::{Stamped, State};
use crate::value::Value;

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

/// Why bytes are not tile states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end `needed` bytes into a part with `left` bytes left.
    Truncated { needed: usize, left: usize },
    /// A string value is not UTF-8.
    NotUtf8,
    /// A value's type tag is none [`encode`] writes.
    UnknownTag(u8),
    /// The record goes on after its last state.
    Trailing { bytes: usize },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated { needed, left } => {
                write!(f, "tile state truncated: needed {needed} bytes, {left} left")
            }
            DecodeError::NotUtf8 => write!(f, "tile state: a string is not UTF-8"),
            DecodeError::UnknownTag(tag) => write!(f, "tile state: unknown value tag {tag}"),
            DecodeError::Trailing { bytes } => write!(f, "tile record: {bytes} bytes after its last state"),
        }
    }
}

impl std::error::Error for DecodeError {}

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

    /// `Ok` when every byte was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.bytes.len() {
            0 => Ok(()),
            bytes => Err(DecodeError::Trailing { bytes }),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated {
                needed: n,
                left: self.bytes.len(),
            });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn u32(&mut self) -> Result<usize, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b) as usize)
    }

    fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_bits(self.u64()?))
    }

    fn sum(&mut self) -> Result<ExactSum, DecodeError> {
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

    fn value(&mut self) -> Result<Value, DecodeError> {
        Ok(match self.u8()? {
            b'b' => Value::Bool(self.u8()? != 0),
            b'i' => Value::Int(self.u64()? as i64),
            b'f' => Value::Float(self.f64()?),
            b's' => {
                let len = self.u32()?;
                let bytes = self.take(len)?;
                Value::Str(String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::NotUtf8)?)
            }
            tag => return Err(DecodeError::UnknownTag(tag)),
        })
    }

    /// The next state, of `function`.
    pub fn state(&mut self, function: AggFunction) -> Result<State, DecodeError> {
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
